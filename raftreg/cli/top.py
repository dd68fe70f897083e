"""``raftreg top``: a terminal view of a cluster, refreshed every ``--interval`` (1 s).

    raftreg top                       # the nodes of ./raftreg.toml, or --addr host:port[,...]
    raftreg top --once                # one frame and exit (scripts, tests)
    raftreg -o json top --once        # the same data as JSON (one object per frame, one line each without --once)

Every refresh asks every node for ``GET /v1/cluster`` on its own (in parallel, with the CLI's
TLS files and token), starting from the addresses given and adding the members the nodes
report, so one address is enough. A node that does not answer is shown as ``down``.

Per node: state, term, commit and applied index, lag (the leader's commit index minus the node's
applied index), last contact with the leader, writes/s (the change of the node's commit index
since the previous sample, per second), watchers (blocking queries parked on the node) and the
leases it holds (the leader holds every lease; ``held`` counts instances the mass-expiry guard
keeps back). ``--once`` samples twice, ``--interval`` apart, so that writes/s has a value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import click

from raftreg.durations import parse_duration
from raftreg.errors import RaftregError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from raftreg.cli.main import Ctx

Fetch = Callable[[str], "dict[str, Any] | None"]


@dataclass(frozen=True)
class NodeRow:
    """One node as ``top`` shows it; ``None`` where the node did not say (or is down)."""

    node: str
    address: str
    state: str  # leader | follower | candidate | down
    term: int | None = None
    commit_index: int | None = None
    applied_index: int | None = None
    lag: int | None = None
    last_contact_ms: int | None = None
    writes_per_s: float | None = None
    watchers: int | None = None
    leases: int | None = None
    leases_held_back: int | None = None


@dataclass(frozen=True)
class Frame:
    """One refresh: the rows (sorted by node name) and the cluster's totals."""

    at: float  # time.time()
    cluster: str
    leader: str
    term: int | None
    nodes: tuple[NodeRow, ...]
    writes_per_s: float | None  # the leader's
    watchers: int  # over every node that answered
    leases: int | None  # the leader's

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["nodes"] = [asdict(n) for n in self.nodes]
        return doc


def _bare(addr: str) -> str:
    return addr.partition("://")[2] or addr


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_frame(answers: Mapping[str, dict[str, Any] | None], previous: Frame | None, now: float,
                monotonic_now: float, previous_at: float | None) -> Frame:
    """A frame from each address's ``/v1/cluster`` answer (``None``: down). Pure.

    Names come from the answers (``node``) or from any node's member list (for a down node);
    writes/s needs ``previous`` and the monotonic time of its sample (``previous_at``)."""
    names: dict[str, str] = {}  # bare address -> node name
    for answer in answers.values():
        for member in (answer or {}).get("members") or []:
            if isinstance(member, dict) and isinstance(member.get("http"), str):
                names[member["http"]] = str(member.get("name", ""))
    up = [a for a in answers.values() if a]
    leader_view = max((a for a in up if a.get("state") == "leader"), key=lambda a: _int(a.get("term")) or 0,
                      default=None)
    leader_commit = _int(leader_view.get("commit_index")) if leader_view else None
    before = {n.node: n for n in previous.nodes} if previous else {}
    dt = monotonic_now - previous_at if previous_at is not None else 0.0
    rows: list[NodeRow] = []
    for addr, answer in answers.items():
        if not answer:
            name = names.get(_bare(addr)) or _bare(addr)
            rows.append(NodeRow(node=name, address=_bare(addr), state="down"))
            continue
        name = str(answer.get("node") or names.get(_bare(addr)) or _bare(addr))
        commit, applied = _int(answer.get("commit_index")), _int(answer.get("applied_index"))
        old = before.get(name)
        rate = None
        if old and old.commit_index is not None and commit is not None and dt > 0:
            rate = round(max(0, commit - old.commit_index) / dt, 1)
        leases: dict[str, Any] = answer["leases"] if isinstance(answer.get("leases"), dict) else {}
        watches: dict[str, Any] = answer["watches"] if isinstance(answer.get("watches"), dict) else {}
        active = bool(leases.get("active"))
        rows.append(NodeRow(
            node=name, address=_bare(addr), state=str(answer.get("state", "?")), term=_int(answer.get("term")),
            commit_index=commit, applied_index=applied,
            lag=max(0, leader_commit - applied) if leader_commit is not None and applied is not None else None,
            last_contact_ms=_int(answer.get("last_contact_ms")), writes_per_s=rate,
            watchers=_int(watches.get("waiting")),
            leases=_int(leases.get("leases")) if active else None,
            leases_held_back=_int(leases.get("held")) if active else None))
    # One row per node: an address may name a node another address already reached (localhost vs
    # 127.0.0.1); a node that answered anywhere is up.
    by_name: dict[str, NodeRow] = {}
    for row in rows:
        if row.node not in by_name or by_name[row.node].state == "down":
            by_name[row.node] = row
    rows = sorted(by_name.values(), key=lambda r: r.node)
    leader_row = next((r for r in rows if leader_view and r.node == leader_view.get("node")), None)
    newest_term = max((r.term for r in rows if r.term is not None), default=None)
    return Frame(at=now, cluster=str(up[0].get("name", "")) if up else "",
                 leader=str(leader_view.get("node", "")) if leader_view else "",
                 term=_int(leader_view.get("term")) if leader_view else newest_term,
                 nodes=tuple(rows), writes_per_s=leader_row.writes_per_s if leader_row else None,
                 watchers=sum(r.watchers or 0 for r in rows), leases=leader_row.leases if leader_row else None)


