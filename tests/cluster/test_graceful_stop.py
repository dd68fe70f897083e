"""A leader stopped gracefully (SIGTERM) hands its leadership over before it stops: no election
timeout, and no acknowledged write lost, while writes keep flowing through the other nodes."""

from __future__ import annotations

import threading

import pytest
from cluster_helpers import put_instance, service_ids

from raftreg.testing import LocalCluster

pytestmark = pytest.mark.cluster


def test_sigterm_of_the_leader_hands_leadership_over(cluster: LocalCluster) -> None:
    old = cluster.leader()
    others = [n for n in cluster.names if n != old]
    term_before = (cluster.status(old) or {})["term"]
    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            code, _ = put_instance(cluster, others[i % 2], "graceful", f"w{i}", timeout=5.0)
            if code == 200:
                acked.append(f"w{i}")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        cluster.stop_node(old)  # SIGTERM, waits for the process to end
    finally:
        stop.set()
        thread.join(30)
    log = cluster.log_text(old)
    assert "event=leadership_handed_over" in log, log[-3000:]
    new = cluster.leader(among=others)
    st = cluster.status(new)
    assert st is not None and st["term"] == term_before + 1, "more than one election: the hand-over did not happen"
    assert put_instance(cluster, new, "graceful", "after")[0] == 200
    cluster.start_node(old)
    cluster.wait_node_ready(old)
    cluster.wait_converged()
    assert set(acked) <= service_ids(cluster, old, "graceful")
