"""The chaos ``membership`` fault (README "Day-2 operations"): a follower is removed, wiped, added
back and started with ``--join`` under the mixed workload, and every check still passes. The CI
run is short (two replacements); the long one is ``-m slow``."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftreg.chaos.runner import ChaosOptions, run_chaos

pytestmark = pytest.mark.cluster


async def test_member_replacement_under_load_keeps_every_promise(tmp_path: Path) -> None:
    opts = ChaosOptions(nodes=3, duration=14.0, faults=("membership",), rate=60.0, clients=4, seed=5,
                        report_path=tmp_path / "report.json", progress=False)
    report = await run_chaos(opts)
    assert report.passed, "\n".join(report.violations) + "\n" + report.failing_history
    faults = report.summary["faults"]
    assert faults["by_kind"].get("membership", 0) >= 2, faults["by_kind"]
    assert all(f["error"] is None for f in faults["each"]), faults["each"]


@pytest.mark.slow
async def test_long_membership_chaos(tmp_path: Path) -> None:
    """Replacements mixed with leader kills and partitions for five minutes."""
    opts = ChaosOptions(nodes=3, duration=300.0, faults=("membership", "kill-leader", "partition"), rate=80.0,
                        seed=13, report_path=tmp_path / "report.json", progress=False)
    report = await run_chaos(opts)
    assert report.passed, "\n".join(report.violations) + "\n" + report.failing_history
    assert report.summary["faults"]["by_kind"].get("membership", 0) >= 10
