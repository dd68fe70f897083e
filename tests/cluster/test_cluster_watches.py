"""Blocking queries, ``min_index`` and ``?consistent`` on real 3-node clusters (API.md "Consistency of
reads", "Blocking queries"): per-topic wake-ups on followers and on the leader, a snapshot restore on
a lagging node waking every waiter, read-your-writes across nodes, consistent reads on a node cut off
from the majority, a herd of client watchers across a leader kill, and a graceful stop with parked
watchers."""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest
from cluster_helpers import cluster_snapshot, force_snapshot, in_thread, last_run_log

from raftreg.client import AsyncRegistryClient, RaftregError
from raftreg.config import RaftTuning, split_hostport
from raftreg.testing import LocalCluster, http_json, wait_for

pytestmark = pytest.mark.cluster

PARK_TIMEOUT = 30.0
ANSWER_TIMEOUT = 30.0
LONG_WAIT = "120s"  # blocking queries a test wakes itself: never reached


class Answer:
    """A read: status, decoded body, X-Raftreg-Index, Retry-After, seconds it took."""

    def __init__(self, status: int, body: Any, index: int | None, retry_after: str | None, elapsed: float) -> None:
        self.status, self.body, self.index, self.retry_after, self.elapsed = status, body, index, retry_after, elapsed

    def __repr__(self) -> str:
        return f"Answer({self.status}, index={self.index}, {self.elapsed:.2f}s, {str(self.body)[:300]})"


def read(url: str, timeout: float = 150.0) -> Answer:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            raw, status, headers = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as err:
        raw, status, headers = err.read(), err.code, err.headers
    except OSError as exc:
        return Answer(0, repr(exc), None, None, time.monotonic() - t0)
    index = headers.get("X-Raftreg-Index")
    return Answer(status, json.loads(raw) if raw else None, int(index) if index else None,
                  headers.get("Retry-After"), time.monotonic() - t0)


def put(cluster: LocalCluster, node: str, service: str, instance_id: str, port: int = 80) -> int:
    code, body = http_json(f"{cluster.url(node)}/v1/services/{service}/instances/{instance_id}", method="PUT",
                           body={"address": "10.1.0.1", "port": port}, timeout=20.0)
    assert code == 200, f"PUT {service}/{instance_id} on {node}: {code} {body}; {cluster_snapshot(cluster)}"
    return int(body["index"])


def watches(cluster: LocalCluster, name: str) -> dict[str, int]:
    st = wait_for(lambda: cluster.status(name, timeout=5.0), 30.0, f"/v1/cluster on {name}")
    return dict(st["watches"])


def wait_parked(cluster: LocalCluster, name: str, count: int) -> dict[str, int]:
    return wait_for(lambda: (w := watches(cluster, name))["waiting"] >= count and w, PARK_TIMEOUT,
                    f"{count} parked blocking queries on {name}")


def park(pool: ThreadPoolExecutor, urls: list[str]) -> list[Future[Answer]]:
    return [pool.submit(read, u) for u in urls]


def results(futures: list[Future[Answer]], timeout: float = ANSWER_TIMEOUT) -> list[Answer]:
    return [f.result(timeout=timeout) for f in futures]


def assert_pending(futures: list[Future[Answer]]) -> None:
    done = [f.result() for f in futures if f.done()]
    assert not done, f"{len(done)} parked requests answered early: {done[:3]}"


@pytest.fixture
def pool() -> Any:
    executor = ThreadPoolExecutor(max_workers=64)
    yield executor
    # Do not wait for requests still parked after a failure: the cluster is killed next.
    executor.shutdown(wait=False, cancel_futures=True)


# ---- (a) per-topic wake-ups on a follower and on the leader ------------------------------------

