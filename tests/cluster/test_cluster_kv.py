"""The key/value store on a real 3-process cluster: CAS races leave exactly one winner, a failing
transaction changes nothing on any node, a prefix watcher on a follower sleeps through writes
elsewhere, and every acknowledged key (with its history) survives kill -9 of the leader, a
snapshot, and a restart of the whole cluster."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cluster_helpers import force_snapshot

from raftreg.testing import LocalCluster, http_json, wait_for

pytestmark = pytest.mark.cluster

CLIENTS = 10
ROUNDS = 4


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalCluster]:
    """One cluster for the tests that leave it healthy (each uses its own keys)."""
    cluster = LocalCluster(3, name="kv")
    try:
        cluster.start(wait=60.0)
        yield cluster
    finally:
        cluster.close()


def kv_put(cluster: LocalCluster, node: str, key: str, value: bytes, query: str = "",
           timeout: float = 10.0) -> tuple[int, Any]:
    return http_json(f"{cluster.url(node)}/v1/kv/{key}{query}", method="PUT", data=value, timeout=timeout)


def kv_get(cluster: LocalCluster, node: str, path: str, timeout: float = 10.0) -> tuple[int, Any]:
    return http_json(f"{cluster.url(node)}/v1/kv/{path}", timeout=timeout)


def listing(cluster: LocalCluster, node: str, prefix: str, min_index: int) -> list[dict[str, Any]]:
    code, body = kv_get(cluster, node, f"{prefix}?recurse&min_index={min_index}")
    assert code == 200, (node, code, body)
    return body["entries"]  # type: ignore[no-any-return]


def same_everywhere(cluster: LocalCluster, prefix: str, min_index: int) -> list[dict[str, Any]]:
    """The listing of ``prefix`` once every node has applied ``min_index``: identical on all."""
    views = {name: listing(cluster, name, prefix, min_index) for name in cluster.names}
    first = views[cluster.names[0]]
    assert all(view == first for view in views.values()), views
    return first


def test_cas_race_has_exactly_one_winner_per_round(shared: LocalCluster) -> None:
    code, body = kv_put(shared, "n1", "race/k", b"start")
    assert code == 200, body
    index = body["index"]
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        for round_no in range(ROUNDS):
            barrier = threading.Barrier(CLIENTS)

            def contend(client: int, cas: int = index, barrier: threading.Barrier = barrier,
                        round_no: int = round_no) -> tuple[int, Any]:
                node = shared.names[client % len(shared.names)]
                barrier.wait(timeout=10.0)
                return kv_put(shared, node, "race/k", f"r{round_no}-c{client}".encode(), f"?cas={cas}")

            answers = list(pool.map(contend, range(CLIENTS)))
            statuses = sorted(code for code, _ in answers)
            assert statuses == [200] + [409] * (CLIENTS - 1), answers
            (winner,) = [c for c, (code, _) in enumerate(answers) if code == 200]
            index = answers[winner][1]["index"]
            for name in shared.names:
                code, entry = kv_get(shared, name, f"race/k?min_index={index}")
                assert code == 200 and entry["modify_index"] == index, (name, entry)
                assert base64.b64decode(entry["value"]) == f"r{round_no}-c{winner}".encode()


def test_a_txn_with_one_failing_check_changes_nothing_anywhere(shared: LocalCluster) -> None:
    leader = shared.leader()
    code, body = kv_put(shared, leader, "tx/a", b"a")
    assert code == 200
    index = body["index"]
    before = same_everywhere(shared, "tx/", index)
    follower = shared.followers()[0]
    ops = [{"op": "set", "key": "tx/new", "value": base64.b64encode(b"n").decode()},
           {"op": "delete", "key": "tx/a"},
           {"op": "check_index", "key": "tx/a", "index": index + 1000}]
    code, body = http_json(f"{shared.url(follower)}/v1/txn", method="PUT", body={"ops": ops}, timeout=10.0)
    assert code == 409 and body["error"]["field"] == "ops[2]", body
    settled = shared.wait_converged()
    assert same_everywhere(shared, "tx/", settled) == before


def test_a_prefix_watcher_sleeps_through_writes_elsewhere(shared: LocalCluster) -> None:
    leader = shared.leader()
    watcher_node = shared.followers()[0]
    code, body = kv_put(shared, leader, "app/a", b"1")
    assert code == 200
    index = body["index"]
    wait_for(lambda: kv_get(shared, watcher_node, f"app/?recurse&min_index={index}")[0] == 200, 10.0,
             "the follower applied app/a")
    stats: Callable[[], dict[str, int]] = lambda: shared.status(watcher_node, timeout=5.0)["watches"]  # noqa: E731
    base = stats()
    with ThreadPoolExecutor(max_workers=1) as pool:
        parked = pool.submit(kv_get, shared, watcher_node, f"app/?recurse&index={index}&wait=60s", 90.0)
        wait_for(lambda: stats()["waiting"] > base["waiting"], 30.0, "the watch parked")
        last = 0
        for i in range(20):
            code, body = kv_put(shared, leader, f"svc/x{i}", b"noise")
            assert code == 200
            last = body["index"]
        wait_for(lambda: kv_get(shared, watcher_node, f"svc/?keys&min_index={last}")[0] == 200, 10.0,
                 "the follower applied the noise")
        assert not parked.done(), parked.result()
        assert stats()["wakeups"] == base["wakeups"], "a write elsewhere woke the prefix watcher"
        code, body = kv_put(shared, leader, "app/b", b"2")
        assert code == 200
        status, answer = parked.result(timeout=30.0)
        assert status == 200 and answer["index"] == body["index"]
        assert [e["key"] for e in answer["entries"]] == ["app/a", "app/b"]


def test_kv_survives_kill_9_of_the_leader_a_snapshot_and_a_full_restart(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    last = 0
    for i in range(30):
        for version in range(3):
            code, body = kv_put(cluster, cluster.names[i % 3], f"dur/k{i:02}", f"v{version}".encode(), "?flags=5")
            assert code == 200, body
            last = body["index"]
    expected = same_everywhere(cluster, "dur/", last)
    history = kv_get(cluster, leader, f"dur/k07?history&min_index={last}")[1]
    assert [base64.b64decode(v["value"]) for v in history["versions"]] == [b"v1", b"v0"]

    cluster.kill(leader)
    survivor = cluster.leader(timeout=30.0)
    assert survivor != leader
    code, body = kv_put(cluster, survivor, "dur/after-kill", b"x")
    assert code == 200, body
    after_kill = body["index"]
    cluster.start_node(leader)
    cluster.wait_node_ready(leader, timeout=60.0)
    expected = same_everywhere(cluster, "dur/", after_kill)
    assert len(expected) == 31

    force_snapshot(cluster, cluster.names)  # the restart below reads a version-2 dump, then the journal
    code, body = kv_put(cluster, survivor, "dur/after-snapshot", b"y")
    assert code == 200
    final_index = body["index"]
    expected = same_everywhere(cluster, "dur/", final_index)
    for name in cluster.names:
        cluster.kill(name)
    for name in cluster.names:
        cluster.start_node(name)
    cluster.wait_ready(timeout=60.0)
    assert same_everywhere(cluster, "dur/", final_index) == expected
    new_leader = cluster.leader()
    assert kv_get(cluster, new_leader, "dur/k07?history")[1]["versions"] == history["versions"]
