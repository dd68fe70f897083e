"""The watchdog's Judge, fed RaftStatus samples at explicit times, and Watchdog.run with fakes."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from raftreg.node.watchdog import Judge, Verdict, Watchdog
from raftreg.raft import RaftStatus

LEADER = "127.0.0.1:7001"
HEALTHY = RaftStatus(
    state="follower",
    leader=LEADER,
    term=3,
    commit_index=10,
    applied_index=10,
    leader_commit_index=10,
    log_len=10,
    has_quorum=True,
    match_index={},
    connected=frozenset({LEADER}),
    last_contact=0.1,
)


def status(**changes: Any) -> RaftStatus:
    return dataclasses.replace(HEALTHY, **changes)


def feed(judge: Judge, samples: list[tuple[float, RaftStatus]]) -> list[Verdict]:
    return [judge.observe(st, now) for now, st in samples]


def test_healthy_follower_stays_healthy() -> None:
    judge = Judge(stuck_after=15)
    for t in range(0, 120, 1):
        verdict = judge.observe(status(commit_index=10, applied_index=10, leader_commit_index=10), float(t))
        assert verdict == Verdict(False)


def test_healthy_leader_and_candidate_without_quorum_stay_healthy() -> None:
    judge = Judge(stuck_after=15)
    for t in range(60):
        assert not judge.observe(status(state="leader", last_contact=0.0), float(t)).wedged
    judge = Judge(stuck_after=15)
    for t in range(60):
        assert not judge.observe(status(state="candidate", leader=None, term=3 + t, has_quorum=False), float(t)).wedged


def test_applied_index_stuck_below_leader_commit_is_wedged_after_stuck_after() -> None:
    judge = Judge(stuck_after=15)
    behind = status(applied_index=5, commit_index=5, leader_commit_index=10)
    assert not judge.observe(behind, 100.0).wedged
    assert not judge.observe(behind, 110.0).wedged
    assert not judge.observe(behind, 115.0).wedged  # exactly stuck_after: not yet
    verdict = judge.observe(behind, 115.5)
    assert verdict.wedged
    assert "5" in verdict.reason and "10" in verdict.reason


def test_moving_applied_index_is_not_wedged() -> None:
    judge = Judge(stuck_after=15)
    # Far behind the leader but catching up: applied moves every 10 s.
    for step in range(20):
        st = status(applied_index=100 + step, commit_index=100 + step, leader_commit_index=10_000)
        assert not judge.observe(st, step * 10.0).wedged


def test_stuck_but_caught_up_is_not_wedged() -> None:
    judge = Judge(stuck_after=15)
    for t in range(0, 100, 5):
        assert not judge.observe(status(applied_index=10, leader_commit_index=10), float(t)).wedged
    for t in range(0, 100, 5):  # leader commit unknown (e.g. before the first AppendEntries)
        assert not judge.observe(status(applied_index=10, leader_commit_index=None), float(100 + t)).wedged


def test_empty_log_after_applying_while_following_is_wedged_at_once() -> None:
    judge = Judge(stuck_after=15)
    verdict = judge.observe(status(log_len=0, applied_index=42), 0.0)
    assert verdict.wedged
    assert "empty" in verdict.reason


def test_empty_log_with_nothing_applied_is_fine() -> None:
    judge = Judge(stuck_after=15)
    assert not judge.observe(status(log_len=0, applied_index=0, commit_index=0, leader_commit_index=0), 0.0).wedged


@pytest.mark.parametrize(
    "changes",
    [
        {"leader": None},  # no leader known
        {"last_contact": 2.0},  # leader contact is stale
        {"last_contact": 30.0},
        {"state": "candidate", "leader": None},
        {"state": "leader", "last_contact": 0.0},
    ],
)
def test_not_following_a_live_leader_is_never_judged_wedged(changes: dict[str, Any]) -> None:
    judge = Judge(stuck_after=15)
    empty_log = status(log_len=0, applied_index=42, **changes)
    behind = status(applied_index=5, leader_commit_index=10, **changes)
    for t in range(0, 100, 5):
        assert not judge.observe(empty_log if t % 2 else behind, float(t)).wedged


def test_candidate_with_quorum_and_racing_term_is_wedged() -> None:
    judge = Judge(stuck_after=15)
    verdicts = feed(
        judge,
        [(float(t), status(state="candidate", leader=None, term=3 + t, has_quorum=True)) for t in range(0, 20)],
    )
    assert [v.wedged for v in verdicts] == [t > 15 for t in range(0, 20)]
    assert "candidate" in verdicts[-1].reason


def test_candidate_with_stable_term_is_not_wedged() -> None:
    judge = Judge(stuck_after=15)
    for t in range(0, 60):
        assert not judge.observe(status(state="candidate", leader=None, term=7, has_quorum=True), float(t)).wedged


def test_candidate_clock_restarts_after_leaving_candidate_state() -> None:
    judge = Judge(stuck_after=15)
    for t in range(0, 10):
        judge.observe(status(state="candidate", leader=None, term=3 + t, has_quorum=True), float(t))
    judge.observe(status(term=13), 10.0)  # found a leader
    for t in range(11, 25):  # candidate again, for less than stuck_after
        assert not judge.observe(status(state="candidate", leader=None, term=t * 3, has_quorum=True), float(t)).wedged
    assert judge.observe(status(state="candidate", leader=None, term=200, has_quorum=True), 27.0).wedged


def test_reset_restarts_the_stuck_clock() -> None:
    judge = Judge(stuck_after=15)
    behind = status(applied_index=5, leader_commit_index=10)
    judge.observe(behind, 0.0)
    assert judge.observe(behind, 16.0).wedged
    judge.reset(16.0)
    assert not judge.observe(behind, 30.0).wedged
    assert judge.observe(behind, 31.5).wedged


def test_idle_follower_that_just_fell_behind_is_not_wedged() -> None:
    judge = Judge(stuck_after=15)
    for t in range(0, 600, 10):  # ten idle minutes, fully caught up
        assert not judge.observe(status(applied_index=10, leader_commit_index=10), float(t)).wedged
    # A new write: the leader committed 11 and this sample lands before the follower applied it.
    assert not judge.observe(status(applied_index=10, leader_commit_index=11), 600.0).wedged


# ---- Watchdog.run ----------------------------------------------------------------------------------
class Fakes:
    def __init__(self, st: RaftStatus) -> None:
        self.status = st
        self.samples = 0
        self.recoveries: list[tuple[float, str]] = []

    def sample(self) -> RaftStatus:
        self.samples += 1
        return self.status

    def recover(self, reason: str) -> None:
        self.recoveries.append((asyncio.get_running_loop().time(), reason))


async def wait_until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.002)


async def run_until(dog: Watchdog, cond: Callable[[], bool]) -> None:
    task = asyncio.ensure_future(dog.run())
    try:
        await wait_until(cond)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_watchdog_recovers_once_per_cooldown() -> None:
    fakes = Fakes(status(log_len=0, applied_index=42))  # wedged on every sample
    dog = Watchdog(fakes.sample, fakes.recover, judge=Judge(stuck_after=15), period=0.002, cooldown=60.0)
    await run_until(dog, lambda: fakes.samples >= 25)
    assert len(fakes.recoveries) == 1
    assert dog.wedges == 1
    assert "empty" in fakes.recoveries[0][1]


async def test_watchdog_recovers_again_after_the_cooldown() -> None:
    cooldown = 0.05
    fakes = Fakes(status(log_len=0, applied_index=42))
    dog = Watchdog(fakes.sample, fakes.recover, judge=Judge(stuck_after=15), period=0.002, cooldown=cooldown)
    await run_until(dog, lambda: len(fakes.recoveries) >= 3)
    times = [t for t, _ in fakes.recoveries]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= cooldown * 0.95 for gap in gaps), gaps
    assert fakes.samples > len(fakes.recoveries)  # wedged samples inside a cooldown did not recover


async def test_watchdog_leaves_a_healthy_node_alone() -> None:
    fakes = Fakes(HEALTHY)
    dog = Watchdog(fakes.sample, fakes.recover, judge=Judge(stuck_after=0.0), period=0.002, cooldown=0.0)
    await run_until(dog, lambda: fakes.samples >= 25)
    assert fakes.recoveries == []
    assert dog.wedges == 0


async def test_watchdog_resets_the_judge_after_recovering() -> None:
    fakes = Fakes(status(applied_index=5, leader_commit_index=10))  # stuck behind the leader
    judge = Judge(stuck_after=0.03)
    dog = Watchdog(fakes.sample, fakes.recover, judge=judge, period=0.002, cooldown=0.0)
    await run_until(dog, lambda: len(fakes.recoveries) >= 2)
    first, second = (t for t, _ in fakes.recoveries[:2])
    # Without the reset, the second recovery would follow the first on the next sample.
    assert second - first >= 0.03 * 0.95


async def test_watchdog_survives_a_pass_that_raises() -> None:
    fakes = Fakes(status(log_len=0, applied_index=42))
    failures = iter([RuntimeError("getStatus blew up"), ValueError("bad sample")])

    def flaky_sample() -> RaftStatus:
        error = next(failures, None)
        if error is not None:
            raise error
        return fakes.sample()

    dog = Watchdog(flaky_sample, fakes.recover, judge=Judge(stuck_after=15), period=0.002, cooldown=60.0)
    await run_until(dog, lambda: len(fakes.recoveries) >= 1)
    assert dog.failed_passes == 2
    assert dog.wedges == 1


async def test_watchdog_survives_a_recover_that_raises() -> None:
    fakes = Fakes(status(log_len=0, applied_index=42))
    calls: list[str] = []

    def recover(reason: str) -> None:
        calls.append(reason)
        if len(calls) == 1:
            raise RuntimeError("recovery could not start")

    dog = Watchdog(fakes.sample, recover, judge=Judge(stuck_after=15), period=0.002, cooldown=0.02)
    await run_until(dog, lambda: len(calls) >= 2)
    assert dog.failed_passes == 1


async def test_a_refused_recovery_is_retried_sooner_than_the_cooldown() -> None:
    fakes = Fakes(status(log_len=0, applied_index=42))
    dog: Watchdog

    def refuse(reason: str) -> None:
        fakes.recover(reason)
        dog.retry_in(0.02)

    dog = Watchdog(fakes.sample, refuse, judge=Judge(stuck_after=15), period=0.002, cooldown=60.0)
    await run_until(dog, lambda: len(fakes.recoveries) >= 3)
    times = [t for t, _ in fakes.recoveries]
    assert all(0.019 <= b - a < 5 for a, b in itertools.pairwise(times)), times