def test_writes_to_other_services_wake_no_watcher_on_leader_or_follower(
        cluster: LocalCluster, pool: ThreadPoolExecutor) -> None:
    k = 10
    leader = cluster.leader()
    follower, third = cluster.followers()
    put(cluster, leader, "watched", "a1")
    cluster.wait_converged(timeout=60.0)
    nodes = [leader, follower]
    base = {n: watches(cluster, n) for n in nodes}
    a_index = {n: read(f"{cluster.url(n)}/v1/services/watched").index for n in nodes}
    assert a_index[leader] == a_index[follower]
    futures = {n: park(pool, [f"{cluster.url(n)}/v1/services/watched?index={a_index[n]}&wait={LONG_WAIT}"] * k)
               for n in nodes}
    for n in nodes:
        wait_parked(cluster, n, base[n]["waiting"] + k)

    last = 0
    for i in range(20):  # the first creates service "other": a catalog change, not a "watched" one
        last = put(cluster, random.choice(cluster.names), "other", f"o{i}", port=1000 + i)
    code, same = put_instance_same(cluster, follower)
    assert code == 200 and same["modify_index"] == a_index[leader], same
    code, _ = http_json(f"{cluster.url(third)}/v1/services/watched/instances/ghost", method="DELETE", timeout=20.0)
    assert code == 404
    last = max(last, put(cluster, third, "third-service", "t1"))
    cluster.wait_converged(timeout=60.0, min_index=last)

    for n in nodes:
        w = watches(cluster, n)
        assert w["wakeups"] == base[n]["wakeups"], f"writes to other services woke watchers on {n}: {w}"
        assert w["waiting"] == base[n]["waiting"] + k, (n, w)
        assert_pending(futures[n])
        assert read(f"{cluster.url(n)}/v1/services/watched").index == a_index[n]

    woke = put(cluster, third, "watched", "a2")
    for n in nodes:
        for ans in results(futures[n]):
            assert ans.status == 200, ans
            assert ans.index == woke == ans.body["index"]
            assert [i["id"] for i in ans.body["instances"]] == ["a1", "a2"]
        w = watches(cluster, n)
        assert w["wakeups"] - base[n]["wakeups"] == k, (n, w)
        assert w["waiting"] == base[n]["waiting"], (n, w)


def put_instance_same(cluster: LocalCluster, node: str) -> tuple[int, Any]:
    """Re-register "watched"/a1 exactly as ``put`` did: an idempotent write that changes nothing."""
    return http_json(f"{cluster.url(node)}/v1/services/watched/instances/a1", method="PUT",
                     body={"address": "10.1.0.1", "port": 80}, timeout=20.0)


# ---- (b) a snapshot restore on a lagging node wakes every waiter -------------------------------

