"""``GET /metrics`` scraped from a real 3-node cluster (one cluster for the module): every family
of the README's table is there with its type, and the counters move with traffic. The leader
kill comes last: it changes the cluster the earlier tests rely on."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from raftreg.node.metrics import METRIC_FAMILIES
from raftreg.testing import LocalCluster, http_json, wait_for
from tests.conftest import START_TIMEOUT

pytestmark = pytest.mark.cluster

INST = "/v1/services/{service}/instances/{id}"
HTTP_FAMILIES = {
    "raftreg_http_requests": "counter", "raftreg_http_request_duration_seconds": "histogram",
    "raftreg_http_requests_in_flight": "gauge", "raftreg_acl_denials": "counter",
}
PROCESS_FAMILIES = {"process_resident_memory_bytes": "gauge", "process_open_fds": "gauge",
                    "process_cpu_seconds": "counter"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(3, name="metrics", consul=True)
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


def scrape(cluster: LocalCluster, node: str) -> dict[str, Metric]:
    with urllib.request.urlopen(cluster.url(node) + "/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Metric], name: str, sample: str | None = None, **labels: str) -> float:
    """The value of the sample ``sample`` (default: the family's own name, ``_total`` for a
    counter) whose labels include ``labels``; 0 when there is none yet."""
    family = families[name]
    wanted = sample or (name + "_total" if family.type == "counter" else name)
    for s in family.samples:
        if s.name == wanted and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return 0.0


def test_every_family_is_present_with_its_type(cluster: LocalCluster) -> None:
    for node in cluster.names:
        families = scrape(cluster, node)
        for name, kind in {**METRIC_FAMILIES, **HTTP_FAMILIES, **PROCESS_FAMILIES}.items():
            assert name in families, f"{node}: no {name}"
            assert families[name].type == kind, f"{node}: {name} is a {families[name].type}, not a {kind}"
            assert families[name].documentation, f"{name} has no HELP text"
    states = {node: [s.labels["state"] for s in scrape(cluster, node)["raftreg_raft_state"].samples if s.value == 1]
              for node in cluster.names}
    assert sorted(state for [state] in states.values()) == ["follower", "follower", "leader"]


def test_a_registration_moves_the_counters(cluster: LocalCluster) -> None:
    node = cluster.leader()
    before = scrape(cluster, node)
    code, _ = http_json(cluster.url(node) + "/v1/services/web/instances/w1", method="PUT",
                        body={"address": "10.0.0.1", "port": 80})
    assert code == 200
    after = scrape(cluster, node)
    labels = {"api": "native", "route": INST, "method": "PUT", "status": "200"}
    assert value(after, "raftreg_http_requests", **labels) == value(before, "raftreg_http_requests", **labels) + 1
    assert value(after, "raftreg_http_request_duration_seconds", "raftreg_http_request_duration_seconds_count",
                 route=INST, method="PUT") >= 1
    assert value(after, "raftreg_raft_applied_index") > value(before, "raftreg_raft_applied_index")
    assert value(after, "raftreg_group_commit_commands") > value(before, "raftreg_group_commit_commands")
    assert value(after, "raftreg_apply_latency_seconds", "raftreg_apply_latency_seconds_count") > 0
    assert value(after, "raftreg_instances") >= 1
    # The raw path never becomes a label: only route templates do.
    routes = {s.labels["route"] for s in after["raftreg_http_requests"].samples}
    assert "/v1/services/web/instances/w1" not in routes


def test_a_blocking_query_shows_as_parked_then_woken(cluster: LocalCluster) -> None:
    node = cluster.followers()[0]
    url = cluster.url(node)
    _, body = http_json(url + "/v1/services/watched")
    index = int(body["index"])
    before = scrape(cluster, node)
    answer: list[int] = []
    waiter = threading.Thread(target=lambda: answer.append(
        http_json(f"{url}/v1/services/watched?index={index}&wait=20s", timeout=25)[0]))
    waiter.start()
    try:
        wait_for(lambda: value(scrape(cluster, node), "raftreg_blocking_queries_parked") >= 1, 10, "a parked query")
        code, _ = http_json(url + "/v1/services/watched/instances/w1", method="PUT",
                            body={"address": "10.0.0.2", "port": 80})
        assert code == 200
    finally:
        waiter.join(25)
    assert answer == [200]
    after = scrape(cluster, node)
    assert value(after, "raftreg_blocking_queries_woken") > value(before, "raftreg_blocking_queries_woken")
    assert value(after, "raftreg_blocking_queries_parked") == 0


def test_a_snapshot_is_counted_and_timed(cluster: LocalCluster) -> None:
    node = cluster.names[1]
    before = scrape(cluster, node)
    assert cluster.debug(node, "snapshot")[0] == 200
    wait_for(lambda: value(scrape(cluster, node), "raftreg_snapshots") > value(before, "raftreg_snapshots"), 10,
             "the snapshot to be counted")
    after = scrape(cluster, node)
    assert value(after, "raftreg_snapshot_duration_seconds", "raftreg_snapshot_duration_seconds_count") >= 1
    assert value(after, "raftreg_snapshot_duration_seconds", "raftreg_snapshot_duration_seconds_sum") > 0


def test_the_consul_api_counts_under_its_own_label(cluster: LocalCluster) -> None:
    node = cluster.names[2]
    code, _ = http_json(cluster.consul_url(node) + "/v1/catalog/services")
    assert code == 200
    families = scrape(cluster, node)
    assert value(families, "raftreg_http_requests", api="consul", route="/v1/catalog/services", method="GET",
                 status="200") >= 1


def test_an_unmatched_path_counts_under_one_label(cluster: LocalCluster) -> None:
    node = cluster.names[0]
    for path in ("/nope/1", "/nope/2"):
        assert http_json(cluster.url(node) + path)[0] == 404
    families = scrape(cluster, node)
    assert value(families, "raftreg_http_requests", api="native", route="unmatched", method="GET", status="404") >= 2


def test_a_leader_kill_raises_leader_changes_on_a_survivor(cluster: LocalCluster) -> None:
    old = cluster.leader()
    survivor = cluster.followers()[0]
    before = value(scrape(cluster, survivor), "raftreg_raft_leader_changes")
    cluster.kill(old)
    new = cluster.leader(among=[n for n in cluster.names if n != old])
    assert new != old
    wait_for(lambda: value(scrape(cluster, survivor), "raftreg_raft_leader_changes") > before, 10,
             "the survivor to count the new leader")
    families = scrape(cluster, survivor)
    assert value(families, "raftreg_raft_members", status="unreachable") == 1
