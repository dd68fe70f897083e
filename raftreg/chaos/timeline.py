"""The chaos report's timeline: operations and latency per second, fault bands, leader changes.

Pure functions of the run's data (no clock, no I/O). Times are seconds since the start of the run
(``started``, a ``time.monotonic()`` value of the process that ran the clients).

Binning: an operation belongs to the second in which it was *invoked* (a request sent during a
fault and answered after it counts, with its long latency, where it was sent); operations before
the start or after the end land in the first or last second. Latency is ``complete - invoke`` of
operations with outcome ``ok`` (refusals are fast and would hide the slow path; unknown outcomes
have no completion).

Geometry: one SVG, ``WIDTH`` wide; x maps run seconds through ``x_scale(duration)``; the upper
panel stacks ok / unknown / failed operations per second, the lower one draws p50 and p99 latency
on a log scale. Fault bands (``rect.fault``, darker while the fault holds, lighter while the
cluster recovers: ``rect.recovering``) and leader changes (``line.leader-change``) cross both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from raftreg.chaos import svg
from raftreg.chaos.faults import FaultRecord
from raftreg.chaos.history import Op
from raftreg.chaos.monitor import LeaderChange

WIDTH = 1160.0
LEFT = 70.0  # room for the y axis labels
RIGHT = 20.0
FAULT_LABEL_ROWS = 3
ROW = 14.0
LABEL_CHAR = 6.8  # a generous width of one character of a label, in pixels
TOP = 8.0 + FAULT_LABEL_ROWS * ROW  # fault labels above the plots
PANEL = 170.0  # height of each panel
GAP = 30.0
LEADER_LABEL_ROWS = 2
OPS_TOP = TOP
LAT_TOP = TOP + PANEL + GAP
BOTTOM = LAT_TOP + PANEL  # the x axis
HEIGHT = BOTTOM + 22.0 + LEADER_LABEL_ROWS * ROW + 6.0


@dataclass(frozen=True)
class Second:
    """One second of the run: operations invoked in it by outcome, and ok latencies (seconds)."""

    ok: int = 0
    fail: int = 0
    unknown: int = 0
    p50: float | None = None
    p99: float | None = None

    @property
    def total(self) -> int:
        return self.ok + self.fail + self.unknown


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty sequence (the runner's convention)."""
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def per_second(ops: Sequence[Op], started: float, duration: float) -> list[Second]:
    """``ceil(duration)`` seconds (at least one) of counts and latency percentiles (see module doc)."""
    count = max(1, math.ceil(duration))
    counts = [[0, 0, 0] for _ in range(count)]
    latencies: list[list[float]] = [[] for _ in range(count)]
    outcome_slot = {"ok": 0, "fail": 1, "unknown": 2}
    for op in ops:
        i = min(count - 1, max(0, int(op.invoke - started)))
        counts[i][outcome_slot[op.outcome]] += 1
        if op.outcome == "ok" and op.complete is not None:
            latencies[i].append(max(0.0, op.complete - op.invoke))
    seconds = []
    for (ok, fail, unknown), lat in zip(counts, latencies, strict=True):
        lat.sort()
        seconds.append(Second(ok, fail, unknown, percentile(lat, 0.5) if lat else None,
                              percentile(lat, 0.99) if lat else None))
    return seconds


def x_scale(duration: float) -> svg.LinearScale:
    """Run seconds → x pixels of the plots."""
    return svg.LinearScale(0.0, max(duration, 1e-9), LEFT, WIDTH - RIGHT)


def fault_label(rec: FaultRecord) -> str:
    detail = f" {rec.detail}" if rec.detail else ""  # a lab fault's amount
    leader = " (leader)" if rec.was_leader and rec.kind != "restart-all" else ""
    return f"{rec.kind}{detail} {','.join(rec.nodes)}{leader}"