def test_snapshot_installed_on_a_lagging_node_wakes_its_watchers_with_the_new_state(
        make_cluster: Callable[..., LocalCluster], pool: ThreadPoolExecutor) -> None:
    """The victim is killed, the others move on and compact their logs; the victim then starts
    while the others are stopped (SIGSTOP), and watchers park on it with the indexes they saw
    before the kill (as a client failing over to it would). When the others resume, the leader must
    send the victim a snapshot; the restore wakes every waiter, each re-evaluates its query: the
    changed ones answer the new state, the unchanged one stays parked."""
    cluster = make_cluster(tuning=RaftTuning(log_compaction_min_entries=500))
    leader = cluster.leader()
    victim, other = cluster.followers()
    put(cluster, leader, "watched", "w0")
    put(cluster, leader, "quiet", "q0")
    cluster.wait_converged(timeout=60.0)
    url = cluster.url(victim)
    before = read(f"{url}/v1/services/watched")
    quiet = read(f"{url}/v1/services/quiet")
    catalog = read(f"{url}/v1/services")
    assert before.status == quiet.status == catalog.status == 200

    cluster.kill(victim)
    for i in range(1, 4):
        put(cluster, leader, "watched", f"w{i}")
    for i in range(30):
        put(cluster, random.choice([leader, other]), "bulk", f"b{i}")
    force_snapshot(cluster, [leader, other])

    live = [leader, other]
    futures: list[Future[Answer]] = []
    try:
        for name in live:
            cluster.pause(name)
        cluster.start_node(victim)
        wait_for(lambda: cluster.status(victim) is not None, 60.0, f"{victim} to serve HTTP")
        # Alone, it has applied nothing yet (pysyncobj learns the commit index from a leader), so
        # it refuses plain reads rather than show an empty registry; blocking queries may park.
        alone = read(f"{url}/v1/services/watched")
        assert alone.status == 503 and alone.body["error"]["code"] == "unavailable", alone
        base = watches(cluster, victim)
        futures = park(pool, [f"{url}/v1/services/watched?index={before.index}&wait={LONG_WAIT}"] * 6 + [
            f"{url}/v1/services/watched/instances/w3?index={before.index}&wait={LONG_WAIT}",
            f"{url}/v1/services?index={catalog.index}&wait={LONG_WAIT}",
        ])
        [quiet_future] = park(pool, [f"{url}/v1/services/quiet?index={quiet.index}&wait={LONG_WAIT}"])
        wait_parked(cluster, victim, base["waiting"] + 9)
        assert_pending([*futures, quiet_future])
    finally:
        for name in live:
            cluster.resume(name)

    answers = results(futures, timeout=90.0)
    assert "event=snapshot_restored" in last_run_log(cluster, victim), "the victim did not install a snapshot"
    after = watches(cluster, victim)
    assert after["wake_all"] > base["wake_all"], after
    cluster.wait_converged(timeout=60.0)
    lead_now = cluster.leader()
    truth = read(f"{cluster.url(lead_now)}/v1/services/watched")
    truth_catalog = read(f"{cluster.url(lead_now)}/v1/services")
    assert [i["id"] for i in truth.body["instances"]] == ["w0", "w1", "w2", "w3"]
    for ans in answers[:6]:
        assert ans.status == 200, ans
        assert ans.index is not None and ans.index > before.index
        assert (ans.index, ans.body) == (truth.index, truth.body)
    single = answers[6]
    assert single.status == 200 and single.body["id"] == "w3", single
    assert single.index == truth.index
    assert answers[7].status == 200 and answers[7].index > catalog.index, answers[7]
    assert (answers[7].index, answers[7].body) == (truth_catalog.index, truth_catalog.body)

    # "quiet" did not change: its watcher re-evaluated after the restore and parked again
    assert_pending([quiet_future])
    assert read(f"{url}/v1/services/quiet").index == quiet.index
    assert watches(cluster, victim)["waiting"] == base["waiting"] + 1
    woke = put(cluster, lead_now, "quiet", "q1")
    ans = quiet_future.result(timeout=ANSWER_TIMEOUT)
    assert ans.status == 200 and ans.index == woke, ans
    assert [i["id"] for i in ans.body["instances"]] == ["q0", "q1"]


def test_resync_with_parked_watchers_never_answers_the_wiped_state(
        cluster: LocalCluster, pool: ThreadPoolExecutor) -> None:
    """Watchers parked on a follower that wipes its replica and rejoins (POST /v1/debug/resync)
    are woken by the wipe, re-evaluate against the empty and then the replayed state, and stay
    parked: neither is newer than what they saw. The next real change answers them."""
    leader = cluster.leader()
    victim = cluster.followers()[0]
    put(cluster, leader, "kept", "k1")
    last = put(cluster, leader, "kept", "k2")
    cluster.wait_converged(timeout=60.0, min_index=last)
    url = cluster.url(victim)
    kept = read(f"{url}/v1/services/kept")
    catalog = read(f"{url}/v1/services")
    base = watches(cluster, victim)
    futures = park(pool, [f"{url}/v1/services/kept?index={kept.index}&wait={LONG_WAIT}"] * 5 + [
        f"{url}/v1/services/kept/instances/k1?index={kept.index}&wait={LONG_WAIT}",
        f"{url}/v1/services?index={catalog.index}&wait={LONG_WAIT}",
    ])
    wait_parked(cluster, victim, base["waiting"] + 7)

    code, body = cluster.debug(victim, "resync", {}, timeout=60.0)
    assert code == 200, body
    cluster.wait_node_ready(victim, timeout=60.0)
    cluster.wait_converged(timeout=60.0)
    assert "event=wipe_and_resync" in cluster.log_text(victim)
    w = watches(cluster, victim)
    assert w["wake_all"] > base["wake_all"], w
    assert_pending(futures)
    assert w["waiting"] == base["waiting"] + 7, w
    assert (read(f"{url}/v1/services/kept").index, read(f"{url}/v1/services").index) == (kept.index, catalog.index)

    woke = put(cluster, leader, "kept", "k3")
    answers = results(futures)
    for ans in answers:
        assert ans.status == 200 and ans.index == woke, ans
    assert [i["id"] for i in answers[0].body["instances"]] == ["k1", "k2", "k3"]


