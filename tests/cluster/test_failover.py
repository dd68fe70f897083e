"""Leader failures under a stream of registrations: kill -9, SIGSTOP/SIGCONT, and loss of quorum.

Measured times are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
from cluster_helpers import (
    EXPECTED_WRITE_STATUSES,
    WriteLoad,
    assert_all_nodes_have,
    cluster_snapshot,
    in_thread,
    instance_body,
    put_instance,
)

from raftreg.testing import LocalCluster, wait_for

pytestmark = pytest.mark.cluster


async def test_leader_kill_during_writes_elects_new_leader_and_loses_nothing(cluster: LocalCluster) -> None:
    old = cluster.leader()
    load = WriteLoad(cluster, "orders", writers=8).start()
    try:
        await load.wait_acks(50, timeout=30.0)
        await asyncio.sleep(3.0)
        before_kill = len(load.acks)

        t_kill = time.monotonic()
        await in_thread(cluster.kill, old)
        new = await in_thread(cluster.leader, 30.0)
        t_leader = time.monotonic()
        first = await load.wait_ack_after(t_kill, timeout=30.0)
        await asyncio.sleep(3.0)
    finally:
        await load.stop()

    assert new != old, f"the killed node {old} is still reported as leader"
    after_kill = [a for a in load.acks.values() if a.sent >= t_kill]
    print(f"\n[failover kill -9 leader] old={old} new={new} "
          f"kill->agreed leader {t_leader - t_kill:.2f}s, kill->first ack {first.done - t_kill:.2f}s "
          f"(through {first.node}); acks before kill {before_kill}, sent after kill {len(after_kill)}; "
          f"statuses {dict(load.statuses)}")
    assert len(after_kill) > 50, "writes did not resume after the failover"
    assert not load.unexpected, f"unexpected write answers: {load.unexpected[:5]}"

    await in_thread(cluster.start_node, old)
    await in_thread(cluster.wait_node_ready, old, 60.0)
    await in_thread(cluster.wait_converged, 60.0)
    assert_all_nodes_have(cluster, "orders", load.acked)


def _put_with_headers(url: str, body: dict[str, object], timeout: float) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        err.read()
        return err.code, dict(err.headers)
    except OSError:
        return 0, {}


def test_no_quorum_writes_fail_fast_then_recover(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    f1, f2 = cluster.followers()
    commit_timeout = cluster.config.raft.commit_timeout
    code, body = put_instance(cluster, leader, "pay", "before")
    assert code == 200, body

    cluster.kill(f1)
    cluster.kill(f2)
    t_kill = time.monotonic()

    # Try at once (the leader may still believe it has a quorum), and keep trying past the
    # leader-fallback timeout (it has stepped down by then): every answer is 503 or 504, in time.
    answers = []
    i = 0
    while i < 3 or time.monotonic() - t_kill < cluster.config.raft.leader_fallback_timeout + 3.0:
        url = f"{cluster.url(leader)}/v1/services/pay/instances/nq-{i}"
        t0 = time.monotonic()
        status, headers = _put_with_headers(url, instance_body(f"nq-{i}"), timeout=commit_timeout + 10.0)
        elapsed = time.monotonic() - t0
        answers.append((round(time.monotonic() - t_kill, 2), status, round(elapsed, 2)))
        assert status in (503, 504), f"PUT without quorum answered {status} (answers so far {answers})"
        if status == 503:
            assert int(headers.get("Retry-After", "0")) >= 1, f"503 without Retry-After: {headers}"
        assert elapsed <= commit_timeout + 1.0, f"PUT without quorum took {elapsed:.2f}s: {answers}"
        i += 1
    print(f"\n[no quorum] (s since kill, status, s taken): {answers}")

    t_restart = time.monotonic()
    cluster.start_node(f1)
    attempt = iter(range(10**6))

    def write_ok() -> bool:
        n = next(attempt)
        code, _ = put_instance(cluster, leader if n % 2 else f1, "pay", "after", timeout=commit_timeout + 2.0)
        assert code in EXPECTED_WRITE_STATUSES, f"write during recovery answered {code}"
        return code == 200

    wait_for(write_ok, 60.0, "a write to succeed after restarting one follower", interval=0.1)
    print(f"[no quorum] follower restart -> first acknowledged write {time.monotonic() - t_restart:.2f}s")
    code, body = put_instance(cluster, leader, "pay", "after-2")
    assert code == 200, body
    code, body = put_instance(cluster, f1, "pay", "after-3")
    assert code == 200, body
    cluster.wait_converged(timeout=60.0)
    assert_all_nodes_have(cluster, "pay", {"before", "after", "after-2", "after-3"}, nodes=[leader, f1])


async def test_paused_leader_is_replaced_then_steps_down_and_converges(cluster: LocalCluster) -> None:
    old = cluster.leader()
    others = [n for n in cluster.names if n != old]
    load = WriteLoad(cluster, "carts", writers=8).start()
    try:
        await load.wait_acks(50, timeout=30.0)
        await asyncio.sleep(1.5)

        t_pause = time.monotonic()
        await in_thread(cluster.pause, old)
        new = await in_thread(cluster.leader, 30.0, others)
        t_leader = time.monotonic()
        # The first load's writers get stuck one by one on the paused node (until their client
        # timeout); a second load writes only through the two live nodes.
        load2 = WriteLoad(cluster, "carts", writers=4, prefix="p", nodes=others).start()
        try:
            first2 = await load2.wait_ack_after(t_pause, timeout=30.0)
            await load2.wait_acks(20, timeout=30.0)
            await asyncio.sleep(2.0)
        finally:
            await load2.stop()
        during_pause = [a for a in [*load.acks.values(), *load2.acks.values()] if a.sent >= t_pause]
        first = min((a for a in during_pause if a.node in others), key=lambda a: a.done, default=first2)

        t_resume = time.monotonic()
        await in_thread(cluster.resume, old)

        def old_stepped_down() -> bool:
            st = cluster.status(old)
            return st is not None and st["state"] == "follower" and st["leader"] == new

        try:
            await in_thread(wait_for, old_stepped_down, 30.0, f"{old} to follow {new}")
        except TimeoutError:
            raise AssertionError(f"old leader did not step down: {cluster_snapshot(cluster)}") from None
        t_down = time.monotonic()
        await asyncio.sleep(2.0)
    finally:
        await load.stop()

    assert new != old
    print(f"\n[failover SIGSTOP leader] old={old} new={new} pause->agreed leader {t_leader - t_pause:.2f}s, "
          f"pause->first ack {first.done - t_pause:.2f}s (through {first.node}); "
          f"resume->old leader follows {t_down - t_resume:.2f}s; acks sent during pause {len(during_pause)}; "
          f"statuses {dict(load.statuses)} + {dict(load2.statuses)}")
    assert len(during_pause) > 20, "writes through the new leader did not succeed while the old one was paused"
    assert not load.unexpected, f"unexpected write answers: {load.unexpected[:5]}"
    assert not load2.unexpected, f"unexpected write answers: {load2.unexpected[:5]}"

    await in_thread(cluster.wait_converged, 60.0)
    assert cluster.leader() in cluster.names
    assert_all_nodes_have(cluster, "carts", load.acked | load2.acked)
