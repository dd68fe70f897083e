"""``raftreg cluster``: run-time membership (API.md "Cluster and node", README "Day-2 operations").

``cluster add NAME --raft H:P --http H:P`` (then start the node with ``raftreg serve --join``),
``cluster remove NAME``, ``cluster transfer-leader [NAME]``, ``cluster members`` and
``cluster config > new.toml``. Changes go to the leader (a follower answers 503 naming it and the
client tries the next address); preflight refusals print the cluster's reason.
"""

from __future__ import annotations

from typing import Any

import click

from raftreg.cli.output import print_json, print_table

CHANGE_TIMEOUT = 15.0  # a change commits two entries; a transfer waits for the new leader


def _request(ctx: Any, method: str, path: str, body: Any = None) -> Any:
    with ctx.client(timeout=CHANGE_TIMEOUT, deadline=CHANGE_TIMEOUT) as client:
        return client.request(method, path, json=body, idempotent=method == "GET").body


@click.group()
def cluster() -> None:
    """Add, remove and list members; hand leadership over; print the live config."""


@cluster.command("add")
@click.argument("name")
@click.option("--raft", required=True, help="The new member's Raft address host:port.")
@click.option("--http", required=True, help="The new member's HTTP API address host:port.")
@click.option("--role", type=click.Choice(["voter", "replica"]), default="voter", show_default=True)
@click.option("--consul-http", default=None, help="Its Consul-compatible API address host:port, if any.")
@click.option("--dns", default=None, help="Its DNS address host:port, if any.")
@click.pass_obj
def add(ctx: Any, name: str, raft: str, http: str, role: str, consul_http: str | None, dns: str | None) -> None:
    """Add member NAME; then start it with: raftreg serve --config C --node NAME --join."""
    body: dict[str, Any] = {"name": name, "raft": raft, "http": http, "role": role}
    if consul_http:
        body["consul_http"] = consul_http
    if dns:
        body["dns"] = dns
    result = _request(ctx, "POST", "/v1/cluster/members", body)
    if ctx.output == "json":
        print_json(result)
    else:
        click.echo(f"added {name} ({role}) at index {result['index']}; "
                   f"now start it: raftreg serve --config <config> --node {name} --join")


@cluster.command("remove")
@click.argument("name")
@click.pass_obj
def remove(ctx: Any, name: str) -> None:
    """Remove member NAME (not the leader: transfer leadership first)."""
    result = _request(ctx, "DELETE", f"/v1/cluster/members/{name}")
    if ctx.output == "json":
        print_json(result)
    else:
        click.echo(f"removed {name} at index {result['index']}; stop its process")


@cluster.command("transfer-leader")
@click.argument("name", required=False)
@click.pass_obj
def transfer_leader(ctx: Any, name: str | None) -> None:
    """Hand leadership to NAME (default: the most caught-up follower)."""
    result = _request(ctx, "POST", "/v1/cluster/transfer-leader", {"to": name} if name else {})
    if ctx.output == "json":
        print_json(result)
    else:
        click.echo(f"leader: {result['leader']}")


def member_rows(info: dict[str, Any]) -> list[list[Any]]:
    """``cluster members`` rows from a ``GET /v1/cluster`` document."""
    leader = info.get("leader")
    return [[("* " if m["name"] == leader else "  ") + m["name"], m.get("role", "voter"), m["raft"], m["http"],
             m["status"], "" if m.get("lag") is None else m["lag"]] for m in info["members"]]


@cluster.command("members")
@click.pass_obj
def members(ctx: Any) -> None:
    """The members as the node asked sees them (* marks the leader; lag: entries behind, on the leader)."""
    info = _request(ctx, "GET", "/v1/cluster")
    if ctx.output == "json":
        print_json(info["members"])
    else:
        print_table(["name", "role", "raft", "http", "status", "lag"], member_rows(info))


@cluster.command("config")
@click.pass_obj
def config(ctx: Any) -> None:
    """Print the live membership as a cluster config (TOML; -o json for JSON)."""
    result = _request(ctx, "GET", "/v1/cluster/config")
    if ctx.output == "json":
        print_json({"name": result["name"], "nodes": result["nodes"]})
    else:
        click.echo(result["toml"], nl=False)
