"""Reads over real HTTP (API.md "Services", "Indexes and headers", "Cluster and node"): listings,
filters, the read headers, index semantics, ?consistent, and /v1/cluster, /v1/health, /v1/ready."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from raftreg.testing import wait_for

pytestmark = pytest.mark.cluster

CLOSED_TCP = "127.0.0.1:1"  # a check against it keeps failing: the instance stays "critical"


def instance(address="10.0.0.1", port=80, **extra):
    return {"address": address, "port": port, **extra}


def ids(resp):
    assert resp.status == 200, resp.body
    return [i["id"] for i in resp.json()["instances"]]


def assert_read_headers(resp):
    """X-Raftreg-Index (never 0 here: every test writes first), -Leader (n1), -Last-Contact (0 on the leader)."""
    index = resp.header("X-Raftreg-Index")
    assert index is not None and index.isdigit() and int(index) > 0, resp.headers
    assert resp.header("X-Raftreg-Leader") == "n1", resp.headers
    assert resp.header("X-Raftreg-Last-Contact") == "0", resp.headers
    return int(index)


@pytest.fixture(scope="module")
def catalog(api):
    """A service 'shop' with instances registered out of id order, tags, meta and one critical instance."""
    api.put_ok("shop", "s-3", instance(tags=["v2", "blue"], meta={"zone": "a", "env": "prod"}))
    api.put_ok("shop", "s-1", instance(tags=["v1"], meta={"zone": "b", "env": "prod"}))
    api.put_ok("shop", "S-0", instance(tags=["v2"], meta={"zone": "a", "url": "http://x:1/y"}))
    api.put_ok("shop", "s-10", instance(tags=["v2", "blue"], meta={"zone": "a"}, check={"tcp": CLOSED_TCP}))
    api.put_ok("shop", "s-2", instance(tags=["blue"], meta={"env": "dev"}))
    api.put_ok("alpha", "a1", instance())
    api.put_ok("zulu", "z1", instance(check={"tcp": CLOSED_TCP}))
    api.put_ok("zulu", "z2", instance())
    api.put_ok("zulu", "z3", instance())
    return "shop"


def test_list_services_sorted_with_counts(api, catalog):
    resp = api.get("/v1/services")
    assert resp.status == 200, resp.body
    body = resp.json()
    assert set(body) == {"index", "services"}
    names = [s["name"] for s in body["services"]]
    assert names == sorted(names)
    rows = {s["name"]: s for s in body["services"]}
    assert rows["shop"] == {"name": "shop", "instances": 5, "passing": 4, "warning": 0, "critical": 1,
                            "tags": ["blue", "v1", "v2"]}
    assert rows["alpha"] == {"name": "alpha", "instances": 1, "passing": 1, "warning": 0, "critical": 0, "tags": []}
    assert rows["zulu"] == {"name": "zulu", "instances": 3, "passing": 2, "warning": 0, "critical": 1, "tags": []}
    assert body["index"] == assert_read_headers(resp)


def test_service_instances_sorted_by_id(api, catalog):
    resp = api.get("/v1/services/shop")
    body = resp.json()
    assert set(body) == {"index", "service", "instances"}
    assert body["service"] == "shop"
    assert ids(resp) == sorted(["s-3", "s-1", "S-0", "s-10", "s-2"])
    assert body["index"] == assert_read_headers(resp)
    # the service's index is the highest modify_index among its instances
    assert body["index"] == max(i["modify_index"] for i in body["instances"])
    statuses = {i["id"]: i["status"] for i in body["instances"]}
    assert statuses["s-10"] == "critical"
    assert {s for k, s in statuses.items() if k != "s-10"} == {"passing"}


@pytest.mark.parametrize(("query", "expected"), [
    ([("passing", "")], ["S-0", "s-1", "s-2", "s-3"]),
    ([("passing", "true")], ["S-0", "s-1", "s-2", "s-3"]),
    ([("passing", "1")], ["S-0", "s-1", "s-2", "s-3"]),
    ([("passing", "false")], ["S-0", "s-1", "s-10", "s-2", "s-3"]),
    ([("passing", "0")], ["S-0", "s-1", "s-10", "s-2", "s-3"]),
    ([("tag", "v2")], ["S-0", "s-10", "s-3"]),
    ([("tag", "v2"), ("tag", "blue")], ["s-10", "s-3"]),
    ([("tag", "blue"), ("tag", "v1")], []),
    ([("tag", "nope")], []),
    ([("meta", "zone:a")], ["S-0", "s-10", "s-3"]),
    ([("meta", "zone:a"), ("meta", "env:prod")], ["s-3"]),
    ([("meta", "env:dev")], ["s-2"]),
    ([("meta", "zone:c")], []),
    ([("meta", "url:http://x:1/y")], ["S-0"]),  # only the first ':' separates key and value
    ([("tag", "v2"), ("meta", "zone:a"), ("passing", "")], ["S-0", "s-3"]),
])
def test_service_filters(api, catalog, query, expected):
    resp = api.get("/v1/services/shop?" + urlencode(query))
    assert ids(resp) == expected
    assert_read_headers(resp)
    # a filter narrows the list, never the index
    assert resp.json()["index"] == api.get("/v1/services/shop").json()["index"]


def test_unknown_service_is_an_empty_list(api, catalog):
    resp = api.get("/v1/services/no-such-service")
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["service"] == "no-such-service"
    assert body["instances"] == []
    assert body["index"] == assert_read_headers(resp)
    assert body["index"] > 0
    assert ids(api.get("/v1/services/no-such-service?passing&tag=x&meta=a:b")) == []


def test_every_read_carries_the_headers(api, catalog):
    for p in ["/v1/services", "/v1/services/shop", "/v1/services/nothing-here", "/v1/services/shop/instances/s-1",
              "/v1/services/shop?consistent", "/v1/services?consistent", "/v1/services/shop/instances/s-1?consistent",
              "/v1/cluster"]:
        resp = api.get(p)
        assert resp.status == 200, (p, resp.body)
        assert_read_headers(resp)
    missing = api.get("/v1/services/shop/instances/none")
    assert missing.status == 404
    assert_read_headers(missing)


def test_index_is_never_zero_once_written(api, catalog):
    for p in ["/v1/services", "/v1/services/shop", "/v1/services/never-seen", "/v1/services/shop/instances/s-1",
              "/v1/services/shop/instances/unknown", "/v1/cluster"]:
        assert int(api.get(p).header("X-Raftreg-Index")) > 0, p
    assert api.get("/v1/services").json()["index"] > 0
    assert api.get("/v1/services/never-seen").json()["index"] > 0


def test_service_index_moves_on_deletion_and_not_on_unrelated_writes(api):
    api.put_ok("moving", "m1", instance())
    last = api.put_ok("moving", "m2", instance())
    assert api.get("/v1/services/moving").json()["index"] == last["index"]

    api.put_ok("unrelated", "u1", instance())
    assert api.get("/v1/services/moving").json()["index"] == last["index"]

    first_delete = api.delete_ok("moving", "m2")
    resp = api.get("/v1/services/moving")
    assert ids(resp) == ["m1"]
    assert resp.json()["index"] == first_delete > last["index"]
    assert resp.header("X-Raftreg-Index") == str(first_delete)

    # The last instance goes: the service disappears, and its index is that of the deletion.
    final_delete = api.delete_ok("moving", "m1")
    resp = api.get("/v1/services/moving")
    assert ids(resp) == []
    assert resp.json()["index"] == final_delete > first_delete
    assert "moving" not in [s["name"] for s in api.get("/v1/services").json()["services"]]
    assert api.get("/v1/services").json()["index"] >= final_delete
    api.delete_ok("unrelated", "u1")


def test_list_index_follows_the_last_change(api):
    put = api.put_ok("listing", "l1", instance())
    assert api.get("/v1/services").json()["index"] == put["index"]
    deleted = api.delete_ok("listing", "l1")
    resp = api.get("/v1/services")
    assert resp.json()["index"] == deleted
    assert resp.header("X-Raftreg-Index") == str(deleted)


@pytest.mark.parametrize("flag", ["consistent", "consistent=true", "consistent=1", "consistent=yes"])
def test_consistent_reads_return_current_data(api, flag):
    api.put_ok("linear", "l1", instance(weight=1))
    put = api.put_ok("linear", "l1", instance(weight=2))
    resp = api.get(f"/v1/services/linear?{flag}")
    assert resp.status == 200, resp.body
    assert [(i["id"], i["weight"]) for i in resp.json()["instances"]] == [("l1", 2)]
    assert resp.json()["index"] == put["index"]
    listed = api.get(f"/v1/services?{flag}")
    assert listed.status == 200, listed.body
    linear = {"name": "linear", "instances": 1, "passing": 1, "warning": 0, "critical": 0, "tags": []}
    assert linear in listed.json()["services"]
    api.delete_ok("linear", "l1")
    assert ids(api.get(f"/v1/services/linear?{flag}")) == []


def test_health(api):
    resp = api.get("/v1/health")
    assert resp.status == 200, resp.body
    assert resp.json()["status"] == "ok"


def test_ready_once_ready(api):
    wait_for(lambda: api.get("/v1/ready").status == 200, 30.0, "/v1/ready to answer 200")
    resp = api.get("/v1/ready")
    assert resp.status == 200, resp.body
    assert resp.json()["ready"] is True


def test_cluster_fields(api, cluster):
    api.put_ok("clustered", "c1", instance())
    resp = api.get("/v1/cluster")
    assert resp.status == 200, resp.body
    info = resp.json()
    assert {"name", "node", "state", "leader", "term", "commit_index", "applied_index", "members"} <= set(info)
    assert info["name"] == cluster.config.name
    assert info["node"] == "n1"
    assert info["state"] == "leader"
    assert info["leader"] == "n1"
    assert isinstance(info["term"], int) and info["term"] >= 1
    assert isinstance(info["commit_index"], int) and info["commit_index"] > 0
    assert info["applied_index"] == info["commit_index"]
    [member] = info["members"]
    assert {"name", "raft", "http", "status", "match_index"} <= set(member)
    node = cluster.config.node("n1")
    assert member["name"] == "n1"
    assert member["raft"] == node.raft
    assert member["http"] == node.http
    assert member["status"] == "leader"
    assert isinstance(member["match_index"], int) and 0 < member["match_index"] <= info["commit_index"]
    assert_read_headers(resp)
    api.delete_ok("clustered", "c1")


def test_cluster_blocking_query_waits_for_an_applied_entry(api, pool):
    """``GET /v1/cluster?index=N&wait=W`` (the UI's cluster page): held while nothing applies,
    answered as soon as an entry does, with the new applied index."""
    n = api.cluster()["applied_index"]
    started = time.monotonic()
    resp = api.get(f"/v1/cluster?index={n}&wait=300ms")  # nothing applies: held for the wait
    assert time.monotonic() - started >= 0.3
    assert resp.status == 200 and resp.json()["applied_index"] == n, resp.body
    parked = pool.submit(api.get, f"/v1/cluster?index={n}&wait=60s")
    wait_for(lambda: api.cluster()["watches"]["cluster_waiting"] == 1, 10.0, "the query to park")
    assert not parked.done()
    put = api.put_ok("clustered", "c2", instance())
    answer = parked.result(timeout=10.0)
    assert answer.status == 200, answer.body
    assert answer.json()["applied_index"] >= put["index"] > n
    api.delete_ok("clustered", "c2")


def test_lease_time_left_per_instance(api):
    """``GET /v1/services/{service}/leases`` (the UI's "time left"): exact on the leader, only
    instances with a ttl; an unknown service has none; a bad name is refused."""
    api.put_ok("leased", "l1", instance(ttl="30s"))
    api.put_ok("leased", "l2", instance())  # no ttl: no lease
    resp = api.get("/v1/services/leased/leases")
    assert resp.status == 200, resp.body
    body = resp.json()
    assert (body["service"], body["node"], body["exact"]) == ("leased", "n1", True)
    assert set(body["leases"]) == {"l1"}
    assert 20 < body["leases"]["l1"] <= 30 + 10  # the ttl, plus at most the grace armed after an election
    assert body["index"] == assert_read_headers(resp)
    assert api.get("/v1/services/nothing-here/leases").json()["leases"] == {}
    api.assert_error(api.get("/v1/services/Bad_Name/leases"), 400, "invalid_argument", "service")
    api.delete_ok("leased", "l1")
    api.delete_ok("leased", "l2")


@pytest.mark.parametrize(("query", "field"), [("index=1&wait=soon", "wait"), ("index=-1", "index"),
                                              ("consistent", "consistent"), ("min_index=1", "min_index")])
def test_cluster_refuses_bad_or_unsupported_read_options(api, query, field):
    api.assert_error(api.get(f"/v1/cluster?{query}"), 400, "invalid_argument", field)
