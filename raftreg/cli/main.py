"""``raftreg``: run nodes and talk to a cluster.

Client commands talk to any node (``--addr``, ``$RAFTREG_ADDR``, comma-separated) and fall back
to the other nodes of ``--config`` when one is down. Tables by default, ``-o json`` for scripts.
TLS: ``--ca-file/--cert-file/--key-file`` (``$RAFTREG_CA_FILE`` ...); a ``--config`` with ``[tls]``
means https and that config's CA unless ``--ca-file`` says otherwise.
Errors print one line and exit non-zero.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from raftreg.cli.acl import acl, add_token_option
from raftreg.cli.chaos import chaos
from raftreg.cli.cluster import cluster
from raftreg.cli.completion import completion
from raftreg.cli.config_cmd import config_group
from raftreg.cli.entry import run_command
from raftreg.cli.examples import add_examples
from raftreg.cli.interruptible import in_background, join_promptly
from raftreg.cli.kv import kv
from raftreg.cli.lab import lab
from raftreg.cli.local import DEFAULT_CONFIG, dev
from raftreg.cli.lock import elect, lock
from raftreg.cli.output import print_json, print_table
from raftreg.cli.rolling import rolling_restart
from raftreg.cli.serve import serve
from raftreg.cli.snapshot import snapshot
from raftreg.cli.tls import tls
from raftreg.cli.top import top
from raftreg.client import Check, NotFound, Registration, RegistryClient, keep_alive_blocking
from raftreg.config import ConfigError, load_config
from raftreg.devcluster import default_http_addrs
from raftreg.durations import parse_duration
from raftreg.errors import RaftregError
from raftreg.version import version_message

# One command's budget: seconds per attempt at one node, and for the whole call with failovers
# (enough to ride out an election; a cluster that is down is reported after DEADLINE).
ATTEMPT_TIMEOUT = 6.0
DEADLINE = 5.0
STATUS_TIMEOUT = 2.0  # ``status`` asks each node on its own: a dead one shows as "down" after this


class Ctx:
    """What the group options decided, for every command. ``deadline``: ``--timeout``, the budget
    of one call to the cluster (``DEADLINE`` unless given)."""

    def __init__(self, addrs: list[str], output: str, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, token: str | None = None, deadline: float = DEADLINE) -> None:
        self.addrs = addrs
        self.output = output
        self.tls_files = (ca_file, cert_file, key_file)
        self.token = token
        self.deadline = deadline

    def client(self, addrs: list[str] | None = None, timeout: float = ATTEMPT_TIMEOUT,
               deadline: float | None = None) -> RegistryClient:
        """A blocking client over ``addrs`` (default: every known address), with the TLS files and
        the ACL token (use it in a ``with`` block). ``deadline``: a command's own budget (a
        membership change, a snapshot); by default ``--timeout``."""
        ca_file, cert_file, key_file = self.tls_files
        budget = self.deadline if deadline is None else deadline
        return RegistryClient(addrs or self.addrs, timeout=timeout, deadline=budget, ca_file=ca_file,
                              cert_file=cert_file, key_file=key_file, token=self.token)


def _timeout_option(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """``--timeout``: a positive duration ("5s", "500ms", "1m", or seconds as a number)."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not seconds > 0:
        raise click.BadParameter("must be more than 0 (for example 5s or 500ms)")
    return seconds


def _addresses(addr: str | None, config_path: str | None) -> tuple[list[str], str | None]:
    """The addresses to use (all https when the config has ``[tls]``) and the config's CA file."""
    addrs = [a.strip() for a in (addr or "").split(",") if a.strip()]
    path = config_path or (DEFAULT_CONFIG if not addrs else None)
    if path == DEFAULT_CONFIG and not config_path and not Path(path).is_file():
        return default_http_addrs(), None  # outside the repository: the embedded `raftreg dev` cluster
    if path:
        try:
            config = load_config(path)
        except ConfigError:
            if not addrs:
                raise
        else:
            addrs += [n.http for n in config.nodes if n.http not in addrs]
            if config.tls is not None:
                return [a if "://" in a else f"https://{a}" for a in addrs], config.tls.ca_file
    return addrs, None


@click.group()
@click.version_option(message=version_message(), help="Print the raftreg and pysyncobj versions.")
@click.option("--addr", envvar="RAFTREG_ADDR", help="Node address(es) host:port, comma-separated.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help=f"Cluster config whose nodes to fall back to (default {DEFAULT_CONFIG} when no --addr).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--ca-file", envvar="RAFTREG_CA_FILE", type=click.Path(dir_okay=False),
              help="CA to verify the nodes with (implies https; default: the config's tls.ca_file).")
@click.option("--cert-file", envvar="RAFTREG_CERT_FILE", type=click.Path(dir_okay=False),
              help="Client certificate (PEM), for clusters with tls.verify_clients.")
@click.option("--key-file", envvar="RAFTREG_KEY_FILE", type=click.Path(dir_okay=False),
              help="The client certificate's key (PEM), unless it is in --cert-file.")
