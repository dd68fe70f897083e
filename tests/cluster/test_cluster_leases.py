"""TTL leases and heartbeats on real 3-node clusters (issue 5): heartbeats never touch the Raft
log, expiry in a stable cluster and across a leader kill, no false expiry over repeated leader
kills with ``keep_alive`` clients, heartbeat errors through a follower, and the mass-expiry guard.

(Named ``test_cluster_leases.py``, not ``test_leases.py``: the test directories are not packages,
so a second ``test_leases`` module next to ``tests/unit/test_leases.py`` breaks collection of the
whole suite with "import file mismatch".)

Measured times are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from cluster_helpers import cluster_snapshot, in_thread
from health_helpers import (
    Heartbeater,
    cluster_info,
    codes_everywhere,
    deregister,
    get_instance,
    gone_everywhere,
    guard_warning,
    heartbeat,
    leader_info,
    leases,
    listing,
    logs_on_failure,
    register,
    running_cluster,
)

from raftreg.client import AsyncRegistryClient, keep_alive
from raftreg.config import LeaseTuning
from raftreg.testing import LocalCluster, wait_for

pytestmark = pytest.mark.cluster

ADDR = {"address": "127.0.0.1", "port": 8080}


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalCluster]:
    """One cluster for the tests of this module that kill no node."""
    with running_cluster(name="leases") as cluster:
        yield cluster


@pytest.fixture
def stable(shared: LocalCluster, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    with logs_on_failure(request, shared):
        yield shared


def ttl_body(ttl: float) -> dict[str, Any]:
    return {**ADDR, "ttl": f"{ttl:g}s"}


def wait_gone_by(cluster: LocalCluster, service: str, instance_id: str, deadline: float, what: str,
                 nodes: list[str] | None = None) -> float:
    """Wait until every node answers 404 for the instance; returns when that was seen (monotonic).
    Fails if that is later than ``deadline``."""
    seen: list[float] = []

    def gone() -> bool:
        if gone_everywhere(cluster, service, instance_id, nodes):
            seen.append(time.monotonic())
            return True
        return False

    try:
        wait_for(gone, max(0.0, deadline - time.monotonic()), what, interval=0.02)
    except TimeoutError:
        codes = codes_everywhere(cluster, service, instance_id, nodes)
        raise AssertionError(f"{what}: not gone by the deadline; per-node answers {codes}; "
                             f"{cluster_snapshot(cluster)}") from None
    assert seen[0] <= deadline, f"{what}: gone only {seen[0] - deadline:.2f}s after the deadline"
    return seen[0]


def assert_stays_present(cluster: LocalCluster, node: str, service: str, ids: list[str], until: float) -> None:
    """Poll ``node`` until ``until``: every id in ``ids`` is listed at every poll."""
    while True:
        present = set(listing(cluster, node, service))
        missing = sorted(set(ids) - present)
        assert not missing, f"{missing} disappeared from {node} at {until - time.monotonic():.2f}s before the end"
        if time.monotonic() >= until:
            return
        time.sleep(0.1)


# ---- 1. heartbeats never grow the log ---------------------------------------------------------------

def test_heartbeats_never_grow_the_raft_log(stable: LocalCluster) -> None:
    c = stable
    service, ids = "hb-log", [f"i{k}" for k in range(10)]
    leader = c.leader()
    for k, instance_id in enumerate(ids):
        register(c, c.names[k % 3], service, instance_id, ttl_body(30.0))
    try:
        c.wait_converged(timeout=30.0)
        before = {n: cluster_info(c, n) for n in c.names}
        assert before[leader]["state"] == "leader"

        requests = [(c.names[k % 3], ids[k % len(ids)]) for k in range(1000)]
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(lambda r: (r[0], *heartbeat(c, r[0], service, r[1])), requests))

        bad = [a for a in answers if a[1] != 200 or a[2] != {"ttl": 30.0}]
        assert not bad, f"{len(bad)} of 1000 heartbeats not answered 200 {{'ttl': 30.0}}, e.g. {bad[:5]}"
        after = {n: leader_info(c, leader) if n == leader else cluster_info(c, n) for n in c.names}
        for n in c.names:
            for key in ("commit_index", "applied_index", "log_len"):
                assert after[n][key] == before[n][key], (
                    f"1000 heartbeats moved {key} on {n}: {before[n][key]} -> {after[n][key]}")
        sent_to = collections.Counter(node for node, _ in requests)
        renewed = after[leader]["leases"]["renewals"] - before[leader]["leases"]["renewals"]
        assert renewed == 1000, f"the leader renewed {renewed} leases for 1000 heartbeats"
        for n in c.names:
            if n == leader:
                continue
            forwarded = after[n]["heartbeats_forwarded"]["heartbeats"] - before[n]["heartbeats_forwarded"]["heartbeats"]
            batches = after[n]["heartbeats_forwarded"]["batches"] - before[n]["heartbeats_forwarded"]["batches"]
            assert forwarded == sent_to[n], f"{n} forwarded {forwarded} heartbeats, it received {sent_to[n]}"
            print(f"\n[heartbeats] {n} forwarded {forwarded} heartbeats in {batches} batches")
        assert after[leader]["leases"]["expired"] == before[leader]["leases"]["expired"]
    finally:
        for instance_id in ids:
            deregister(c, service, instance_id)


# ---- 2. expiry in a stable cluster -------------------------------------------------------------------

def test_expiry_in_a_stable_cluster(stable: LocalCluster) -> None:
    c = stable
    ttl, service = 2.0, "stable"
    leader = c.leader()
    follower = c.followers()[0]
    expired_before = leases(c, leader)["expired"]
    t_registered = time.monotonic()
    lives = register(c, follower, service, "lives", ttl_body(ttl))
    register(c, follower, service, "dies", ttl_body(ttl))
    hb = Heartbeater(c, service, ["lives", "dies"], period=ttl / 3).start()
    try:
        wait_for(lambda: len([b for b in hb.since("dies", 0) if b.status == 200]) >= 3, 10.0,
                 "three acknowledged heartbeats of 'dies'")
        hb.pause(["dies"])
        t_sent, t_ack = hb.last_sent_ok("dies"), hb.last_ack("dies")
        assert not hb.failures(["dies"]), hb.failures(["dies"])

        # Not before its lease ran out: the leader's deadline is at least t_sent + ttl.
        first_404 = wait_for(lambda: time.monotonic() if get_instance(c, leader, service, "dies")[0] == 404
                             else None, ttl + 10.0, "'dies' gone on the leader", interval=0.02)
        assert first_404 >= t_sent + ttl, f"'dies' expired {t_sent + ttl - first_404:.2f}s before its ttl ran out"
        gone = wait_gone_by(c, service, "dies", t_ack + ttl + 2.0, "'dies' gone on every node within ttl + 2s")
        print(f"\n[expiry stable] last heartbeat ack -> gone on the leader {first_404 - t_ack:.2f}s, "
              f"on every node {gone - t_ack:.2f}s (ttl {ttl:g}s)")

        assert_stays_present(c, leader, service, ["lives"], until=t_registered + 3 * ttl + 0.5)
        for n in c.names:
            code, inst = get_instance(c, n, service, "lives")
            assert code == 200 and inst["create_index"] == lives["create_index"], (n, code, inst)
        assert not hb.failures(["lives"]), f"heartbeats of 'lives' failed: {hb.failures(['lives'])[:5]}"
        assert len(hb.since("lives", 0)) >= 8
        assert leases(c, leader)["expired"] == expired_before + 1
    finally:
        hb.stop()
        deregister(c, service, "lives")
        deregister(c, service, "dies")


# ---- 5. heartbeat errors through a follower ----------------------------------------------------------

def test_heartbeat_errors_through_a_follower_and_the_leader(stable: LocalCluster) -> None:
    c = stable
    service = "hb-errors"
    leader = c.leader()
    follower = c.followers()[0]
    register(c, leader, service, "plain", ADDR)
    try:
        for node in (follower, leader):
            code, body = heartbeat(c, node, service, "ghost")
            assert code == 404, (node, code, body)
            assert body["error"]["code"] == "not_found" and "ghost" in body["error"]["message"], (node, body)

            code, body = heartbeat(c, node, service, "plain")
            assert code == 400, (node, code, body)
            assert body["error"]["code"] == "invalid_argument", (node, body)
            assert "ttl" in body["error"]["message"], (node, body)

        code, body = heartbeat(c, follower, "no-such-service", "ghost")
        assert code == 404 and body["error"]["code"] == "not_found", (code, body)
    finally:
        deregister(c, service, "plain")


# ---- 3. expiry across a leader kill -------------------------------------------------------------------

def test_expiry_across_a_leader_kill(make_cluster: Callable[..., LocalCluster]) -> None:
    c = make_cluster()
    ttl, service = 3.0, "failover"
    old = c.leader()
    survivors = [n for n in c.names if n != old]
    via = survivors[0]
    register(c, via, service, "k1", ttl_body(ttl))
    for _ in range(2):
        t_sent = time.monotonic()
        code, body = heartbeat(c, via, service, "k1")
        t_ack = time.monotonic()
        assert code == 200, (code, body)
    c.kill(old)
    t_kill = time.monotonic()

    first_404 = wait_for(lambda: time.monotonic() if any(code == 404 for code in
                                                         codes_everywhere(c, service, "k1", survivors).values())
                         else None, 3 * ttl + 10.0, "'k1' gone on a survivor", interval=0.02)
    assert first_404 >= t_sent + ttl, f"'k1' expired {t_sent + ttl - first_404:.2f}s before its ttl ran out"
    gone = wait_gone_by(c, service, "k1", t_ack + 2 * ttl, "'k1' gone on the survivors within 2 x ttl",
                        nodes=survivors)
    new = c.leader(among=survivors)
    print(f"\n[expiry leader kill] killed {old} {t_kill - t_ack:.3f}s after the last ack; new leader {new}; "
          f"gone on the survivors {gone - t_ack:.2f}s after the last ack (bound 2 x ttl = {2 * ttl:g}s)")
    assert leases(c, new)["expired"] == 1

    c.start_node(old)
    c.wait_node_ready(old, timeout=60.0)
    wait_for(lambda: gone_everywhere(c, service, "k1"), 30.0, "'k1' gone on the restarted node too")


# ---- 4. no false expiry over five leader kills ------------------------------------------------------

async def test_no_false_expiry_over_five_leader_kills(make_cluster: Callable[..., LocalCluster]) -> None:
    c = await in_thread(make_cluster)
    ttl, service, count = 3.0, "survivors", 50
    ids = [f"s{k:02d}" for k in range(count)]
    events: collections.Counter[str] = collections.Counter()
    reregistered: list[tuple[str, Any]] = []
    stop = asyncio.Event()

    def on_event(instance_id: str) -> Callable[[tuple[str, Any]], None]:
        def note(event: tuple[str, Any]) -> None:
            events[event[0]] += 1
            if event[0] == "reregistered":
                reregistered.append((instance_id, event[1]))
        return note

    expired_by_killed: dict[str, int] = {}
    timings: list[str] = []
    async with AsyncRegistryClient(c.urls(), timeout=10.0) as client:
        tasks = [asyncio.create_task(keep_alive(client, service, i, ttl_body(ttl), ttl, stop, on_event(i)))
                 for i in ids]
        try:
            async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
                deadline = time.monotonic() + timeout
                while not predicate():
                    failed = [t for t in tasks if t.done()]
                    if failed:
                        await failed[0]  # raises what ended a keep_alive
                        raise AssertionError(f"a keep_alive task ended: {failed[0]}")
                    assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
                    await asyncio.sleep(0.05)

            await until(lambda: events["registered"] == count, 30.0, "50 registrations")
            first = await in_thread(listing, c, c.names[0], service)
            created = {i: inst["create_index"] for i, inst in first.items()}
            assert set(created) == set(ids)

            for round_no in range(5):
                leader = await in_thread(c.leader, 30.0)
                base = (await in_thread(leases, c, leader))["renewals"]

                def renewed(leader: str = leader, base: int = base) -> bool:
                    st = c.status(leader)
                    return st is not None and st["leases"]["active"] and st["leases"]["renewals"] >= base + count

                await in_thread(wait_for, renewed, 20.0, f"{leader} to renew a round of heartbeats")
                expired_by_killed[f"{round_no}:{leader}"] = (await in_thread(leases, c, leader))["expired"]
                t_kill = time.monotonic()
                await in_thread(c.kill, leader)
                new = await in_thread(c.leader, 30.0, [n for n in c.names if n != leader])
                t_new = time.monotonic()
                await in_thread(c.start_node, leader)
                await in_thread(c.wait_node_ready, leader, 60.0)
                await in_thread(c.wait_ready, 60.0)
                timings.append(f"{leader}->{new} {t_new - t_kill:.1f}s, ready {time.monotonic() - t_kill:.1f}s")
                assert not reregistered, f"round {round_no}: instances expired, registered again: {reregistered}"
                ended = [t for t in tasks if t.done()]
                assert not ended, f"round {round_no}: a keep_alive task ended: {ended[0]}"
            # one more full heartbeat round through the last leader
            leader = await in_thread(c.leader, 30.0)
            base = (await in_thread(leases, c, leader))["renewals"]
            await in_thread(wait_for, lambda: (st := c.status(leader)) is not None
                            and st["leases"]["renewals"] >= base + count, 20.0, "a final round of heartbeats")
        finally:
            stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
    print(f"\n[5 leader kills] {timings}; keep_alive events {dict(events)}")
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"keep_alive raised: {errors[:3]}"
    assert not reregistered, f"{len(reregistered)} instances expired and were registered again: {reregistered[:10]}"
    await in_thread(c.wait_converged, 60.0)
    for n in c.names:
        listed = await in_thread(listing, c, n, service)
        assert set(listed) == set(ids), f"{n} lists {len(listed)} of the 50: missing {sorted(set(ids) - set(listed))}"
        moved = {i: (created[i], inst["create_index"]) for i, inst in listed.items()
                 if inst["create_index"] != created[i]}
        assert not moved, f"instances were registered anew on {n}: {moved}"
    final = {n: (await in_thread(leases, c, n))["expired"] for n in c.names}
    assert sum(expired_by_killed.values()) + sum(final.values()) == 0, (
        f"leases expired: by the killed leaders {expired_by_killed}, by the live nodes {final}")


# ---- 6. the mass-expiry guard -------------------------------------------------------------------------

GUARD = LeaseTuning(mass_expiry_min=10, mass_expiry_share=0.5, mass_expiry_rate=2.0, mass_expiry_hold_extra=4.0)
GUARD_TTL = 2.0
GUARD_BOUND = 2 * GUARD_TTL + GUARD.mass_expiry_hold_extra + 2.0  # after the last heartbeat
DOOMED = [f"d{k:02d}" for k in range(20)]
KEPT = [f"k{k}" for k in range(4)]


def start_guard_scenario(c: LocalCluster, service: str) -> tuple[str, Heartbeater]:
    """24 TTL instances (ttl 2s) heartbeating every ttl/3; returns the leader and the heartbeater
    once every instance has had two acknowledged heartbeats."""
    leader = c.leader()
    for k, instance_id in enumerate(DOOMED + KEPT):
        register(c, c.names[k % 3], service, instance_id, ttl_body(GUARD_TTL))
    hb = Heartbeater(c, service, DOOMED + KEPT, period=GUARD_TTL / 3).start()
    wait_for(lambda: all(len([b for b in hb.since(i, 0) if b.status == 200]) >= 2 for i in DOOMED + KEPT), 15.0,
             "two acknowledged heartbeats of every instance")
    assert not hb.failures(), hb.failures()[:5]
    return leader, hb


def test_mass_expiry_guard_spreads_and_bounds_expiries(make_cluster: Callable[..., LocalCluster]) -> None:
    c = make_cluster(leases=GUARD)
    service = "mass"
    leader, hb = start_guard_scenario(c, service)
    try:
        hb.pause(DOOMED)
        t_last = max(hb.last_ack(i) for i in DOOMED)
        bound = t_last + GUARD_BOUND
        samples: list[tuple[float, int, bool, int]] = []  # (s after the last ack, doomed left, throttled, held)
        while True:
            left = len(set(DOOMED) & set(listing(c, leader, service)))
            st = leader_info(c, leader)["leases"]
            samples.append((round(time.monotonic() - t_last, 2), left, st["throttled"], st["held"]))
            if left == 0:
                break
            assert time.monotonic() < bound, f"not all 20 expired within {GUARD_BOUND:g}s: {samples[-5:]}"
            time.sleep(0.1)
        wait_gone_by(c, service, DOOMED[-1], bound, "the doomed gone on every node")
        for instance_id in DOOMED:
            assert gone_everywhere(c, service, instance_id), instance_id

        print(f"\n[mass expiry guard] (s after the last heartbeat, left, throttled, held): "
              f"{[s for k, s in enumerate(samples) if k % 5 == 0 or s[1] == 0]}")
        assert any(s[2] for s in samples), f"the guard never throttled: {samples}"
        assert max(s[3] for s in samples) >= 5, f"the guard held fewer than 5 instances at once: {samples}"
        at_ttl_plus_1 = next(s for s in samples if s[0] >= GUARD_TTL + 1.0)
        assert at_ttl_plus_1[1] >= 5, f"{20 - at_ttl_plus_1[1]} of 20 gone within ttl + 1s: {samples}"
        first_gone = next(s[0] for s in samples if s[1] < 20)
        last_gone = samples[-1][0]
        assert last_gone - first_gone >= 2.0, f"expiries not spread out: {first_gone}s .. {last_gone}s: {samples}"
        assert len({s[1] for s in samples}) >= 5, f"expiries came in fewer than 4 steps: {samples}"

        st = leader_info(c, leader)["leases"]
        assert st["guard_trips"] >= 1 and st["expired"] == 20, st
        assert guard_warning(c, leader, "on"), "no WARNING event=mass_expiry_guard state=on in the leader's log"
        wait_for(lambda: not leader_info(c, leader)["leases"]["throttled"], 5.0, "the guard to turn off")
        wait_for(lambda: guard_warning(c, leader, "off"), 5.0, "the guard-off warning")
        for n in c.names:
            assert set(KEPT) <= set(listing(c, n, service)), f"a kept-alive instance expired on {n}"
        assert not hb.failures(KEPT), hb.failures(KEPT)[:5]
    finally:
        hb.stop()


@dataclass
class Resumed:
    """What happened to the doomed instances when their heartbeats resumed while the guard held them."""

    t_last: float  # the last acknowledged heartbeat before the pause
    held: list[str]  # listed on the leader when heartbeats resumed
    survivors: list[str]  # every heartbeat after the resume acknowledged
    answers: dict[str, list[int]]  # heartbeat answers after the resume, per doomed instance

    def lost(self) -> list[str]:
        return [i for i in self.held if i not in self.survivors]

    def acked_then_expired(self) -> list[str]:
        return [i for i in self.held if 200 in self.answers[i] and self.answers[i][-1] == 404]


def resume_while_throttled(c: LocalCluster, leader: str, hb: Heartbeater, service: str, spread: float) -> Resumed:
    """Stop the doomed, wait until the guard throttles, then resume their heartbeats: the first one
    of each sent by this function, ``spread`` seconds from first to last (clients heartbeat at
    independent phases), then the heartbeater's rounds. Waits for two rounds after the resume."""
    hb.pause(DOOMED)
    t_last = max(hb.last_ack(i) for i in DOOMED)
    wait_for(lambda: leader_info(c, leader)["leases"]["throttled"], GUARD_TTL + 3.0, "the guard to throttle")
    held = sorted(set(DOOMED) & set(listing(c, leader, service)))
    t_resume = time.monotonic()
    first: dict[str, int] = {}
    for k, instance_id in enumerate(DOOMED):
        time.sleep(max(0.0, t_resume + k * spread / len(DOOMED) - time.monotonic()))
        first[instance_id] = heartbeat(c, c.names[k % 3], service, instance_id)[0]
    t_first_round = time.monotonic()
    hb.resume(DOOMED)
    wait_for(lambda: all(len(hb.since(i, t_first_round)) >= 2 for i in DOOMED), 10.0,
             "two heartbeater rounds after the resume")
    answers = {i: [first[i], *(b.status for b in hb.since(i, t_first_round))] for i in DOOMED}
    survivors = [i for i in DOOMED if all(code == 200 for code in answers[i])]
    hb.pause([i for i in DOOMED if i not in survivors])
    resumed = Resumed(t_last, held, survivors, answers)
    print(f"\n[guard resume] {len(held)} held when heartbeats resumed {t_resume - t_last:.2f}s after the last ack "
          f"(spread over {spread:g}s); kept {len(survivors)}; lost {resumed.lost()} "
          f"(answers after the resume: { {i: answers[i] for i in resumed.lost()} })")
    return resumed


