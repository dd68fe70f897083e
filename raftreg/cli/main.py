"""``raftreg``: run nodes and talk to a cluster.

Client commands talk to any node (``--addr``, ``$RAFTREG_ADDR``, comma-separated) and fall back
to the other nodes of ``--config`` when one is down. Tables by default, ``-o json`` for scripts.
Errors print one line and exit non-zero.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from raftreg.cli.chaos import chaos
from raftreg.cli.local import DEFAULT_CONFIG, dev, serve
from raftreg.cli.output import print_json, print_table
from raftreg.client import NotFound, RegistryClient, keep_alive
from raftreg.config import ConfigError, load_config
from raftreg.durations import parse_duration
from raftreg.errors import RaftregError

T = TypeVar("T")


class Ctx:
    def __init__(self, addrs: list[str], output: str) -> None:
        self.addrs = addrs
        self.output = output

    def run(self, fn: Callable[[RegistryClient], Awaitable[T]]) -> T:
        async def go() -> T:
            async with RegistryClient(self.addrs) as client:
                return await fn(client)

        return asyncio.run(go())


def _addresses(addr: str | None, config_path: str | None) -> list[str]:
    addrs = [a.strip() for a in (addr or "").split(",") if a.strip()]
    path = config_path or (DEFAULT_CONFIG if not addrs else None)
    if path:
        try:
            addrs += [n.http for n in load_config(path).nodes if n.http not in addrs]
        except ConfigError:
            if not addrs:
                raise
    return addrs


@click.group()
@click.option("--addr", envvar="RAFTREG_ADDR", help="Node address(es) host:port, comma-separated.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help=f"Cluster config whose nodes to fall back to (default {DEFAULT_CONFIG} when no --addr).")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def cli(ctx: click.Context, addr: str | None, config_path: str | None, output: str) -> None:
    """raftreg: a fault-tolerant service registry replicated with Raft."""
    if ctx.invoked_subcommand in ("serve", "dev", "chaos"):
        return
    ctx.obj = Ctx(_addresses(addr, config_path), output)


cli.add_command(serve)
cli.add_command(dev)
cli.add_command(chaos)


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
    body: dict[str, Any] = {"address": address, "port": port, "tags": list(tags), "weight": weight,
                            "meta": dict(_kv(m) for m in meta)}
    if ttl:
        body["ttl"] = _duration_option(ttl, "--ttl")
    if check_http or check_tcp:
        body["check"] = {"interval": _duration_option(check_interval, "--check-interval"),
                         "timeout": _duration_option(check_timeout, "--check-timeout"),
                         **({"http": check_http} if check_http else {}), **({"tcp": check_tcp} if check_tcp else {})}
    if keepalive:
        if not ttl:
            raise click.UsageError("--keepalive needs --ttl")
        _register_and_keep_alive(ctx, service, instance_id, body, body["ttl"])
        return
    stored = ctx.run(lambda c: c.put(f"/v1/services/{service}/instances/{instance_id}", body))
    if ctx.output == "json":
        print_json(stored)
    else:
        click.echo(f"registered {service}/{instance_id} at index {stored['index']}")


def _duration_option(text: str, hint: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _register_and_keep_alive(ctx: Ctx, service: str, instance_id: str, body: dict[str, Any], ttl: float) -> None:
    """``register --keepalive``: heartbeat until SIGINT/SIGTERM, then deregister."""
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

    async def go(client: RegistryClient) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await keep_alive(client, service, instance_id, body, ttl, stop, report)
        try:
            index = (await client.delete(f"/v1/services/{service}/instances/{instance_id}"))["index"]
        except NotFound:
            index = None  # already gone (expired, or deregistered by someone else)
        if ctx.output == "json":
            print_json({"event": "deregistered", "detail": index, "service": service, "id": instance_id})
        else:
            where = f" at index {index}" if index is not None else " (it was already gone)"
            click.echo(f"deregistered {name}{where}")

    ctx.run(go)


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
    result = ctx.run(lambda c: c.delete(f"/v1/services/{service}/instances/{instance_id}"))
    if ctx.output == "json":
        print_json(result)
    else:
        click.echo(f"deregistered {service}/{instance_id} at index {result['index']}")


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
    params: list[tuple[str, str]] = [("tag", t) for t in tags]
    params += [("meta", "{}:{}".format(*_kv(m))) for m in meta]
    if passing:
        params.append(("passing", "true"))
    if consistent:
        params.append(("consistent", "true"))
    path = f"/v1/services/{service}"
    if watch:
        ctx.run(lambda c: _watch_lookup(c, path, params, ctx.output))
        return
    result = ctx.run(lambda c: c.request("GET", path, params=params))[0]
    if ctx.output == "json":
        print_json(result)
    else:
        _print_instances(result)


def _print_instances(result: dict[str, Any]) -> None:
    print_table(INSTANCE_HEADERS, _instance_rows(result["instances"]))
    click.echo(f"({len(result['instances'])} instances, index {result['index']})")


async def _watch_lookup(client: RegistryClient, path: str, params: list[tuple[str, str]], output: str) -> None:
    """Print the lookup at every change until interrupted."""
    async for index, result in client.watch(path, params):
        if output == "json":
            click.echo(json.dumps(result, sort_keys=True, separators=(",", ":")))
        else:
            click.echo(f"--- {time.strftime('%H:%M:%S')} index {index}")
            _print_instances(result)
        sys.stdout.flush()


@cli.command()
@click.pass_obj
def services(ctx: Ctx) -> None:
    """List services with instance counts."""
    result = ctx.run(lambda c: c.get("/v1/services"))
    if ctx.output == "json":
        print_json(result)
    else:
        print_table(["service", "instances", "passing"],
                    [[s["name"], s["instances"], s["passing"]] for s in result["services"]])


@cli.command()
@click.pass_obj
def status(ctx: Ctx) -> None:
    """Show the cluster as each reachable node sees it."""

    async def gather(client: RegistryClient) -> list[dict[str, Any]]:
        out = []
        for addr in client.addrs:
            try:
                one = RegistryClient([addr], timeout=2.0)
                async with one:
                    out.append(await one.get("/v1/cluster"))
            except RaftregError as err:
                out.append({"node": addr.removeprefix("http://"), "state": "down", "error": err.message})
        return out

    views = ctx.run(gather)
    if ctx.output == "json":
        print_json(views)
        return
    print_table(["node", "state", "leader", "term", "commit", "applied", "last contact ms"],
                [[v.get("node"), v.get("state"), v.get("leader", ""), v.get("term", ""), v.get("commit_index", ""),
                  v.get("applied_index", ""), v.get("last_contact_ms", "")] for v in views])


def main() -> None:
    """Console entry point: one clear line and a non-zero exit on errors, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RaftregError as err:
        where = f" (field {err.field})" if err.field else ""
        click.echo(f"error: {err.code}: {err.message}{where}", err=True)
        sys.exit(1)
    except ConfigError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except (ValueError, TimeoutError, OSError) as err:  # bad values, a cluster that never came up, ports
        click.echo(f"error: {err or type(err).__name__}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
