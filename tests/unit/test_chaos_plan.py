"""The chaos fault schedule: seeded, every kind occurs, the first of each hits the leader."""

from __future__ import annotations

from raftreg.chaos.faults import plan


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    names = ["kill", "pause", "partition"]
    assert plan(3, names, 50) == plan(3, names, 50)
    assert plan(3, names, 50) != plan(4, names, 50)


def test_round_robin_first_of_each_hits_the_leader_and_leader_names_always_do() -> None:
    faults = plan(1, ["kill", "pause", "partition", "restart-all", "kill-leader"], 200)
    assert [f.kind for f in faults[:5]] == ["kill", "pause", "partition", "restart-all", "kill"]
    assert [f.target for f in faults[:5]] == ["leader", "leader", "leader", "all", "leader"]
    assert all(f.target == "leader" for f in faults[4::5])
    later = [f.target for f in faults[5:] if f.kind != "restart-all"]
    assert "random" in later and "leader" in later


def test_no_faults_is_an_empty_schedule() -> None:
    assert plan(1, [], 10) == []