# ---- (c) read-your-writes across nodes ---------------------------------------------------------

def test_read_your_writes_on_another_node_with_min_index(cluster: LocalCluster) -> None:
    """1,000 times: register through a random node, read it back with ``?min_index`` from another
    random node. Ten clients run side by side, each strictly write-then-read."""
    total, clients = 1000, 10
    failures: list[str] = []
    waits: list[float] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        rng = random.Random(c)
        conns = {n: http.client.HTTPConnection(*split_hostport(cluster.config.node(n).http), timeout=30.0)
                 for n in cluster.names}

        def call(node: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
            conn = conns[node]
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())

        try:
            for i in range(c, total, clients):
                writer, reader = rng.sample(cluster.names, 2)
                code, body = call(writer, "PUT", f"/v1/services/ryw/instances/r{i}",
                                  {"address": "10.2.0.1", "port": 1 + i})
                if code != 200:
                    with lock:
                        failures.append(f"PUT r{i} on {writer}: {code} {body}")
                    continue
                t0 = time.monotonic()
                path = f"/v1/services/ryw/instances/r{i}?min_index={body['index']}&wait=10s"
                code, got = call(reader, "GET", path)
                with lock:
                    waits.append(time.monotonic() - t0)
                    if code != 200 or got.get("modify_index") != body["index"] or got.get("port") != 1 + i:
                        failures.append(f"r{i} written on {writer} at {body['index']}, read on {reader}: {code} {got}")
        finally:
            for conn in conns.values():
                conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300.0)
    waits.sort()
    print(f"\n[read-your-writes] {total} write/read pairs in {time.monotonic() - t0:.1f}s; min_index read p50 "
          f"{waits[len(waits) // 2] * 1000:.0f}ms p99 {waits[int(len(waits) * 0.99)] * 1000:.0f}ms")
    assert not failures, f"{len(failures)} failures, e.g. {failures[:5]}"
    assert len(waits) == total


# ---- (d) ?consistent on a node cut off from the majority ---------------------------------------

def _consistent_unavailable_while_alone(cluster: LocalCluster, alone: str) -> None:
    """SIGSTOP every node but ``alone``: a consistent read there answers 503 (never stale data),
    a default read answers 200 from local state; once the others resume, consistent reads work."""
    others = [n for n in cluster.names if n != alone]
    iid = f"c-{alone}-{time.monotonic_ns()}"
    index = put(cluster, alone, "consistency", iid)
    cluster.wait_converged(timeout=60.0, min_index=index)
    url = f"{cluster.url(alone)}/v1/services/consistency"
    try:
        for name in others:
            cluster.pause(name)
        paths = ["/v1/services/consistency?consistent", f"/v1/services/consistency/instances/{iid}?consistent",
                 "/v1/services?consistent"]
        with ThreadPoolExecutor(max_workers=len(paths)) as ex:
            answers = list(ex.map(lambda p: read(f"{cluster.url(alone)}{p}", timeout=30.0), paths))
        for path, ans in zip(paths, answers, strict=True):
            assert ans.status == 503, (path, ans)
            assert ans.body["error"]["code"] == "unavailable", (path, ans)
            assert ans.retry_after is not None and int(ans.retry_after) >= 1, (path, ans)
            assert ans.elapsed <= 10.0, (path, ans)
        stale_ok = read(url, timeout=10.0)  # a default read may be stale: answered from local state
        assert stale_ok.status == 200, stale_ok
        assert iid in [i["id"] for i in stale_ok.body["instances"]]
    finally:
        for name in others:
            cluster.resume(name)

    def consistent_ok() -> Answer | None:
        ans = read(f"{url}?consistent", timeout=30.0)
        return ans if ans.status == 200 else None

    ans = wait_for(consistent_ok, 60.0, f"a consistent read on {alone} after the others resumed")
    assert iid in [i["id"] for i in ans.body["instances"]]
    cluster.wait_ready(timeout=60.0)


