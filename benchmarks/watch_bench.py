"""Benchmark blocking queries (watches) and read consistency on a local 3-node raftreg cluster:
wake-up latency of many watchers parked on one follower, lookups plain vs ``?consistent`` vs
``?min_index``, and that writes to another service wake no watcher.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/watch_bench.py --quick
    .venv/bin/python benchmarks/watch_bench.py --only watch --watchers 1000 --rounds 10 --procs 4

It reuses registry_bench's machinery: the spawned client worker processes (``ClientPool``, here
with a worker body that also runs ``watch`` jobs), the start barrier and CPU accounting of its
read runs, its LocalCluster handling (``Bench``), ``--tuning``, the tables and the JSON output.
Every process it starts is killed at the end. See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import http.client
import json
import os
import resource
import sys
import threading
import time
import urllib.parse
from array import array
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from raftreg.durations import parse_duration
from raftreg.testing import LocalCluster, http_json, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry_bench as rb
from registry_bench import (
    CLK_TCK,
    JSON_HEADERS,
    REPO,
    Bench,
    ClientPool,
    check_common_args,
    cpu_ticks,
    exit_on_sigterm,
    fmt_cpu,
    fmt_ms,
    fmt_num,
    instance_body,
    loadavg,
    log,
    machine_ticks,
    node_pids,
    pct,
    print_run_table,
    print_table,
    run_and_report,
    run_meta,
    split,
)

PHASES = ("watch", "crosstalk", "read")

# The target: one change wakes 1,000 watchers of a service on one node within 100 ms p99.
TARGET_WAKE_WATCHERS = 1000
TARGET_WAKE_P99_MS = 100.0

# (full, quick) defaults for the size options.
SIZES: dict[str, tuple[Any, Any]] = {
    "watchers": ("100,1000,5000", "50,200"),
    "rounds": (5, 3),
    "crosstalk_watchers": (1000, 100),
    "crosstalk_writes": (200, 50),
    "read_duration": (10.0, 2.0),
    "read_warmup": (1.0, 0.5),
}

ROUND_TIMEOUT_S = 30.0  # every watcher must have its answer this long after the write was sent


# =============================================================================================
# Client side: the worker body and the watch job (run in the spawned client processes)
# =============================================================================================

async def _run_job(job: dict[str, Any], conn: Connection, barrier: Any) -> dict[str, Any]:
    """Client worker jobs: ``watch`` here, every other kind to registry_bench's ``_run_job``."""
    if job["kind"] == "watch":
        return await _watch_job(job, conn)
    return await rb._run_job(job, barrier)


