"""The rolling restart's orchestration (``raftreg.rolling_restart``) against a simulated cluster:
followers first and the leader last (re-read at every step), the hand-over before the leader
goes, a member counted back only as a new process that is ready and caught up, and a stop with a
clear message at the first failure; and the shell step of ``raftreg cluster rolling-restart``."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from raftreg.cli.rolling import shell_restart
from raftreg.rolling_restart import RollingRestart, RollingRestartFailed, RollingSettings, judge, next_member


class FakeCluster:
    """Members with a leader, a boot id per process and indexes; ``restart`` replaces a process,
    which comes back after ``back_after`` probes (never, when None)."""

    def __init__(self, leader: str = "n1", *, back_after: int | None = 2, can_transfer: bool = True) -> None:
        self.names = ["n1", "n2", "n3"]
        self.leader = leader
        self.boot = dict.fromkeys(self.names, 1)
        self.down: dict[str, int | None] = {}
        self.back_after = back_after
        self.can_transfer = can_transfer
        self.events: list[str] = []
        self.now = 0.0

    # Probe
    def status(self, name: str) -> dict[str, Any] | None:
        if name in self.down:
            left = self.down[name]
            if left is None or left > 0:
                self.down[name] = None if left is None else left - 1
                return None
            del self.down[name]
        return {"state": "leader" if name == self.leader else "follower", "has_quorum": True,
                "boot_id": f"{name}-{self.boot[name]}", "applied_index": 100, "commit_index": 100}

    def ready(self, name: str) -> bool:
        return name not in self.down

    def transfer_leadership(self, leader: str) -> str | None:
        if not self.can_transfer:
            return "Not Found"
        self.events.append(f"transfer {leader}")
        self.leader = next(n for n in self.names if n != leader)
        return None

    # the restart step
    def restart(self, name: str) -> None:
        self.events.append(f"restart {name}")
        if name == self.leader:  # the graceful stop hands leadership over
            self.leader = next(n for n in self.names if n != name)
        self.boot[name] += 1
        self.down[name] = self.back_after

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _run(fake: FakeCluster, timeout: float = 5.0) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    order = RollingRestart(fake.names, fake, fake.restart, progress=lines.append,
                           settings=RollingSettings(node_timeout=timeout, poll=0.5),
                           clock=lambda: fake.now, sleep=fake.sleep).run()
    return order, lines


def test_followers_go_first_and_the_leader_last_after_handing_over() -> None:
    fake = FakeCluster(leader="n2")
    order, lines = _run(fake)
    assert order == ["n1", "n3", "n2"]
    assert fake.events == ["restart n1", "restart n3", "transfer n2", "restart n2"]
    assert "n2 leads: handing leadership over" in lines and lines[-1] == "rolling restart done: n1, n3, n2"


def test_without_a_transfer_endpoint_the_graceful_stop_hands_over() -> None:
    fake = FakeCluster(leader="n1", can_transfer=False)
    order, lines = _run(fake)
    assert order == ["n2", "n3", "n1"]
    assert any("its graceful stop hands leadership over" in line for line in lines)


def test_a_member_that_does_not_come_back_stops_the_run() -> None:
    fake = FakeCluster(back_after=None)
    with pytest.raises(RollingRestartFailed, match="stopped at n2: it was restarted but is not back within 5s"):
        _run(fake)
    assert fake.events == ["restart n2"]  # nothing more was restarted


def test_an_unhealthy_cluster_is_not_touched() -> None:
    fake = FakeCluster()
    fake.down["n3"] = None  # n3 does not answer at all
    with pytest.raises(RollingRestartFailed, match=r"not healthy after 5s \(n3 does not answer\) \(nothing was"):
        _run(fake)
    assert fake.events == []


def test_judge_and_the_order() -> None:
    follower = {"state": "follower"}
    leader = {"state": "leader", "has_quorum": True}
    health = judge(["a", "b"], {"a": leader, "b": follower}, {"a": True, "b": False})
    assert health.leader == "a" and health.problems == ["b is not ready"]
    assert judge(["a", "b"], {"a": leader, "b": leader}, {"a": True, "b": True}).leader is None
    assert next_member(["a", "b"], "a") == "b" and next_member(["a"], "a") == "a"


def test_the_shell_step_substitutes_and_fails_clearly(tmp_path: Any) -> None:
    out = tmp_path / "out"
    shell_restart(f"{sys.executable} -c 'import sys; open(sys.argv[1], \"w\").write(sys.argv[2])' {out} "
                  "{name}@{http}", {"n1": "127.0.0.1:9"}, timeout=30)("n1")
    assert out.read_text() == "n1@127.0.0.1:9"
    with pytest.raises(RollingRestartFailed, match=r"stopped at n2: the restart command 'exit 3' exited with code 3"):
        shell_restart("exit 3", {}, timeout=30)("n2")