def test_consistent_read_on_an_isolated_follower_is_503_then_recovers(cluster: LocalCluster) -> None:
    _consistent_unavailable_while_alone(cluster, cluster.followers()[0])


def test_consistent_read_on_an_isolated_leader_is_503_then_recovers(cluster: LocalCluster) -> None:
    _consistent_unavailable_while_alone(cluster, cluster.leader())


def test_consistent_read_right_after_rejoining_is_never_stale(cluster: LocalCluster) -> None:
    """A node stopped while the others commit a write (the old leader, then a follower) is asked
    for a consistent read the moment it runs again: it answers the write, or 503; never the old
    state. (A default read there may still be stale: API.md allows that.)"""
    stale_default_reads = 0
    for rnd, role in enumerate(["leader", "follower", "leader", "follower"]):
        target = cluster.leader() if role == "leader" else cluster.followers()[0]
        others = [n for n in cluster.names if n != target]
        iid = f"r{rnd}"
        cluster.pause(target)
        try:
            writer = cluster.leader(timeout=30.0, among=others)
            index = put(cluster, writer, "rejoin", iid)
        finally:
            cluster.resume(target)
        path = f"{cluster.url(target)}/v1/services/rejoin/instances/{iid}"
        with ThreadPoolExecutor(max_workers=3) as ex:
            consistent = ex.submit(read, f"{path}?consistent", 30.0)
            default = ex.submit(read, path, 30.0)
            own_write = ex.submit(read, f"{path}?min_index={index}&wait=20s", 30.0)
            ans, plain, waited = consistent.result(60.0), default.result(60.0), own_write.result(60.0)
        stale_default_reads += plain.status == 404
        assert ans.status in (200, 503), (role, ans)
        if ans.status == 200:
            assert ans.body["modify_index"] == index, (role, ans)
        assert ans.elapsed <= 10.0, (role, ans)
        assert waited.status == 200 and waited.body["modify_index"] == index, (role, waited)
        cluster.wait_ready(timeout=60.0)
        cluster.wait_converged(timeout=60.0, min_index=index)
    print(f"\n[rejoin] default reads that were stale right after SIGCONT: {stale_default_reads} of 4")


def partition(cluster: LocalCluster, node: str, block: list[str]) -> None:
    code, body = cluster.debug(node, "partition", {"block": block}, timeout=10.0)
    assert code == 200, (node, code, body)