class _LightHttp(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive client connection for the watchers: one request at a time, the
    answer framed by ``Content-Length`` (raftreg always sends it). It costs the load generator a
    fraction of aiohttp's client CPU per answer, so the watchers' 1,000 answers and re-parks per
    change compete less with the node under test on a 2-core machine."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.answer: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.answer is None:
            return
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        size = int(headers.get("content-length", "0"))
        if len(self.buf) < end + 4 + size:
            return
        body = bytes(self.buf[end + 4:end + 4 + size])
        del self.buf[:end + 4 + size]
        if not self.answer.done():
            self.answer.set_result((int(lines[0].split()[1]), headers, body))

    async def get(self, request: bytes, timeout: float) -> tuple[int, dict[str, str], bytes]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await asyncio.wait_for(self.answer, timeout)


# One watcher request: GET with ``index``; returns (HTTP status, receive time, X-Raftreg-Index, body).
Fetch = Callable[[int], Awaitable[tuple[int, float, int, bytes]]]


class _LightFetch:
    """A watcher's requests on its own ``_LightHttp`` keep-alive connection (reopened after errors)."""

    def __init__(self, job: dict[str, Any]) -> None:
        url = urllib.parse.urlsplit(job["url"])
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.target = f"/v1/services/{job['service']}?wait={job['wait']}&index="
        self.timeout = job["request_timeout"]
        self.proto: _LightHttp | None = None

    async def __call__(self, index: int) -> tuple[int, float, int, bytes]:
        try:
            if self.proto is None or self.proto.closed.done():
                _, self.proto = await asyncio.get_running_loop().create_connection(_LightHttp, self.host, self.port)
            status, headers, body = await self.proto.get(
                f"GET {self.target}{index} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode(), self.timeout)
            return status, time.monotonic(), int(headers.get("x-raftreg-index", "-1")), body
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()
        self.proto = None


async def _watch_job(job: dict[str, Any], conn: Connection) -> dict[str, Any]:
    """``job["watchers"]`` blocking queries on one service of one node, each re-parking at once with
    the index it got, until each has seen ``job["rounds"]`` changes. When the last watcher of this
    process has its answer of round r, the receive times (time.monotonic, system-wide) go to the
    parent at once as ``{"round": r, ...}``; the job's result has the error and timeout counts.
    ``job["client"]``: ``light`` (``_LightFetch``) or ``aiohttp`` (one ``ClientSession``)."""
    n, rounds = job["watchers"], job["rounds"]
    errs: collections.Counter[str] = collections.Counter()
    counts = {"requests": 0, "timeouts": 0}
    recv = [array("d") for _ in range(rounds)]
    seen: list[collections.Counter[str]] = [collections.Counter() for _ in range(rounds)]

    async def watcher(fetch: Fetch) -> None:
        index = job["index"]
        for r in range(rounds):
            while True:
                counts["requests"] += 1
                try:
                    status, t, new, body = await fetch(index)
                except Exception as exc:
                    errs[rb._error_key(exc)] += 1
                    await asyncio.sleep(0.2)
                    continue
                if status != 200:
                    errs[f"http {status}"] += 1
                    await asyncio.sleep(0.2)
                    continue
                if new == index:  # the wait passed without a change: park again
                    counts["timeouts"] += 1
                    continue
                if new < index:
                    errs["index went backwards"] += 1
                recv[r].append(t)
                seen[r][f"{new}/{len(rb._answer_decoder.decode(body).instances)}"] += 1
                index = new
                if len(recv[r]) == n:
                    conn.send({"round": r, "recv": recv[r].tobytes(), "seen": dict(seen[r])})
                break

    async def run_all(fetchers: list[Fetch]) -> None:
        await asyncio.wait_for(asyncio.gather(*(watcher(f) for f in fetchers)), job["hard_limit"])

    if job.get("client", "light") == "light":
        light = [_LightFetch(job) for _ in range(n)]
        try:
            await run_all(list(light))
        finally:
            for f in light:
                f.close()
    else:
        base = f"{job['url']}/v1/services/{job['service']}?wait={job['wait']}&index="
        timeout = aiohttp.ClientTimeout(total=job["request_timeout"])
        connector = aiohttp.TCPConnector(limit=n + 8, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def fetch(index: int) -> tuple[int, float, int, bytes]:
                async with session.get(base + str(index)) as resp:
                    body = await resp.read()
                    return resp.status, time.monotonic(), int(resp.headers.get("X-Raftreg-Index", "-1")), body

            await run_all([fetch] * n)
    return {"done": True, "errors": dict(errs), **counts}


# =============================================================================================
# Parent side helpers
# =============================================================================================

class Http:
    """Sequential requests to one node over one keep-alive connection (reconnects once on failure)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=JSON_HEADERS if body is not None else {})
                resp = self.conn.getresponse()
                return resp.status, resp.read(), dict(resp.getheaders())
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def register(self, service: str, iid: str, i: int, size: int) -> tuple[float, float, int]:
        """PUT one instance; returns (monotonic time just before sending, time the answer was read,
        commit index)."""
        body = instance_body(i, size)
        t0 = time.monotonic()
        status, raw, _ = self.request("PUT", f"/v1/services/{service}/instances/{iid}", body)
        t1 = time.monotonic()
        if status != 200:
            raise RuntimeError(f"register {service}/{iid} answered HTTP {status}: {raw[:200]!r}")
        return t0, t1, int(json.loads(raw)["index"])

    def cluster(self) -> dict[str, Any]:
        status, raw, _ = self.request("GET", "/v1/cluster")
        if status != 200:
            raise RuntimeError(f"/v1/cluster answered HTTP {status}")
        info: dict[str, Any] = json.loads(raw)
        return info

    def service_index(self, service: str) -> int:
        status, _, headers = self.request("GET", f"/v1/services/{service}")
        if status != 200:
            raise RuntimeError(f"GET /v1/services/{service} answered HTTP {status}")
        return int(headers["X-Raftreg-Index"])

    def close(self) -> None:
        self.conn.close()


class TickMeter:
    """CPU ticks of named PIDs (and of the machine) summed over several start()/stop() windows."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.ticks: dict[str, int | None] = dict.fromkeys(self.pids, 0)
        self.wall = 0.0
        self.busy = self.total = 0
        self._c0: dict[str, int | None] = {}
        self._m0 = (0, 0)
        self._t0 = 0.0

    def start(self) -> None:
        self._c0 = {k: cpu_ticks(p) for k, p in self.pids.items()}
        self._m0 = machine_ticks()
        self._t0 = time.monotonic()

    def stop(self) -> None:
        self.wall += time.monotonic() - self._t0
        for k, p in self.pids.items():
            c1, c0, acc = cpu_ticks(p), self._c0.get(k), self.ticks[k]
            self.ticks[k] = None if c1 is None or c0 is None or acc is None else acc + c1 - c0
        b1, t1 = machine_ticks()
        self.busy += b1 - self._m0[0]
        self.total += t1 - self._m0[1]

    def pct(self) -> dict[str, float | None]:
        """CPU % (100 = one core) over all windows."""
        wall = max(self.wall, 1e-9)
        return {k: None if v is None else round(100.0 * v / CLK_TCK / wall, 1) for k, v in self.ticks.items()}

    def cpu_ms(self, key: str) -> float | None:
        v = self.ticks.get(key)
        return None if v is None else 1000.0 * v / CLK_TCK

    def other_pct(self) -> float:
        """Machine-wide busy % minus the PIDs measured here."""
        busy = 100.0 * (os.cpu_count() or 1) * self.busy / max(1, self.total)
        return round(busy - sum(v or 0.0 for v in self.pct().values()), 1)


class Prober:
    """A thread that sends ``GET /v1/health`` to one node back to back over its own connection while
    armed (``arm()`` / ``disarm()``) and keeps the latencies: how long the node's event loop stalls
    while it answers a wake-up storm (every other request to that node waits as long)."""

    def __init__(self, url: str) -> None:
        self.http = Http(url, timeout=30.0)
        self.lat: list[float] = []
        self.errors = 0
        self._armed = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="health-prober", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            if not self._armed.wait(0.1):
                continue
            t0 = time.monotonic()
            try:
                status, _, _ = self.http.request("GET", "/v1/health")
            except (OSError, http.client.HTTPException):
                status = 0
            if status == 200:
                self.lat.append(time.monotonic() - t0)
            else:
                self.errors += 1
            time.sleep(0.002)

    def arm(self) -> None:
        self._armed.set()

    def disarm(self) -> None:
        self._armed.clear()

    def close(self) -> None:
        self._stop = True
        self._armed.set()
        self._thread.join(timeout=35)
        self.http.close()


def wait_parked(node: Http, n: int, timeout: float) -> tuple[float, dict[str, Any]]:
    """Poll ``/v1/cluster`` of the watched node every 10 ms until ``watches.waiting == n``; returns
    the time it took and the last ``watches`` block."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        watches = node.cluster()["watches"]
        if watches["waiting"] == n:
            return time.monotonic() - t0, watches
        if time.monotonic() > deadline:
            raise TimeoutError(f"{watches['waiting']} of {n} watchers parked after {timeout:.0f}s ({watches})")
        time.sleep(0.01)


def lat_stats(vals: list[float]) -> dict[str, float | None]:
    """p50 / p99 / max in ms of latencies in seconds."""
    s = sorted(vals)
    return {"p50_ms": rb._ms(pct(s, 50)), "p99_ms": rb._ms(pct(s, 99)), "max_ms": rb._ms(s[-1] if s else None),
            "min_ms": rb._ms(s[0] if s else None)}


def roles_of(names: list[str], leader: str, watched: str | None) -> dict[str, str]:
    return {n: "leader" if n == leader else "watched" if n == watched else "follower" for n in names}


# =============================================================================================
# The benchmark
# =============================================================================================

class WatchBench(Bench):
    """registry_bench's Bench (cluster, client pool, jobs, summary) with the watch phases."""

    sizes = SIZES

    def client_pool(self) -> ClientPool:
        if self.pool is None:
            self.pool = ClientPool(self.args.procs, target=functools.partial(rb._worker_main, run_job=_run_job))
        return self.pool

    def drop_pool(self) -> None:
        """Kill the client processes at once (after a failed or interrupted watch run: they are busy with
        parked watchers and would not read a polite stop); the next use spawns new ones."""
        if self.pool is not None:
            for proc in self.pool.procs:
                proc.kill()
            for proc in self.pool.procs:
                proc.join(timeout=5)
            for conn in self.pool.conns:
                conn.close()
            self.pool = None

    def run(self, phases: list[str]) -> None:
        self.client_pool()  # spawn the client processes first: their start-up is not part of any number
        with self.fresh_cluster() as cluster:
            for p in PHASES:
                if p in phases:
                    fn: Callable[[LocalCluster], dict[str, Any]] = getattr(self, f"phase_{p}")
                    self.results[p] = self.timed(p, functools.partial(fn, cluster))

    # ---- the watch machinery ----------------------------------------------------------------
    def start_watchers(self, url: str, service: str, index: int, n: int, rounds: int) -> list[int]:
        """Send one ``watch`` job per client process with a share of the ``n`` watchers; returns the
        numbers of the processes that got watchers."""
        pool = self.client_pool()
        used = []
        for i, (conn, k) in enumerate(zip(pool.conns, split(n, pool.n), strict=True)):
            if k == 0:
                continue
            conn.send({"kind": "watch", "url": url, "service": service, "index": index, "watchers": k,
                       "rounds": rounds, "wait": self.args.wait, "client": self.args.watch_client,
                       "request_timeout": 3 * self.wait_s() + 30,
                       "hard_limit": 120.0 + rounds * (self.wait_s() + 60.0)})
            used.append(i)
        return used

    def wait_s(self) -> float:
        return float(parse_duration(self.args.wait))

    @staticmethod
    def collect(conns: list[Connection], timeout: float, what: str, want_round: int | None) -> list[dict[str, Any]]:
        """One message from each pipe: the round report ``want_round``, or (None) the job result."""
        deadline = time.monotonic() + timeout
        out = []
        for conn in conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{what}: a client process had no answer after {timeout:.0f}s")
            msg = conn.recv()
            if "fatal" in msg:
                raise RuntimeError(f"{what}: client worker failed:\n{msg['fatal']}")
            if want_round is not None and msg.get("round") != want_round:
                raise RuntimeError(f"{what}: expected the report of round {want_round}, got {sorted(msg)}")
            out.append(msg)
        return out

    def watch_run(self, cluster: LocalCluster, label: str, service: str, n: int, rounds: int,
                  between: Callable[[Http, Http], dict[str, Any]] | None = None) -> dict[str, Any]:
        """``n`` watchers of ``service`` parked on a follower; ``rounds`` times: one registration in
        ``service`` through the leader, every watcher's answer, all parked again. ``between`` (if
        given) runs once when the watchers are first parked, before round 0 (the cross-talk check)."""
        leader = cluster.leader()
        watched = next(x for x in cluster.names if x != leader)
        writer, node = Http(cluster.url(leader)), Http(cluster.url(watched))
        prober = Prober(cluster.url(watched))
        size = self.args.payload_bytes
        pids = node_pids(cluster)
        out: dict[str, Any] = {"watchers": n, "rounds": rounds, "service": service, "leader": leader,
                               "watched": watched, "loadavg_at_start": loadavg()}
        try:
            _, _, seed_index = writer.register(service, "seed", 0, size)
            wait_for(lambda: node.cluster()["applied_index"] >= seed_index, 30, f"{watched} to apply the seed")
            index = node.service_index(service)
            base_instances = 1
            before = node.cluster()["watches"]
            if before["waiting"]:
                raise RuntimeError(f"{before['waiting']} watchers already parked on {watched} before the run")
            used = self.start_watchers(cluster.url(watched), service, index, n, rounds)
            pool = self.client_pool()
            conns = [pool.conns[i] for i in used]
            # "bench" is this process: the writer, the /v1/cluster poller and the collector of reports.
            meter = TickMeter({**pids, **{f"client{i}": pool.procs[i].pid for i in used}, "bench": os.getpid()})
            park_s, watches = wait_parked(node, n, 60.0 + n / 20.0)
            log(f"{label}: {n} watchers parked on {watched} (follower; leader {leader}) in {park_s:.2f}s")
            out["first_park_s"] = round(park_s, 3)
            if between is not None:
                out["between"] = between(writer, node)
                watches = node.cluster()["watches"]
            all_lat: list[float] = []
            commit: list[float] = []
            firsts: list[float] = []
            repark: list[float] = []
            detail = []
            bad = 0
            for r in range(rounds):
                w0 = watches
                meter.start()
                prober.arm()
                t_send, t_ack, widx = writer.register(service, f"r{r:04d}", r + 1, size)
                reports = self.collect(conns, ROUND_TIMEOUT_S, f"{label} round {r}", r)
                prober.disarm()
                meter.stop()
                recv = array("d")
                seen: collections.Counter[str] = collections.Counter()
                for rep in reports:
                    recv.frombytes(rep["recv"])
                    seen.update(rep["seen"])
                lat = [t - t_send for t in recv]
                want = f"{widx}/{base_instances + r + 1}"
                wrong = {k: v for k, v in seen.items() if k != want}
                bad += sum(wrong.values())
                if r < rounds - 1:
                    ps, watches = wait_parked(node, n, 60.0 + n / 20.0)
                    repark.append(ps)
                else:
                    time.sleep(0.05)
                    watches = node.cluster()["watches"]
                all_lat += lat
                commit.append(t_ack - t_send)
                firsts.append(min(lat))
                st = lat_stats(lat)
                detail.append({"index": widx, "commit_ms": rb._ms(t_ack - t_send), "first_ms": st["min_ms"],
                               **st, "answers": len(lat), "wrong_answers": wrong,
                               "server_wakeups": watches["wakeups"] - w0["wakeups"],
                               "server_timeouts": watches["timeouts"] - w0["timeouts"],
                               "repark_s": round(repark[-1], 3) if r < rounds - 1 else None})
                log(f"{label} round {r}: commit {fmt_ms(rb._ms(t_ack - t_send))} ms, wake-up first/p50/p99/max "
                    f"{fmt_ms(st['min_ms'])}/{fmt_ms(st['p50_ms'])}/{fmt_ms(st['p99_ms'])}/{fmt_ms(st['max_ms'])} ms"
                    + (f", wrong answers {wrong}" if wrong else ""))
            finals = self.collect(conns, 30.0, f"{label} end", None)
        except BaseException:
            self.drop_pool()  # its workers may still hold parked watchers
            raise
        finally:
            prober.close()
            writer.close()
            node.close()
        errs: collections.Counter[str] = collections.Counter()
        for f in finals:
            errs.update(f["errors"])
        cpu = meter.pct()
        servers = {k: v for k, v in cpu.items() if k in pids}
        clients = {k: v for k, v in cpu.items() if k not in pids}
        watched_ms = meter.cpu_ms(watched)
        out.update({
            **{f"wake_{k}": v for k, v in lat_stats(all_lat).items()},
            "wakeups": len(all_lat),
            "first_wake_p50_ms": lat_stats(firsts)["p50_ms"],
            "commit": lat_stats(commit),
            "repark_max_s": round(max(repark), 3) if repark else None,
            "wrong_answers": bad,
            "errors_by_kind": dict(errs.most_common()),
            "errors": sum(errs.values()),
            "client_timeouts": sum(f["timeouts"] for f in finals),
            "requests": sum(f["requests"] for f in finals),
            "wake_window_s": round(meter.wall, 3),
            "server_cpu_pct": servers,
            "watched_cpu_ms_per_change": None if watched_ms is None else round(watched_ms / rounds, 1),
            "client_cpu_pct": clients,
            "client_cpu_pct_total": round(sum(v or 0 for v in clients.values()), 1),
            "other_procs_cpu_pct": meter.other_pct(),
            "server_wakeups_total": sum(d["server_wakeups"] for d in detail),
            "health_probe": {**lat_stats(prober.lat), "probes": len(prober.lat), "errors": prober.errors},
            "rounds_detail": detail,
        })
        return out

    # ---- 1. fan-out wake-up latency ---------------------------------------------------------
    def phase_watch(self, cluster: LocalCluster) -> dict[str, Any]:
        sizes = [int(x) for x in str(self.size("watchers")).split(",") if x.strip()]
        rounds = self.size("rounds")
        out: dict[str, Any] = {"runs": {}}
        for n in sizes:
            log(f"watch/{n}: {n} watchers over {min(n, self.args.procs)} client procs, {rounds} rounds, "
                f"wait={self.args.wait}")
            try:
                out["runs"][str(n)] = self.watch_run(cluster, f"watch/{n}", f"watch-{n}", n, rounds)
            except Exception as exc:
                log(f"watch/{n} failed: {exc!r}")
                out["runs"][str(n)] = {"watchers": n, "failed": repr(exc)}
        print_watch_table(f"Wake-up latency: N watchers on one follower, one registration through the leader per "
                          f"round, {rounds} rounds; target p99 < {TARGET_WAKE_P99_MS:g} ms at "
                          f"{TARGET_WAKE_WATCHERS:,} watchers", list(out["runs"].values()))
        for key, r in out["runs"].items():
            n = int(key)
            if "failed" in r:
                self.note("watch", f"{n:,} watchers", "failed", "MISS" if n == TARGET_WAKE_WATCHERS else "FAILED")
                continue
            ok = (r["wake_p99_ms"] is not None and r["wake_p99_ms"] < TARGET_WAKE_P99_MS and r["errors"] == 0
                  and r["wrong_answers"] == 0 and r["wakeups"] == n * rounds)
            r["meets_target"] = ok if n == TARGET_WAKE_WATCHERS else None
            verdict = ("ok" if ok else "MISS") if n == TARGET_WAKE_WATCHERS else \
                ("" if r["errors"] == 0 and r["wrong_answers"] == 0 else f"{r['errors']} errors, "
                 f"{r['wrong_answers']} wrong answers")
            self.note("watch", f"{n:,} watchers wake-up p50/p99/max ms",
                      f"{fmt_ms(r['wake_p50_ms'])}/{fmt_ms(r['wake_p99_ms'])}/{fmt_ms(r['wake_max_ms'])} "
                      f"(commit p50 {fmt_ms(r['commit']['p50_ms'])})", verdict)
        if str(TARGET_WAKE_WATCHERS) not in out["runs"]:
            self.note("watch", f"{TARGET_WAKE_WATCHERS:,} watchers wake-up p99", "not run", "n/a")
        return out

    # ---- 2. no cross-talk -------------------------------------------------------------------
    def phase_crosstalk(self, cluster: LocalCluster) -> dict[str, Any]:
        n, writes = self.size("crosstalk_watchers"), self.size("crosstalk_writes")
        size = self.args.payload_bytes
        log(f"crosstalk: {n} watchers of xt-a, then {writes} registrations in xt-b")

        def busy_writes(writer: Http, node: Http) -> dict[str, Any]:
            w0 = node.cluster()["watches"]
            lat = []
            last = 0
            for i in range(writes):
                t0, t1, last = writer.register("xt-b", f"b{i:05d}", i, size)
                lat.append(t1 - t0)
            wait_for(lambda: node.cluster()["applied_index"] >= last, 30, "the watched node to apply the writes")
            time.sleep(0.3)  # let the watched node's loop drain every notification
            w1 = node.cluster()["watches"]
            early = [c for c in self.pool.conns if c.poll(0)] if self.pool else []
            res = {"writes": writes, "commit": lat_stats(lat), "wakeups_delta": w1["wakeups"] - w0["wakeups"],
                   "timeouts_delta": w1["timeouts"] - w0["timeouts"], "waiting_after": w1["waiting"],
                   "client_procs_with_early_answers": len(early)}
            log(f"crosstalk: {writes} writes to xt-b: watched node wakeups +{res['wakeups_delta']}, "
                f"still parked {w1['waiting']}/{n}")
            return res

        run = self.watch_run(cluster, "crosstalk", "xt-a", n, 1, between=busy_writes)
        b = run["between"]
        ok = (b["wakeups_delta"] == 0 and b["waiting_after"] == n and b["client_procs_with_early_answers"] == 0
              and run["wakeups"] == n and run["errors"] == 0)
        out = {**run, "meets_target": ok}
        print_table(f"No cross-talk: {n:,} watchers of service xt-a parked on a follower, {writes} registrations "
                    "in xt-b", ["watchers", "writes to b", "commit p50/max ms", "wake-ups during b writes",
                                "timeouts", "still parked", "then 1 write to a: wake p50/p99/max ms"],
                    [[fmt_num(n), fmt_num(writes), f"{fmt_ms(b['commit']['p50_ms'])}/{fmt_ms(b['commit']['max_ms'])}",
                      str(b["wakeups_delta"]), str(b["timeouts_delta"]), f"{b['waiting_after']}/{n}",
                      f"{fmt_ms(run['wake_p50_ms'])}/{fmt_ms(run['wake_p99_ms'])}/{fmt_ms(run['wake_max_ms'])}"]])
        self.note("crosstalk", f"wake-ups of {n:,} xt-a watchers by {writes} xt-b writes", str(b["wakeups_delta"]),
                  "ok" if ok else "CROSS-TALK")
        return out

    # ---- 3. read consistency modes ----------------------------------------------------------
    def phase_read(self, cluster: LocalCluster) -> dict[str, Any]:
        leader = cluster.leader()
        svc, n = "small", 5
        for i in range(n):
            code, _ = http_json(f"{cluster.url(leader)}/v1/services/{svc}/instances/i{i:07d}", method="PUT",
                                body=json.loads(instance_body(i, self.args.payload_bytes)), timeout=10)
            if code != 200:
                raise RuntimeError(f"preload of {svc} failed with HTTP {code}")
        dur, warm, conc = self.size("read_duration"), self.size("read_warmup"), self.args.concurrency
        targets = cluster.urls()
        out: dict[str, Any] = {}
        # registry_bench's get job reads f"{target}/v1/services/{service}": the query rides on the name.
        for mode in ("default", "consistent", "min_index"):
            index = cluster.wait_converged(timeout=60)
            query = {"default": "", "consistent": "?consistent", "min_index": f"?min_index={index}"}[mode]
            log(f"read/{mode}: GET /v1/services/{svc}{query} ({n} instances) for {dur:.0f}s, concurrency {conc} "
                f"over all nodes, {self.args.procs} client procs")
            res = self.client_pool().run(self.get_jobs(targets, conc, svc + query, n, dur, warm),
                                         node_pids(cluster), dur + 120)
            res.update(leader=leader, query=query, applied_index_before=index)
            out[mode] = res
        print_run_table(f"Lookups of a {n}-instance service: default vs ?consistent vs ?min_index=<applied index> "
                        f"(concurrency {conc} spread over 3 nodes, {dur:.0f}s each)",
                        [(r["query"] or "default", r) for r in out.values()], roles=True)
        for mode, r in out.items():
            self.note("read", f"{mode} lookups/s (p50/p99 ms)",
                      f"{fmt_num(r['ops_per_s'])} ({fmt_ms(r['p50_ms'])}/{fmt_ms(r['p99_ms'])})",
                      "" if r["errors"] == 0 else f"{r['errors']} errors")
        return out


# =============================================================================================
# Output
# =============================================================================================

def print_watch_table(title: str, runs: list[dict[str, Any]]) -> None:
    rows = []
    for r in runs:
        if "failed" in r:
            rows.append([fmt_num(r["watchers"]), "failed: " + r["failed"][:80]] + [""] * 12)
            continue
        roles = roles_of(list(r["server_cpu_pct"]), r["leader"], r["watched"])
        errs = ", ".join(f"{k}: {v}" for k, v in r["errors_by_kind"].items()) or "0"
        if r["wrong_answers"]:
            errs += f", wrong answers: {r['wrong_answers']}"
        rows.append([
            fmt_num(r["watchers"]), f"{r['wakeups']}/{r['watchers'] * r['rounds']}",
            fmt_ms(r["wake_p50_ms"]), fmt_ms(r["wake_p99_ms"]), fmt_ms(r["wake_max_ms"]),
            fmt_ms(r["first_wake_p50_ms"]),
            f"{fmt_ms(r['commit']['p50_ms'])}/{fmt_ms(r['commit']['max_ms'])}",
            "-" if r["repark_max_s"] is None else f"{r['repark_max_s']:.2f}", errs,
            fmt_cpu(r["server_cpu_pct"], roles),
            "-" if r["watched_cpu_ms_per_change"] is None else f"{r['watched_cpu_ms_per_change']:.0f}",
            f"{fmt_ms(r['health_probe']['p50_ms'])}/{fmt_ms(r['health_probe']['max_ms'])}",
            f"{r['client_cpu_pct_total']:.0f} ({fmt_cpu(r['client_cpu_pct'])})",
            f"{r['other_procs_cpu_pct']:.0f}", f"{r['loadavg_at_start'][0]:.2f}",
        ])
    print_table(title, ["watchers", "wake-ups", "p50 ms", "p99 ms", "max ms", "first ms", "commit p50/max ms",
                        "re-park s", "errors", "server CPU % (wake)", "W CPU ms/change", "W health p50/max ms",
                        "client CPU % (wake)",
                        "other CPU %", "load"], rows)
    busy = [fmt_num(r["watchers"]) for r in runs if r.get("other_procs_cpu_pct", 0) > 30]
    if busy:
        print(f"note: other processes used > 30% of a core during the wake windows of {', '.join(busy)} watchers: "
              "those numbers are contaminated by a concurrent load\n", flush=True)


# =============================================================================================
# Command line
# =============================================================================================

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes: the whole run takes well under a minute")
    p.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/watch_bench-<time>.json)")
    p.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases (default: all of "
                   f"{','.join(PHASES)})")
    p.add_argument("--procs", type=int, default=4, help="client worker processes (default 4)")
    p.add_argument("--tuning", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="raftreg.config.RaftTuning overrides, e.g. max_batch_commands=500")
    p.add_argument("--concurrency", type=int, default=64,
                   help="concurrent lookups in total over all procs in the read phase (default 64)")
    p.add_argument("--wait", default="60s", help="the watchers' ?wait= (default 60s)")
    p.add_argument("--watch-client", choices=("light", "aiohttp"), default="light",
                   help="the watchers' HTTP client: a minimal keep-alive protocol (default; the load "
                   "generator shares the 2 cores with the nodes) or aiohttp's ClientSession")
    p.add_argument("--payload-bytes", type=int, default=300, help="size of one registration body (default 300)")
    for name, (full, quick) in SIZES.items():
        p.add_argument("--" + name.replace("_", "-"), type=type(full), default=None,
                       help=f"default {full} ({quick} with --quick)")
    return p


def ensure_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard == resource.RLIM_INFINITY or hard >= need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY else hard, hard))
        return
    raise SystemExit(f"open-file limit {soft}/{hard} is below the {need} the watchers need (ulimit -n)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    phases, tuning, overrides = check_common_args(args, PHASES)
    bench = WatchBench(args, tuning, overrides)
    most = max([int(x) for x in str(bench.size("watchers")).split(",") if x.strip()]
               + [bench.size("crosstalk_watchers")])
    ensure_fd_limit(most + 1024)  # the watched node holds one socket per watcher (clients hold their share)
    out_path = args.out or REPO / "benchmarks" / "results" / f"watch_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"

    exit_on_sigterm()
    started = time.time()
    meta = {
        **run_meta(args, argv, started, phases, tuning, overrides),
        "concurrency": args.concurrency, "watch_client": args.watch_client, "wait": args.wait,
        "sizes": {name: bench.size(name) for name in SIZES},
    }
    log(f"raftreg watch benchmark: phases {','.join(phases)}, {args.procs} client procs"
        f"{', quick' if args.quick else ''}; load average {meta['loadavg_at_start']}")
    return run_and_report(bench, phases, meta, started, out_path)


if __name__ == "__main__":
    sys.exit(main())
