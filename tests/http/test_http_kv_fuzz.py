"""Property-based fuzzing of the key/value and session routes on one real node: whatever the
path, query and body, the answer is 2xx or a documented error with API.md's error body, never a
5xx (a 504 would be a timeout of the node itself: not expected on an idle node either)."""

from __future__ import annotations

import json
import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.http.conftest import Http

pytestmark = pytest.mark.cluster

DOCUMENTED = {400, 404, 405, 409, 413, 415}
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SESSION = "00000000-0000-4000-8000-000000000001"

segments = st.sampled_from(["a", "b", "..", ".", "", "%2F", "%00", "%ff", "caf%C3%A9", "e%CC%81", "x" * 300,
                            "%2e%2e", "k"])
paths = st.lists(segments, min_size=0, max_size=4).map(lambda parts: "/v1/kv/" + "/".join(parts))
param_names = st.sampled_from(["recurse", "keys", "raw", "history", "separator", "cas", "flags", "acquire",
                               "release", "index", "wait", "min_index", "consistent", "other"])
param_values = st.one_of(st.none(), st.sampled_from(["", "0", "1", "-1", "18446744073709551616", "true", "x",
                                                     "/", "10ms", SESSION, "1e3"]),
                         st.text(string.printable, max_size=8))
queries = st.lists(st.tuples(param_names, param_values), max_size=4).map(
    lambda pairs: "&".join(name if value is None else f"{name}={quote(value)}" for name, value in pairs))
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                      max_size=3), max_leaves=8)
op_bodies = st.fixed_dictionaries({"op": st.sampled_from(["set", "cas", "delete", "delete_cas", "check_index",
                                                          "get", "nope"]),
                                   "key": st.sampled_from(["f/a", "f/b", "", "/x", "a/../b", "f/c"])},
                                  optional={"value": st.sampled_from(["", "dg==", "!!", 3]),
                                            "flags": st.sampled_from([0, -1, 2**64]),
                                            "index": st.sampled_from([0, 1, -1, None, "2"])})
txn_bodies = st.one_of(st.fixed_dictionaries({"ops": st.lists(op_bodies, max_size=5)}), json_values)
session_bodies = st.one_of(st.fixed_dictionaries({}, optional={
    "ttl": st.sampled_from(["15s", "0s", 5, "x", None, -1]),
    "behavior": st.sampled_from(["release", "delete", "other"]),
    "lock_delay": st.sampled_from(["0s", "61s", 1, "soon"]),
    "name": st.text(max_size=5),
    "instances": st.lists(st.fixed_dictionaries({"service": st.sampled_from(["web", "BAD", ""]),
                                                 "id": st.sampled_from(["w1", ""])}), max_size=2)}), json_values)


def check(resp_status: int, body: bytes, content_type: str | None) -> None:
    assert resp_status < 300 or resp_status in DOCUMENTED, (resp_status, body[:300])
    if resp_status >= 400:
        assert (content_type or "").startswith("application/json"), content_type
        doc = json.loads(body)
        assert set(doc) == {"error"} and isinstance(doc["error"]["message"], str), doc
        Http.assert_no_traceback(body)


@FUZZ
@given(method=st.sampled_from(["GET", "PUT", "DELETE"]), path=paths, query=queries,
       body=st.binary(max_size=64))
def test_kv_routes_never_fail_on_what_a_client_sends(api: Http, method: str, path: str, query: str,
                                                     body: bytes) -> None:
    target = f"{path}?{query}" if query else path
    if "wait=" in query or "index=" in query:
        target += "&wait=10ms"  # a blocking query must not hold the fuzzer
    resp = api.request(method, target, body if method == "PUT" else None, content_type=None)
    check(resp.status, resp.body, resp.header("Content-Type"))


@FUZZ
@given(body=txn_bodies)
def test_txn_never_fails_on_what_a_client_sends(api: Http, body: object) -> None:
    resp = api.put("/v1/txn", body)
    check(resp.status, resp.body, resp.header("Content-Type"))


@FUZZ
@given(body=session_bodies)
def test_session_create_never_fails_on_what_a_client_sends(api: Http, body: object) -> None:
    resp = api.put("/v1/sessions", body)
    check(resp.status, resp.body, resp.header("Content-Type"))
    if resp.status == 200:
        assert api.delete(f"/v1/sessions/{resp.json()['id']}").status == 200
