"""The key/value API on one real node (API.md "Key/value"): every route, the read options, and
every kind of bad input (400 naming the field, 413, 404, 409), each rejected request checked to
change nothing (same commit index, same listing)."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from raftreg.config import KVTuning
from raftreg.testing import LocalCluster
from tests.http.conftest import Http, Resp

pytestmark = pytest.mark.cluster

MAX_VALUE = 512 * 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def put(api: Http, key: str, value: bytes = b"v", query: str = "", content_type: str | None = None) -> Resp:
    return api.request("PUT", f"/v1/kv/{key}{query}", value, content_type=content_type)


def put_ok(api: Http, key: str, value: bytes = b"v", query: str = "") -> int:
    resp = put(api, key, value, query)
    assert resp.status == 200, (resp.status, resp.body)
    body = resp.json()
    assert body["ok"] is True and resp.header("X-Raftreg-Index") == str(body["index"])
    return int(body["index"])


def get_json(api: Http, path: str) -> dict[str, Any]:
    resp = api.get(path)
    assert resp.status == 200, (resp.status, resp.body)
    return resp.json()  # type: ignore[no-any-return]


def txn(api: Http, ops: list[dict[str, Any]]) -> Resp:
    return api.put("/v1/txn", {"ops": ops})


@contextlib.contextmanager
def state_unchanged(api: Http, *paths: str) -> Iterator[None]:
    """A conflict (409) goes through the log (the condition is decided when the command applies),
    so only the state must stay as it was: every GET of ``paths`` (body and X-Raftreg-Index)."""
    def seen() -> dict[str, tuple[int, bytes, str | None]]:
        return {p: (r.status, r.body, r.header("X-Raftreg-Index")) for p in ("/v1/kv/?recurse", *paths)
                for r in [api.get(p)]}
    before = seen()
    yield
    assert seen() == before, "a rejected request changed the state"


# ---- put / get ---------------------------------------------------------------------------------
def test_put_then_get_returns_the_entry_with_indexes_and_flags(api: Http) -> None:
    value = bytes(range(256))
    index = put_ok(api, "pg/one", value, "?flags=18446744073709551615")
    resp = api.get("/v1/kv/pg/one")
    assert resp.status == 200
    assert resp.json() == {"key": "pg/one", "value": b64(value), "flags": 2**64 - 1, "create_index": index,
                           "modify_index": index, "lock_index": 0, "session": None}
    assert resp.header("X-Raftreg-Index") == str(index)
    assert resp.header("X-Raftreg-Leader") == "n1" and resp.header("X-Raftreg-Last-Contact") == "0"
    again = put_ok(api, "pg/one", b"second")
    entry = get_json(api, "/v1/kv/pg/one")
    assert (entry["create_index"], entry["modify_index"], entry["flags"]) == (index, again, 0)


def test_raw_returns_the_bare_value(api: Http) -> None:
    put_ok(api, "pg/raw", b"\x00binary\xff", "")
    resp = api.get("/v1/kv/pg/raw?raw")
    assert resp.status == 200 and resp.body == b"\x00binary\xff"
    assert resp.header("Content-Type") == "application/octet-stream"
    assert resp.header("X-Raftreg-Index") is not None


def test_any_content_type_and_an_empty_value_are_stored(api: Http) -> None:
    put_ok(api, "pg/empty", b"")
    assert get_json(api, "/v1/kv/pg/empty")["value"] == ""
    assert put(api, "pg/text", b"hello", content_type="text/plain").status == 200
    assert api.get("/v1/kv/pg/text?raw").body == b"hello"


def test_percent_encoded_and_unicode_keys(api: Http) -> None:
    put_ok(api, "pg/caf%C3%A9%20x")
    assert get_json(api, "/v1/kv/pg/caf%C3%A9%20x")["key"] == "pg/café x"
    put_ok(api, "pg/a%2Fb")  # %2F is a '/' of the key
    assert get_json(api, "/v1/kv/pg/a/b")["key"] == "pg/a/b"


def test_missing_key_is_404_with_an_index(api: Http) -> None:
    put_ok(api, "gone/k")
    deleted = api.delete("/v1/kv/gone/k").json()["index"]
    resp = api.get("/v1/kv/gone/k")
    api.assert_error(resp, 404, "not_found", field=None)
    assert resp.header("X-Raftreg-Index") == str(deleted)
    assert api.get("/v1/kv/gone/k?raw").status == 404


def test_value_limits(api: Http) -> None:
    put_ok(api, "lim/max", b"x" * MAX_VALUE)
    assert len(api.get("/v1/kv/lim/max?raw").body) == MAX_VALUE
    with api.unchanged("/v1/kv/lim/max"):
        api.assert_error(put(api, "lim/max", b"y" * (MAX_VALUE + 1)), 413, "payload_too_large", "value")
        api.assert_error(put(api, "lim/max", b"y" * (1024 * 1024 + 10)), 413, "payload_too_large")


# ---- cas ---------------------------------------------------------------------------------------
def test_cas_zero_creates_only_and_cas_index_replaces_only_at_that_index(api: Http) -> None:
    first = put_ok(api, "cas/k", b"1", "?cas=0")
    with state_unchanged(api, "/v1/kv/cas/k"):
        err = api.assert_error(put(api, "cas/k", b"2", "?cas=0"), 409, "conflict", "cas")
        assert f"modify_index is {first}" in err["message"]
        api.assert_error(put(api, "cas/k", b"2", f"?cas={first + 1000}"), 409, "conflict", "cas")
    second = put_ok(api, "cas/k", b"2", f"?cas={first}")
    assert api.get("/v1/kv/cas/k?raw").body == b"2"
    with state_unchanged(api, "/v1/kv/cas/k"):
        api.assert_error(put(api, "cas/k", b"3", f"?cas={first}"), 409, "conflict", "cas")
    assert get_json(api, "/v1/kv/cas/k")["modify_index"] == second


# ---- delete ------------------------------------------------------------------------------------
def test_delete_counts_and_is_idempotent(api: Http) -> None:
    put_ok(api, "del/a")
    resp = api.delete("/v1/kv/del/a")
    assert resp.status == 200 and resp.json()["deleted"] == 1
    assert resp.header("X-Raftreg-Index") == str(resp.json()["index"])
    assert api.delete("/v1/kv/del/a").json()["deleted"] == 0


def test_delete_recurse_removes_the_prefix_only(api: Http) -> None:
    for key in ("rec/a", "rec/b/c", "rec/b/d", "recx"):
        put_ok(api, key)
    resp = api.delete("/v1/kv/rec/?recurse")
    assert resp.status == 200 and resp.json()["deleted"] == 3
    assert get_json(api, "/v1/kv/rec?keys")["keys"] == ["recx"]


def test_delete_cas(api: Http) -> None:
    index = put_ok(api, "delcas/k")
    with state_unchanged(api, "/v1/kv/delcas/k"):
        api.assert_error(api.delete(f"/v1/kv/delcas/k?cas={index + 1}"), 409, "conflict", "cas")
    assert api.delete(f"/v1/kv/delcas/k?cas={index}").json()["deleted"] == 1
    assert api.get("/v1/kv/delcas/k").status == 404


# ---- lists -------------------------------------------------------------------------------------
def test_recurse_lists_entries_and_keys_lists_names(api: Http) -> None:
    indexes = [put_ok(api, key) for key in ("ls/a", "ls/b/c", "ls/b/d", "ls/e/")]
    listing = get_json(api, "/v1/kv/ls/?recurse")
    assert [e["key"] for e in listing["entries"]] == ["ls/a", "ls/b/c", "ls/b/d", "ls/e/"]
    assert listing["index"] == max(indexes)
    assert get_json(api, "/v1/kv/ls/?keys")["keys"] == ["ls/a", "ls/b/c", "ls/b/d", "ls/e/"]
    assert get_json(api, "/v1/kv/ls/?keys&separator=/")["keys"] == ["ls/a", "ls/b/", "ls/e/"]
    assert get_json(api, "/v1/kv/ls?keys&separator=/")["keys"] == ["ls/"]


def test_an_empty_prefix_lists_200_never_404(api: Http) -> None:
    assert get_json(api, "/v1/kv/nothing-here/?recurse")["entries"] == []
    assert get_json(api, "/v1/kv/nothing-here/?keys")["keys"] == []
    everything = get_json(api, "/v1/kv/?keys")["keys"]
    assert "pg/one" in everything


def test_prefix_index_remembers_deletions(api: Http) -> None:
    put_ok(api, "pidx/a")
    put_ok(api, "pidx/b")
    deleted = api.delete("/v1/kv/pidx/b").json()["index"]
    resp = api.get("/v1/kv/pidx/?recurse")
    assert resp.header("X-Raftreg-Index") == str(deleted) and resp.json()["index"] == deleted
    put_ok(api, "elsewhere/x")
    assert api.get("/v1/kv/pidx/?keys").header("X-Raftreg-Index") == str(deleted)


# ---- history -----------------------------------------------------------------------------------
def test_history_lists_earlier_versions_newest_first(api: Http) -> None:
    first = put_ok(api, "hist/k", b"1", "?flags=7")
    second = put_ok(api, "hist/k", b"2")
    put_ok(api, "hist/k", b"3")
    body = get_json(api, "/v1/kv/hist/k?history")
    assert body["key"] == "hist/k"
    assert body["versions"] == [
        {"value": b64(b"2"), "flags": 0, "create_index": first, "modify_index": second, "session": None},
        {"value": b64(b"1"), "flags": 7, "create_index": first, "modify_index": first, "session": None},
    ]
    assert get_json(api, "/v1/kv/hist/never?history")["versions"] == []


def test_history_is_capped_at_the_configured_ten(api: Http) -> None:
    for i in range(13):
        put_ok(api, "hist/cap", str(i).encode())
    versions = get_json(api, "/v1/kv/hist/cap?history")["versions"]
    assert [base64.b64decode(v["value"]) for v in versions] == [str(i).encode() for i in range(11, 1, -1)]


# ---- txn ---------------------------------------------------------------------------------------
def test_txn_applies_every_op_at_one_index(api: Http) -> None:
    existing = put_ok(api, "txn/old", b"o")
    resp = txn(api, [
        {"op": "check_index", "key": "txn/old", "index": existing},
        {"op": "set", "key": "txn/a", "value": b64(b"A"), "flags": 3},
        {"op": "cas", "key": "txn/b", "value": b64(b"B"), "index": 0},
        {"op": "get", "key": "txn/a"},
        {"op": "delete", "key": "txn/old"},
        {"op": "get", "key": "txn/missing"},
    ])
    assert resp.status == 200, resp.body
    body = resp.json()
    index = body["index"]
    assert resp.header("X-Raftreg-Index") == str(index)
    results = body["results"]
    assert results[0]["key"] == "txn/old" and results[0]["modify_index"] == existing
    assert results[1] == {"key": "txn/a", "value": b64(b"A"), "flags": 3, "create_index": index,
                          "modify_index": index, "lock_index": 0, "session": None}
    assert results[2]["modify_index"] == index and results[3] == results[1]
    assert results[4] == {"deleted": 1} and results[5] is None
    assert get_json(api, "/v1/kv/txn/b")["modify_index"] == index
    assert api.get("/v1/kv/txn/old").status == 404


def test_txn_with_one_failing_check_changes_nothing(api: Http) -> None:
    index = put_ok(api, "txnf/k", b"before")
    with state_unchanged(api, "/v1/kv/txnf/k", "/v1/kv/txnf/?recurse", "/v1/kv/txnf/new"):
        resp = txn(api, [
            {"op": "set", "key": "txnf/new", "value": b64(b"x")},
            {"op": "delete", "key": "txnf/k"},
            {"op": "check_index", "key": "txnf/k", "index": index + 99},
        ])
        err = api.assert_error(resp, 409, "conflict", "ops[2]")
        assert "ops[2]" in err["message"] and "txnf/k" in err["message"]


# ---- blocking and consistency options ----------------------------------------------------------
def test_read_options_are_honoured(api: Http) -> None:
    index = put_ok(api, "opt/k")
    assert api.get(f"/v1/kv/opt/k?consistent&min_index={index}").status == 200
    assert api.get("/v1/kv/opt/?recurse&consistent").status == 200
    resp = api.get(f"/v1/kv/opt/k?index={index}&wait=100ms")  # nothing changes: answers after the wait
    assert resp.status == 200 and resp.header("X-Raftreg-Index") == str(index)
    api.assert_error(api.get(f"/v1/kv/opt/k?min_index={index + 10**6}&wait=100ms"), 504, "timeout")
    assert api.get(f"/v1/kv/opt/k?index={index - 1}").status == 200  # already past: at once


# ---- bad input ---------------------------------------------------------------------------------
BAD_KEYS = [
    ("/v1/kv/%2Flead", "key"),  # leading '/'
    ("/v1/kv/a/../b", "key"),
    ("/v1/kv/a/%2e%2e/b", "key"),
    ("/v1/kv/..", "key"),
    ("/v1/kv/a%00b", "key"),
    ("/v1/kv/a//b", "key"),
    ("/v1/kv/%ff%fe", "key"),  # not UTF-8
    ("/v1/kv/e%CC%81", "key"),  # 'e' + combining accent: not NFC
    ("/v1/kv/" + "k" * 513, "key"),
    ("/v1/kv/" + "%C3%A9" * 257, "key"),  # 514 bytes in 257 characters
]


@pytest.mark.parametrize(("path", "field"), BAD_KEYS)
def test_bad_keys_are_400_naming_the_key_and_change_nothing(api: Http, path: str, field: str) -> None:
    with api.unchanged("/v1/kv/?keys"):
        api.assert_error(api.request("PUT", path, b"v", content_type=None), 400, "invalid_argument", field)
        api.assert_error(api.get(path), 400, "invalid_argument", field)
        api.assert_error(api.delete(path), 400, "invalid_argument", field)


def test_the_longest_key_is_accepted(api: Http) -> None:
    key = "k" * 512
    put_ok(api, key)
    assert get_json(api, f"/v1/kv/{key}")["key"] == key


@pytest.mark.parametrize(("method", "path", "field"), [
    ("PUT", "/v1/kv/", "key"),
    ("GET", "/v1/kv/", "key"),
    ("DELETE", "/v1/kv/", "key"),
    ("DELETE", "/v1/kv/?recurse", "key"),  # everything at once is refused
    ("PUT", "/v1/kv/q?flags=-1", "flags"),
    ("PUT", "/v1/kv/q?flags=18446744073709551616", "flags"),
    ("PUT", "/v1/kv/q?flags=1.5", "flags"),
    ("PUT", "/v1/kv/q?cas=x", "cas"),
    ("PUT", "/v1/kv/q?cas=99999999999999999999", "cas"),
    ("PUT", "/v1/kv/q?acquire=abc", "acquire"),
    ("PUT", "/v1/kv/q?release=abc", "release"),
    ("DELETE", "/v1/kv/q?cas=", "cas"),
    ("DELETE", "/v1/kv/q/?recurse&cas=3", "cas"),
    ("DELETE", "/v1/kv/q?recurse=maybe", "recurse"),
    ("GET", "/v1/kv/q?recurse&keys", "keys"),
    ("GET", "/v1/kv/q?raw&history", "raw"),
    ("GET", "/v1/kv/q?separator=/", "separator"),
    ("GET", "/v1/kv/q?keys&separator=", "separator"),
    ("GET", "/v1/kv/q?index=-1", "index"),
    ("GET", "/v1/kv/q?min_index=x", "min_index"),
    ("GET", "/v1/kv/q?wait=forever", "wait"),
    ("GET", "/v1/kv/q?consistent=perhaps", "consistent"),
])
def test_bad_parameters_are_400_naming_the_field(api: Http, method: str, path: str, field: str) -> None:
    with api.unchanged("/v1/kv/?keys"):
        resp = api.request(method, path, b"v" if method == "PUT" else None, content_type=None)
        api.assert_error(resp, 400, "invalid_argument", field)


def test_a_rejected_blocking_query_does_not_wait_first(api: Http) -> None:
    index = put_ok(api, "bq/k")
    for path in (f"/v1/kv/bq/?keys&separator=&index={index}&wait=30s", f"/v1/kv/bq/k?index={index}&wait=x",
                 f"/v1/kv/bq//k?index={index}&wait=30s", f"/v1/kv/bq/?recurse&raw&index={index}&wait=30s"):
        started = time.monotonic()
        api.assert_error(api.get(path), 400, "invalid_argument")
        assert time.monotonic() - started < 5.0, path


def test_compressed_value_is_refused(api: Http) -> None:
    with api.unchanged("/v1/kv/?keys"):
        resp = api.request("PUT", "/v1/kv/gz", b"v", content_type=None, headers={"Content-Encoding": "gzip"})
        api.assert_error(resp, 400, "invalid_argument", "Content-Encoding")


def op(**fields: Any) -> dict[str, Any]:
    return {"op": "set", "key": "tx/k", **fields}


@pytest.mark.parametrize(("body", "field"), [
    ({"ops": []}, "ops"),
    ({"ops": [op()] * 65}, "ops"),
    ({}, "ops"),
    ({"ops": [op(), op(key="/x")]}, "ops[1].key"),
    ({"ops": [op(), op(), op(), op(key="a/../b")]}, "ops[3].key"),
    ({"ops": [op(key="")]}, "ops[0].key"),
    ({"ops": [op(key=5)]}, "ops[0].key"),
    ({"ops": [{"op": "set"}]}, "ops[0].key"),
    ({"ops": [op(op="upsert")]}, "ops[0].op"),
    ({"ops": [op(value="***")]}, "ops[0].value"),
    ({"ops": [op(flags=-1)]}, "ops[0].flags"),
    ({"ops": [op(flags=2**64)]}, "ops[0].flags"),
    ({"ops": [op(op="cas")]}, "ops[0].index"),
    ({"ops": [op(op="check_index")]}, "ops[0].index"),
    ({"ops": [op(index=-2, op="delete_cas")]}, "ops[0].index"),
    ({"ops": [op(extra=1)]}, "ops[0].extra"),
    ({"ops": "set"}, "ops"),
])
def test_bad_txn_bodies_are_400_naming_the_field(api: Http, body: Any, field: str) -> None:
    with api.unchanged("/v1/kv/?keys"):
        api.assert_error(api.put("/v1/txn", body), 400, "invalid_argument", field)


def test_txn_malformed_and_oversized(api: Http) -> None:
    with api.unchanged("/v1/kv/?keys"):
        api.assert_error(api.request("PUT", "/v1/txn", b"{not json"), 400, "invalid_argument")
        api.assert_error(api.request("PUT", "/v1/txn", b"{}", content_type="text/plain"), 400,
                         "invalid_argument", "Content-Type")
        big = json.dumps({"ops": [op(value=b64(b"x" * (MAX_VALUE + 1)))]}).encode()
        api.assert_error(api.request("PUT", "/v1/txn", big), 413, "payload_too_large", "ops[0].value")
        huge = json.dumps({"ops": [op(value=b64(b"x" * 800_000))]}).encode()
        api.assert_error(api.request("PUT", "/v1/txn", huge), 413, "payload_too_large")


def test_wrong_methods_are_405(api: Http) -> None:
    assert api.request("POST", "/v1/kv/k", b"v").status == 405
    assert api.get("/v1/txn").status == 405


def test_the_configured_history_is_what_a_node_keeps() -> None:
    """``[kv] history = 2`` in the cluster config: each key keeps its two latest earlier versions."""
    cluster = LocalCluster(1, name="hist2", kv=KVTuning(history=2))
    try:
        cluster.start(wait=60.0)
        node = Http(cluster.url("n1"))
        for i in range(5):
            put_ok(node, "h2/k", str(i).encode())
        versions = get_json(node, "/v1/kv/h2/k?history")["versions"]
        assert [base64.b64decode(v["value"]) for v in versions] == [b"3", b"2"]
        assert node.cluster()["kv"]["history_kept"] == 2
    finally:
        cluster.close()
