"""A replica that fell behind catches up: from the leader's log, from a snapshot once the leader has
compacted its log, and after the watchdog's recovery action (wipe and resync) under load."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable

import pytest
from cluster_helpers import (
    EXPECTED_WRITE_STATUSES,
    WriteLoad,
    assert_all_nodes_have,
    dump_stamp,
    in_thread,
    instance_body,
    last_run_log,
    service_ids,
    wait_dump,
)

from raftreg.config import RaftTuning, split_hostport
from raftreg.testing import LocalCluster, wait_for

pytestmark = pytest.mark.cluster

BULK = 5000
COMPACTING = RaftTuning(log_compaction_min_entries=500)


def leader_status(cluster: LocalCluster) -> dict[str, int]:
    st = cluster.status(cluster.leader())
    assert st is not None
    return st


def restart_and_time_catch_up(cluster: LocalCluster, victim: str) -> tuple[float, float]:
    """Start ``victim``; seconds until it has applied the leader's commit index (as of the
    restart), and until the whole cluster has converged."""
    target = leader_status(cluster)["commit_index"]
    t0 = time.monotonic()
    cluster.start_node(victim)

    def caught_up() -> bool:
        st = cluster.status(victim)
        return st is not None and st["applied_index"] >= target

    wait_for(caught_up, 60.0, f"{victim} to apply index {target}")
    t_caught = time.monotonic() - t0
    cluster.wait_node_ready(victim, timeout=60.0)
    cluster.wait_converged(timeout=60.0)
    return t_caught, time.monotonic() - t0


async def _write_while_follower_down(cluster: LocalCluster, writers: int) -> tuple[str, WriteLoad, int]:
    """Kill a follower and acknowledge ``BULK`` registrations through the two others."""
    victim = cluster.followers()[0]
    others = [n for n in cluster.names if n != victim]
    await in_thread(cluster.kill, victim)
    commit_at_kill = leader_status(cluster)["commit_index"]
    t0 = time.monotonic()
    load = WriteLoad(cluster, "bulk", writers=writers, nodes=others, limit=BULK).start()
    await load.finished(timeout=120.0)
    assert not load.unexpected, f"unexpected write answers: {load.unexpected[:5]}"
    assert len(load.acked) == BULK, f"only {len(load.acked)} of {BULK} acknowledged: {dict(load.statuses)}"
    entries = leader_status(cluster)["commit_index"] - commit_at_kill
    print(f"\n[catch-up] {BULK} registrations in {entries} Raft entries, {time.monotonic() - t0:.2f}s "
          f"with {victim} down")
    return victim, load, entries


def _assert_caught_up(cluster: LocalCluster, victim: str, expected: set[str]) -> None:
    leader = cluster.leader()
    st_leader, st_victim = cluster.status(leader), cluster.status(victim)
    assert st_leader is not None and st_victim is not None
    assert st_victim["applied_index"] == st_leader["applied_index"] == st_leader["commit_index"]
    assert service_ids(cluster, victim, "bulk") == expected
    assert_all_nodes_have(cluster, "bulk", expected)


async def test_follower_down_during_5000_writes_catches_up(cluster: LocalCluster) -> None:
    victim, load, _ = await _write_while_follower_down(cluster, writers=16)
    t_caught, t_conv = await in_thread(restart_and_time_catch_up, cluster, victim)
    print(f"[catch-up from log] {victim}: restart -> applied leader's commit index {t_caught:.2f}s, "
          f"-> converged {t_conv:.2f}s")
    _assert_caught_up(cluster, victim, load.acked)


async def test_follower_down_while_leader_compacts_installs_snapshot(
        make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(tuning=COMPACTING)
    # Few writers: small group-commit batches, so the 5,000 writes take well over 500 Raft entries.
    victim, load, entries = await _write_while_follower_down(cluster, writers=4)
    assert entries > 2 * COMPACTING.log_compaction_min_entries, f"only {entries} entries: no compaction forced"
    for name in cluster.names:
        if name != victim:
            await in_thread(wait_dump, cluster, name, 30.0)  # both live nodes compacted their log
    assert dump_stamp(cluster, victim) is None, "the victim compacted before it was killed: test premise broken"

    t_caught, t_conv = await in_thread(restart_and_time_catch_up, cluster, victim)
    print(f"[catch-up from snapshot] {victim}: restart -> applied leader's commit index {t_caught:.2f}s, "
          f"-> converged {t_conv:.2f}s")
    assert "event=snapshot_restored" in last_run_log(cluster, victim), "the follower did not install a snapshot"
    _assert_caught_up(cluster, victim, load.acked)


async def _resync_under_load(cluster: LocalCluster, service: str, preload: int) -> tuple[str, WriteLoad]:
    """Write ``preload`` registrations, then POST /v1/debug/resync on a follower while writers
    keep writing through every node (the resyncing one included)."""
    victim = cluster.followers()[0]
    load = WriteLoad(cluster, service, writers=6).start()
    try:
        await load.wait_acks(preload, timeout=60.0)
        t_resync = time.monotonic()
        code, body = await in_thread(cluster.debug, victim, "resync", {}, timeout=30.0)
        assert code == 200 and body == {"resyncing": True}, (code, body)
        t_returned = time.monotonic()
        await load.wait_ack_after(t_resync, timeout=30.0)  # writes keep working during the resync

        def victim_caught_up() -> bool:
            st, lead = cluster.status(victim), cluster.status(cluster.leader())
            return bool(st and lead and cluster.is_ready(victim)
                        and st["applied_index"] >= lead["commit_index"] - 50)

        await in_thread(wait_for, victim_caught_up, 60.0, f"{victim} to catch up after the resync")
        t_ready = time.monotonic()
        # ... and after it, through the resynced node too.
        await load.wait_ack_after(t_ready, timeout=30.0, nodes={victim})
        await load.wait_acks(len(load.acks) + 200, timeout=30.0)
    finally:
        await load.stop()
    print(f"\n[resync] {victim}: endpoint returned after {t_returned - t_resync:.2f}s, ready and caught up "
          f"{t_ready - t_resync:.2f}s after the request; {len(load.acked)} acked; statuses {dict(load.statuses)}")
    unexpected = load.unexpected
    assert not unexpected, f"unexpected write answers: {unexpected[:5]}"
    assert "event=wipe_and_resync" in cluster.log_text(victim)
    return victim, load


async def test_resync_follower_under_load_ends_with_all_data(cluster: LocalCluster) -> None:
    _, load = await _resync_under_load(cluster, "resync", preload=500)
    await in_thread(cluster.wait_converged, 60.0)
    assert_all_nodes_have(cluster, "resync", load.acked)


async def test_resync_follower_after_compaction_installs_snapshot(
        make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(tuning=COMPACTING)
    pre = WriteLoad(cluster, "resync", writers=4, prefix="pre", limit=2000).start()
    await pre.finished(timeout=120.0)
    assert len(pre.acked) == 2000
    assert leader_status(cluster)["commit_index"] > 2 * COMPACTING.log_compaction_min_entries
    for name in cluster.names:
        await in_thread(wait_dump, cluster, name, 30.0)

    victim, load = await _resync_under_load(cluster, "resync", preload=100)
    await in_thread(cluster.wait_converged, 60.0)
    after_wipe = cluster.log_text(victim).split("event=wipe_and_resync", 1)[1]
    assert "event=snapshot_restored" in after_wipe, "the resynced follower did not install a snapshot"
    assert_all_nodes_have(cluster, "resync", pre.acked | load.acked)


def _put_burst_when_raft_port_closes(cluster: LocalCluster, victim: str, tag: str) -> list[int]:
    """POST /v1/debug/resync on ``victim`` and, as soon as its Raft port stops accepting
    connections (the old SyncObj is destroyed; the new one is not listening yet), send a burst of
    PUTs to it over already open HTTP connections. Returns their statuses ([] if the port was
    never seen closed)."""
    raft_host, raft_port = split_hostport(cluster.config.node(victim).raft)
    http_host, http_port = split_hostport(cluster.config.node(victim).http)
    conns = [http.client.HTTPConnection(http_host, http_port, timeout=30.0) for _ in range(4)]
    for conn in conns:
        conn.connect()
    result: dict[str, tuple[int, object]] = {}
    resync = threading.Thread(target=lambda: result.update(r=cluster.debug(victim, "resync", {}, timeout=30.0)))
    resync.start()
    statuses: list[int] = []
    try:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                socket.create_connection((raft_host, raft_port), timeout=0.05).close()
            except ConnectionRefusedError:
                break
            except OSError:
                pass
            time.sleep(0.0005)
        else:
            return statuses
        for i, conn in enumerate(conns):
            iid = f"{tag}-{i}"
            conn.request("PUT", f"/v1/services/race/instances/{iid}", body=json.dumps(instance_body(iid)),
                         headers={"Content-Type": "application/json"})
        for conn in conns:
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        return statuses
    finally:
        resync.join(30.0)
        for conn in conns:
            conn.close()
        assert result.get("r", (0,))[0] == 200, f"resync answered {result}"


def test_write_during_resync_window_is_never_a_500(cluster: LocalCluster) -> None:
    """Writes that reach a node in the middle of its resync must answer 503/504 or succeed,
    never 500 (API.md: an error is one of the table's codes; internal errors are bugs)."""
    victim = cluster.followers()[0]
    seen: list[list[int]] = []
    for attempt in range(12):
        statuses = _put_burst_when_raft_port_closes(cluster, victim, f"a{attempt}")
        seen.append(statuses)
        assert all(s in EXPECTED_WRITE_STATUSES for s in statuses), (
            f"write during resync answered {statuses} (attempt {attempt}, all attempts {seen})")
        cluster.wait_node_ready(victim, timeout=60.0)
    print(f"\n[resync race] statuses of PUT bursts sent while the Raft port was closed: {seen}")
