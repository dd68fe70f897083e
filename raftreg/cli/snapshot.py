"""``raftreg snapshot``: save, inspect and restore backups (README "Backup and restore").

- ``save FILE``: ``GET /v1/snapshot`` into ``FILE`` (written to a temporary file beside it,
  verified, then renamed: a failed save never leaves a partial ``FILE``).
- ``inspect FILE``: the manifest and counts (``-o json`` too); verifies the SHA-256 and says so.
- ``restore FILE``: ``PUT /v1/snapshot`` into the running cluster (checked locally first, then
  by the node; never retried: a timeout means its outcome is unknown).
- ``restore FILE --new-cluster --config C``: writes the state into the fresh (absent or empty)
  data directories of every node of ``C`` (``raftreg.raft.seed``) with a new cluster identity;
  then start the nodes with ``raftreg serve``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import click
import msgspec

from raftreg.backup.archive import ArchiveError, Manifest, read_archive, read_manifest
from raftreg.cli.output import print_json, print_table
from raftreg.client.core import Request, Response, parse_reply
from raftreg.config import ConfigError, load_config
from raftreg.raft.seed import seed_data_dir
from raftreg.state.restorable import decode_payload

SAVE_TIMEOUT = 120.0  # a 100,000-instance state takes seconds to encode and send


def _client(ctx: Any) -> Any:
    """The context's client, or a usage error when no node address is known."""
    if not ctx.addrs:
        raise click.UsageError("no node address: give --addr, or --config with the cluster's config")
    return ctx.client(timeout=SAVE_TIMEOUT, deadline=SAVE_TIMEOUT)


@click.group()
def snapshot() -> None:
    """Back up and restore the whole state (registry, KV, sessions, ACLs)."""


@snapshot.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def save(ctx: Any, file: str) -> None:
    """Save a snapshot of the running cluster into FILE (atomic: temp file + rename)."""
    with _client(ctx) as client:
        response: Response = client._call(Request("GET", "/v1/snapshot", is_read=True), lambda r: r)
    try:
        manifest, _ = read_archive(response.body)
    except ArchiveError as exc:
        raise click.ClickException(f"the node sent an unreadable snapshot: {exc}") from None
    target = Path(file)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent.resolve())
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(response.body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _report(ctx, manifest, verified=True, extra={"file": str(target), "bytes": len(response.body)})


@snapshot.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def inspect(ctx: Any, file: str) -> None:
    """Print FILE's manifest and counts, and whether its SHA-256 matches."""
    data = Path(file).read_bytes()
    try:
        manifest = read_manifest(data)
    except ArchiveError as exc:
        raise click.ClickException(str(exc)) from None
    problem = None
    try:
        read_archive(data)
    except ArchiveError as exc:
        problem = str(exc)
    _report(ctx, manifest, verified=problem is None, extra={"file": file, "bytes": len(data)}, problem=problem)
    if problem is not None:
        raise SystemExit(1)


@snapshot.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--new-cluster", is_flag=True, help="Seed the fresh data directories of --config's nodes.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="The new cluster's config (with --new-cluster).")
@click.pass_obj
def restore(ctx: Any, file: str, new_cluster: bool, config_path: str | None) -> None:
    """Restore FILE into the running cluster, or into fresh data directories (--new-cluster --config C)."""
    if not new_cluster:
        _restore_online(ctx, file)
        return
    if config_path is None:
        raise click.UsageError("--new-cluster needs --config (the new cluster's config)")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    manifest, payload = _verified(file)
    dirs = {n.name: config.node_data_dir(n.name) for n in config.nodes}
    busy = [str(d) for d in dirs.values() if d.exists() and any(d.iterdir())]
    if busy:
        raise click.ClickException(f"refusing to restore: these data directories are not empty: {', '.join(busy)}")
    cluster_id = uuid.uuid4().hex
    raft_addrs = [n.raft for n in config.nodes]
    index = 0
    for directory in dirs.values():
        index = seed_data_dir(directory, payload, manifest.index, cluster_id, raft_addrs)
    out = {"cluster": config.name, "cluster_id": cluster_id, "index": index,
           "data_dirs": [str(d) for d in dirs.values()]}
    if ctx is not None and ctx.output == "json":
        print_json(out)
    else:
        click.echo(f"restored index {index} into {len(dirs)} data directories (cluster id {cluster_id}); "
                   f"start the nodes with `raftreg serve --config {config_path} --node NAME`")


def _restore_online(ctx: Any, file: str) -> None:
    manifest, _ = _verified(file)
    request = Request("PUT", "/v1/snapshot", body=Path(file).read_bytes(), idempotent=False,
                      content_type="application/gzip")
    with _client(ctx) as client:
        reply = client._call(request, parse_reply)
    if ctx.output == "json":
        print_json(reply.body)
    else:
        counts = ", ".join(f"{v} {k}" for k, v in msgspec.to_builtins(manifest.counts).items())
        click.echo(f"restored {file} (taken at index {manifest.index}) at index {reply.body['index']}: {counts}")


def _verified(file: str) -> tuple[Manifest, bytes]:
    """The manifest and payload of FILE, checked down to the decoding of the state."""
    try:
        manifest, payload = read_archive(Path(file).read_bytes())
        decode_payload(payload)
    except (ArchiveError, ValueError, msgspec.DecodeError) as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    return manifest, payload


def _report(ctx: Any, manifest: Manifest, *, verified: bool, extra: dict[str, Any], problem: str | None = None) -> None:
    body = {**msgspec.to_builtins(manifest), **extra, "sha256_verified": verified}
    if problem is not None:
        body["problem"] = problem
    if ctx is not None and ctx.output == "json":
        print_json(body)
        return
    rows = [[k, body[k]] for k in ("file", "bytes", "cluster", "index", "term", "created", "raftreg_version",
                                    "format_version", "sha256")]
    rows += [[f"count: {k}", v] for k, v in msgspec.to_builtins(manifest.counts).items()]
    rows += [[f"member: {m.name}", f"raft {m.raft} http {m.http} ({m.role})"] for m in manifest.members]
    rows.append(["sha256 verified", "yes" if verified else f"NO: {problem}"])
    print_table(["field", "value"], rows)
