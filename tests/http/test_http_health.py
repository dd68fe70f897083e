"""Heartbeats, status by hand and the forwarded-heartbeat endpoint over real HTTP on one node
(API.md "Instances"); every rejected request changes nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.cluster

TTL_BODY = {"address": "10.0.0.5", "port": 8080, "ttl": "1h"}
PLAIN_BODY = {"address": "10.0.0.6", "port": 8080}


def path(service: str, instance_id: str, suffix: str = "") -> str:
    return f"/v1/services/{service}/instances/{instance_id}{suffix}"


def test_a_heartbeat_renews_without_a_log_entry(api):
    api.put_ok("hb", "a", TTL_BODY)
    with api.unchanged(path("hb", "a")):
        for _ in range(20):
            resp = api.put(path("hb", "a", "/heartbeat"), None)
            assert resp.status == 200, resp.body
            assert resp.json() == {"ttl": 3600.0}
    leases = api.cluster()["leases"]
    assert leases["active"] is True and leases["renewals"] >= 20


def test_heartbeat_errors(api):
    api.put_ok("hb", "plain", PLAIN_BODY)
    with api.unchanged(path("hb", "plain"), path("hb", "ghost")):
        api.assert_error(api.put(path("hb", "ghost", "/heartbeat"), None), 404, "not_found", None)
        api.assert_error(api.put(path("hb", "plain", "/heartbeat"), None), 400, "invalid_argument", None)
        api.assert_error(api.put(path("Bad_Name", "a", "/heartbeat"), None), 400, "invalid_argument", "service")
        api.assert_error(api.put(path("hb", "-bad", "/heartbeat"), None), 400, "invalid_argument", "id")


def test_status_by_hand_wins_until_cleared(api):
    api.put_ok("st", "a", PLAIN_BODY)
    resp = api.put(path("st", "a", "/status"), {"status": "warning", "note": "disk swap"})
    assert resp.status == 200, resp.body
    got = resp.json()
    assert (got["status"], got["manual_status"], got["status_note"]) == ("warning", "warning", "disk swap")
    assert resp.header("X-Raftreg-Index") == str(got["index"]) and got["modify_index"] == got["index"]
    listing = api.get("/v1/services/st?passing").json()
    assert listing["instances"] == []
    services = {s["name"]: s for s in api.get("/v1/services").json()["services"]}
    assert services["st"] == {"name": "st", "instances": 1, "passing": 0, "warning": 1, "critical": 0, "tags": []}
    # Re-registering keeps it: maintenance is the operator's, not the instance's, to end.
    again = api.put_ok("st", "a", {**PLAIN_BODY, "tags": ["v2"]})
    assert again["status"] == "warning" and again["manual_status"] == "warning"
    # Setting the same status again changes nothing (it is still a write: it commits a no-op).
    same = api.put(path("st", "a", "/status"), {"status": "warning", "note": "disk swap"})
    assert same.status == 200 and same.json()["modify_index"] == again["modify_index"]
    cleared = api.put(path("st", "a", "/status"), {"status": "passing"}).json()
    assert (cleared["status"], cleared["manual_status"], cleared["status_note"]) == ("passing", None, "")
    assert [i["id"] for i in api.get("/v1/services/st?passing").json()["instances"]] == ["a"]


def test_status_errors_change_nothing(api):
    api.put_ok("st", "b", PLAIN_BODY)
    cases = [
        ({"status": "down"}, "status"),
        ({"status": 3}, "status"),
        ({}, "status"),
        ({"status": "warning", "note": "x" * 513}, "note"),
        ({"status": "warning", "colour": "red"}, "colour"),
        ({"status": "warning", "note": 5}, "note"),
    ]
    with api.unchanged(path("st", "b")):
        for body, field in cases:
            api.assert_error(api.put(path("st", "b", "/status"), body), 400, "invalid_argument", field)
        api.assert_error(api.request("PUT", path("st", "b", "/status"), b"{nope"), 400, "invalid_argument")
        api.assert_error(api.request("PUT", path("st", "b", "/status"), b"[]"), 400, "invalid_argument")
        api.assert_error(api.put(path("BAD", "b", "/status"), {"status": "warning"}), 400, "invalid_argument",
                         "service")
    # An absent instance is only known to be absent once the command went through the log.
    before = api.get("/v1/services").body
    api.assert_error(api.put(path("st", "ghost", "/status"), {"status": "warning"}), 404, "not_found", None)
    assert api.get("/v1/services").body == before and api.get(path("st", "ghost")).status == 404


def test_forwarded_heartbeats_on_the_leader(api):
    api.put_ok("fw", "a", TTL_BODY)
    api.put_ok("fw", "plain", PLAIN_BODY)
    resp = api.signed("POST", "/v1/internal/heartbeats",
                      {"instances": [["fw", "a"], ["fw", "ghost"], ["fw", "plain"]]})
    assert resp.status == 200, resp.body
    results = resp.json()["results"]
    assert results[0] == {"ttl": 3600.0}
    assert results[1]["error"]["code"] == "not_found"
    assert results[2]["error"]["code"] == "invalid_argument"
    with api.unchanged():
        for body in ({"instances": [["BAD", "a"]]}, {"instances": "fw"}, {"instances": [["fw"]]}, {}):
            api.assert_error(api.signed("POST", "/v1/internal/heartbeats", body), 400, "invalid_argument")