@pytest.mark.slow  # CI time: the mass-expiry guard and leader-kill cases stay in CI through their siblings
def test_heartbeats_resumed_while_throttled_keep_the_held_instances(
        make_cluster: Callable[..., LocalCluster]) -> None:
    c = make_cluster(leases=GUARD)
    service = "resume"
    leader, hb = start_guard_scenario(c, service)
    try:
        resumed = resume_while_throttled(c, leader, hb, service, spread=GUARD_TTL / 3 - 0.1)
        # While the heartbeats came back (0.57 s) the guard could release one or two at its rate (2/s);
        # every other held instance heartbeated again and must stay.
        acked_then_expired = resumed.acked_then_expired()
        assert not acked_then_expired, (
            f"heartbeats were acknowledged (200) and the instances expired anyway: "
            f"{ {i: resumed.answers[i] for i in acked_then_expired} }")
        lost = resumed.lost()
        assert len(lost) <= 2, (
            f"{len(lost)} of the {len(resumed.held)} held instances expired although their heartbeats resumed "
            f"while the guard throttled (answers after the resume: { {i: resumed.answers[i] for i in lost} })")
        survivors = resumed.survivors
        # Past the time by which the guard would have released every one of them.
        assert_stays_present(c, leader, service, survivors + KEPT, until=resumed.t_last + GUARD_BOUND)
        for n in c.names:
            missing = set(survivors + KEPT) - set(listing(c, n, service))
            assert not missing, f"{n} lost {sorted(missing)}"
        assert not hb.failures(KEPT), hb.failures(KEPT)[:5]
        for i in survivors:
            assert all(b.status == 200 for b in hb.since(i, 0)), (i, [b for b in hb.since(i, 0) if b.status != 200])
        wait_for(lambda: not leader_info(c, leader)["leases"]["throttled"], 5.0, "the guard to turn off")
        st = leader_info(c, leader)["leases"]
        assert st["expired"] == 20 - len(survivors), st
    finally:
        hb.stop()


