"""The Consul-compatible API on a real 3-node cluster, driven by py-consul (the PyPI release) and
by raw HTTP: registration with HTTP and TTL checks, health with ``passing``, blocking queries,
the two APIs seeing each other's instances, the JSON shapes of research/registries-compared.md
§2, the ``X-Consul-*`` headers, and bad input (400 naming the field, nothing changed)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import consul
import pytest
from consul_helpers import client, get_json, raw

from raftreg.testing import LocalCluster, http_json, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(consul_cluster: LocalCluster) -> LocalCluster:
    return consul_cluster


def passing_ids(c: consul.Consul, name: str) -> list[str]:
    return [e["Service"]["ID"] for e in c.health.service(name, passing=True)[1]]


def test_an_empty_catalog_answers_index_1_and_blocks_on_it(cluster: LocalCluster) -> None:
    """First in the module (nothing registered yet): the index is 1, never 0, and a watch holding
    that 1 waits for a change instead of being answered at once in a loop."""
    url = cluster.consul_url("n1") + "/v1/catalog/services"
    status, headers, body = get_json(url)
    assert (status, headers["X-Consul-Index"], body) == (200, "1", {})
    started = time.monotonic()
    status, headers, _ = get_json(url + "?index=1&wait=1s")
    assert status == 200 and time.monotonic() - started >= 0.9


def test_register_with_ttl_check_and_ttl_pass(cluster: LocalCluster) -> None:
    c2, c3 = client(cluster, "n2"), client(cluster, "n3")
    assert c2.agent.service.register("ttlsvc", service_id="ttl-1", address="10.1.0.1", port=8080, tags=["v1"],
                                     check=consul.Check.ttl("120s"))
    assert c2.agent.check.ttl_pass("service:ttl-1", notes="fine")
    wait_for(lambda: passing_ids(c3, "ttlsvc") == ["ttl-1"], 10, "the TTL instance passing on n3")
    assert c2.agent.check.ttl_warn("service:ttl-1", notes="slow")
    wait_for(lambda: passing_ids(c3, "ttlsvc") == [], 10, "the warning instance left out of passing=True")
    entry = c3.health.service("ttlsvc")[1][0]
    assert [(ch["CheckID"], ch["Status"], ch["Type"], ch["Output"]) for ch in entry["Checks"]] == [
        ("service:ttl-1", "warning", "ttl", "slow")]
    assert c2.agent.check.ttl_fail("service:ttl-1")
    wait_for(lambda: c3.health.checks("ttlsvc")[1][0]["Status"] == "critical", 10, "the TTL check critical")
    status, _, _ = raw(cluster.consul_url("n1") + "/v1/agent/check/update/service:ttl-1", method="PUT",
                       data=json.dumps({"Status": "passing", "Output": "back"}).encode())
    assert status == 200
    wait_for(lambda: passing_ids(c3, "ttlsvc") == ["ttl-1"], 10, "passing again after check/update")


def test_register_with_http_check_passes_once_the_cluster_probes_it(cluster: LocalCluster) -> None:
    c1 = client(cluster, "n1")
    target = cluster.url("n2") + "/v1/health"  # a real HTTP endpoint that answers 200
    assert c1.agent.service.register("httpsvc", service_id="http-1", address="127.0.0.1", port=9000,
                                     check=consul.Check.http(target, interval="1s", timeout="1s"))
    checks = c1.agent.checks()
    assert checks["service:http-1"]["Type"] == "http"
    wait_for(lambda: passing_ids(client(cluster, "n3"), "httpsvc") == ["http-1"], 20, "the HTTP check passing")


def test_native_and_consul_registrations_see_each_other(cluster: LocalCluster) -> None:
    code, _ = http_json(cluster.url("n1") + "/v1/services/cart/instances/cart-1", method="PUT",
                        body={"address": "10.2.0.1", "port": 81, "tags": ["blue"], "meta": {"zone": "a"}})
    assert code == 200
    c2 = client(cluster, "n2")
    entries = wait_for(lambda: c2.health.service("cart")[1], 10, "the native instance through Consul")
    assert entries[0]["Service"]["ID"] == "cart-1" and entries[0]["Service"]["Meta"] == {"zone": "a"}
    assert entries[0]["Node"]["Node"] == "ip-10-2-0-1" and entries[0]["Checks"] == []
    assert c2.agent.service.register("cart", service_id="cart-2", address="10.2.0.2", port=82, tags=["green"],
                                     weights={"passing": 7, "warning": 1})

    def native() -> list[dict[str, Any]] | None:
        code, body = http_json(cluster.url("n3") + "/v1/services/cart")
        return body["instances"] if code == 200 and len(body["instances"]) == 2 else None

    instances = wait_for(native, 10, "the Consul instance through the native API")
    assert {(i["id"], i["port"], i["weight"]) for i in instances} == {("cart-1", 81, 100), ("cart-2", 82, 7)}
    assert c2.catalog.services()[1]["cart"] == ["blue", "green"]
    assert [s["ServiceID"] for s in c2.catalog.service("cart", tag="green")[1]] == ["cart-2"]


def test_blocking_catalog_services_returns_on_a_change_only(cluster: LocalCluster) -> None:
    c1 = client(cluster, "n1")
    index, before = c1.catalog.services()
    # An unrelated write (a KV key) must not end the wait early.
    started = time.monotonic()
    threading.Timer(0.2, lambda: http_json(cluster.url("n1") + "/v1/kv/unrelated", method="PUT",
                                           data=b"x")).start()
    _, same = c1.catalog.services(index=index, wait="1500ms")
    assert same == before and time.monotonic() - started >= 1.4
    result: dict[str, Any] = {}

    def watch() -> None:
        result["answer"] = c1.catalog.services(index=index, wait="30s")
        result["at"] = time.monotonic()

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.3)
    changed_at = time.monotonic()
    assert client(cluster, "n3").agent.service.register("blocker", address="10.3.0.1", port=1)
    watcher.join(timeout=15)
    new_index, services = result["answer"]
    assert int(new_index) > int(index) and "blocker" in services
    assert result["at"] - changed_at < 5.0


def test_blocking_catalog_services_ignores_a_health_change(cluster: LocalCluster) -> None:
    """A status change moves the catalog's index but not the list of services and tags: the
    watch of that list keeps waiting (Consul's catalog index does not move on health either)."""
    c1 = client(cluster, "n1")
    assert c1.agent.service.register("flappy", service_id="flappy-1", address="10.7.0.1", port=1,
                                     check=consul.Check.ttl("120s"))
    cluster.wait_converged()
    index, services = c1.catalog.services()
    started = time.monotonic()
    threading.Timer(0.2, lambda: client(cluster, "n2").agent.check.ttl_warn("service:flappy-1")).start()
    new_index, same = c1.catalog.services(index=index, wait="1500ms")
    assert time.monotonic() - started >= 1.4 and same == services
    assert c1.health.checks("flappy")[1][0]["Status"] == "warning"
    assert int(new_index) > int(index)  # the answer carries the current index once its wait is over


def test_index_header_is_at_least_one_and_moves_with_the_answer(cluster: LocalCluster) -> None:
    base = cluster.consul_url("n2")
    status, headers, body = get_json(base + "/v1/health/service/never-registered")
    assert status == 200 and body == []
    assert int(headers["X-Consul-Index"]) >= 1
    assert headers["X-Consul-KnownLeader"] == "true" and headers["X-Consul-LastContact"].isdigit()
    _, before, _ = get_json(base + "/v1/health/service/idx")
    assert client(cluster, "n1").agent.service.register("idx", address="10.4.0.1", port=1)
    after = wait_for(lambda: (h := get_json(base + "/v1/health/service/idx")[1])["X-Consul-Index"] !=
                     before["X-Consul-Index"] and h, 10, "the index to move")
    assert int(after["X-Consul-Index"]) > int(before["X-Consul-Index"])
    # the same answer keeps its index: an unrelated registration does not move it
    assert client(cluster, "n1").agent.service.register("other", address="10.4.0.2", port=1)
    cluster.wait_converged()
    assert get_json(base + "/v1/health/service/idx")[1]["X-Consul-Index"] == after["X-Consul-Index"]


@pytest.mark.parametrize("params", ["stale=&cached=", "consistent=", "stale=1", "wait=120000ms&index=1",
                                    "wait=5m&index=0", "wait=10&index=1", "dc=dc1&ns=&near=_agent"])
def test_query_flags_and_wait_units_are_accepted(cluster: LocalCluster, params: str) -> None:
    # index=1 is below the catalog's index: answered at once whatever the wait
    status, headers, _ = raw(cluster.consul_url("n1") + "/v1/catalog/services?" + params, timeout=5)
    assert status == 200 and int(headers["X-Consul-Index"]) >= 1


def test_an_index_above_the_current_one_answers_at_once(cluster: LocalCluster) -> None:
    started = time.monotonic()
    status, _, _ = raw(cluster.consul_url("n1") + "/v1/health/service/idx?index=999999999&wait=30s")
    assert status == 200 and time.monotonic() - started < 5


def test_maintenance_and_deregister(cluster: LocalCluster) -> None:
    c1 = client(cluster, "n1")
    assert c1.agent.service.register("maint", service_id="m-1", address="10.5.0.1", port=1)
    assert c1.agent.service.maintenance("m-1", "true", "upgrading")
    checks = wait_for(lambda: c1.health.checks("maint")[1], 10, "the maintenance check")
    assert [(c["CheckID"], c["Status"], c["Notes"]) for c in checks] == [
        ("_service_maintenance:m-1", "critical", "upgrading")]
    assert passing_ids(c1, "maint") == []
    assert c1.agent.service.maintenance("m-1", "false")
    assert passing_ids(c1, "maint") == ["m-1"]
    assert c1.agent.service.deregister("m-1")
    assert c1.health.service("maint")[1] == []
    status, _, body = raw(cluster.consul_url("n1") + "/v1/agent/service/deregister/m-1", method="PUT")
    assert status == 404 and b"Unknown service ID" in body


def test_status_and_operator(cluster: LocalCluster) -> None:
    leaders = {client(cluster, n).status.leader() for n in cluster.names}
    raft_addrs = sorted(n.raft for n in cluster.config.nodes)
    leader_name = cluster.leader()
    assert leaders == {cluster.config.node(leader_name).raft}
    assert sorted(client(cluster, "n2").status.peers()) == raft_addrs
    conf = client(cluster, "n3").operator.raft_config()
    assert sorted(s["Address"] for s in conf["Servers"]) == raft_addrs
    assert [s["Node"] for s in conf["Servers"] if s["Leader"]] == [leader_name]
    me = client(cluster, "n2").agent.self()
    assert me["Config"]["Datacenter"] == "dc1" and me["Config"]["NodeName"] == "n2"
    assert client(cluster, "n1").catalog.datacenters() == ["dc1"]
    members = client(cluster, "n1").agent.members()
    assert sorted((m["Name"], m["Status"]) for m in members) == [("n1", 1), ("n2", 1), ("n3", 1)]


# ---- golden shapes: research/registries-compared.md §2.2 ---------------------------------
GOLDEN_HEALTH = {
    "Node": {"ID": "<uuid>", "Node": "n1", "Address": "10.0.0.5", "Datacenter": "dc1",
             "TaggedAddresses": {"lan": "10.0.0.5"}, "Meta": {}, "CreateIndex": 5, "ModifyIndex": 6},
    "Service": {"ID": "redis1", "Service": "redis", "Tags": ["primary"], "Address": "10.0.0.5", "Port": 8000,
                "Meta": {}, "Weights": {"Passing": 10, "Warning": 1}, "TaggedAddresses": {},
                "EnableTagOverride": False, "CreateIndex": 7, "ModifyIndex": 7},
    "Checks": [{"Node": "n1", "CheckID": "service:redis1", "Name": "Service 'redis' check", "Status": "passing",
                "Notes": "", "Output": "", "ServiceID": "redis1", "ServiceName": "redis", "ServiceTags": ["primary"],
                "Type": "http", "CreateIndex": 7, "ModifyIndex": 9}],
}
GOLDEN_CATALOG = {
    "ID": "<node-uuid>", "Node": "n1", "Address": "10.0.0.5", "Datacenter": "dc1",
    "TaggedAddresses": {"lan": "10.0.0.5", "wan": "10.0.0.5"}, "NodeMeta": {},
    "ServiceKind": "", "ServiceID": "redis1", "ServiceName": "redis", "ServiceTags": ["primary"],
    "ServiceAddress": "10.0.0.5", "ServicePort": 8000, "ServiceMeta": {},
    "ServiceWeights": {"Passing": 1, "Warning": 1},
    "ServiceTaggedAddresses": {}, "ServiceEnableTagOverride": False, "ServiceProxy": {}, "ServiceConnect": {},
    "CreateIndex": 13, "ModifyIndex": 13,
}
GOLDEN_AGENT_SERVICE = {"ID": "redis1", "Service": "redis", "Tags": [], "Meta": {}, "Port": 8000,
                        "Address": "10.0.0.5", "TaggedAddresses": {}, "Weights": {"Passing": 1, "Warning": 1},
                        "EnableTagOverride": False, "Datacenter": "dc1"}


def assert_shape(golden: Any, actual: Any, path: str = "$") -> None:
    """Every field of ``golden`` is in ``actual`` with the same JSON type (recursively)."""
    assert type(actual) is type(golden), f"{path}: {type(actual).__name__} instead of {type(golden).__name__}"
    if isinstance(golden, dict):
        for key, value in golden.items():
            assert key in actual, f"{path}.{key} missing"
            if value not in ({}, []):
                assert_shape(value, actual[key], f"{path}.{key}")
    elif isinstance(golden, list) and golden:
        assert actual, f"{path}: empty list"
        assert_shape(golden[0], actual[0], f"{path}[0]")


def test_json_shapes_match_consuls(cluster: LocalCluster) -> None:
    c1 = client(cluster, "n1")
    assert c1.agent.service.register("redis", service_id="redis1", address="10.0.0.5", port=8000, tags=["primary"],
                                     check=consul.Check.http(cluster.url("n1") + "/v1/health", interval="1s"))
    wait_for(lambda: passing_ids(c1, "redis") == ["redis1"], 20, "redis1 passing")
    assert_shape([GOLDEN_HEALTH], c1.health.service("redis")[1])
    assert_shape([GOLDEN_CATALOG], c1.catalog.service("redis")[1])
    assert_shape(GOLDEN_AGENT_SERVICE, c1.agent.services()["redis1"])
    assert_shape(GOLDEN_HEALTH["Checks"], [c for c in c1.health.state("passing")[1] if c["ServiceID"] == "redis1"])
    node = c1.catalog.node("ip-10-0-0-5")[1]
    assert_shape({"Node": GOLDEN_HEALTH["Node"], "Services": {"redis1": GOLDEN_HEALTH["Service"]}}, node)
    assert_shape([GOLDEN_HEALTH["Node"]], c1.catalog.nodes()[1])
    assert c1.health.service("redis", filter_expr='Service.Tags contains "primary" and Checks.Status == passing')[1]
    assert c1.health.service("redis", filter_expr='Service.Meta.x == "y"')[1] == []


# ---- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "expected"), [
    (b"{not json", b"Request decode failed"),
    (b'{"Name": "Bad_Name", "Port": 1}', b"Invalid Name"),
    (b'{"Name": "bad", "Port": "1"}', b"Invalid Port"),
    (b'{"Name": "bad", "Port": 1, "Check": {"Script": "/x", "Interval": "1s"}}', b"Invalid Check.Script"),
    (b'{"Name": "bad", "Port": 1, "Checks": [{"TTL": "1s"}, {"TTL": "2s"}]}', b"Invalid Checks"),
    (b'{"Name": "bad", "Port": 1, "Meta": {"consul-x": "y"}}', b"Invalid Meta"),
])
def test_bad_registrations_are_400_and_change_nothing(cluster: LocalCluster, body: bytes, expected: bytes) -> None:
    base = cluster.consul_url("n1")
    index_before = raw(base + "/v1/catalog/services")[1]["X-Consul-Index"]
    status, headers, answer = raw(base + "/v1/agent/service/register", method="PUT", data=body)
    assert status == 400 and answer.startswith(expected), answer
    assert headers["Content-Type"].startswith("text/plain")
    assert raw(base + "/v1/catalog/services")[1]["X-Consul-Index"] == index_before
    assert "bad" not in get_json(base + "/v1/catalog/services")[2]


