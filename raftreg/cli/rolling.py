"""``raftreg rolling-restart --restart-cmd 'TEMPLATE'``: restart every member in turn, followers
first, the leader last, each back, ready and caught up before the next (``raftreg.rolling_restart``).

``rolling_restart`` is a standalone click command: it is meant to sit in the ``cluster`` group
(``raftreg cluster rolling-restart``) once that group exists; until then ``raftreg.cli.main``
registers it as ``raftreg rolling-restart``.

The members are read from the cluster (``GET /v1/cluster`` of any node given by ``--addr`` or
``--config``); each is then probed on its own address with the CLI's TLS files and token (ACLs
on: an operator token). The template is run by the shell once per member with ``{name}`` and
``{http}`` replaced (``str.replace``, so shell syntax such as ``${VAR}`` passes through).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from raftreg.durations import parse_duration
from raftreg.errors import RaftregError
from raftreg.rolling_restart import RollingRestart, RollingRestartFailed, RollingSettings

if TYPE_CHECKING:
    from raftreg.cli.main import Ctx
    from raftreg.client import RegistryClient

PROBE_TIMEOUT = 1.0  # seconds for one probe of one member (a restarting member fails fast or times out)
TRANSFER_LEADER = "/v1/cluster/transfer-leader"


def shell_restart(template: str, addresses: dict[str, str], timeout: float) -> Callable[[str], None]:
    """The restart step: run ``template`` for the member (``{name}``, ``{http}`` replaced) in the
    shell; ``RollingRestartFailed`` when it exits non-zero or runs longer than ``timeout``."""

    def restart(name: str) -> None:
        command = template.replace("{name}", name).replace("{http}", addresses.get(name, ""))
        try:
            done = subprocess.run(command, shell=True, timeout=timeout, check=False)  # the operator's own command
        except subprocess.TimeoutExpired:
            raise RollingRestartFailed(f"stopped at {name}: the restart command {command!r} ran longer than "
                                       f"{timeout:g}s") from None
        if done.returncode != 0:
            raise RollingRestartFailed(f"stopped at {name}: the restart command {command!r} exited with code "
                                       f"{done.returncode}; the remaining members were not restarted")

    return restart


class HttpProbe:
    """``raftreg.rolling_restart.Probe`` over each member's own address (one client per member)."""

    def __init__(self, clients: dict[str, RegistryClient]) -> None:
        self._clients = clients

    def status(self, name: str) -> dict[str, Any] | None:
        try:
            body = self._clients[name].request("GET", "/v1/cluster").body
        except RaftregError:
            return None
        return body if isinstance(body, dict) else None

    def ready(self, name: str) -> bool:
        try:
            self._clients[name].request("GET", "/v1/ready")
        except RaftregError:
            return False
        return True

    def transfer_leadership(self, leader: str) -> str | None:
        try:
            self._clients[leader].request("POST", TRANSFER_LEADER, json={}, idempotent=False)
        except RaftregError as exc:
            return str(exc)
        return None

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def members_of(ctx: Ctx) -> dict[str, str]:
    """``{name: http address}`` of the cluster's members, as a node reports them."""
    with ctx.client() as client:
        body = client.request("GET", "/v1/cluster").body
    members = body.get("members") if isinstance(body, dict) else None
    if not isinstance(members, list) or not members:
        raise click.ClickException("the cluster did not report its members (GET /v1/cluster)")
    return {str(m["name"]): str(m["http"]) for m in members if isinstance(m, dict) and "name" in m and "http" in m}


@click.command("rolling-restart")
@click.option("--restart-cmd", "template", required=True, metavar="TEMPLATE",
              help="Shell command that restarts one member; {name} and {http} are replaced, "
              "e.g. 'systemctl restart raftreg@{name}' or 'ssh {name} sudo systemctl restart raftreg'.")
@click.option("--node-timeout", default="120s", show_default=True,
              help="How long one member may take: restart, back, ready and caught up.")
@click.option("--max-lag", type=int, default=50, show_default=True,
              help="Entries a restarted member may still be short of the leader's commit index.")
@click.pass_obj
def rolling_restart(ctx: Ctx, template: str, node_timeout: str, max_lag: int) -> None:
    """Restart every member in turn: followers first, the leader last (after handing leadership
    over), each back, ready and caught up before the next. Stops at the first failure."""
    try:
        timeout = parse_duration(node_timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--node-timeout") from None
    if max_lag < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--max-lag")
    addresses = members_of(ctx)

    def progress(line: str) -> None:
        if ctx.output == "json":
            click.echo(json.dumps({"event": line}))  # one JSON object per line
        else:
            click.echo(line)

    probe = HttpProbe({name: ctx.client([addr], timeout=PROBE_TIMEOUT, deadline=PROBE_TIMEOUT)
                       for name, addr in addresses.items()})
    try:
        progress(f"rolling restart of {', '.join(addresses)}: followers first, the leader last")
        RollingRestart(list(addresses), probe, shell_restart(template, addresses, timeout), progress=progress,
                       settings=RollingSettings(node_timeout=timeout, max_lag=max_lag)).run()
    except RollingRestartFailed as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        probe.close()