@pytest.mark.slow  # CI time: the mass-expiry guard and leader-kill cases stay in CI through their siblings
def test_instances_renewed_while_held_still_expire_when_they_stop_again(
        make_cluster: Callable[..., LocalCluster]) -> None:
    c = make_cluster(leases=GUARD)
    service = "rehold"
    leader, hb = start_guard_scenario(c, service)
    try:
        # All at once: most of them are renewed while the guard still holds them.
        survivors = resume_while_throttled(c, leader, hb, service, spread=0.0).survivors
        assert len(survivors) >= 5, f"only {len(survivors)} instances renewed while held"
        wait_for(lambda: not leader_info(c, leader)["leases"]["throttled"], 5.0, "the guard to turn off")
        hb.pause(survivors)
        t_last = max(hb.last_ack(i) for i in survivors)
        deadline = t_last + GUARD_BOUND
        while True:
            left = sorted(set(survivors) & set(listing(c, leader, service)))
            if not left:
                break
            if time.monotonic() > deadline:
                st = leader_info(c, leader)["leases"]
                raise AssertionError(
                    f"{len(left)} of {len(survivors)} instances renewed while the guard held them never expired "
                    f"after their heartbeats stopped again ({GUARD_BOUND:g}s after the last ack); the leader's "
                    f"lease table: {st}; left: {left}")
            time.sleep(0.1)
        wait_gone_by(c, service, survivors[-1], deadline, "the survivors gone on every node")
        assert set(KEPT) <= set(listing(c, leader, service))
    finally:
        hb.stop()