@pytest.mark.parametrize(("path", "expected"), [
    ("/v1/catalog/services?wait=soon&index=1", b"Invalid wait"),
    ("/v1/catalog/services?index=x", b"Invalid index"),
    ("/v1/catalog/services?dc=elsewhere", b"No path to datacenter"),
    ("/v1/health/service/x?filter=Service.Nope%20==%201", b"Invalid filter: position 1: unknown selector"),
    ("/v1/health/service/x?passing=perhaps", b"Invalid passing"),
    ("/v1/health/state/sick", b"Invalid state"),
    ("/v1/catalog/services?node-meta=nocolon", b"Invalid node-meta"),
    ("/v1/query", b"Unsupported: raftreg's Consul API does not serve prepared queries"),
    ("/v1/connect/ca/roots", b"Unsupported: raftreg's Consul API does not serve Connect"),
    ("/v1/catalog/register", b"Unsupported: raftreg's Consul API does not serve catalog writes"),
    ("/v1/agent/check/pass/service:nobody", b'Unknown check ID "service:nobody"'),
    ("/v1/agent/check/pass/service:httpsvc-none", b"Unknown check ID"),
    ("/v1/agent/check/warn/service:ttl-1?note=" + "x" * 600, b"Invalid note"),
    ("/v1/agent/service/maintenance/ttl-1", b"Invalid enable"),
    ("/v1/agent/service/maintenance/ttl-1?enable=maybe", b"Invalid enable"),
    ("/v1/agent/service/maintenance/nobody?enable=true", b'Unknown service ID "nobody"'),
])
def test_bad_parameters_are_clear_errors(cluster: LocalCluster, path: str, expected: bytes) -> None:
    method = "PUT" if "/check/" in path or "/maintenance/" in path else "GET"
    status, _, body = raw(cluster.consul_url("n2") + path, method=method)
    assert status in (400, 404) and body.startswith(expected), (status, body)


@pytest.mark.parametrize(("body", "expected"), [
    (b"{not json", b"Request decode failed"),
    (b'{"Status": "sick"}', b"Invalid Status"),
    (b'{"Status": "passing", "Output": 7}', b"Invalid Output"),
])
def test_bad_check_updates_are_400_and_change_nothing(cluster: LocalCluster, body: bytes, expected: bytes) -> None:
    base = cluster.consul_url("n1")
    before = get_json(base + "/v1/health/checks/ttlsvc")[2]
    status, _, answer = raw(base + "/v1/agent/check/update/service:ttl-1", method="PUT", data=body)
    assert status == 400 and answer.startswith(expected), answer
    assert get_json(base + "/v1/health/checks/ttlsvc")[2] == before


def test_ttl_update_of_an_http_check_is_refused(cluster: LocalCluster) -> None:
    client(cluster, "n1").agent.service.register("onlyhttp", service_id="oh-1", address="10.6.0.1", port=1,
                                                 check=consul.Check.tcp("127.0.0.1", 1, "5s"))
    status, _, body = raw(cluster.consul_url("n1") + "/v1/agent/check/pass/service:oh-1", method="PUT")
    assert status == 400 and b"not a TTL check" in body