@click.option("--token", envvar="RAFTREG_TOKEN", help="ACL token secret (sent as Authorization: Bearer).")
@click.option("--timeout", "deadline", envvar="RAFTREG_TIMEOUT", default=f"{DEADLINE:g}s", show_default=True,
              callback=_timeout_option,
              help="How long one request keeps trying the cluster, retries and the other nodes included "
                   "(as etcdctl's --command-timeout; a watch adds its wait). status, top, snapshots, rolling "
                   "restarts and membership changes keep their own budgets.")
@click.pass_context
def cli(ctx: click.Context, addr: str | None, config_path: str | None, output: str, ca_file: str | None,
        cert_file: str | None, key_file: str | None, token: str | None, deadline: float) -> None:
    """raftreg: a fault-tolerant service registry replicated with Raft."""
    if ctx.invoked_subcommand in ("serve", "dev", "chaos", "tls", "config", "completion", "lab"):
        return
    try:
        addrs, config_ca = _addresses(addr, config_path)
    except ConfigError:
        if ctx.invoked_subcommand != "snapshot":  # `snapshot inspect` and --new-cluster need no cluster
            raise
        addrs, config_ca = [], None
    ctx.obj = Ctx(addrs, output, ca_file or config_ca, cert_file, key_file, token, deadline)


cli.add_command(serve)
cli.add_command(dev)
cli.add_command(chaos)
cli.add_command(kv)
cli.add_command(lock)
cli.add_command(elect)
cli.add_command(tls)
cli.add_command(acl)
cli.add_command(top)
cli.add_command(cluster)
cluster.add_command(rolling_restart)  # raftreg cluster rolling-restart
cli.add_command(config_group)
cli.add_command(completion)
cli.add_command(snapshot)
cli.add_command(lab)


def _instance_rows(instances: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [i["id"], f"{i['address']}:{i['port']}", i["status"], i["weight"], ",".join(i["tags"]),
         ",".join(f"{k}={v}" for k, v in sorted(i["meta"].items())), i["modify_index"]]
        for i in instances
    ]


INSTANCE_HEADERS = ["id", "address", "status", "weight", "tags", "meta", "index"]


@cli.command()
@click.argument("service")
@click.argument("instance_id")
@click.option("--address", required=True, help="IP address or host name.")
@click.option("--port", required=True, type=int)
@click.option("--tag", "tags", multiple=True, help="Repeatable.")
@click.option("--meta", "meta", multiple=True, help="key=value, repeatable.")
@click.option("--weight", type=int, default=100, show_default=True)
@click.option("--ttl", help="Make the instance ephemeral, e.g. 10s: it expires unless it heartbeats.")
@click.option("--keepalive", is_flag=True, help="Stay in the foreground heartbeating every ttl/3 (needs --ttl); "
              "deregister on Ctrl-C.")
@click.option("--check-http", metavar="URL", help="Active check: GET URL, 2xx passes.")
@click.option("--check-tcp", metavar="HOST:PORT", help="Active check: a TCP connect passes.")
@click.option("--check-interval", default="10s", show_default=True)
@click.option("--check-timeout", default="2s", show_default=True)
@click.pass_obj
def register(ctx: Ctx, service: str, instance_id: str, address: str, port: int, tags: tuple[str, ...],
             meta: tuple[str, ...], weight: int, ttl: str | None, keepalive: bool, check_http: str | None,
             check_tcp: str | None, check_interval: str, check_timeout: str) -> None:
    """Register (or replace) an instance."""
    check = None
    if check_http or check_tcp:
        check = Check(http=check_http, tcp=check_tcp, interval=_duration_option(check_interval, "--check-interval"),
                      timeout=_duration_option(check_timeout, "--check-timeout"))
    spec = Registration(address=address, port=port, tags=tags, meta=dict(_kv(m) for m in meta), weight=weight,
                        ttl=_duration_option(ttl, "--ttl") if ttl else None, check=check)
    if keepalive:
        if spec.ttl is None:
            raise click.UsageError("--keepalive needs --ttl")
        _register_and_keep_alive(ctx, service, instance_id, spec, spec.ttl)
        return
    with ctx.client() as client:
        stored = client.register(service, instance_id, spec)
    if ctx.output == "json":
        print_json(stored.to_wire())
    else:
        click.echo(f"registered {service}/{instance_id} at index {stored.index}")


