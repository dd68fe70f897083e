"""Blocking queries and read waits on one real node (API.md "Indexes and headers", "Consistency of
reads", "Blocking queries"): ``?index=N&wait=D``, ``?min_index=N``, ``?consistent``, parameter
validation, and the wake-up counters of ``GET /v1/cluster`` ("watches").

Parked requests run in threads; a test waits until ``/v1/cluster`` shows them parked before it
writes, and every test ends with all of its parked requests answered (the counters are shared by
the whole module)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from concurrent.futures import Future
from dataclasses import dataclass
from email.message import Message

import pytest

from raftreg.client import AsyncRegistryClient
from raftreg.testing import wait_for

pytestmark = pytest.mark.cluster

PARK_TIMEOUT = 30.0  # deadline for requests to show up as parked (loaded 2-core machine)
ANSWER_TIMEOUT = 15.0  # deadline for a woken request to answer
LONG_WAIT = "60s"  # blocking queries that a test wakes itself; never reached
SLACK = 1.0  # scheduling slack on top of a timed wait (loaded 2-core machine)


def instance(address="10.0.0.1", port=80, **extra):
    return {"address": address, "port": port, **extra}


@dataclass
class Resp:
    """The same shape as conftest's response (status, headers, body), for requests made here."""

    status: int
    headers: Message
    body: bytes

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name)


