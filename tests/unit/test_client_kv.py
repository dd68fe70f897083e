"""The client's key/value calls: requests and answers of the sans-I/O core (``kv_core``), the retry
rules of conditional writes, and both shells against an in-process fake of the API (``kv_fake``)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any

import msgspec
import pytest

from raftreg.client import AsyncRegistryClient, RegistryClient, kv_core, txn
from raftreg.client.core import Headers, Request, Response
from raftreg.client.kv_results import KVEntry, KVHistory, KVVersion
from raftreg.client.policy import CallPlan, Failure, NodeSelector, RetryPolicy, Send
from raftreg.errors import Conflict, NotFound, OutcomeUnknown
from tests.unit.kv_fake import FakeKV


def answer(status: int, body: Any = None, index: int | None = None) -> Response:
    headers = Headers([("X-Raftreg-Index", str(index))] if index is not None else [])
    return Response(status, headers, b"" if body is None else json.dumps(body).encode())


def entry_body(key: str, value: bytes, modify_index: int, flags: int = 0) -> dict[str, Any]:
    return {"key": key, "value": base64.b64encode(value).decode(), "flags": flags, "create_index": 2,
            "modify_index": modify_index, "lock_index": 0, "session": None}


# ---- requests -----------------------------------------------------------------------------------

def test_keys_are_quoted_with_their_slashes_kept() -> None:
    assert kv_core.get("app/db url?x=1#y").path == "/v1/kv/app/db%20url%3Fx%3D1%23y"
    assert kv_core.list_prefix("").target == "/v1/kv/?recurse=true"


def test_a_put_sends_raw_bytes_and_no_kv_write_is_retried() -> None:
    plain = kv_core.put("a", "héllo", flags=7)
    assert (plain.method, plain.body, plain.query) == ("PUT", "héllo".encode(), (("flags", "7"),))
    assert plain.content_type == "application/octet-stream" and not plain.idempotent and plain.answers == frozenset()
    cas = kv_core.put("a", b"\x00\xff", cas=0)
    assert cas.query == (("cas", "0"),) and not cas.idempotent and cas.answers == {409}
    assert not kv_core.delete("a").idempotent and not kv_core.delete("a", cas=3).idempotent


def test_reads_carry_consistency_and_blocking_options() -> None:
    req = kv_core.keys("app/", "/", index=10, wait=30)
    assert req.query == (("keys", "true"), ("separator", "/"), ("index", "10"), ("wait", "30s"))
    assert req.blocking and req.hold > 30
    assert kv_core.get("a", consistent=True).query == (("consistent", "true"),)


def test_a_transaction_encodes_base64_values_and_is_bounded() -> None:
    req = kv_core.txn([txn.put("a", b"\x01"), txn.cas("b", "x", 0), txn.check_index("c", 4), txn.get("d")])
    assert not req.idempotent and req.path == "/v1/txn"
    assert msgspec.json.decode(req.body or b"") == {"ops": [
        {"op": "set", "key": "a", "value": "AQ=="}, {"op": "cas", "key": "b", "value": "eA==", "index": 0},
        {"op": "check_index", "key": "c", "index": 4}, {"op": "get", "key": "d"}]}
    with pytest.raises(ValueError, match="at most 64"):
        kv_core.txn([txn.delete(f"k{i}") for i in range(65)])
    with pytest.raises(ValueError):
        kv_core.txn([])


# ---- answers ------------------------------------------------------------------------------------

def test_an_entry_decodes_its_value_and_takes_the_index_of_the_header() -> None:
    entry = kv_core.parse_entry(answer(200, entry_body("a", b"\x00bin", 9, flags=3), index=12))
    assert entry == KVEntry("a", b"\x00bin", 3, 2, 9, 0, None, 12)
    assert entry.to_wire()["value"] == base64.b64encode(b"\x00bin").decode()
    assert kv_core.parse_entry(answer(404, {"error": {"code": "not_found", "message": "a"}}, index=5)) is None
    absent = kv_core.parse_key_as_list(answer(404, None, index=5))
    assert absent.index == 5 and absent.entries == ()


def test_conditional_mismatches_are_results_not_errors() -> None:
    assert kv_core.parse_write(answer(409, {"error": {"code": "conflict", "message": "m"}}, index=8)).ok is False
    assert kv_core.parse_write(answer(200, {"ok": True, "index": 8})).index == 8
    gone = kv_core.parse_deleted(answer(404, None, index=3))
    assert (gone.ok, gone.deleted) == (True, 0)
    assert kv_core.parse_deleted(answer(409, None)).ok is False
    failed = kv_core.parse_txn(answer(409, {"error": {"code": "conflict", "message": "index", "field": "ops[2]"}}))
    assert (failed.ok, failed.failed, failed.error) == (False, 2, "index")
    done = kv_core.parse_txn(answer(200, {"index": 30, "results": [{"index": 30}, entry_body("d", b"v", 29)]}))
    assert done.ok and done.index == 30 and done.entries()[0] is None and done.entries()[1] is not None


def test_lists_are_sorted_and_an_absent_prefix_is_empty() -> None:
    body = {"index": 7, "entries": [entry_body("p/b", b"2", 7), entry_body("p/a", b"1", 6)]}
    found = kv_core.parse_list(answer(200, body, index=7))
    assert [e.key for e in found.entries] == ["p/a", "p/b"] and found.entries[0].value == b"1"
    assert kv_core.parse_list(answer(404, None, index=7)).entries == ()


def test_rollback_writes_the_old_version_conditionally_on_the_current_one() -> None:
    versions = (KVVersion(b"v3", 0, 2, 9), KVVersion(b"v2", 5, 2, 6))
    history = KVHistory(9, "a", versions)
    current = KVEntry("a", b"v3", modify_index=9)
    req = kv_core.rollback_write("a", history, current, 6)
    assert (req.body, req.query) == (b"v2", (("flags", "5"), ("cas", "9")))
    assert kv_core.rollback_write("a", history, None, 6).query[-1] == ("cas", "0")  # deleted since
    with pytest.raises(NotFound, match="index 4"):
        kv_core.rollback_write("a", history, current, 4)


# ---- the retry rules of conditional writes -------------------------------------------------------

NODES = ["http://n1", "http://n2", "http://n3"]


def plan_for(request: Request) -> tuple[CallPlan, Send]:
    policy = RetryPolicy(timeout=3.0, deadline=10.0)
    rng = random.Random(1)
    p = CallPlan(request, NodeSelector(NODES, policy, rng), policy, rng, 100.0)
    step = p.next(100.0)
    assert isinstance(step, Send)
    return p, step


@pytest.mark.parametrize("request_", [kv_core.put("a", b"1", cas=4), kv_core.delete("a", cas=4),
                                      kv_core.txn([txn.put("a", b"1")])], ids=["cas", "delete_cas", "txn"])
@pytest.mark.parametrize("how", ["504", "lost"])
def test_an_unknown_outcome_of_a_conditional_write_is_never_retried(request_: Request, how: str) -> None:
    p, step = plan_for(request_)
    with pytest.raises(OutcomeUnknown, match="not sent again"):
        if how == "504":
            p.answered(step, answer(504, {"error": {"code": "timeout", "message": "t"}}), 101.0)
        else:
            p.failed(step, Failure.LOST, "reset", 101.0)


def test_a_plain_put_is_not_sent_again_after_a_504_and_a_409_without_cas_stays_an_error() -> None:
    """A set sent again after an unknown outcome could land after another client's change of the
    key and undo it (the lab chaos run's kv:chaos/k0 violation, on the client side)."""
    p, step = plan_for(kv_core.put("a", b"1"))
    with pytest.raises(OutcomeUnknown):
        p.answered(step, answer(504, {"error": {"code": "timeout", "message": "t"}}), 101.0)
    p, step = plan_for(kv_core.put("a", b"1"))
    with pytest.raises(Conflict):
        p.answered(step, answer(409, {"error": {"code": "conflict", "message": "locked"}}), 101.0)


# ---- both shells, against the fake ----------------------------------------------------------------

def test_the_blocking_client_reads_writes_and_rolls_back(fake: FakeKV) -> None:
    with RegistryClient([f"127.0.0.1:{fake.port}"], deadline=3.0) as c:
        assert c.kv_get("app/a") is None
        first = c.kv_put("app/a", "one", flags=2)
        assert first.ok and c.kv_put("app/a", "x", cas=first.index - 1).ok is False
        second = c.kv_put("app/a", b"two", cas=first.index)
        assert second.ok and second.index > first.index
        c.kv_put("app/b/c", b"three")
        got = c.kv_get("app/a")
        assert got is not None and (got.value, got.modify_index) == (b"two", second.index)
        assert [e.key for e in c.kv_list("app/").entries] == ["app/a", "app/b/c"]
        assert c.kv_keys("app/").keys == ("app/a", "app/b/c")
        assert [v.value for v in c.kv_history("app/a").versions] == [b"two", b"one"]
        back = c.kv_rollback("app/a", first.index)
        got = c.kv_get("app/a")
        assert back.ok and got is not None and (got.value, got.flags) == (b"one", 2)
        with pytest.raises(NotFound):
            c.kv_rollback("app/a", 1)
        assert c.kv_delete("app/", recurse=True).deleted == 2 and c.kv_delete("app/a").deleted == 0
    assert ("PUT", f"/v1/kv/app/a?cas={first.index}") in fake.requests


def test_the_blocking_watch_yields_the_key_now_and_at_each_change(fake: FakeKV) -> None:
    with RegistryClient([f"127.0.0.1:{fake.port}"], deadline=3.0) as c:
        watch = c.watch_kv("w/k", wait=5)
        assert next(watch).entries == ()
        fake.put("w/other", b"ignored")
        fake.put("w/k", b"1")
        seen = next(watch)
        assert [e.value for e in seen.entries] == [b"1"]
        assert all("index=" not in path for _, path in fake.requests[:1])  # the first read does not block


async def test_the_async_client_and_its_prefix_watch(fake: FakeKV) -> None:
    async with AsyncRegistryClient([f"127.0.0.1:{fake.port}"], deadline=3.0) as c:
        await c.kv_put("p/a", b"1")
        watch = c.watch_kv("p/", recurse=True, wait=5)
        assert [e.key for e in (await anext(watch)).entries] == ["p/a"]
        await c.kv_put("p/b", b"2")
        assert [e.key for e in (await asyncio.wait_for(anext(watch), 5)).entries] == ["p/a", "p/b"]
        await watch.aclose()
        result = await c.kv_put("p/a", b"3", cas=0)
        assert result.ok is False
        assert (await c.kv_delete("p/b")).deleted == 1


def test_a_watch_whose_index_goes_backwards_starts_over(fake: FakeKV) -> None:
    """API.md: a client that sees the index go backwards (a rebuilt cluster) resets to 0."""
    with RegistryClient([f"127.0.0.1:{fake.port}"], deadline=3.0) as c:
        for n in range(5):
            fake.put("r/k", str(n).encode())
        watch = c.watch_kv("r/", recurse=True, wait=1)
        assert next(watch).index == 6
        fake.data.clear()  # the cluster is rebuilt: its index starts low again
        fake.index = 1
        fake.put("r/new", b"x")
        rebuilt = next(watch)
        assert rebuilt.index == 2 and [e.key for e in rebuilt.entries] == ["r/new"]
        assert fake.requests[-1][1].endswith("index=0&wait=1s")  # from 0 again: answered at once
