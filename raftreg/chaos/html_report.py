"""``raftreg chaos --report out.html``: the run as one self-contained HTML page.

``render_html(ReportData) -> str`` is a pure function of what the runner already has: the history
(every operation with its invocation and completion time and outcome), the injector's fault
records, the leader changes the monitor saw, the verdict of every check and the JSON summary.

The page: a verdict banner and the run's figures; the timeline (``raftreg.chaos.timeline``: ops/s
and p50/p99 latency per second, faults as shaded bands labelled with kind and target, leader
changes as vertical lines); a table of the checks with their violations; the recovery figures
(fault → next acknowledged write, per fault and p50/p99; restarted nodes' catch-up); the leader
changes; the smallest failing key's history when there is one.

Self-contained: CSS inline, SVG inline, no script, no external reference (nothing is fetched at
view time). Every string that comes from the run is passed through ``html.escape``. The document
is well-formed XML as well as HTML (self-closed void elements, no named entities), so
``xml.etree`` can parse it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from raftreg.chaos.faults import FaultRecord
from raftreg.chaos.history import Op
from raftreg.chaos.monitor import LeaderChange
from raftreg.chaos.timeline import fault_label, timeline_svg

CheckStatus = Literal["pass", "fail", "unknown"]
NONE = "\u2013"  # an en dash where a figure is missing
TIMES = "\u00d7"


@dataclass(frozen=True)
class CheckVerdict:
    """One check of the run: ``pass``, ``fail`` (with ``violations``) or ``unknown`` (could not decide,
    e.g. the linearizability search ran out of time)."""

    name: str
    verdict: CheckStatus
    detail: str = ""
    violations: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportData:
    """What the page is drawn from. ``started``/``ended`` and every time in ``ops``, ``faults`` and
    ``leader_changes`` are ``time.monotonic()`` values of the process that ran the clients."""

    summary: Mapping[str, Any]
    ops: Sequence[Op]
    faults: Sequence[FaultRecord]
    leader_changes: Sequence[LeaderChange]
    checks: Sequence[CheckVerdict]
    started: float
    ended: float
    failing_history: str = ""
    title: str = "raftreg chaos report"
    notes: Sequence[str] = field(default_factory=tuple)


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       margin: 24px auto; max-width: 1180px; padding: 0 12px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #dde1e8; padding-bottom: 4px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; font-weight: 600; color: #fff;
         font-size: 13px; vertical-align: middle; }
.badge.pass { background: #1f8a4c; } .badge.fail { background: #c62828; } .badge.unknown { background: #b26a00; }
.figures { color: #4a5263; margin: 4px 0; }
.figures b { color: #1d2330; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eceff3; vertical-align: top; }
th { background: #f5f7fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
ul.violations { margin: 4px 0 0; padding-left: 18px; color: #8e1b1b; }
pre { background: #f5f7fa; padding: 10px; overflow-x: auto; font-size: 12px; }
.legend span { display: inline-block; margin-right: 16px; color: #4a5263; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 5px; vertical-align: baseline; }
svg { display: block; margin: 6px 0; font-size: 11px; }
svg .panel { fill: none; stroke: #c4cad4; }
svg .grid { stroke: #eceff3; }
svg .axis { stroke: #7a8294; }
svg .tick { fill: #4a5263; }
svg .axis-title { fill: #1d2330; font-weight: 600; }
svg .bar.ok { fill: #3b82c4; } svg .bar.unknown { fill: #f0a030; } svg .bar.failed { fill: #d64545; }
svg .latency { fill: none; stroke-width: 1.6; } svg circle.latency { stroke-width: 1; }
svg .latency.p50 { stroke: #2e7d32; } svg .latency.p99 { stroke: #7b3fa0; }
svg circle.latency.p50 { fill: #2e7d32; } svg circle.latency.p99 { fill: #7b3fa0; }
svg .fault { fill-opacity: 0.22; } svg .recovering { fill-opacity: 0.09; }
svg .fault-kill { fill: #d64545; } svg .fault-pause { fill: #8a6d00; }
svg .fault-partition { fill: #6a3fb0; } svg .fault-restart-all { fill: #111111; }
svg .fault-isolate, svg .fault-partial, svg .fault-oneway { fill: #6a3fb0; } svg .fault-linkdown { fill: #3c3c8c; }
svg .fault-loss, svg .fault-delay, svg .fault-bandwidth { fill: #1f7a8c; }
svg .fault-disk-stall, svg .fault-disk-eio { fill: #b35c00; }
svg .fault-label { font-size: 11px; font-weight: 600; }
svg .fault-tick { stroke: #9aa1ae; stroke-width: 0.8; }
svg .leader-change { stroke: #11824a; stroke-width: 1.2; stroke-dasharray: 4 3; }
svg .leader-label { fill: #11824a; font-size: 10.5px; }
.legend i.ok { background: #3b82c4; } .legend i.unknown { background: #f0a030; }
.legend i.failed { background: #d64545; } .legend i.p50 { background: #2e7d32; height: 3px; }
.legend i.p99 { background: #7b3fa0; height: 3px; } .legend i.kill { background: #d6454566; }
.legend i.pause { background: #8a6d0066; } .legend i.partition { background: #6a3fb066; }
.legend i.restart { background: #11111166; }
.legend i.leader { border-left: 2px dashed #11824a; width: 2px; height: 12px; }
footer { margin-top: 30px; color: #7a8294; font-size: 12px; }
"""