def get(api, path, timeout=90.0):
    """GET with a socket timeout long enough for a parked request (Http.get gives up after 15 s)."""
    conn = http.client.HTTPConnection(api.host, api.port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return Resp(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def timed_get(api, path):
    t0 = time.monotonic()
    resp = get(api, path)
    return resp, time.monotonic() - t0


def index_of(resp):
    assert resp.status in (200, 404), (resp.status, resp.body)
    value = resp.header("X-Raftreg-Index")
    assert value is not None and value.isdigit(), resp.headers
    return int(value)


def watches(api):
    return api.cluster()["watches"]


def wait_parked(api, count, key="waiting"):
    """Wait until ``count`` requests are parked (blocking queries, or min_index reads)."""
    return wait_for(lambda: (w := watches(api))[key] >= count and w, PARK_TIMEOUT,
                    f"{count} parked requests ({key})")


def park(pool, api, paths):
    return [pool.submit(timed_get, api, p) for p in paths]


def answers(futures: list[Future], timeout=ANSWER_TIMEOUT):
    return [f.result(timeout=timeout) for f in futures]


def assert_pending(futures):
    done = [f.result() for f in futures if f.done()]
    assert not done, f"{len(done)} parked requests answered early: {[(r.status, r.body[:200]) for r, _ in done]}"


# ---- validation ------------------------------------------------------------------------------

READ_PATHS = ["/v1/services", "/v1/services/valid", "/v1/services/valid/instances/v1"]


@pytest.fixture(scope="module")
def valid(api):
    api.put_ok("valid", "v1", instance())


@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize(("query", "field"), [
    ("index=-1", "index"),
    ("index=abc", "index"),
    ("index=1.5", "index"),
    ("index=", "index"),
    ("index=%2B5", "index"),  # "+5"
    ("index=1e3", "index"),
    ("index=99999999999999999999", "index"),
    ("min_index=-3", "min_index"),
    ("min_index=x", "min_index"),
    ("min_index=2.0", "min_index"),
    ("index=1&wait=abc", "wait"),
    ("index=1&wait=-1s", "wait"),
    ("index=1&wait=-1", "wait"),
    ("index=1&wait=", "wait"),
    ("index=1&wait=nan", "wait"),
    ("index=1&wait=inf", "wait"),
    ("index=1&wait=10x", "wait"),
    ("min_index=1&wait=soon", "wait"),
])
def test_bad_blocking_parameters_are_400_naming_the_field(api, valid, path, query, field):
    t0 = time.monotonic()
    resp = api.get(f"{path}?{query}")
    api.assert_error(resp, 400, "invalid_argument", field=field)
    assert time.monotonic() - t0 < 5.0, "a rejected blocking query must not wait first"


def test_wait_over_the_maximum_is_accepted(api):
    """Over 10 minutes is clamped, not a 400 (the clamp itself is not observable in a test)."""
    current = index_of(api.get("/v1/services"))
    for wait in ("1h", "3600", "11m"):
        resp, elapsed = timed_get(api, f"/v1/services?index={current - 1}&wait={wait}")
        assert resp.status == 200, resp.body
        assert index_of(resp) == current
        assert elapsed < 5.0


# ---- blocking queries ------------------------------------------------------------------------

def test_blocking_query_below_the_current_index_answers_at_once(api):
    put = api.put_ok("instant", "i1", instance())
    index = put["index"]
    for path in ("/v1/services/instant", "/v1/services", "/v1/services/instant/instances/i1"):
        for n in (0, index - 1):
            resp, elapsed = timed_get(api, f"{path}?index={n}&wait=30s")
            assert resp.status == 200, resp.body
            assert elapsed < 5.0, f"{path}?index={n} waited {elapsed:.2f}s"
            assert index_of(resp) >= index
    resp = get(api, f"/v1/services/instant?index={index - 1}&wait=30s")
    assert resp.json()["index"] == index == index_of(resp)
    assert [i["id"] for i in resp.json()["instances"]] == ["i1"]


def test_blocking_query_at_the_current_index_waits_for_wait_plus_at_most_a_sixteenth(api, pool, quiet):
    index = api.put_ok("timed", "t1", instance())["index"]
    plain = api.get("/v1/services/timed")
    paths = [f"/v1/services/timed?index={index}&wait={w}" for w in ("1s", "1", "1000ms")]
    paths += [f"/v1/services/timed/instances/t1?index={index}&wait=1s"]
    catalog = index_of(api.get("/v1/services"))
    paths += [f"/v1/services?index={catalog}&wait=1s"]
    results = answers(park(pool, api, paths))
    for path, (resp, elapsed) in zip(paths, results, strict=True):
        assert resp.status == 200, (path, resp.body)
        assert 1.0 - 0.01 <= elapsed <= 1.0 + 1.0 / 16 + SLACK, f"{path} answered after {elapsed:.3f}s"
    for resp, _ in results[:3]:
        assert index_of(resp) == index
        assert resp.body == plain.body  # a timed-out blocking query is a normal read
    assert index_of(results[4][0]) == catalog
    after = watches(api)
    assert after["timeouts"] - quiet["timeouts"] == len(paths)
    assert after["wakeups"] == quiet["wakeups"]
    assert after["waiting"] == 0


def test_wait_zero_answers_at_once(api):
    index = api.put_ok("zero", "z1", instance())["index"]
    resp, elapsed = timed_get(api, f"/v1/services/zero?index={index}&wait=0s")
    assert resp.status == 200 and index_of(resp) == index
    assert elapsed < 2.0


def test_write_to_the_watched_service_wakes_it_promptly(api, pool, quiet):
    index = api.put_ok("woken", "w1", instance())["index"]
    # no wait given: the default (5 minutes) holds the request until the write
    [parked] = park(pool, api, [f"/v1/services/woken?index={index}"])
    wait_parked(api, quiet["waiting"] + 1)
    assert_pending([parked])
    t_write = time.monotonic()
    put = api.put_ok("woken", "w2", instance(port=81))
    resp, _ = parked.result(timeout=ANSWER_TIMEOUT)
    woke_after = time.monotonic() - t_write
    assert resp.status == 200, resp.body
    assert woke_after < 3.0, f"the watcher answered {woke_after:.2f}s after the write"
    assert index_of(resp) == put["index"] == resp.json()["index"] > index
    assert [(i["id"], i["port"]) for i in resp.json()["instances"]] == [("w1", 80), ("w2", 81)]
    after = watches(api)
    assert after["wakeups"] - quiet["wakeups"] == 1
    assert after["timeouts"] == quiet["timeouts"]


def test_deleting_from_the_watched_service_wakes_it(api, pool, quiet):
    api.put_ok("shrinking", "s1", instance())
    index = api.put_ok("shrinking", "s2", instance())["index"]
    futures = park(pool, api, [f"/v1/services/shrinking?index={index}&wait={LONG_WAIT}",
                               f"/v1/services/shrinking/instances/s2?index={index}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 2)
    deleted = api.delete_ok("shrinking", "s2")
    (listing, _), (single, _) = answers(futures)
    assert [i["id"] for i in listing.json()["instances"]] == ["s1"]
    assert index_of(listing) == deleted
    api.assert_error(single, 404, "not_found")
    assert index_of(single) == deleted
    # the last instance goes: the service disappears, and its watchers see that too
    [gone] = park(pool, api, [f"/v1/services/shrinking?index={deleted}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 1)
    last = api.delete_ok("shrinking", "s1")
    resp, _ = gone.result(timeout=ANSWER_TIMEOUT)
    assert resp.json()["instances"] == [] and index_of(resp) == last


def test_watching_an_absent_service_wakes_when_it_is_created(api, pool, quiet):
    before = api.get("/v1/services/newborn")
    assert before.json()["instances"] == []
    absent_index = index_of(before)
    assert absent_index > 0
    [parked] = park(pool, api, [f"/v1/services/newborn?index={absent_index}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 1)
    put = api.put_ok("newborn", "n1", instance())
    resp, _ = parked.result(timeout=ANSWER_TIMEOUT)
    assert resp.status == 200, resp.body
    assert index_of(resp) == put["index"] > absent_index
    assert [i["id"] for i in resp.json()["instances"]] == ["n1"]


def test_instance_blocking_query_answers_200_once_registered(api, pool, quiet):
    api.put_ok("single", "other", instance())
    missing = api.get("/v1/services/single/instances/wanted")
    api.assert_error(missing, 404, "not_found")
    n = index_of(missing)
    [parked] = park(pool, api, [f"/v1/services/single/instances/wanted?index={n}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 1)
    assert_pending([parked])
    put = api.put_ok("single", "wanted", instance(port=9000))
    resp, _ = parked.result(timeout=ANSWER_TIMEOUT)
    assert resp.status == 200, resp.body
    body = resp.json()
    assert (body["id"], body["port"], body["modify_index"]) == ("wanted", 9000, put["index"])
    assert index_of(resp) == put["index"]


def test_catalog_watcher_woken_by_a_new_service(api, pool, quiet):
    catalog = api.get("/v1/services")
    n = index_of(catalog)
    assert catalog.json()["index"] == n
    [parked] = park(pool, api, [f"/v1/services?index={n}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 1)
    put = api.put_ok("brand-new", "b1", instance())
    resp, _ = parked.result(timeout=ANSWER_TIMEOUT)
    assert resp.status == 200, resp.body
    assert index_of(resp) == resp.json()["index"] == put["index"]
    brand_new = {"name": "brand-new", "instances": 1, "passing": 1, "warning": 0, "critical": 0, "tags": []}
    assert brand_new in resp.json()["services"]


def test_only_the_watched_topic_wakes_and_each_watcher_counts_once(api, pool, quiet):
    k = 10
    api.put_ok("topic-a", "a1", instance())
    a_index = index_of(api.get("/v1/services/topic-a"))
    futures = park(pool, api, [f"/v1/services/topic-a?index={a_index}&wait={LONG_WAIT}"] * k)
    parked = wait_parked(api, quiet["waiting"] + k)
    assert parked["waiting"] == quiet["waiting"] + k

    last_b = 0
    for i in range(20):  # the first one creates service topic-b (a catalog change)
        last_b = api.put_ok("topic-b", f"b{i}", instance(port=1000 + i))["index"]
    same = api.put_ok("topic-a", "a1", instance())  # identical: changes nothing
    assert same["modify_index"] == a_index
    api.assert_error(api.delete("/v1/services/topic-a/instances/nobody"), 404, "not_found")
    api.put_ok("topic-c", "c1", instance())  # a last unrelated write: everything above was drained

    after = watches(api)
    assert after["wakeups"] == quiet["wakeups"], "writes to other services woke the topic-a watchers"
    assert after["waiting"] == quiet["waiting"] + k
    assert after["timeouts"] == quiet["timeouts"]
    assert_pending(futures)
    assert index_of(api.get("/v1/services/topic-a")) == a_index < last_b

    put = api.put_ok("topic-a", "a2", instance())
    results = answers(futures)
    for resp, _ in results:
        assert resp.status == 200, resp.body
        assert index_of(resp) == put["index"]
        assert [i["id"] for i in resp.json()["instances"]] == ["a1", "a2"]
    assert len({resp.body for resp, _ in results}) == 1
    final = watches(api)
    assert final["wakeups"] - quiet["wakeups"] == k
    assert final["waiting"] == quiet["waiting"]
    assert final["timeouts"] == quiet["timeouts"]


def test_a_new_service_wakes_catalog_watchers_but_not_other_services(api, pool, quiet):
    api.put_ok("existing-a", "a1", instance())
    a_index = index_of(api.get("/v1/services/existing-a"))
    catalog = index_of(api.get("/v1/services"))
    [a_watch] = park(pool, api, [f"/v1/services/existing-a?index={a_index}&wait={LONG_WAIT}"])
    [catalog_watch] = park(pool, api, [f"/v1/services?index={catalog}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 2)
    created = api.put_ok("created-b", "b1", instance())
    resp, _ = catalog_watch.result(timeout=ANSWER_TIMEOUT)
    assert index_of(resp) == created["index"]
    assert "created-b" in [s["name"] for s in resp.json()["services"]]
    api.put_ok("created-b", "b2", instance())  # another write to b: still nothing for a's watcher
    after = watches(api)
    assert after["wakeups"] - quiet["wakeups"] == 1, after
    assert after["waiting"] == quiet["waiting"] + 1
    assert_pending([a_watch])
    put = api.put_ok("existing-a", "a2", instance())
    resp, _ = a_watch.result(timeout=ANSWER_TIMEOUT)
    assert index_of(resp) == put["index"]
    assert watches(api)["wakeups"] - quiet["wakeups"] == 2


def test_idempotent_writes_wake_nobody_not_even_catalog_watchers(api, pool, quiet):
    api.put_ok("steady", "s1", instance(tags=["x"], meta={"k": "v"}))
    s_index = index_of(api.get("/v1/services/steady"))
    catalog = index_of(api.get("/v1/services"))
    futures = park(pool, api, [f"/v1/services/steady?index={s_index}&wait={LONG_WAIT}",
                               f"/v1/services/steady/instances/s1?index={s_index}&wait={LONG_WAIT}",
                               f"/v1/services?index={catalog}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 3)
    commit = api.commit_index()
    for _ in range(3):
        again = api.put_ok("steady", "s1", instance(tags=["x"], meta={"k": "v"}))
        assert again["modify_index"] == s_index
        assert again["index"] > commit  # the write went through the log ...
        api.assert_error(api.delete("/v1/services/steady/instances/absent"), 404, "not_found")
        api.assert_error(api.delete("/v1/services/never-existed/instances/absent"), 404, "not_found")
    after = watches(api)  # ... and woke nobody
    assert after["wakeups"] == quiet["wakeups"]
    assert after["waiting"] == quiet["waiting"] + 3
    assert_pending(futures)
    assert index_of(api.get("/v1/services")) == catalog
    assert index_of(api.get("/v1/services/steady")) == s_index

    put = api.put_ok("steady", "s1", instance(tags=["y"], meta={"k": "v"}))  # a real change
    for resp, _ in answers(futures):
        assert resp.status == 200, resp.body
        assert index_of(resp) == put["index"]
    assert watches(api)["wakeups"] - quiet["wakeups"] == 3


def test_a_client_that_goes_away_stops_its_wait(api, quiet):
    index = api.put_ok("abandoned", "x1", instance())["index"]
    sock = socket.create_connection((api.host, api.port), timeout=10.0)
    try:
        sock.sendall(f"GET /v1/services/abandoned?index={index}&wait={LONG_WAIT} HTTP/1.1\r\n"
                     f"Host: {api.host}\r\n\r\n".encode())
        wait_parked(api, quiet["waiting"] + 1)
    finally:
        sock.close()
    wait_for(lambda: watches(api)["waiting"] == quiet["waiting"], 30.0, "the abandoned wait to end")
    after = watches(api)
    assert (after["wakeups"], after["timeouts"]) == (quiet["wakeups"], quiet["timeouts"])


def test_filtered_watchers_get_their_own_filtered_answer(api, pool, quiet):
    api.put_ok("filtered", "f1", instance(tags=["blue"]))
    index = index_of(api.get("/v1/services/filtered"))
    futures = park(pool, api, [f"/v1/services/filtered?index={index}&wait={LONG_WAIT}&tag=blue",
                               f"/v1/services/filtered?index={index}&wait={LONG_WAIT}&tag=green",
                               f"/v1/services/filtered?index={index}&wait={LONG_WAIT}"])
    wait_parked(api, quiet["waiting"] + 3)
    put = api.put_ok("filtered", "f2", instance(tags=["green"]))
    (blue, _), (green, _), (every, _) = answers(futures)
    assert [i["id"] for i in blue.json()["instances"]] == ["f1"]
    assert [i["id"] for i in green.json()["instances"]] == ["f2"]
    assert [i["id"] for i in every.json()["instances"]] == ["f1", "f2"]
    assert {index_of(r) for r in (blue, green, every)} == {put["index"]}


# ---- min_index -------------------------------------------------------------------------------

def test_min_index_of_a_just_returned_write_answers_at_once(api):
    for i in range(20):
        put = api.put_ok("ryw", f"r{i}", instance(port=100 + i))
        resp, elapsed = timed_get(api, f"/v1/services/ryw/instances/r{i}?min_index={put['index']}")
        assert resp.status == 200, resp.body
        assert resp.json()["modify_index"] == put["index"]
        assert elapsed < 2.0
        listing = get(api, f"/v1/services/ryw?min_index={put['index']}&wait=1s")
        assert f"r{i}" in [x["id"] for x in listing.json()["instances"]]
        assert index_of(listing) >= put["index"]


def test_min_index_in_the_future_times_out_with_504(api, pool, quiet):
    future_index = api.commit_index() + 1_000_000
    paths = [f"/v1/services/ryw?min_index={future_index}&wait=1s",
             f"/v1/services?min_index={future_index}&wait=1s",
             f"/v1/services/ryw/instances/r0?min_index={future_index}&wait=1s",
             f"/v1/services/ryw?min_index={future_index}"]  # default wait: 5 s
    futures = park(pool, api, paths)
    during = wait_parked(api, quiet["applied_waiting"] + 1, key="applied_waiting")
    assert during["waiting"] == quiet["waiting"], "a min_index read is not a blocking query"
    results = answers(futures, timeout=30.0)
    for path, (resp, elapsed) in zip(paths[:3], results[:3], strict=True):
        api.assert_error(resp, 504, "timeout", field=None)
        assert 1.0 - 0.01 <= elapsed <= 3.0, f"{path} answered after {elapsed:.2f}s"
    resp, elapsed = results[3]
    api.assert_error(resp, 504, "timeout", field=None)
    assert 5.0 - 0.01 <= elapsed <= 5.0 + 2.0
    wait_for(lambda: watches(api)["applied_waiting"] == 0, 10.0, "no min_index waits left")


def test_min_index_wait_ends_when_the_index_is_applied(api, pool, quiet):
    target = api.commit_index() + 1  # the next entry
    [parked] = park(pool, api, [f"/v1/services/later/instances/l1?min_index={target}&wait=30s"])
    wait_parked(api, quiet["applied_waiting"] + 1, key="applied_waiting")
    assert_pending([parked])
    put = api.put_ok("later", "l1", instance())
    assert put["index"] >= target
    resp, _ = parked.result(timeout=ANSWER_TIMEOUT)
    assert resp.status == 200, resp.body
    assert resp.json()["modify_index"] == put["index"]
    assert watches(api)["applied_waiting"] == 0


# ---- consistent and write indexes ------------------------------------------------------------

def test_consistent_reads_use_the_read_index_and_write_nothing_to_the_log(api):
    put = api.put_ok("linearized", "l1", instance())
    for path in ("/v1/services/linearized", "/v1/services", "/v1/services/linearized/instances/l1"):
        plain = api.get(path)
        before, rounds = api.commit_index(), api.cluster()["read_index_rounds"]["leader"]
        resp = api.get(f"{path}?consistent")
        assert resp.status == 200, resp.body
        assert api.commit_index() == before, f"{path}?consistent wrote to the log"
        assert api.cluster()["read_index_rounds"]["leader"] > rounds, f"{path}?consistent took no read index"
        assert index_of(resp) == index_of(plain) >= put["index"]
        assert resp.json() == plain.json()
    combined = get(api, f"/v1/services/linearized?consistent&index={put['index'] - 1}&wait=30s")
    assert combined.status == 200 and index_of(combined) == put["index"]


def test_writes_return_their_index_in_body_and_header(api):
    before = api.commit_index()
    resp = api.put("/v1/services/indexed/instances/i1", instance())
    assert resp.status == 200, resp.body
    put_index = resp.json()["index"]
    assert resp.header("X-Raftreg-Index") == str(put_index)
    assert put_index > before
    assert resp.json()["modify_index"] == put_index
    resp = api.delete("/v1/services/indexed/instances/i1")
    assert resp.status == 200, resp.body
    assert resp.json() == {"deleted": True, "index": int(resp.header("X-Raftreg-Index"))}
    assert resp.json()["index"] > put_index


def test_read_headers_match_body_index_for_blocking_reads(api):
    index = api.put_ok("headers", "h1", instance())["index"]
    resp = get(api, f"/v1/services/headers?index={index - 1}&wait=10s")
    assert json.loads(resp.body)["index"] == index_of(resp) == index
    assert resp.header("X-Raftreg-Leader") == "n1"
    assert resp.header("X-Raftreg-Last-Contact") == "0"


# ---- the Python client ------------------------------------------------------------------------

async def test_client_watch_sees_each_change_once_in_order(api, cluster):
    api.put_ok("client-watched", "c0", instance())
    async with AsyncRegistryClient([cluster.config.node("n1").http]) as client:
        stream = client.watch("/v1/services/client-watched", [("tag", "keep")], wait=30.0)
        index, body = await asyncio.wait_for(stream.__anext__(), 10.0)
        assert body["instances"] == [] and index == body["index"] > 0
        puts = []
        for i in range(1, 4):
            put = await asyncio.to_thread(api.put_ok, "client-watched", f"c{i}", instance(tags=["keep"]))
            puts.append(put["index"])
            index, body = await asyncio.wait_for(stream.__anext__(), 10.0)
            assert index == puts[-1] == body["index"]
            assert [x["id"] for x in body["instances"]] == [f"c{j}" for j in range(1, i + 1)]
        # neither an unrelated nor an idempotent write makes it yield: the next result is c4's
        await asyncio.to_thread(api.put_ok, "client-unrelated", "u1", instance())
        await asyncio.to_thread(api.put_ok, "client-watched", "c3", instance(tags=["keep"]))
        c4 = await asyncio.to_thread(api.put_ok, "client-watched", "c4", instance(tags=["keep"]))
        index, body = await asyncio.wait_for(stream.__anext__(), 10.0)
        assert index == c4["index"] and len(body["instances"]) == 4
        await stream.aclose()


async def test_one_client_runs_more_than_100_watches(api, cluster, quiet):
    n = 150
    api.put_ok("many", "m0", instance())
    first = [0] * n
    async with AsyncRegistryClient([cluster.config.node("n1").http]) as client:

        async def watch(i):
            async for index, _ in client.watch("/v1/services/many", wait=30.0):
                first[i] = first[i] or index

        tasks = [asyncio.create_task(watch(i)) for i in range(n)]
        try:
            deadline = time.monotonic() + 10.0
            while not all(first) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    assert all(first), f"only {sum(1 for f in first if f)} of {n} watches answered within 10 s"
