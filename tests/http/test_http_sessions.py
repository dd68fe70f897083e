"""Sessions and locks on one real node (API.md "Sessions, locks and leader election"): the session
routes, every bad input (400 naming the field, 404), lock acquisition and release on keys, and
what the end of a session does to its locks (release with a lock delay, or delete)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from raftreg.testing import wait_for
from tests.http.conftest import Http

pytestmark = pytest.mark.cluster

UNKNOWN = "00000000-0000-4000-8000-00000000dead"


def create(api: Http, **body: Any) -> str:
    resp = api.put("/v1/sessions", body)
    assert resp.status == 200, resp.body
    doc = resp.json()
    assert resp.header("X-Raftreg-Index") == str(doc["index"])
    return str(doc["id"])


def lock(api: Http, verb: str, key: str, session: str, value: bytes = b"me") -> dict[str, Any]:
    resp = api.request("PUT", f"/v1/kv/{key}?{verb}={session}", value, content_type=None)
    assert resp.status == 200, resp.body
    return resp.json()  # type: ignore[no-any-return]


def entry(api: Http, key: str) -> dict[str, Any]:
    resp = api.get(f"/v1/kv/{key}")
    assert resp.status == 200, resp.body
    return resp.json()  # type: ignore[no-any-return]


def test_session_lifecycle(api: Http) -> None:
    sid = create(api, ttl="30s", name="worker", behavior="delete", lock_delay="2s")
    resp = api.get(f"/v1/sessions/{sid}")
    assert resp.status == 200
    doc = resp.json()
    assert {k: doc[k] for k in ("id", "name", "ttl", "behavior", "lock_delay", "instances")} == {
        "id": sid, "name": "worker", "ttl": 30.0, "behavior": "delete", "lock_delay": 2.0, "instances": []}
    assert doc["create_index"] == doc["modify_index"] == int(resp.header("X-Raftreg-Index") or 0)
    listed = api.get("/v1/sessions").json()
    assert sid in [s["id"] for s in listed["sessions"]] and listed["index"] >= doc["create_index"]
    before = api.commit_index()
    renewed = api.put(f"/v1/sessions/{sid}/renew", None)
    assert renewed.status == 200 and renewed.json() == {"id": sid, "ttl": 30.0}
    assert api.commit_index() == before, "a renewal wrote to the Raft log"
    destroyed = api.delete(f"/v1/sessions/{sid}")
    assert destroyed.status == 200 and destroyed.json()["destroyed"] is True
    for resp in (api.get(f"/v1/sessions/{sid}"), api.put(f"/v1/sessions/{sid}/renew", None),
                 api.delete(f"/v1/sessions/{sid}")):
        api.assert_error(resp, 404, "not_found")


def test_defaults(api: Http) -> None:
    doc = api.get(f"/v1/sessions/{create(api)}").json()
    assert (doc["ttl"], doc["behavior"], doc["lock_delay"], doc["name"]) == (15.0, "release", 15.0, "")


@pytest.mark.parametrize(("body", "field"), [
    ({"ttl": "0.5s"}, "ttl"),
    ({"ttl": "25h"}, "ttl"),
    ({"ttl": "soon"}, "ttl"),
    ({"ttl": True}, "ttl"),
    ({"lock_delay": "61s"}, "lock_delay"),
    ({"lock_delay": -1}, "lock_delay"),
    ({"behavior": "keep"}, "behavior"),
    ({"name": "n" * 129}, "name"),
    ({"instances": [{"service": "Bad_Name", "id": "i1"}]}, "instances[0].service"),
    ({"instances": [{"service": "web", "id": ""}]}, "instances[0].id"),
    ({"instances": [{"service": "web"}]}, "instances[0].id"),
    ({"instances": [{"service": "web", "id": "a"}] * 65}, "instances"),
    ({"owner": "me"}, "owner"),
])
def test_bad_session_bodies_are_400_naming_the_field(api: Http, body: dict[str, Any], field: str) -> None:
    with api.unchanged("/v1/sessions"):
        api.assert_error(api.put("/v1/sessions", body), 400, "invalid_argument", field)


def test_bad_session_ids_and_bodies(api: Http) -> None:
    with api.unchanged("/v1/sessions"):
        for method, path in (("GET", "/v1/sessions/nope"), ("DELETE", "/v1/sessions/NOPE"),
                             ("PUT", "/v1/sessions/x/renew")):
            api.assert_error(api.request(method, path, content_type=None), 400, "invalid_argument", "id")
        api.assert_error(api.request("PUT", "/v1/sessions", b"{nope"), 400, "invalid_argument")
        api.assert_error(api.request("PUT", "/v1/sessions", b"[]"), 400, "invalid_argument")
        api.assert_error(api.get(f"/v1/sessions/{UNKNOWN}"), 404, "not_found")


def test_a_session_needs_its_instances_alive(api: Http) -> None:
    api.put_ok("tied", "t1", {"address": "10.0.0.1", "port": 80})
    body = {"instances": [{"service": "tied", "id": "t1"}, {"service": "tied", "id": "missing"}]}
    err = api.assert_error(api.put("/v1/sessions", body), 404, "not_found", "instances[1]")
    assert "missing" in err["message"]


def test_acquire_and_release(api: Http) -> None:
    a, b = create(api), create(api)
    first = lock(api, "acquire", "locks/one", a, b"holder-a")
    assert first["ok"] is True
    held = entry(api, "locks/one")
    assert (held["session"], held["lock_index"]) == (a, 1) and held["modify_index"] == first["index"]
    assert lock(api, "acquire", "locks/one", b)["ok"] is False
    assert entry(api, "locks/one")["session"] == a
    assert lock(api, "release", "locks/one", b)["ok"] is False
    assert lock(api, "acquire", "locks/one", a, b"again")["ok"] is True  # the holder may write
    assert entry(api, "locks/one")["lock_index"] == 1
    assert lock(api, "release", "locks/one", a)["ok"] is True
    assert entry(api, "locks/one")["session"] is None
    assert lock(api, "acquire", "locks/one", b)["ok"] is True
    assert (entry(api, "locks/one")["session"], entry(api, "locks/one")["lock_index"]) == (b, 2)


def test_lock_errors(api: Http) -> None:
    sid = create(api)
    with api.unchanged("/v1/kv/locks/err"):
        resp = api.request("PUT", f"/v1/kv/locks/err?acquire={sid}&release={sid}", b"", content_type=None)
        api.assert_error(resp, 400, "invalid_argument", "release")
        resp = api.request("PUT", "/v1/kv/locks/err?acquire=not-a-uuid", b"", content_type=None)
        api.assert_error(resp, 400, "invalid_argument", "acquire")
    resp = api.request("PUT", f"/v1/kv/locks/err?acquire={UNKNOWN}", b"", content_type=None)
    api.assert_error(resp, 404, "not_found", "acquire")
    assert api.get("/v1/kv/locks/err").status == 404


def test_destroy_releases_the_lock_and_the_lock_delay_holds_it(api: Http) -> None:
    a, b = create(api, lock_delay="1s"), create(api)
    assert lock(api, "acquire", "locks/delay", a)["ok"] is True
    assert api.delete(f"/v1/sessions/{a}").status == 200
    destroyed_at = time.monotonic()
    assert entry(api, "locks/delay")["session"] is None
    assert lock(api, "acquire", "locks/delay", b)["ok"] is False  # within the lock delay
    wait_for(lambda: lock(api, "acquire", "locks/delay", b)["ok"], 10.0, "the lock after its delay")
    assert time.monotonic() - destroyed_at >= 0.9
    assert entry(api, "locks/delay")["session"] == b


def test_behavior_delete_deletes_the_locked_keys(api: Http) -> None:
    sid = create(api, behavior="delete", lock_delay=0)
    assert lock(api, "acquire", "eph/me", sid)["ok"] is True
    api.request("PUT", "/v1/kv/eph/other", b"x", content_type=None)
    assert api.delete(f"/v1/sessions/{sid}").status == 200
    assert api.get("/v1/kv/eph/?keys").json()["keys"] == ["eph/other"]


def test_deregistering_a_tied_instance_ends_the_session(api: Http) -> None:
    api.put_ok("tied2", "t1", {"address": "10.0.0.1", "port": 80})
    sid = create(api, instances=[{"service": "tied2", "id": "t1"}], lock_delay=0)
    assert lock(api, "acquire", "locks/tied", sid)["ok"] is True
    api.delete_ok("tied2", "t1")
    assert entry(api, "locks/tied")["session"] is None
    api.assert_error(api.get(f"/v1/sessions/{sid}"), 404, "not_found")