def esc(value: object) -> str:
    """Any value from the run, as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return NONE
    if isinstance(value, float):
        return f"{value:.3g}{unit}" if abs(value) < 100 else f"{value:.0f}{unit}"
    return f"{value}{unit}"


def _header(data: ReportData) -> str:
    s = data.summary
    passed = bool(s.get("passed", all(c.verdict != "fail" for c in data.checks)))
    verdict = '<span class="badge pass">PASSED</span>' if passed else '<span class="badge fail">FAILED</span>'
    statuses = ", ".join(f"{esc(k)}: {esc(v)}" for k, v in sorted((s.get("statuses") or {}).items()))
    faults = s.get("faults") or {}
    by_kind = ", ".join(f"{esc(k)} {TIMES}{esc(v)}" for k, v in sorted((faults.get("by_kind") or {}).items()))
    notes = "".join(f'<p class="figures">{esc(n)}</p>' for n in data.notes)
    return (f"<h1>{esc(data.title)} {verdict}</h1>"
            f'<p class="figures">seed <b>{esc(s.get("seed", NONE))}</b> · <b>{esc(s.get("nodes", NONE))}</b> nodes · '
            f'<b>{esc(s.get("duration_s", round(data.ended - data.started, 1)))}</b> s · '
            f'<b>{esc(s.get("ops", len(data.ops)))}</b> operations (ok <b>{esc(s.get("ok", NONE))}</b>, failed '
            f'<b>{esc(s.get("fail", NONE))}</b>, unknown <b>{esc(s.get("unknown", NONE))}</b>)</p>'
            f'<p class="figures">HTTP statuses: {statuses or NONE}</p>'
            f'<p class="figures">faults: <b>{esc(faults.get("count", len(data.faults)))}</b>'
            f'{" (" + by_kind + ")" if by_kind else ""} · leader terms seen: '
            f'<b>{esc(s.get("leader_terms_seen", NONE))}</b> · leader changes: <b>{len(data.leader_changes)}</b></p>'
            f"{notes}")


def _legend() -> str:
    items = [("ok", "ok"), ("unknown", "unknown outcome"), ("failed", "failed (refused)"), ("p50", "p50 latency"),
             ("p99", "p99 latency"), ("kill", "kill"), ("pause", "pause"), ("partition", "partition"),
             ("restart", "restart-all"), ("leader", "new leader (node, term)")]
    spans = "".join(f'<span><i class="{cls}"></i>{label}</span>' for cls, label in items)
    return (f'<p class="legend">{spans}</p><p class="figures">Shaded: the fault holds (darker), then the cluster '
            "recovers until every node is ready (lighter). Operations are counted in the second they were sent; "
            "each client waits for its answer before the next request, so requests held by a paused or cut-off "
            "node hold their clients too. Hover a band or a bar for details.</p>")


def _checks(checks: Sequence[CheckVerdict]) -> str:
    rows = []
    for check in checks:
        label = {"pass": "pass", "fail": "FAIL", "unknown": "unknown"}[check.verdict]
        violations = ""
        if check.violations:
            items = "".join(f"<li>{esc(v)}</li>" for v in check.violations)
            violations = f'<ul class="violations">{items}</ul>'
        rows.append(f'<tr class="check check-{check.verdict}"><td>{esc(check.name)}</td>'
                    f'<td><span class="badge {check.verdict}">{label}</span></td>'
                    f"<td>{esc(check.detail)}{violations}</td></tr>")
    if not rows:
        rows.append('<tr><td colspan="3">no checks ran</td></tr>')
    return f'<table class="checks"><tr><th>check</th><th>verdict</th><th>details</th></tr>{"".join(rows)}</table>'


def _percentile_row(name: str, figures: Mapping[str, Any] | None) -> str:
    f = figures or {}
    return (f"<tr><td>{esc(name)}</td><td class=\"num\">{esc(_fmt(f.get('p50'), ' s'))}</td>"
            f"<td class=\"num\">{esc(_fmt(f.get('p99'), ' s'))}</td>"
            f"<td class=\"num\">{esc(_fmt(f.get('max'), ' s'))}</td></tr>")


def _recovery(data: ReportData) -> str:
    faults = data.summary.get("faults") or {}
    each: Sequence[Mapping[str, Any]] = faults.get("each") or []
    overall = ("<table class=\"recovery-summary\"><tr><th></th><th>p50</th><th>p99</th><th>max</th></tr>"
               f"{_percentile_row('fault → next acknowledged write', faults.get('to_next_acked_write_s'))}"
               f"{_percentile_row('restarted node catch-up', faults.get('catch_up_s'))}</table>")
    rows = []
    for n, rec in enumerate(data.faults):
        figures = each[n] if n < len(each) else {}
        start = rec.started - data.started
        held = None if rec.healed is None else rec.healed - rec.started
        ready = None if rec.recovered is None else rec.recovered - rec.started
        catch_up = ", ".join(f"{esc(k)} {esc(_fmt(v, ' s'))}" for k, v in (figures.get("catch_up_s") or {}).items())
        rows.append(f'<tr class="fault-row"><td class="num">{n + 1}</td><td>{esc(fault_label(rec))}</td>'
                    f'<td class="num">{esc(_fmt(round(start, 2), " s"))}</td>'
                    f'<td class="num">{esc(_fmt(None if held is None else round(held, 2), " s"))}</td>'
                    f'<td class="num">{esc(_fmt(None if ready is None else round(ready, 2), " s"))}</td>'
                    f'<td class="num">{esc(_fmt(figures.get("to_next_acked_write_s"), " s"))}</td>'
                    f"<td>{catch_up or NONE}</td><td>{esc(rec.error or '')}</td></tr>")
    body = "".join(rows) or '<tr><td colspan="8">no faults</td></tr>'
    per_fault = ('<table class="recovery"><tr><th>#</th><th>fault</th><th>at</th><th>held</th>'
                 "<th>cluster ready after</th><th>next acknowledged write after</th><th>catch-up</th>"
                 f"<th>error</th></tr>{body}</table>")
    return overall + per_fault


def _leaders(data: ReportData) -> str:
    if not data.leader_changes:
        return "<p>No leader was seen.</p>"
    rows = "".join(f'<tr><td class="num">{esc(_fmt(round(c.at - data.started, 2), " s"))}</td>'
                   f'<td>{esc(c.leader)}</td><td class="num">{esc(c.term)}</td></tr>' for c in data.leader_changes)
    return f'<table class="leaders"><tr><th>at</th><th>leader</th><th>term</th></tr>{rows}</table>'


def render_html(data: ReportData) -> str:
    """The whole page (see module doc)."""
    failing = ""
    if data.failing_history:
        failing = f"<h2>Smallest failing key's history</h2><pre>{esc(data.failing_history)}</pre>"
    svg_chart = timeline_svg(data.ops, data.faults, data.leader_changes, data.started, data.ended)
    body = (f"{_header(data)}<h2>Timeline</h2>{_legend()}{svg_chart}"
            f"<h2>Checks</h2>{_checks(data.checks)}"
            f"<h2>Recovery</h2>{_recovery(data)}"
            f"<h2>Leader changes</h2>{_leaders(data)}{failing}"
            "<footer>Written by raftreg chaos. Self-contained: no script, nothing fetched.</footer>")
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8"/>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
            f"<title>{esc(data.title)}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")
