"""kill -9 of every node at once, under load: the journal (and the full dump, once a snapshot was
taken) brings back everything that was acknowledged, on every node, compressed entries included."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from cluster_helpers import (
    WriteLoad,
    assert_all_nodes_have,
    force_snapshot,
    in_thread,
    last_run_log,
    put_instance,
)

from raftreg.testing import LocalCluster

pytestmark = pytest.mark.cluster


def kill_all_at_once(cluster: LocalCluster) -> None:
    """SIGKILL every node's process group back to back, then reap them."""
    for name in cluster.names:
        cluster.procs[name].signal_group(signal.SIGKILL)
    for name in cluster.names:
        cluster.kill(name)


def restart_all(cluster: LocalCluster) -> float:
    t0 = time.monotonic()
    for name in cluster.names:
        cluster.start_node(name)
    cluster.wait_ready(timeout=60.0)
    cluster.wait_converged(timeout=60.0)
    return time.monotonic() - t0


def compressed_entries(cluster: LocalCluster) -> int:
    """Group-commit entries the running nodes proposed compressed (``raft.compress_entries_from_bytes``)."""
    statuses = [cluster.status(name) for name in cluster.names]
    return sum(int(s["group_commit"]["compressed"]) for s in statuses if s is not None)


async def test_kill_all_nodes_during_writes_loses_nothing_acknowledged(cluster: LocalCluster) -> None:
    load = WriteLoad(cluster, "inventory", writers=32).start()  # batches large enough to be compressed
    try:
        await load.wait_acks(100, timeout=30.0)
        deadline = time.monotonic() + 30.0
        while await in_thread(compressed_entries, cluster) < 3:
            assert time.monotonic() < deadline, "no compressed group-commit entry in 30 s of writes"
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)
        kill_all_at_once(cluster)  # while the writers are still writing
        at_kill = len(load.acks)
    finally:
        await load.stop()
    assert at_kill > 100
    assert not load.unexpected, f"unexpected write answers: {load.unexpected[:5]}"

    took = await in_thread(restart_all, cluster)
    print(f"\n[crash all] {len(load.acked)} acknowledged, {len(load.attempted)} attempted; "
          f"restart of all nodes -> ready and converged {took:.2f}s")
    assert_all_nodes_have(cluster, "inventory", load.acked)

    code, body = put_instance(cluster, cluster.leader(), "inventory", "after-restart")
    assert code == 200, body
    cluster.wait_converged(timeout=30.0)
    assert_all_nodes_have(cluster, "inventory", load.acked | {"after-restart"})


async def test_kill_all_nodes_after_snapshot_restores_dump_and_journal(cluster: LocalCluster) -> None:
    load = WriteLoad(cluster, "inventory", writers=8).start()
    try:
        await load.wait_acks(100, timeout=30.0)
        await asyncio.sleep(1.0)
        # Snapshot every node while writes continue, then write more on top of the dump.
        await in_thread(force_snapshot, cluster, cluster.names)
        t_dumped = time.monotonic()
        at_dump = len(load.acks)
        await load.wait_acks(at_dump + 200, timeout=30.0)
        await asyncio.sleep(1.0)
        kill_all_at_once(cluster)
        at_kill = len(load.acks)
    finally:
        await load.stop()
    after_dump = [a for a in load.acks.values() if a.sent >= t_dumped]
    assert len(after_dump) >= 200, "too few writes acknowledged after the snapshot"
    assert not load.unexpected, f"unexpected write answers: {load.unexpected[:5]}"
    for name in cluster.names:
        assert (cluster.config.node_data_dir(name) / "raft.dump").exists()

    took = await in_thread(restart_all, cluster)
    print(f"\n[crash all after snapshot] {at_dump} acked at snapshot, {at_kill} at kill; "
          f"restart of all nodes -> ready and converged {took:.2f}s")
    for name in cluster.names:
        assert "event=snapshot_restored" in last_run_log(cluster, name), f"{name} did not load its dump"
    assert_all_nodes_have(cluster, "inventory", load.acked)

    code, body = put_instance(cluster, cluster.leader(), "inventory", "after-restart")
    assert code == 200, body
    cluster.wait_converged(timeout=30.0)
    assert_all_nodes_have(cluster, "inventory", load.acked | {"after-restart"})
