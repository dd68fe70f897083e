"""A short chaos session in CI: leader kills, a paused leader and a partitioned leader under a
mixed workload (registrations, and KV sets, compare-and-set and transactions); every check of
``raftreg chaos`` must pass. The long run is ``-m slow``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from raftreg.chaos.history import read_jsonl
from raftreg.chaos.runner import ChaosOptions, run_chaos

pytestmark = pytest.mark.cluster


async def test_short_chaos_session_keeps_every_promise(tmp_path: Path) -> None:
    opts = ChaosOptions(nodes=3, duration=32.0, faults=("kill", "pause", "partition"), rate=80.0, clients=6,
                        seed=7, history_path=tmp_path / "history.jsonl", report_path=tmp_path / "report.json",
                        html_report_path=tmp_path / "report.html", progress=False)
    report = await run_chaos(opts)
    summary = json.loads((tmp_path / "report.json").read_text())
    print(json.dumps({k: v for k, v in summary.items() if k != "faults"}, indent=1))
    print(json.dumps({k: v for k, v in summary["faults"].items() if k != "each"}, indent=1))
    assert report.passed, "\n".join(report.violations) + "\n" + report.failing_history
    by_kind = summary["faults"]["by_kind"]
    assert by_kind.get("kill-leader", 0) >= 1, by_kind
    assert by_kind.get("pause-leader", 0) + by_kind.get("pause", 0) >= 1, by_kind
    assert by_kind.get("partition-leader", 0) + by_kind.get("partition", 0) >= 1, by_kind
    assert summary["ok"] > 500 and summary["linearizability"]["verdict"] == "ok"
    history = read_jsonl(tmp_path / "history.jsonl")
    txn_projections = sum(v for k, v in summary["kv"].items() if k.startswith("txn_"))
    assert len(history) == summary["ops"] + txn_projections  # a transaction is recorded per key
    kv = summary["kv"]
    assert kv.get("cas_ok", 0) > 20 and kv.get("cas_conflict", 0) > 0 and kv.get("txn_ok", 0) > 5, kv
    assert {op.key for op in history if op.kind == "cas"} <= {f"kv:chaos/k{n}" for n in range(5)}
    assert summary["locks"]["holdings"] > 20 and kv.get("lock_busy", 0) > 0, summary["locks"]
    # The HTML report of the same run: one band per fault, the leader changes, every check passed.
    page = ET.fromstring((tmp_path / "report.html").read_text(encoding="utf-8"))
    bands = [r.get("data-kind") for r in page.iter("rect") if (r.get("class") or "").split()[:1] == ["fault"]]
    assert len(bands) == summary["faults"]["count"] and {"kill", "pause", "partition"} <= set(bands), bands
    assert sum(ln.get("class") == "leader-change" for ln in page.iter("line")) >= 2
    verdicts = {r[0].text: r.get("class") for r in page.iter("tr") if (r.get("class") or "").startswith("check ")}
    assert len(verdicts) == len(summary["checks"]) and set(verdicts.values()) == {"check check-pass"}, verdicts


@pytest.mark.slow
async def test_long_chaos_run(tmp_path: Path) -> None:
    """The documented long run (README): over 100 leader kills and 20 partitions in 20 minutes."""
    faults = ("kill-leader",) * 4 + ("partition-leader", "partition", "pause-leader")
    opts = ChaosOptions(nodes=3, duration=1200.0, faults=faults, rate=100.0, seed=11,
                        report_path=tmp_path / "report.json", progress=False)
    report = await run_chaos(opts)
    assert report.passed, "\n".join(report.violations) + "\n" + report.failing_history
    by_kind = report.summary["faults"]["by_kind"]
    assert by_kind.get("kill-leader", 0) >= 100, by_kind
    assert by_kind.get("partition-leader", 0) + by_kind.get("partition", 0) >= 20, by_kind
