"""Read replicas (``role = "replica"``, pysyncobj's read-only mode) on one real cluster of three
voters (n1..n3) and two replicas (r1, r2), shared by the tests of this module.

The tests that do not kill anything come first; ``test_replica_and_leader_failures`` kills and
restarts nodes and must stay last (it leaves the cluster changed).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import put_instance
from pysyncobj import SyncObj, SyncObjConf

from raftreg.config import RaftTuning
from raftreg.raft import RaftNode
from raftreg.testing import LocalCluster, http_json, wait_for

pytestmark = pytest.mark.cluster

REPLICAS = ["r1", "r2"]
VOTERS = ["n1", "n2", "n3"]


@pytest.fixture(scope="module")
def rc() -> Iterator[LocalCluster]:
    cluster = LocalCluster(3, replicas=2, name="replicas")
    try:
        cluster.start(wait=60.0)
        yield cluster
    finally:
        cluster.close()


def _listing(cluster: LocalCluster, node: str, service: str, query: str = "", timeout: float = 10.0) -> dict[str, Any]:
    code, body = http_json(f"{cluster.url(node)}/v1/services/{service}{query}", timeout=timeout)
    assert code == 200, f"GET /v1/services/{service}{query} on {node}: {code} {body}"
    assert isinstance(body, dict)
    return body


def _ids(body: dict[str, Any]) -> set[str]:
    return {inst["id"] for inst in body["instances"]}


def test_writes_through_a_replica_land_and_read_back_there(rc: LocalCluster) -> None:
    code, body = put_instance(rc, "r1", "via-replica", "a")
    assert code == 200, body
    index = body["index"]
    for node in [*REPLICAS, rc.leader()]:  # r1 applied it before answering; the others within wait
        assert "a" in _ids(_listing(rc, node, "via-replica", f"?min_index={index}"))
    # KV, sessions and heartbeats are forwarded too (heartbeats over HTTP to the lease holder).
    code, kv = http_json(rc.url("r2") + "/v1/kv/replica/key", method="PUT", data=b"v1")
    assert code == 200 and kv["ok"] is True, kv
    code, got = http_json(rc.url("r2") + "/v1/kv/replica/key")
    assert code == 200 and got["value"] == "djE=", got  # read back at once: r2 applied it before answering
    code, body = http_json(rc.url("r2") + "/v1/services/leased/instances/x", method="PUT",
                           body={"address": "10.0.0.9", "port": 9, "ttl": "30s"})
    assert code == 200, body
    code, beat = http_json(rc.url("r2") + "/v1/services/leased/instances/x/heartbeat", method="PUT")
    assert (code, beat) == (200, {"ttl": 30.0})
    code, session = http_json(rc.url("r1") + "/v1/sessions", method="PUT", body={"ttl": "15s"})
    assert code == 200 and session["id"], session


def test_blocking_query_on_a_replica_wakes_on_a_write_through_a_voter(rc: LocalCluster) -> None:
    start_index = int(_listing(rc, "r1", "watched")["index"])
    answer: dict[str, Any] = {}

    def watch() -> None:
        started = time.monotonic()
        answer["body"] = _listing(rc, "r1", "watched", f"?index={start_index}&wait=20s", timeout=30.0)
        answer["seconds"] = time.monotonic() - started

    watcher = threading.Thread(target=watch)
    watcher.start()
    wait_for(lambda: (rc.status("r1") or {}).get("watches", {}).get("waiting", 0) >= 1, 10, "the watch to park on r1")
    code, body = put_instance(rc, rc.leader(), "watched", "w1")
    assert code == 200, body
    watcher.join(30)
    assert "w1" in _ids(answer["body"]), answer
    assert answer["body"]["index"] >= body["index"]
    assert answer["seconds"] < 10, f"the watch woke only after {answer['seconds']:.1f}s (its wait was 20s)"


def test_consistent_read_through_a_replica_sees_every_acknowledged_write(rc: LocalCluster) -> None:
    leader = rc.leader()
    rounds_before = rc.status(leader)["read_index_rounds"]["leader"]  # type: ignore[index]
    for i in range(5):
        code, body = put_instance(rc, leader, "consistent", f"c{i}")
        assert code == 200, body
        for replica in REPLICAS:  # no min_index: ?consistent alone must see the write
            assert f"c{i}" in _ids(_listing(rc, replica, "consistent", "?consistent"))
    assert rc.status(leader)["read_index_rounds"]["leader"] > rounds_before  # type: ignore[index]
    for replica in REPLICAS:  # each replica asked the leader for a read index (no local shortcut)
        assert rc.status(replica)["read_index_rounds"]["follower"] >= 5  # type: ignore[index]


def test_cluster_view_shows_replicas_and_voters_ignore_them(rc: LocalCluster) -> None:
    def replica_rows(node: str) -> list[dict[str, Any]] | None:
        st = rc.status(node)
        if st is None:
            return None
        rows = [m for m in st["members"] if m["role"] == "replica"]
        ok = [m["name"] for m in rows] == REPLICAS and all(m["status"] == "replica" and m["lag"] == 0 for m in rows)
        return rows if ok else None

    for node in [*VOTERS, *REPLICAS]:
        rows = wait_for(lambda node=node: replica_rows(node), 10, f"{node} to show both replicas caught up")
        assert all(isinstance(m["match_index"], int) and m["match_index"] > 0 for m in rows)
    leader = rc.leader()
    st = rc.status(leader)
    assert st is not None
    assert {m["name"]: m["role"] for m in st["members"]} == {**dict.fromkeys(VOTERS, "voter"),
                                                            **dict.fromkeys(REPLICAS, "replica")}
    assert st["role"] == "voter" and rc.status("r1")["role"] == "replica"  # type: ignore[index]
    # Active checks are shared among the three voters only; a replica owns none.
    wait_for(lambda: (rc.status(leader) or {}).get("checks", {}).get("members") == 3, 10, "checks shared by 3 voters")
    for replica in REPLICAS:
        checks = rc.status(replica)["checks"]  # type: ignore[index]
        assert checks["members"] == 0 and checks["owned"] == 0, checks


async def test_a_replica_connection_needs_the_cluster_secret(rc: LocalCluster, tmp_path: Path) -> None:
    """Read-only pysyncobj connections with the wrong password, or with none, learn nothing; the
    same node with the right one catches up (the control that makes this test able to fail)."""
    loop = asyncio.get_running_loop()
    voters = [rc.config.node(name).raft for name in VOTERS]
    plain = SyncObj(None, voters, conf=SyncObjConf(password=None, connectionRetryTime=0.2))  # no password at all

    def replica(secret: str, name: str) -> RaftNode:
        return RaftNode(self_addr="127.0.0.1:1", peer_addrs=voters, data_dir=tmp_path / name, secret=secret,
                        tuning=RaftTuning(journal=False), readonly=True)

    good, bad = replica(rc.secret, "good"), replica("not-the-cluster-secret", "bad")
    for node in (good, bad):
        await loop.run_in_executor(None, node.start, loop)
    try:
        code, body = put_instance(rc, rc.leader(), "secret-check", "s1")
        assert code == 200, body
        target = body["index"]
        deadline = time.monotonic() + 15
        while good.applied_index < target:
            assert time.monotonic() < deadline, f"the replica with the secret applied {good.applied_index} of {target}"
            await asyncio.sleep(0.05)
        assert good.leader_addr() in voters and good.registry.instance_count() > 0
        await asyncio.sleep(1.0)  # well past the good one's catch-up: the bad one had the same chances
        # pysyncobj starts every log at index 1 (an empty entry): nothing beyond it arrived.
        assert bad.applied_index <= 1 and bad.leader_addr() is None and bad.status().term == 0
        assert bad.registry.instance_count() == 0
        assert plain.raftLastApplied <= 1 and plain.getStatus()["leader"] is None
    finally:
        for node in (good, bad):
            await loop.run_in_executor(None, node.stop)
        await loop.run_in_executor(None, plain.destroy_synchronous)


def _terms(cluster: LocalCluster, nodes: list[str]) -> set[int]:
    return {cluster.status(name)["term"] for name in nodes}  # type: ignore[index]


def test_replica_and_leader_failures(rc: LocalCluster) -> None:
    """Killing a replica changes nothing for commits; a restarted replica moves no term; killing the
    leader, the replicas follow the new one and keep serving. Kills nodes: keep this test last."""
    rc.wait_ready()
    term = _terms(rc, rc.names)
    assert len(term) == 1, term
    rc.kill("r1")
    leader = rc.leader(among=VOTERS)
    for i in range(3):
        code, body = put_instance(rc, leader, "while-r1-down", f"d{i}")
        assert code == 200, body
    rc.start_node("r1")
    rc.wait_node_ready("r1")
    assert _listing(rc, "r1", "while-r1-down", f"?min_index={body['index']}")["instances"], "r1 did not catch up"
    assert _terms(rc, rc.names) == term, "a replica's restart moved a term"
    assert rc.leader() == leader

    rc.kill(leader)
    voters_left = [n for n in VOTERS if n != leader]
    new_leader = rc.leader(among=voters_left)
    assert new_leader in voters_left
    wait_for(lambda: all((rc.status(r) or {}).get("leader") == new_leader for r in REPLICAS), 10,
             "the replicas to follow the new leader")
    code, body = put_instance(rc, "r2", "after-failover", "f1")
    assert code == 200, body
    assert "f1" in _ids(_listing(rc, "r1", "after-failover", f"?min_index={body['index']}"))
    for replica in REPLICAS:
        st = rc.status(replica)
        assert st is not None and st["state"] == "follower" and st["led_terms"] == [], st
        assert rc.is_ready(replica)
