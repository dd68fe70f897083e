"""The watchdog repairs the wedge pysyncobj really produces: a replica with an empty log that
became a candidate, knows no leader and raises its term at every election timeout
(research/pysyncobj.md §4.1, finding 3). ``POST /v1/debug/wedge`` puts a follower into exactly
that state; it must be back, caught up and serving within 30 s, counted as one recovery, and
the writes made meanwhile must be on it."""

from __future__ import annotations

import time

import pytest
from cluster_helpers import put_instance, service_ids

from raftreg.testing import LocalCluster, wait_for

pytestmark = pytest.mark.cluster

REPAIR_WITHIN = 30.0


def test_a_wedged_candidate_without_a_leader_is_repaired(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    victim = next(n for n in cluster.names if n != leader)
    for i in range(20):
        assert put_instance(cluster, leader, "wedge", f"before-{i}")[0] == 200
    cluster.wait_converged()
    term_before = (cluster.status(leader) or {})["term"]

    code, body = cluster.debug(victim, "wedge", {})
    assert code == 200, body
    t_wedged = time.monotonic()

    def wedged() -> dict[str, object] | None:
        st = cluster.status(victim)
        return st if st and st["state"] == "candidate" and not st["leader"] and st["log_len"] == 0 else None

    seen = wait_for(wedged, 10.0, f"{victim} to become a leaderless candidate with an empty log")
    assert int(seen["term"]) > term_before  # type: ignore[call-overload]
    for i in range(20):  # the rest of the cluster keeps working meanwhile
        assert put_instance(cluster, leader, "wedge", f"during-{i}")[0] == 200

    def repaired() -> bool:
        st = cluster.status(victim)
        return bool(st and st["watchdog"]["recoveries"] >= 1 and cluster.is_ready(victim))

    wait_for(repaired, REPAIR_WITHIN - (time.monotonic() - t_wedged), f"{victim} repaired and ready")
    ids = wait_for(lambda: (lambda got: got if len(got) == 40 else None)(service_ids(cluster, victim, "wedge")),
                   REPAIR_WITHIN - (time.monotonic() - t_wedged), f"{victim} to list every registration")
    assert ids == {f"before-{i}" for i in range(20)} | {f"during-{i}" for i in range(20)}
    st = cluster.status(victim)
    assert st is not None
    assert st["watchdog"] == {"wedges": 1, "recoveries": 1, "resync_refused": 0}, st["watchdog"]
    assert st["watchdog_recoveries"] == 1
    # The wiped node kept its (raised) term and vote: its term never went back below the wedge's.
    assert st["term"] >= int(seen["term"])  # type: ignore[call-overload]
    new_leader = cluster.leader()
    assert put_instance(cluster, new_leader, "wedge", "after")[0] == 200
    cluster.wait_converged()
