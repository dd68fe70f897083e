"""Instances over real HTTP (API.md "Instances"): PUT, GET, DELETE, and the indexes they carry."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.cluster

INSTANCE_FIELDS = {
    "service", "id", "address", "port", "tags", "meta", "weight", "ttl", "check", "status",
    "check_status", "manual_status", "status_note",
    "create_index", "modify_index",
}
# A closed port: the check (once checks run) keeps failing, so the status stays "critical".
CLOSED_TCP = "127.0.0.1:1"


def path(service: str, instance_id: str) -> str:
    return f"/v1/services/{service}/instances/{instance_id}"


def test_put_returns_the_stored_instance(api):
    body = {"address": "10.0.0.5", "port": 8080, "tags": ["v2", "blue"], "meta": {"zone": "a", "env": "prod"},
            "weight": 7, "ttl": "1h"}
    resp = api.put(path("cart", "cart-1"), body)
    assert resp.status == 200, resp.body
    assert resp.header("Content-Type").startswith("application/json")
    got = resp.json()
    assert set(got) == INSTANCE_FIELDS | {"index"}
    assert got["service"] == "cart"
    assert got["id"] == "cart-1"
    assert got["address"] == "10.0.0.5"
    assert got["port"] == 8080
    assert got["tags"] == ["v2", "blue"]
    assert got["meta"] == {"zone": "a", "env": "prod"}
    assert got["weight"] == 7
    assert got["ttl"] == 3600.0 and isinstance(got["ttl"], float)
    assert got["check"] is None
    assert got["status"] == "passing"
    assert isinstance(got["index"], int) and got["index"] > 0
    assert got["create_index"] == got["modify_index"] == got["index"]
    assert resp.header("X-Raftreg-Index") == str(got["index"])
    api.delete_ok("cart", "cart-1")


def test_defaults_of_a_minimal_registration(api):
    got = api.put_ok("defaults", "d1", {"address": "db.internal.example", "port": 1})
    assert got["tags"] == []
    assert got["meta"] == {}
    assert got["weight"] == 100
    assert got["ttl"] is None
    assert got["check"] is None
    assert got["status"] == "passing"
    api.delete_ok("defaults", "d1")


@pytest.mark.parametrize(("ttl", "seconds"), [(90, 90.0), (1.5, 1.5), ("90", 90.0), ("1m30s", 90.0), ("2h", 7200.0)])
def test_ttl_accepts_seconds_or_go_durations(api, ttl, seconds):
    got = api.put_ok("ttls", "t1", {"address": "10.0.0.1", "port": 80, "ttl": ttl})
    assert got["ttl"] == seconds
    api.delete_ok("ttls", "t1")


def test_instance_with_a_check_starts_critical(api):
    check = {"tcp": CLOSED_TCP, "interval": "5s", "timeout": "500ms", "failures_before_critical": 3,
             "successes_before_passing": 2, "deregister_critical_after": "1m"}
    got = api.put_ok("checked", "c1", {"address": "127.0.0.1", "port": 1, "check": check})
    try:
        assert got["status"] == "critical"
        assert got["check"]["tcp"] == CLOSED_TCP
        assert got["check"]["interval"] == 5.0
        assert got["check"]["timeout"] == 0.5
        assert got["check"]["failures_before_critical"] == 3
        assert got["check"]["successes_before_passing"] == 2
        assert got["check"]["deregister_critical_after"] == 60.0
    finally:
        api.delete_ok("checked", "c1")


def test_get_returns_the_instance_with_read_headers(api):
    put = api.put_ok("getme", "g1", {"address": "10.1.1.1", "port": 9000, "tags": ["x"], "meta": {"k": "v"}})
    resp = api.get(path("getme", "g1"))
    assert resp.status == 200, resp.body
    got = resp.json()
    assert set(got) == INSTANCE_FIELDS
    assert got == {k: v for k, v in put.items() if k != "index"}
    assert resp.header("X-Raftreg-Index") == str(put["modify_index"])
    assert resp.header("X-Raftreg-Leader") == "n1"
    assert resp.header("X-Raftreg-Last-Contact") == "0"
    api.delete_ok("getme", "g1")


def test_body_may_repeat_the_service_and_id_of_the_url(api):
    got = api.put_ok("echo", "e1", {"service": "echo", "id": "e1", "address": "10.0.0.1", "port": 80})
    assert (got["service"], got["id"]) == ("echo", "e1")
    api.delete_ok("echo", "e1")


def test_content_type_parameters_are_accepted(api):
    resp = api.request("PUT", path("ctype", "c1"), json_body={"address": "10.0.0.1", "port": 80},
                       content_type="application/json; charset=utf-8")
    assert resp.status == 200, resp.body
    api.delete_ok("ctype", "c1")


def test_reput_with_a_change_keeps_create_index_and_raises_modify_index(api):
    first = api.put_ok("cart", "cart-2", {"address": "10.0.0.5", "port": 8080, "tags": ["v1"]})
    second = api.put_ok("cart", "cart-2", {"address": "10.0.0.5", "port": 8080, "tags": ["v2"]})
    assert second["tags"] == ["v2"]
    assert second["create_index"] == first["create_index"]
    assert second["modify_index"] > first["modify_index"]
    assert second["modify_index"] == second["index"]
    got = api.get(path("cart", "cart-2")).json()
    assert (got["create_index"], got["modify_index"], got["tags"]) == (first["create_index"], second["index"], ["v2"])
    api.delete_ok("cart", "cart-2")


@pytest.mark.parametrize("change", [
    {"address": "10.0.0.6"}, {"port": 8081}, {"meta": {"zone": "b"}}, {"weight": 5}, {"ttl": "2h"},
    {"tags": []},
])
def test_every_field_change_raises_modify_index(api, change):
    base = {"address": "10.0.0.5", "port": 8080, "tags": ["v1"], "meta": {"zone": "a"}, "weight": 1, "ttl": "1h"}
    first = api.put_ok("fields", "f1", base)
    second = api.put_ok("fields", "f1", {**base, **change})
    assert second["create_index"] == first["create_index"]
    assert second["modify_index"] > first["modify_index"]
    api.delete_ok("fields", "f1")


def test_identical_reput_does_not_raise_modify_index(api):
    body = {"address": "10.0.0.5", "port": 8080, "tags": ["v1"], "meta": {"zone": "a"}, "weight": 3, "ttl": "1h"}
    first = api.put_ok("same", "s1", body)
    service_index = api.get("/v1/services/same").header("X-Raftreg-Index")
    second = api.put_ok("same", "s1", body)
    assert second["create_index"] == first["create_index"]
    assert second["modify_index"] == first["modify_index"]
    assert second["index"] >= first["index"]  # the commit index of the (no-op) write
    assert {k: v for k, v in second.items() if k != "index"} == {k: v for k, v in first.items() if k != "index"}
    # Nothing changed, so the service's index (what a watcher waits on) did not move either.
    assert api.get("/v1/services/same").header("X-Raftreg-Index") == service_index
    assert api.get(path("same", "s1")).json()["modify_index"] == first["modify_index"]
    api.delete_ok("same", "s1")


def test_delete_then_delete_again_and_get(api):
    put = api.put_ok("gone", "g1", {"address": "10.0.0.5", "port": 8080})
    resp = api.delete(path("gone", "g1"))
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body == {"deleted": True, "index": body["index"]}
    assert isinstance(body["index"], int) and body["index"] > put["index"]
    assert resp.header("X-Raftreg-Index") == str(body["index"])

    err = api.assert_error(api.get(path("gone", "g1")), 404, "not_found")
    assert "g1" in err["message"]

    registry_index = api.get("/v1/services").json()["index"]
    api.assert_error(api.delete(path("gone", "g1")), 404, "not_found", field=None)
    # A second delete finds nothing: the registry did not change.
    assert api.get("/v1/services").json()["index"] == registry_index


def test_get_missing_instance_is_404_json(api):
    api.put_ok("present", "p1", {"address": "10.0.0.5", "port": 8080})
    resp = api.get(path("present", "nope"))
    api.assert_error(resp, 404, "not_found", field=None)
    assert resp.header("X-Raftreg-Leader") == "n1"
    assert int(resp.header("X-Raftreg-Index")) > 0
    api.assert_error(api.get(path("never-registered", "nope")), 404, "not_found", field=None)
    api.delete_ok("present", "p1")


def test_consistent_get_returns_the_latest_write(api):
    api.put_ok("fresh", "f1", {"address": "10.0.0.5", "port": 8080, "weight": 1})
    put = api.put_ok("fresh", "f1", {"address": "10.0.0.5", "port": 8080, "weight": 2})
    for query in ("?consistent", "?consistent=true", "?consistent=1"):
        resp = api.get(path("fresh", "f1") + query)
        assert resp.status == 200, resp.body
        assert resp.json()["weight"] == 2
        assert int(resp.header("X-Raftreg-Index")) >= put["index"]
    api.delete_ok("fresh", "f1")
    api.assert_error(api.get(path("fresh", "f1") + "?consistent"), 404, "not_found")
