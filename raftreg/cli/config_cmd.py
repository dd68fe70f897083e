"""``raftreg config init`` (a cluster's files for real hosts) and ``raftreg config check``."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import click
import msgspec

from raftreg.config import ClusterConfig, ConfigError
from raftreg.config_check import check_config
from raftreg.config_init import NAME_RE, Member, Ports, node_configs, parse_member, render_config, write_secret


@click.group("config")
def config_group() -> None:
    """Generate and check cluster configs."""


def _members(nodes: tuple[str, ...], replicas: tuple[str, ...]) -> list[Member]:
    try:
        return [parse_member(n) for n in nodes] + [parse_member(r, "replica") for r in replicas]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--node/--replica") from None


@config_group.command("init")
@click.option("--name", required=True, help="The cluster's name.")
@click.option("--node", "nodes", multiple=True, required=True, metavar="NAME=HOST",
              help="A voting member and its host (repeatable; use an odd number).")
@click.option("--replica", "replicas", multiple=True, metavar="NAME=HOST", help="A read replica (repeatable).")
@click.option("--tls", "use_tls", is_flag=True, help="Also generate a CA and node certificates (<out-dir>/tls/).")
@click.option("--out-dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Where to write the secret (and tls/).")
@click.option("--install-dir", default="/etc/raftreg", show_default=True,
              help="Where the files will be on the hosts (the paths written into the config).")
@click.option("--data-dir", default="/var/lib/raftreg", show_default=True, help="The nodes' data directory.")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8500, show_default=True)
@click.option("--raft-port", type=click.IntRange(1, 65535), default=8300, show_default=True)
@click.option("--consul-port", type=click.IntRange(1, 65535), help="Serve the Consul-compatible API on this port.")
@click.option("--dns-port", type=click.IntRange(1, 65535), help="Serve DNS on this port.")
@click.option("--force", is_flag=True, help="Replace an existing secret (and certificates) in --out-dir.")
def init(name: str, nodes: tuple[str, ...], replicas: tuple[str, ...], use_tls: bool, out_dir: str,
         install_dir: str, data_dir: str, http_port: int, raft_port: int, consul_port: int | None,
         dns_port: int | None, force: bool) -> None:
    """Print a cluster config for real hosts (TOML, on stdout) and write its secret (mode 600)
    and, with --tls, the CA and node certificates into --out-dir. Check the result with
    `raftreg config check`."""
    members = _members(nodes, replicas)
    ports = Ports(http_port, raft_port, consul_port, dns_port)
    text = render_config(name, members, ports=ports, install_dir=install_dir.rstrip("/") or "/",
                         data_dir=data_dir, tls=use_tls)
    out = Path(out_dir)
    secret = out / "secret"
    if secret.exists() and not force:
        raise click.UsageError(f"{secret} exists (another cluster's secret?): pass --force to replace it")
    reserved = {m.name for m in members} & {"ca", "client"} if use_tls else set()
    if reserved:
        raise click.UsageError(f"with --tls a node cannot be called {sorted(reserved)[0]!r} (its certificate "
                               "would overwrite the CA's or the client's)")
    if not NAME_RE.match(name):
        raise click.BadParameter(f"{name!r}: letters, digits, '.', '-' and '_' only", param_hint="--name")
    node_list = node_configs(members, ports)
    try:  # the config as a node will read it: duplicate names or addresses, bad paths fail here, before any file
        msgspec.convert(tomllib.loads(text), ClusterConfig)
    except (ConfigError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise click.UsageError(f"the config would not load: {exc}") from None
    if secret.exists():
        secret.unlink()
    write_secret(secret)
    click.echo(f"wrote {secret} (mode 600)", err=True)
    if use_tls:
        from raftreg.certgen import generate

        generate(node_list, out / "tls", cluster=name)
        click.echo(f"wrote a CA and {len(node_list)} node certificates to {out / 'tls'}/ (keys mode 600)", err=True)
    click.echo(text, nl=False)
    if sys.stdout.isatty():
        click.echo(f"(redirect this to a file: raftreg config init ... > {name}.toml)", err=True)
    tls_files = f", {out / 'tls'}/ (all but ca-key.pem: the CA's key stays here)" if use_tls else ""
    click.echo(f"copy the config, {secret}{tls_files} to {install_dir}/ on every host", err=True)


@config_group.command("check")
@click.argument("config_file", type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
def check(config_file: str, strict: bool) -> None:
    """Validate a cluster config and explain each problem in one line; exit 0 when clean, 1 when
    there are errors (or warnings, with --strict)."""
    problems = check_config(config_file, os.environ)
    for problem in problems:
        click.echo(f"{config_file}: {problem}")
    failing = [p for p in problems if p.level == "error" or strict]
    if failing:
        sys.exit(1)
    if not problems:
        click.echo(f"{config_file}: ok")