def _duration_label(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


def _axis_title(title: str, panel_top: float) -> str:
    """A y axis title, vertical, left of the tick labels."""
    x, y = 16.0, panel_top + PANEL / 2
    return svg.text(x, y, title, "axis-title", "middle", transform=f"rotate(-90 {svg.num(x)} {svg.num(y)})")


def _x_axis(xs: svg.LinearScale, duration: float) -> list[str]:
    out = [svg.line(LEFT, BOTTOM, WIDTH - RIGHT, BOTTOM, "axis")]
    for t in svg.ticks(0.0, duration, 12):
        x = xs(t)
        out.append(svg.line(x, BOTTOM, x, BOTTOM + 4, "axis"))
        out.append(svg.text(x, BOTTOM + 15, f"{t:g}s", "tick", "middle"))
    return out


def _ops_panel(seconds: Sequence[Second], xs: svg.LinearScale) -> list[str]:
    peak = max((s.total for s in seconds), default=0)
    step = svg.nice_step(max(peak, 1), 4)
    top_value = max(step, math.ceil(max(peak, 1) / step) * step)
    ys = svg.LinearScale(0.0, top_value, OPS_TOP + PANEL, OPS_TOP)
    out = [svg.rect(LEFT, OPS_TOP, WIDTH - RIGHT - LEFT, PANEL, "panel"),
           _axis_title("operations / s", OPS_TOP)]
    for v in svg.ticks(0.0, top_value, 4):
        out.append(svg.line(LEFT, ys(v), WIDTH - RIGHT, ys(v), "grid"))
        out.append(svg.text(LEFT - 6, ys(v) + 4, f"{v:g}", "tick", "end"))
    bars = []
    for i, s in enumerate(seconds):
        x0, x1 = xs(i), xs(min(i + 1, xs.hi))
        width = max(x1 - x0 - 0.6, 0.4)
        base = 0
        for amount, cls in ((s.ok, "ok"), (s.unknown, "unknown"), (s.fail, "failed")):
            if amount:
                y_top, y_bottom = ys(base + amount), ys(base)
                bars.append(svg.rect(x0, y_top, width, y_bottom - y_top, f"bar {cls}",
                                     f"{i}s: {s.ok} ok, {s.fail} failed, {s.unknown} unknown"))
                base += amount
    out.append(svg.group(bars, "bars"))
    return out


def _latency_panel(seconds: Sequence[Second], xs: svg.LinearScale) -> list[str]:
    worst = max((s.p99 for s in seconds if s.p99 is not None), default=1.0)
    hi = 10 ** math.ceil(math.log10(max(worst, 1.0)))
    ys = svg.LogScale(0.001, hi, LAT_TOP + PANEL, LAT_TOP)
    out = [svg.rect(LEFT, LAT_TOP, WIDTH - RIGHT - LEFT, PANEL, "panel"),
           _axis_title("latency (ok ops)", LAT_TOP)]
    decade = 0.001
    while decade <= hi * 1.0001:
        out.append(svg.line(LEFT, ys(decade), WIDTH - RIGHT, ys(decade), "grid"))
        out.append(svg.text(LEFT - 6, ys(decade) + 4, _duration_label(decade), "tick", "end"))
        decade *= 10
    for name in ("p50", "p99"):
        segment: list[tuple[float, float]] = []
        for i, s in enumerate([*seconds, Second()]):  # a final empty second closes the last segment
            value = getattr(s, name)
            if value is not None:
                segment.append((xs(i + 0.5), ys(max(value, 0.001))))
                continue
            if len(segment) == 1:
                out.append(svg.circle(*segment[0], 2.0, f"latency {name}"))
            out.append(svg.polyline(segment, f"latency {name}"))
            segment = []
    return out


def _fault_bands(faults: Sequence[FaultRecord], started: float, xs: svg.LinearScale) -> list[str]:
    out = []
    for n, rec in enumerate(faults):
        start = rec.started - started
        healed = (rec.healed if rec.healed is not None else rec.recovered or rec.started) - started
        recovered = (rec.recovered if rec.recovered is not None else rec.healed or rec.started) - started
        label = fault_label(rec)
        held = f"{label}: from {start:.1f}s, healed at {healed:.1f}s, cluster ready at {recovered:.1f}s"
        if rec.error:
            held += f"; {rec.error}"
        x0, x1 = xs(start), xs(max(healed, start))
        common: dict[str, str | float | None] = {"data_kind": rec.kind, "data_nodes": ",".join(rec.nodes),
                                                 "data_start": round(start, 3)}
        out.append(svg.rect(x0, TOP, max(x1 - x0, 1.0), BOTTOM - TOP, f"fault fault-{rec.kind}", held, **common))
        if recovered > healed:
            x2 = xs(recovered)
            out.append(svg.rect(x1, TOP, x2 - x1, BOTTOM - TOP, f"recovering fault-{rec.kind}", held, **common))
        row = n % FAULT_LABEL_ROWS
        out.append(svg.line(x0, 8.0 + row * ROW + 3, x0, TOP, "fault-tick"))
        y = 8.0 + (row + 1) * ROW - 3
        if x0 + 2 + LABEL_CHAR * len(label) <= WIDTH:
            out.append(svg.text(x0 + 2, y, label, f"fault-label fault-{rec.kind}"))
        else:  # near the right edge: end the label at the edge instead of cutting it
            out.append(svg.text(WIDTH - 2, y, label, f"fault-label fault-{rec.kind}", "end"))
    return out


def _leader_lines(changes: Sequence[LeaderChange], started: float, xs: svg.LinearScale) -> list[str]:
    out = []
    for n, change in enumerate(changes):
        at = change.at - started
        x = xs(at)
        row = n % LEADER_LABEL_ROWS
        tip = f"{at:.1f}s: {change.leader} leads term {change.term}"
        out.append(svg.line(x, TOP, x, BOTTOM + 20 + row * ROW, "leader-change", tip, data_leader=change.leader,
                            data_term=change.term, data_at=round(at, 3)))
        out.append(svg.text(x + 2, BOTTOM + 30 + row * ROW, f"{change.leader} t{change.term}", "leader-label"))
    return out


def timeline_svg(ops: Sequence[Op], faults: Sequence[FaultRecord], changes: Sequence[LeaderChange],
                 started: float, ended: float) -> str:
    """The whole timeline as one inline ``<svg>`` element (see module doc)."""
    duration = max(ended - started, 1.0)
    xs = x_scale(duration)
    seconds = per_second(ops, started, duration)
    parts = [*_fault_bands(faults, started, xs), *_ops_panel(seconds, xs), *_latency_panel(seconds, xs),
             *_leader_lines(changes, started, xs), *_x_axis(xs, duration)]
    return svg.svg(WIDTH, HEIGHT, parts, "operations per second and latency over the run, with faults and "
                   "leader changes")
