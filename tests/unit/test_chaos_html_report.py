"""The chaos HTML report (``raftreg.chaos.html_report.render_html``) on synthetic runs: where the
fault bands and leader lines are drawn, the checks' verdicts, escaping, well-formedness, and that
the page refers to nothing outside itself."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from raftreg.chaos.faults import FaultRecord
from raftreg.chaos.history import Op
from raftreg.chaos.html_report import CheckVerdict, ReportData, render_html
from raftreg.chaos.monitor import LeaderChange
from raftreg.chaos.runner import is_html_path
from raftreg.chaos.svg import num
from raftreg.chaos.timeline import BOTTOM, TOP, per_second, x_scale

T0 = 5000.0  # the run's start, a time.monotonic() value
HOSTILE = "<script>alert('x')</script>&amp;\"quoted\""
VOID = {"meta", "br", "hr", "img", "input", "link"}


def op(invoke: float, outcome: str = "ok", latency: float | None = 0.01, node: str = "n1") -> Op:
    complete = None if outcome == "unknown" or latency is None else T0 + invoke + latency
    return Op(client=1, kind="write", key="svc/i1", value=f"v{invoke}", invoke=T0 + invoke, complete=complete,
              outcome=outcome, node=node)  # type: ignore[arg-type]


def synthetic(**changes: object) -> ReportData:
    ops = [op(i / 10) for i in range(300)]  # 10 ok ops per second for 30 s
    ops += [op(10.5, "fail"), op(10.6, "unknown"), op(10.7, "ok", 3.0)]
    faults = [
        FaultRecord("kill", ["n1"], True, T0 + 10.0, healed=T0 + 11.5, recovered=T0 + 13.0, catch_up_s={"n1": 2.5}),
        FaultRecord("partition", ["n3"], False, T0 + 20.0, healed=T0 + 24.0, recovered=T0 + 24.0),
    ]
    leaders = [LeaderChange(T0 + 0.2, "n1", 1), LeaderChange(T0 + 11.0, "n2", 2)]
    checks = [CheckVerdict("linearizability", "pass", "10 keys"),
              CheckVerdict("locks", "fail", "2 holdings", ("two sessions held lock/a at once",)),
              CheckVerdict("no acknowledged write lost", "unknown", "final state unreadable")]
    summary = {"passed": False, "seed": 3, "nodes": 3, "duration_s": 30.0, "ops": len(ops), "ok": 301, "fail": 1,
               "unknown": 1, "statuses": {"200": 301, "503": 1},
               "faults": {"count": 2, "by_kind": {"kill-leader": 1, "partition": 1},
                          "to_next_acked_write_s": {"p50": 1.2, "p99": 2.9, "max": 2.9},
                          "catch_up_s": {"p50": 2.5, "p99": 2.5, "max": 2.5},
                          "each": [{"to_next_acked_write_s": 1.234, "catch_up_s": {"n1": 2.5}},
                                   {"to_next_acked_write_s": 0.5, "catch_up_s": {}}]}}
    fields: dict[str, object] = dict(summary=summary, ops=ops, faults=faults, leader_changes=leaders, checks=checks,
                                     started=T0, ended=T0 + 30.0)
    fields.update(changes)
    return ReportData(**fields)  # type: ignore[arg-type]


def parse(page: str) -> ET.Element:
    """The page as XML (it must be well-formed XML as well as HTML)."""
    return ET.fromstring(page)


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(tag) if cls in (e.get("class") or "").split()]


def test_fault_bands_span_each_fault_at_its_time() -> None:
    page = render_html(synthetic())
    xs = x_scale(30.0)
    bands = by_class(parse(page), "rect", "fault")
    assert [(b.get("data-kind"), b.get("data-nodes")) for b in bands] == [("kill", "n1"), ("partition", "n3")]
    kill, partition = bands
    assert kill.get("x") == num(xs(10.0)) and kill.get("width") == num(xs(11.5) - xs(10.0))
    assert partition.get("x") == num(xs(20.0)) and partition.get("width") == num(xs(24.0) - xs(20.0))
    assert kill.get("y") == num(TOP) and kill.get("height") == num(BOTTOM - TOP)  # across both panels
    # After the kill is healed the cluster recovers until 13 s (a lighter band); the partition had no such time.
    recovering = by_class(parse(page), "rect", "recovering")
    assert [(r.get("data-kind"), r.get("x")) for r in recovering] == [("kill", num(xs(11.5)))]
    assert recovering[0].get("width") == num(xs(13.0) - xs(11.5))
    labels = [t.text for t in by_class(parse(page), "text", "fault-label")]
    assert labels == ["kill n1 (leader)", "partition n3"]


def test_leader_changes_are_vertical_lines_at_their_time() -> None:
    root = parse(render_html(synthetic()))
    xs = x_scale(30.0)
    lines = by_class(root, "line", "leader-change")
    assert [(ln.get("data-leader"), ln.get("data-term")) for ln in lines] == [("n1", "1"), ("n2", "2")]
    for line, at in zip(lines, (0.2, 11.0), strict=True):
        assert line.get("x1") == line.get("x2") == num(xs(at))
    assert [t.text for t in by_class(root, "text", "leader-label")] == ["n1 t1", "n2 t2"]


def test_operations_per_second_and_latency_percentiles() -> None:
    seconds = per_second(synthetic().ops, T0, 30.0)
    assert len(seconds) == 30
    assert (seconds[0].ok, seconds[0].fail, seconds[0].unknown) == (10, 0, 0)
    assert (seconds[10].ok, seconds[10].fail, seconds[10].unknown) == (11, 1, 1)
    assert seconds[0].p50 == pytest.approx(0.01) and seconds[10].p99 == pytest.approx(3.0)
    early_late = per_second([op(-5.0), op(99.0, "fail")], T0, 3.0)  # clamped into the first and last second
    assert [(s.ok, s.fail) for s in early_late] == [(1, 0), (0, 0), (0, 1)]
    assert early_late[1].p50 is None
    root = parse(render_html(synthetic()))
    bars = by_class(root, "rect", "bar")
    assert len(by_class(root, "rect", "failed")) == 1 and len(by_class(root, "rect", "unknown")) == 1
    assert len(by_class(root, "rect", "ok")) == 30 and len(bars) == 32
    assert {p.get("class") for p in root.iter("polyline")} == {"latency p50", "latency p99"}


def test_every_check_with_its_verdict_and_violations() -> None:
    root = parse(render_html(synthetic()))
    rows = [r for r in root.iter("tr") if (r.get("class") or "").startswith("check ")]
    verdicts = {"".join(r[0].itertext()): r.get("class") for r in rows}
    assert verdicts == {"linearizability": "check check-pass", "locks": "check check-fail",
                        "no acknowledged write lost": "check check-unknown"}
    locks = next(r for r in rows if r[0].text == "locks")
    assert [li.text for li in locks.iter("li")] == ["two sessions held lock/a at once"]
    assert "FAILED" in "".join(root.find("body/h1").itertext())  # type: ignore[union-attr]


def test_recovery_figures_per_fault_and_percentiles() -> None:
    root = parse(render_html(synthetic()))
    rows = [["".join(td.itertext()) for td in r] for r in by_class(root, "tr", "fault-row")]
    assert rows[0][:6] == ["1", "kill n1 (leader)", "10 s", "1.5 s", "3 s", "1.23 s"]
    assert rows[0][6] == "n1 2.5 s" and rows[1][1] == "partition n3" and rows[1][5] == "0.5 s"
    summary = next(t for t in root.iter("table") if t.get("class") == "recovery-summary")
    cells = [["".join(td.itertext()) for td in r] for r in summary.iter("tr")][1:]
    assert cells[0] == ["fault \u2192 next acknowledged write", "1.2 s", "2.9 s", "2.9 s"]


def test_strings_from_the_run_are_escaped() -> None:
    data = synthetic(
        faults=[FaultRecord("kill", [HOSTILE], True, T0 + 1, T0 + 2, T0 + 3, {HOSTILE: 1.0}, error=HOSTILE)],
        leader_changes=[LeaderChange(T0 + 2.5, HOSTILE, 4)],
        checks=[CheckVerdict(HOSTILE, "fail", HOSTILE, (HOSTILE,))],
        failing_history=HOSTILE, title=HOSTILE,
        summary={"seed": HOSTILE, "statuses": {HOSTILE: 1}, "faults": {"by_kind": {HOSTILE: 1}}},
    )
    page = render_html(data)
    assert "<script" not in page.lower() and "alert('x')" not in page
    root = parse(page)
    text = "".join(root.itertext())
    assert text.count(HOSTILE) >= 8  # shown as text wherever it went in
    assert [ln.get("data-leader") for ln in by_class(root, "line", "leader-change")] == [HOSTILE]


class _Balance(HTMLParser):
    """Checks that every element the page opens is closed in order (void elements aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


@pytest.mark.parametrize("data", [synthetic(), synthetic(ops=[], faults=[], leader_changes=[], checks=[],
                                                         summary={}, ended=T0)], ids=["run", "empty"])
def test_page_is_well_formed_and_self_contained(data: ReportData) -> None:
    page = render_html(data)
    assert page.startswith("<!DOCTYPE html>")
    root = parse(page)
    assert root.tag == "html" and root.find("head/style") is not None and len(list(root.iter("svg"))) == 1
    balance = _Balance()
    balance.feed(page)
    balance.close()
    assert balance.errors == [] and balance.stack == []
    lowered = page.lower()
    for external in ("http://", "https://", "<script", " src=", "href=", "url(", "@import", "//cdn"):
        assert external not in lowered, external
    assert not re.search(r"&[a-z]+;", page.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
                         .replace("&quot;", "")), "named entities other than XML's make xml parsers fail"


def test_report_suffix_selects_html() -> None:
    assert is_html_path(Path("out.html")) and is_html_path(Path("x/OUT.HTM"))
    assert not is_html_path(Path("out.json")) and not is_html_path(Path("report")) and not is_html_path(Path("a.txt"))