def known_addresses(addrs: Sequence[str], answers: Mapping[str, dict[str, Any] | None]) -> list[str]:
    """``addrs`` plus every member's HTTP address the answers name (with the scheme of the first
    address), without duplicates."""
    scheme = addrs[0].partition("://")[0] + "://" if addrs and "://" in addrs[0] else ""
    out = list(addrs)
    seen = {_bare(a) for a in out}
    for answer in answers.values():
        for member in (answer or {}).get("members") or []:
            http = member.get("http") if isinstance(member, dict) else None
            if isinstance(http, str) and http and http not in seen:
                seen.add(http)
                out.append(scheme + http)
    return out


def _cell(value: Any, suffix: str = "") -> str:
    return "" if value is None else f"{value}{suffix}"


def render(frame: Frame) -> RenderableType:
    """The frame as a ``rich`` table (the leader in bold green, down nodes in red)."""
    from rich.table import Table

    when = time.strftime("%H:%M:%S", time.localtime(frame.at))
    caption = (f"cluster {frame.cluster or '?'} | leader {frame.leader or 'none'} | term {_cell(frame.term)} | "
               f"{sum(n.state != 'down' for n in frame.nodes)}/{len(frame.nodes)} up | "
               f"writes/s {_cell(frame.writes_per_s)} | watchers {frame.watchers} | leases {_cell(frame.leases)}")
    table = Table(title=f"raftreg top  {when}", caption=caption, caption_justify="left")
    headers = ["node", "address", "state", "term", "commit", "applied", "lag", "last contact", "writes/s",
               "watchers", "leases"]
    for header in headers:
        table.add_column(header, justify="left" if header in ("node", "address", "state") else "right")
    for n in frame.nodes:
        style = "bold green" if n.node == frame.leader else "red" if n.state == "down" else None
        leases = _cell(n.leases) + (f" ({n.leases_held_back} held)" if n.leases_held_back else "")
        table.add_row(n.node, n.address, n.state, _cell(n.term), _cell(n.commit_index), _cell(n.applied_index),
                      _cell(n.lag), _cell(n.last_contact_ms, " ms"), _cell(n.writes_per_s), _cell(n.watchers),
                      leases, style=style)
    return table


class Sampler:
    """Asks every known node in parallel and keeps the previous frame for the rates."""

    def __init__(self, addrs: Sequence[str], fetch: Fetch) -> None:
        self.addrs = list(addrs)
        self._fetch = fetch
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="raftreg-top")
        self._previous: Frame | None = None
        self._previous_at: float | None = None

    def sample(self) -> Frame:
        answers = dict(zip(self.addrs, self._pool.map(self._fetch, self.addrs), strict=True))
        more = [a for a in known_addresses(self.addrs, answers) if a not in answers]
        if more:  # members learnt from the answers: ask them too, this round
            answers.update(zip(more, self._pool.map(self._fetch, more), strict=True))
            self.addrs += more
        mono = time.monotonic()
        frame = build_frame(answers, self._previous, time.time(), mono, self._previous_at)
        self._previous, self._previous_at = frame, mono
        return frame

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _interval(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter("must be more than 0")
    return seconds


@click.command()
@click.option("--interval", default="1s", show_default=True, callback=_interval, help="Time between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame and exit (two samples --interval apart, for writes/s).")
@click.pass_obj
def top(ctx: Ctx, interval: float, once: bool) -> None:
    """A live view of the cluster: members, leader, term, lag, writes/s, watchers, leases."""
    timeout = min(max(interval, 0.5), 2.0)  # a paused node must not stall the refresh for long

    def fetch(addr: str) -> dict[str, Any] | None:
        try:
            with ctx.client([addr], timeout=timeout, deadline=timeout) as one:
                return one.cluster_status().raw
        except (RaftregError, OSError):
            return None

    sampler = Sampler(ctx.addrs, fetch)
    try:
        if once:
            sampler.sample()
            time.sleep(interval)
            _show_once(sampler.sample(), ctx.output)
        elif ctx.output == "json":
            while True:
                click.echo(json.dumps(sampler.sample().to_json(), sort_keys=True, separators=(",", ":")))
                time.sleep(interval)
        else:
            _live(sampler, interval)
    except KeyboardInterrupt:
        pass
    finally:
        sampler.close()


def _show_once(frame: Frame, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(frame.to_json(), indent=2, sort_keys=True))
        return
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 140))
    console.print(render(frame))


def _live(sampler: Sampler, interval: float) -> None:
    from rich.live import Live

    with Live(render(sampler.sample()), auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            live.update(render(sampler.sample()), refresh=True)