def test_consistent_read_on_a_partitioned_old_leader_never_answers_stale(cluster: LocalCluster) -> None:
    """The leader is cut off from both followers (POST /v1/debug/partition: its HTTP keeps
    serving). The majority elects a new leader and commits a write; every consistent read on the
    old leader issued after that write answers 503 (its followers no longer confirm its term for a
    read index), a min_index read of the new write 504, while a default read answers its stale
    state. A consistent read issued at once, before the new election, may still be answered (no
    newer leader exists yet: it is linearizable) but only with the state before the partition.
    Healed, it answers the write."""
    old = cluster.leader()
    followers = [n for n in cluster.names if n != old]
    before = put(cluster, old, "split", "s0")
    cluster.wait_converged(timeout=60.0, min_index=before)
    url = f"{cluster.url(old)}/v1/services/split"
    with ThreadPoolExecutor(max_workers=4) as ex:
        try:
            partition(cluster, old, followers)
            for name in followers:
                partition(cluster, name, [old])
            early = ex.submit(read, f"{url}?consistent", 30.0)  # while it may still think it leads
            new = cluster.leader(timeout=30.0, among=followers)
            written = put(cluster, new, "split", "s1")
            late = [ex.submit(read, f"{url}?consistent", 30.0),
                    ex.submit(read, f"{cluster.url(old)}/v1/services/split/instances/s1?consistent", 30.0)]
            waited = ex.submit(read, f"{url}?min_index={written}&wait=2s", 30.0)
            stale = read(url, timeout=10.0)
            first = early.result(60.0)
            assert first.status == 503 or (first.status == 200 and [i["id"] for i in first.body["instances"]] == ["s0"]
                                            and first.index == before), first
            for ans in (f.result(60.0) for f in late):
                assert ans.status == 503 and ans.body["error"]["code"] == "unavailable", ans
                assert ans.elapsed <= 10.0, ans
            assert waited.result(60.0).status == 504
            assert stale.status == 200 and [i["id"] for i in stale.body["instances"]] == ["s0"], stale
        finally:
            for name in cluster.names:
                partition(cluster, name, [])

    def healed() -> Answer | None:
        ans = read(f"{url}?consistent", timeout=30.0)
        return ans if ans.status == 200 else None

    ans = wait_for(healed, 60.0, f"a consistent read on {old} after healing")
    assert [i["id"] for i in ans.body["instances"]] == ["s0", "s1"] and ans.index == written


# ---- (e) a herd of client watchers across a leader kill -----------------------------------------

