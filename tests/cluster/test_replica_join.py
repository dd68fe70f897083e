"""A read replica added at run time (issue 16): ``raftreg cluster add --role replica`` records it,
``raftreg serve --join`` under that name runs it read-only (pysyncobj without a Raft port, never
a voter), it catches up, serves reads, forwards writes, and every node lists it with its lag;
the voters' quorum and term are untouched, also when it is killed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cluster_helpers import put_instance

from raftreg.config import NodeConfig
from raftreg.testing import LocalCluster, free_ports, http_json, wait_for

pytestmark = pytest.mark.cluster


def _replica_rows(cluster: LocalCluster, node: str, name: str) -> list[dict[str, Any]]:
    st = cluster.status(node)
    return [m for m in (st or {}).get("members", []) if m.get("name") == name]


def test_a_replica_added_at_run_time_runs_read_only_and_is_listed(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(3)
    voter_names = list(cluster.names)
    leader = cluster.leader()
    http, raft = free_ports(2)
    replica = NodeConfig(name="r9", http=f"127.0.0.1:{http}", raft=f"127.0.0.1:{raft}", role="replica")
    code, body = http_json(cluster.url(leader) + "/v1/cluster/members", method="POST", timeout=15.0,
                           body={"name": "r9", "raft": replica.raft, "http": replica.http, "role": "replica"})
    assert code == 200 and body["role"] == "replica", body
    code, body = put_instance(cluster, leader, "before-join", "a")
    assert code == 200, body
    term = cluster.status(leader)["term"]  # type: ignore[index]

    cluster.add_process(replica)
    cluster.start_node("r9")
    cluster.wait_node_ready("r9", timeout=30.0)
    st = cluster.status("r9")
    assert st is not None and st["role"] == "replica", st

    # It serves what was written before it joined, and forwards a write (follower semantics).
    code, listing = http_json(cluster.url("r9") + "/v1/services/before-join")
    assert code == 200 and [i["id"] for i in listing["instances"]] == ["a"], listing
    code, body = put_instance(cluster, "r9", "via-r9", "b")
    assert code == 200, body
    code, listing = http_json(cluster.url(leader) + f"/v1/services/via-r9?min_index={body['index']}")
    assert code == 200 and [i["id"] for i in listing["instances"]] == ["b"], listing

    # Every node lists it as a replica with its lag; the voters still count three.
    for node in [*voter_names, "r9"]:
        rows = wait_for(lambda node=node: [r for r in _replica_rows(cluster, node, "r9")
                                           if r["role"] == "replica" and r["status"] == "replica"
                                           and r["lag"] is not None],
                        15, f"{node} to list r9 as a caught-up replica")
        assert len(rows) == 1, rows
    voters = [m for m in cluster.status(leader)["members"] if m["role"] == "voter"]  # type: ignore[index]
    assert sorted(m["name"] for m in voters) == sorted(voter_names), voters

    # A replica never votes nor campaigns: killing it moves no term, and writes go on.
    cluster.kill("r9")
    code, body = put_instance(cluster, leader, "after-kill", "c")
    assert code == 200, body
    assert cluster.status(leader)["term"] == term  # type: ignore[index]
    wait_for(lambda: [r for r in _replica_rows(cluster, leader, "r9") if r["status"] == "unreachable"], 15,
             "the leader to show r9 unreachable")
