"""Blocking queries on keys and prefixes on one real node: a write wakes exactly the watchers of
that key and of the prefixes it lies under (counted by ``GET /v1/cluster`` "watches"), a blocking
GET of a missing key answers when the key appears, and a deletion wakes the prefix.

Parked requests run in threads; each test waits until they show up as parked before it writes."""

from __future__ import annotations

import pytest

from tests.http.test_http_watches import answers, assert_pending, index_of, park, wait_parked, watches

pytestmark = pytest.mark.cluster

LONG_WAIT = "60s"


def put_index(api, key, value=b"v"):
    resp = api.request("PUT", f"/v1/kv/{key}", value, content_type=None)
    assert resp.status == 200, resp.body
    return resp.json()["index"]


def current(api, path):
    return index_of(api.get(path))


def test_a_write_wakes_only_watchers_of_its_key_and_its_prefixes(api, pool, quiet):
    put_index(api, "w/app/a")
    put_index(api, "w/svc/x")
    paths = {
        "key": "/v1/kv/w/app/a",
        "app": "/v1/kv/w/app/?recurse",
        "root": "/v1/kv/w/?keys",
        "svc": "/v1/kv/w/svc/?recurse",
        "svc_keys": "/v1/kv/w/svc?keys&separator=/",
        "other_key": "/v1/kv/w/app/ab",  # missing: its own key only, not a prefix of w/app/a
    }
    index = {name: current(api, path) for name, path in paths.items()}
    parked = {name: park(pool, api, [f"{path}{'&' if '?' in path else '?'}index={index[name]}&wait={LONG_WAIT}"])[0]
              for name, path in paths.items()}
    wait_parked(api, quiet["waiting"] + len(parked))
    before = watches(api)

    written = put_index(api, "w/app/a", b"new")
    woken = {name: parked[name] for name in ("key", "app", "root")}
    for name, (resp, _) in zip(woken, answers(list(woken.values())), strict=True):
        assert resp.status == 200 and index_of(resp) == written, (name, resp.body)
    assert watches(api)["wakeups"] - before["wakeups"] == 3
    assert_pending([parked[name] for name in ("svc", "svc_keys", "other_key")])

    written = put_index(api, "w/svc/y")
    for resp, _ in answers([parked["svc"], parked["svc_keys"]]):
        assert index_of(resp) == written
    assert_pending([parked["other_key"]])

    created = put_index(api, "w/app/ab")
    (resp, _), = answers([parked["other_key"]])
    assert resp.status == 200 and index_of(resp) == created
    assert resp.json()["key"] == "w/app/ab"


def test_a_blocking_get_of_a_missing_key_answers_when_it_appears(api, pool, quiet):
    missing = api.get("/v1/kv/appear/k")
    assert missing.status == 404
    future, = park(pool, api, [f"/v1/kv/appear/k?index={index_of(missing)}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 1)
    assert_pending([future])
    created = put_index(api, "appear/k", b"here")
    (resp, _), = answers([future])
    assert resp.status == 200 and index_of(resp) == created


def test_deletions_wake_prefix_watchers_and_move_the_index(api, pool, quiet):
    put_index(api, "wd/a")
    put_index(api, "wd/b/c")
    at = current(api, "/v1/kv/wd/?recurse")
    future, = park(pool, api, [f"/v1/kv/wd/?recurse&index={at}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 1)
    resp = api.delete("/v1/kv/wd/b/?recurse")
    assert resp.json()["deleted"] == 1
    (answer, _), = answers([future])
    assert index_of(answer) == resp.json()["index"]
    assert [e["key"] for e in answer.json()["entries"]] == ["wd/a"]


def test_failed_cas_and_absent_deletes_wake_nobody(api, pool, quiet):
    index = put_index(api, "quiet/k")
    future, = park(pool, api, [f"/v1/kv/quiet/?recurse&index={index}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 1)
    assert api.request("PUT", f"/v1/kv/quiet/k?cas={index + 50}", b"x", content_type=None).status == 409
    assert api.delete("/v1/kv/quiet/absent").json()["deleted"] == 0
    assert api.request("PUT", "/v1/kv/quietly/other", b"x", content_type=None).status == 200
    before = watches(api)["wakeups"]
    assert_pending([future])
    assert watches(api)["wakeups"] == before
    written = put_index(api, "quiet/k")
    (resp, _), = answers([future])
    assert index_of(resp) == written