class CountingClient(AsyncRegistryClient):
    """AsyncRegistryClient whose session reports every HTTP attempt (the test's instrumentation)."""

    def __init__(self, addrs: list[str], attempts: list[tuple[float, str, int]], tag: int) -> None:
        super().__init__(addrs)
        self._attempts = attempts
        self._tag = tag

    async def __aenter__(self) -> CountingClient:
        trace = aiohttp.TraceConfig()

        async def on_start(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
            self._attempts.append((time.monotonic(), f"{params.url.host}:{params.url.port}", self._tag))

        trace.on_request_start.append(on_start)
        self._session = aiohttp.ClientSession(timeout=self._timeout, trace_configs=[trace])
        return self


@pytest.mark.slow  # CI time (15-minute budget): run with -m slow
async def test_watcher_herd_survives_a_leader_kill_without_a_request_storm(cluster: LocalCluster) -> None:
    n_watchers, services, window = 500, [f"herd-{i}" for i in range(5)], 10.0
    addrs = [cluster.config.node(n).http for n in cluster.names]
    leader = await in_thread(cluster.leader)
    dead = cluster.config.node(leader).http
    for s in services:
        await in_thread(put, cluster, leader, s, "seed")

    attempts: list[tuple[float, str, int]] = []  # (time, node, watcher) of every HTTP attempt
    seen: list[list[tuple[float, int]]] = [[] for _ in range(n_watchers)]
    errors: list[BaseException] = []
    first_node = [addrs[w % 3] for w in range(n_watchers)]

    async def watcher(w: int) -> None:
        rotated = addrs[w % 3:] + addrs[:w % 3]  # spread evenly: a third start on each node
        try:
            async with CountingClient(rotated, attempts, w) as client:
                async for index, _ in client.watch(f"/v1/services/{services[w % 5]}", wait=5.0):
                    seen[w].append((time.monotonic(), index))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            errors.append(exc)
            raise

    writes: list[tuple[float, str, int]] = []  # (sent, service, index) of acknowledged writes
    stop_writer = asyncio.Event()

    async def writer() -> None:
        async with AsyncRegistryClient(addrs, timeout=10.0) as client:
            seq = 0
            while not stop_writer.is_set():
                seq += 1
                service = services[seq % 5]
                sent = time.monotonic()
                try:
                    body = await client.put(f"/v1/services/{service}/instances/writer",
                                            {"address": "10.3.0.1", "port": 1 + seq % 60000})
                    writes.append((sent, service, int(body["index"])))
                except RaftregError:
                    pass
                await asyncio.sleep(max(0.0, 0.2 - (time.monotonic() - sent)))

    def count(t0: float, t1: float, node: str | None = None) -> int:
        return sum(1 for t, n, _ in attempts if t0 <= t < t1 and (node is None or n == node))

    tasks = [asyncio.create_task(watcher(w)) for w in range(n_watchers)]
    writer_task = asyncio.create_task(writer())
    try:
        deadline = time.monotonic() + 60.0
        while sum(1 for s in seen if s) < n_watchers:
            assert not errors, errors[:3]
            assert time.monotonic() < deadline, f"only {sum(1 for s in seen if s)} watchers got a first answer"
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # settle into the steady state
        t_steady = time.monotonic()
        await asyncio.sleep(window)
        t_kill = time.monotonic()
        await in_thread(cluster.kill, leader)
        await asyncio.sleep(window)
        t_end = time.monotonic()

        steady, after = count(t_steady, t_kill), count(t_kill, t_end)
        writes_steady = sum(1 for t, _, _ in writes if t_steady <= t < t_kill)
        writes_after = sum(1 for t, _, _ in writes if t_kill <= t < t_end)
        to_dead = count(t_kill, t_end, dead)
        print(f"\n[herd] {n_watchers} watchers: {steady / window:.0f} requests/s steady ({writes_steady} writes), "
              f"{after / window:.0f} requests/s in the {window:.0f}s after kill -9 of the leader {leader} "
              f"({writes_after} writes); {to_dead} attempts to the dead node after the kill")
        assert not errors, errors[:3]
        assert steady > 0
        assert after < 3 * steady, f"request storm after the leader kill: {after} vs {steady} in {window}s"
        dead_watchers = sum(1 for n in first_node if n == dead)
        assert to_dead <= dead_watchers, f"{to_dead} attempts to the dead node by {dead_watchers} of its watchers"

        # every watcher sees a write made after the kill
        stop_writer.set()
        await writer_task
        survivor = next(n for n in cluster.names if n != leader)
        final = {s: await in_thread(put, cluster, survivor, s, "final") for s in services}
        deadline = time.monotonic() + 60.0
        while True:
            behind = [w for w in range(n_watchers)
                      if not seen[w] or seen[w][-1][1] < final[services[w % 5]]]
            if not behind:
                break
            assert time.monotonic() < deadline, f"{len(behind)} watchers never saw the write after the kill"
            await asyncio.sleep(0.1)
        assert not errors, errors[:3]
        assert all(not t.done() for t in tasks), "a watcher stopped"
        # watchers that started on a surviving node kept running there: no failover, no retry
        moved = {w for _, n, w in attempts if n != first_node[w] and first_node[w] != dead}
        assert not moved, f"{len(moved)} watchers of surviving nodes left their node, e.g. {sorted(moved)[:5]}"
        for w in range(n_watchers):
            indexes = [i for _, i in seen[w]]
            assert indexes == sorted(indexes), f"watcher {w} went back in time: {indexes}"
    finally:
        stop_writer.set()
        for t in [*tasks, writer_task]:
            t.cancel()
        await asyncio.gather(*tasks, writer_task, return_exceptions=True)


# ---- graceful stop with parked watchers --------------------------------------------------------

def test_sigterm_stops_a_node_promptly_even_with_parked_watchers(
        make_cluster: Callable[..., LocalCluster], pool: ThreadPoolExecutor) -> None:
    cluster = make_cluster(1)
    index = put(cluster, "n1", "parked", "p1")
    futures = park(pool, [f"{cluster.url('n1')}/v1/services/parked?index={index}&wait=90s"] * 3)
    wait_parked(cluster, "n1", 3)
    proc = cluster.procs["n1"]
    t0 = time.monotonic()
    proc.signal_group(signal.SIGTERM)
    try:
        exited = wait_for(lambda: proc.proc is not None and proc.proc.poll() is not None, 10.0,
                          "the node to exit after SIGTERM")
    finally:
        cluster.kill("n1")
    assert exited and time.monotonic() - t0 < 10.0
    for ans in results(futures, timeout=30.0):
        assert ans.status in (0, 200), ans