def _duration_option(text: str, hint: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _register_and_keep_alive(ctx: Ctx, service: str, instance_id: str, spec: Registration, ttl: float) -> None:
    """``register --keepalive``: heartbeat until SIGINT/SIGTERM, then deregister.

    The heartbeats run in a worker thread; the main thread only waits for it, so the signal
    handlers (which run in the main thread) can set the stop event without taking a lock the
    heartbeat loop might hold."""
    name = f"{service}/{instance_id}"

    def report(event: tuple[str, Any]) -> None:
        kind, detail = event
        if ctx.output == "json":
            print_json({"event": kind, "detail": detail, "service": service, "id": instance_id})
        elif kind == "registered":
            click.echo(f"registered {name} at index {detail}; heartbeating every {ttl / 3:g}s (Ctrl-C deregisters)")
        elif kind == "reregistered":
            click.echo(f"lease of {name} had expired: registered again at index {detail}")
        else:
            click.echo(f"heartbeat of {name} failed ({detail}); retrying", err=True)

    stop = threading.Event()
    failure: list[BaseException] = []
    with ctx.client() as client:

        def beat() -> None:
            try:
                keep_alive_blocking(client, service, instance_id, spec, ttl, stop, report)
            except BaseException as exc:  # handed to the main thread, which reports it
                failure.append(exc)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: stop.set())
        worker = threading.Thread(target=beat, name="raftreg-keepalive", daemon=True)
        worker.start()
        join_promptly(worker)
        if failure:
            raise failure[0]
        try:
            index: int | None = client.deregister(service, instance_id).index
        except NotFound:
            index = None  # already gone (expired, or deregistered by someone else)
    if ctx.output == "json":
        print_json({"event": "deregistered", "detail": index, "service": service, "id": instance_id})
    else:
        where = f" at index {index}" if index is not None else " (it was already gone)"
        click.echo(f"deregistered {name}{where}")


def _kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise click.BadParameter(f"{text!r} is not key=value", param_hint="--meta")
    return key, value


@cli.command()
@click.argument("service")
@click.argument("instance_id")
@click.pass_obj
def deregister(ctx: Ctx, service: str, instance_id: str) -> None:
    """Remove an instance."""
    with ctx.client() as client:
        result = client.deregister(service, instance_id)
    if ctx.output == "json":
        print_json(result.to_wire())
    else:
        click.echo(f"deregistered {service}/{instance_id} at index {result.index}")


@cli.command()
@click.argument("service")
@click.option("--passing", is_flag=True, help="Only instances whose status is passing.")
@click.option("--tag", "tags", multiple=True, help="Only instances with this tag (repeatable: all must match).")
@click.option("--meta", "meta", multiple=True, help="key=value (repeatable: all must match).")
@click.option("--consistent", is_flag=True, help="Linearizable read (through the leader).")
@click.option("--watch", is_flag=True, help="Keep running and print the instances again at every change "
              "(with -o json: one JSON line per change).")
@click.pass_obj
def lookup(ctx: Ctx, service: str, passing: bool, tags: tuple[str, ...], meta: tuple[str, ...],
           consistent: bool, watch: bool) -> None:
    """List a service's instances."""
    pairs = [_kv(m) for m in meta]
    with ctx.client() as client:
        if watch:
            for found in in_background(client.watch_instances(service, passing=passing, tags=tags, meta=pairs)):
                _print_watched(found.to_wire(), ctx.output)
            return
        result = client.instances(service, passing=passing, tags=tags, meta=pairs, consistent=consistent).to_wire()
    if ctx.output == "json":
        print_json(result)
    else:
        _print_instances(result)


def _print_instances(result: dict[str, Any]) -> None:
    print_table(INSTANCE_HEADERS, _instance_rows(result["instances"]))
    click.echo(f"({len(result['instances'])} instances, index {result['index']})")


def _print_watched(result: dict[str, Any], output: str) -> None:
    """One state of ``lookup --watch``: a compact JSON line, or a table headed by time and index."""
    if output == "json":
        click.echo(json.dumps(result, sort_keys=True, separators=(",", ":")))
    else:
        click.echo(f"--- {time.strftime('%H:%M:%S')} index {result['index']}")
        _print_instances(result)
    sys.stdout.flush()


@cli.command()
@click.pass_obj
def services(ctx: Ctx) -> None:
    """List services with instance counts."""
    with ctx.client() as client:
        result = client.services().to_wire()
    if ctx.output == "json":
        print_json(result)
    else:
        print_table(["service", "instances", "passing"],
                    [[s["name"], s["instances"], s["passing"]] for s in result["services"]])


@cli.command()
@click.pass_obj
def status(ctx: Ctx) -> None:
    """Show the cluster as each reachable node sees it."""
    views: list[dict[str, Any]] = []
    for addr in ctx.addrs:
        try:
            with ctx.client([addr], timeout=STATUS_TIMEOUT, deadline=STATUS_TIMEOUT) as one:
                views.append(one.cluster_status().to_wire())
        except RaftregError as err:
            views.append({"node": addr.partition("://")[2] or addr, "state": "down", "error": err.message})
    if ctx.output == "json":
        print_json(views)
        return
    print_table(["node", "state", "leader", "term", "commit", "applied", "last contact ms"],
                [[v.get("node"), v.get("state"), v.get("leader", ""), v.get("term", ""), v.get("commit_index", ""),
                  v.get("applied_index", ""), v.get("last_contact_ms", "")] for v in views])


add_token_option(cli)  # after every command is defined: each takes its own --token
add_examples(cli)  # likewise: each --help ends with an example line (raftreg.cli.examples)


def main() -> None:
    """Console entry point of the whole CLI (``raftreg.cli.entry`` is the installed one)."""
    run_command(cli, sys.argv[1:], "raftreg")
