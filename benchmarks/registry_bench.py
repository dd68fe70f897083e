"""Benchmark a local 3-node raftreg cluster: client ceiling, register throughput, low-load write
latency, lookup throughput, leader failover and memory.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/registry_bench.py --quick
    .venv/bin/python benchmarks/registry_bench.py --only write,read --procs 3 --tuning max_batch_commands=500

Everything runs on 127.0.0.1. The load comes from ``--procs`` client worker processes (spawned
once, each with its own asyncio loop and aiohttp connection pool; a shared barrier starts them
together; latencies come back over a pipe). CPU use of every node and client process is taken
from /proc/<pid>/stat (utime + stime) over each measured run. Every load loop is bounded in
operations and in time, and every process we start is killed at the end.

See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import itertools
import json
import multiprocessing as mp
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
import traceback
from array import array
from collections.abc import Callable, Coroutine, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from raftreg.config import ConfigError, RaftTuning
from raftreg.testing import LocalCluster, free_ports, http_json, wait_for

REPO = Path(__file__).resolve().parent.parent
PHASES = ("ceiling", "write", "latency", "read", "failover", "memory")
JSON_HEADERS = {"Content-Type": "application/json"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# Targets the numbers are judged against (printed as ok / MISS).
TARGET_LAT_P50_MS = 5.0
TARGET_LAT_P99_MS = 25.0
TARGET_READ_SMALL_OPS = 8000.0
TARGET_FAILOVER_S = 3.0
TARGET_RSS_MIB = 200.0

# (full, quick) defaults for the size options.
SIZES: dict[str, tuple[Any, Any]] = {
    "write_total": (20_000, 2_000),
    "warmup_writes": (1_000, 200),
    "latency_writes": (500, 100),
    "read_duration": (10.0, 3.0),
    "read_warmup": (1.0, 0.5),
    "failover_trials": (10, 2),
    "failover_prekill": (2.0, 1.0),
    "memory_instances": (100_000, 10_000),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# =============================================================================================
# Payloads and keys (shared by the parent, the client workers and the ceiling server)
# =============================================================================================

def instance_body(i: int, size: int = 300) -> bytes:
    """A registration body of about ``size`` bytes: address, port, tags, meta padded to size."""
    doc: dict[str, Any] = {
        "address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
        "port": 20000 + i % 20000,
        "tags": ["v1", "http", "zone-a"],
        "meta": {"version": "1.4.2", "zone": "local-a", "owner": "bench", "pad": ""},
    }
    raw = json.dumps(doc, separators=(",", ":"))
    doc["meta"]["pad"] = "x" * max(0, size - len(raw))
    return json.dumps(doc, separators=(",", ":")).encode()


def key_path(prefix: str, services: int, i: int) -> str:
    """URL path of the i-th instance of a key space: ``services`` services named prefix-NNN."""
    return f"/v1/services/{prefix}-{i % services:03d}/instances/i{i:07d}"


class _ServiceAnswer(msgspec.Struct):
    """Just enough of ``GET /v1/services/{svc}`` to count the instances (each left undecoded)."""

    instances: list[msgspec.Raw] = []


_answer_decoder = msgspec.json.Decoder(_ServiceAnswer)


# =============================================================================================
# /proc helpers
# =============================================================================================

def cpu_ticks(pid: int | None) -> int | None:
    """utime + stime of ``pid`` in clock ticks, or None if it is gone."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def proc_status_kib(pid: int | None, field: str) -> int | None:
    """A ``kB`` field (VmRSS, VmHWM) of /proc/<pid>/status."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class CpuMeter:
    """CPU% (100 = one core) of named PIDs, and of the whole machine, between start() and stop()."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.t0 = 0.0
        self.c0: dict[str, int | None] = {}
        self.m0 = (0, 0)

    def start(self) -> None:
        self.c0 = {k: cpu_ticks(p) for k, p in self.pids.items()}
        self.m0 = machine_ticks()
        self.t0 = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        per: dict[str, float | None] = {}
        for k, p in self.pids.items():
            c1, c0 = cpu_ticks(p), self.c0.get(k)
            per[k] = None if c1 is None or c0 is None else round(100.0 * (c1 - c0) / CLK_TCK / wall, 1)
        b1, t1 = machine_ticks()
        ncpu = os.cpu_count() or 1
        busy = 100.0 * ncpu * (b1 - self.m0[0]) / max(1, t1 - self.m0[1])
        ours = sum(v for v in per.values() if v is not None)
        return {"wall_s": round(wall, 3), "cpu_pct": per, "machine_busy_pct": round(busy, 1),
                "other_procs_cpu_pct": round(busy - ours, 1)}


# =============================================================================================
# Client worker processes
# =============================================================================================

def pct(sorted_vals: list[float] | array[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, round(p / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def _error_key(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "client timeout"
    return type(exc).__name__


async def _put(session: aiohttp.ClientSession, url: str, body: bytes) -> str | None:
    async with session.put(url, data=body, headers=JSON_HEADERS) as resp:
        await resp.read()
        return None if resp.status == 200 else f"http {resp.status}"


async def _get_count(session: aiohttp.ClientSession, url: str, expect: int) -> str | None:
    async with session.get(url) as resp:
        raw = await resp.read()
        if resp.status != 200:
            return f"http {resp.status}"
    n = len(_answer_decoder.decode(raw).instances)
    return None if n == expect else "instance count mismatch"


async def _drive(
    conc: int,
    targets: list[str],
    worker_offset: int,
    op: Callable[[int, str], Any],
    n_ops: int,
    duration: float,
    record: bool,
) -> tuple[array[float], collections.Counter[str], float, float]:
    """Closed loop: ``conc`` coroutines run op(k, target) until ``n_ops`` ops were started or
    ``duration`` seconds passed. Coroutine w always talks to targets[(offset + w) % len]."""
    lat: array[float] = array("d")
    errs: collections.Counter[str] = collections.Counter()
    counter = itertools.count()
    t0 = time.monotonic()
    deadline = t0 + duration

    async def one(w: int) -> None:
        target = targets[(worker_offset + w) % len(targets)]
        while True:
            k = next(counter)
            if k >= n_ops or time.monotonic() >= deadline:
                return
            ts = time.perf_counter()
            try:
                err = await op(k, target)
            except Exception as exc:
                err = _error_key(exc)
            if err is None:
                if record:
                    lat.append(time.perf_counter() - ts)
            else:
                errs[err] += 1

    await asyncio.wait_for(asyncio.gather(*(one(w) for w in range(conc))), duration + 60)
    return lat, errs, t0, time.monotonic()


def _put_op(session: aiohttp.ClientSession, spec: dict[str, Any]) -> tuple[Callable[[int, str], Any], int]:
    """op(k, target) registering the k-th local key of a key space (pre-encoded bodies)."""
    indexes = range(spec["start"], spec["stop"], spec["step"])
    reqs = [(key_path(spec["prefix"], spec["services"], i), instance_body(i, spec["size"])) for i in indexes]

    def op(k: int, target: str) -> Any:
        path, body = reqs[k]
        return _put(session, target + path, body)

    return op, len(reqs)


async def _run_job(job: dict[str, Any], barrier: Any) -> dict[str, Any]:
    conc = job["conc"]
    if conc == 0:
        barrier.wait(timeout=job["barrier_timeout"])
        return {"idle": True}
    setup_error = None
    warm_errs: collections.Counter[str] = collections.Counter()
    timeout = aiohttp.ClientTimeout(total=job["request_timeout"])
    connector = aiohttp.TCPConnector(limit=conc, limit_per_host=0, force_close=False)
    session = aiohttp.ClientSession(connector=connector, timeout=timeout)
    try:
        try:
            targets: list[str] = job["targets"]
            if job["kind"] == "put":
                op, n_ops = _put_op(session, job["keys"])
                duration = job["hard_limit"]
                if job.get("warmup"):
                    wop, wn = _put_op(session, job["warmup"])
                    _, warm_errs, _, _ = await _drive(conc, targets, job["worker_offset"], wop, wn,
                                                      job["hard_limit"], False)
            else:
                expect = job["expect"]

                def op(k: int, target: str) -> Any:
                    return _get_count(session, f"{target}/v1/services/{job['service']}", expect)

                n_ops = job["max_ops"]
                duration = job["duration"]
                if job.get("warmup_s"):
                    _, warm_errs, _, _ = await _drive(conc, targets, job["worker_offset"], op, n_ops,
                                                      job["warmup_s"], False)
        except Exception:
            setup_error = traceback.format_exc(limit=3)
        barrier.wait(timeout=job["barrier_timeout"])
        if setup_error:
            return {"fatal": setup_error}
        lat, errs, t0, t1 = await _drive(conc, targets, job["worker_offset"], op, n_ops, duration, True)
    finally:
        await session.close()
    return {"lat": lat.tobytes(), "errors": dict(errs), "warmup_errors": dict(warm_errs), "t0": t0, "t1": t1}


JobRunner = Callable[[dict[str, Any], Connection, Any], Coroutine[Any, Any, dict[str, Any]]]


async def _run_job_default(job: dict[str, Any], conn: Connection, barrier: Any) -> dict[str, Any]:
    return await _run_job(job, barrier)


def _worker_main(conn: Connection, barrier: Any, run_job: JobRunner = _run_job_default) -> None:
    """Body of a client worker process: run jobs from the pipe until None or EOF. ``run_job`` lets
    another benchmark add job kinds (it hands the others to ``_run_job``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            result = asyncio.run(run_job(job, conn, barrier))
        except BaseException:
            result = {"fatal": traceback.format_exc(limit=5)}
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


class ClientPool:
    """``n`` spawned client processes. ``run`` sends one job to each, releases them together
    through a barrier, meters CPU of the given server PIDs and of the workers, and aggregates."""

    def __init__(self, n: int, target: Callable[[Connection, Any], None] | None = None) -> None:
        """``target`` is the worker body (default ``_worker_main``); another benchmark may pass its own
        that understands more job kinds and hands the rest to ``_run_job``."""
        ctx = mp.get_context("spawn")
        self.n = n
        self.barrier = ctx.Barrier(n + 1)
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=target or _worker_main, args=(child, self.barrier), name=f"bench-client-{i}",
                               daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def pids(self) -> dict[str, int | None]:
        return {f"client{i}": p.pid for i, p in enumerate(self.procs)}

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)

    def run(self, jobs: list[dict[str, Any]], servers: dict[str, int | None], time_limit: float) -> dict[str, Any]:
        assert len(jobs) == self.n
        barrier_timeout = jobs[0]["barrier_timeout"]
        for conn, job in zip(self.conns, jobs, strict=True):
            conn.send(job)
        meter = CpuMeter({**servers, **self.pids()})
        load = loadavg()
        try:
            self.barrier.wait(timeout=barrier_timeout + 5)
        except threading.BrokenBarrierError:
            results = self._collect(30)
            self.barrier.reset()
            raise RuntimeError(f"client workers did not reach the start barrier: {results}") from None
        meter.start()
        results = self._collect(time_limit)
        cpu = meter.stop()
        fatal = [r["fatal"] for r in results if "fatal" in r]
        if fatal:
            raise RuntimeError("client worker failed:\n" + "\n".join(fatal))
        active = [r for r in results if not r.get("idle")]
        lat: array[float] = array("d")
        errs: collections.Counter[str] = collections.Counter()
        warm: collections.Counter[str] = collections.Counter()
        for r in active:
            lat.frombytes(r["lat"])
            errs.update(r["errors"])
            warm.update(r["warmup_errors"])
        wall = max(r["t1"] for r in active) - min(r["t0"] for r in active)
        ordered = sorted(lat)
        server_cpu = {k: v for k, v in cpu["cpu_pct"].items() if k in servers}
        client_cpu = {k: v for k, v in cpu["cpu_pct"].items() if k not in servers}
        return {
            "ops_ok": len(ordered),
            "errors": sum(errs.values()),
            "errors_by_kind": dict(errs.most_common()),
            "warmup_errors": dict(warm.most_common()),
            "elapsed_s": round(wall, 3),
            "ops_per_s": round(len(ordered) / wall, 1) if wall > 0 else None,
            "p50_ms": _ms(pct(ordered, 50)),
            "p99_ms": _ms(pct(ordered, 99)),
            "max_ms": _ms(ordered[-1] if ordered else None),
            "server_cpu_pct": server_cpu,
            "client_cpu_pct": client_cpu,
            "client_cpu_pct_total": round(sum(v or 0 for v in client_cpu.values()), 1),
            "machine_busy_pct": cpu["machine_busy_pct"],
            "other_procs_cpu_pct": cpu["other_procs_cpu_pct"],
            "loadavg_at_start": load,
        }

    def _collect(self, time_limit: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + time_limit
        out = []
        for conn in self.conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"client workers did not finish within {time_limit:.0f}s")
            out.append(conn.recv())
        return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if p < extra else 0) for p in range(parts)]


def share(total: int, weights: list[int]) -> list[tuple[int, int]]:
    """Split range(total) into consecutive [start, stop) pieces proportional to ``weights``."""
    out, start, acc, wsum = [], 0, 0, sum(weights)
    for w in weights:
        acc += w
        stop = total * acc // wsum if wsum else total
        out.append((start, stop))
        start = stop
    return out


# =============================================================================================
# The ceiling server: a trivial aiohttp server with fixed answers (runs as a subprocess)
# =============================================================================================

def _fixed_service_body(service: str, n: int) -> bytes:
    instances = []
    for i in range(n):
        inst = json.loads(instance_body(i))
        inst.update(service=service, id=f"i{i:07d}", weight=100, status="passing", create_index=i + 1,
                    modify_index=i + 1)
        instances.append(inst)
    return json.dumps({"index": n, "service": service, "instances": instances}).encode()


def serve_hello(port: int) -> None:
    """Answer PUT .../instances/{id} and GET /v1/services/{svc} with fixed JSON; nothing stored."""
    from aiohttp import web

    put_answer = json.dumps({"service": "x", "id": "x", "address": "10.0.0.1", "port": 1, "status": "passing",
                             "create_index": 1, "modify_index": 1, "index": 1}).encode()
    answers = {"small": _fixed_service_body("small", 5), "large": _fixed_service_body("large", 200)}
    empty = _fixed_service_body("none", 0)

    async def put(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=put_answer, content_type="application/json")

    async def get_service(request: web.Request) -> web.Response:
        body = answers.get(request.match_info["service"], empty)
        return web.Response(body=body, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    app = web.Application()
    app.router.add_put("/v1/services/{service}/instances/{id}", put)
    app.router.add_get("/v1/services/{service}", get_service)
    app.router.add_get("/v1/health", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


# =============================================================================================
# The benchmark
# =============================================================================================

class Bench:
    sizes: dict[str, tuple[Any, Any]] = SIZES  # (full, quick) defaults; a subclass names its own

    def __init__(self, args: argparse.Namespace, tuning: RaftTuning, tuning_overrides: dict[str, Any]) -> None:
        self.args = args
        self.tuning = tuning
        self.tuning_overrides = tuning_overrides
        self.pool: ClientPool | None = None
        self.cluster: LocalCluster | None = None
        self.helper_procs: list[subprocess.Popen[bytes]] = []
        self.results: dict[str, Any] = {}
        self.summary: list[tuple[str, str, str, str]] = []  # (phase, metric, value, verdict)

    # ---- infrastructure -------------------------------------------------------------------
    def size(self, name: str) -> Any:
        """A size option: the command line's value, else the (full, quick) default of ``sizes``."""
        value = getattr(self.args, name)
        if value is not None:
            return value
        full, quick = self.sizes[name]
        return quick if self.args.quick else full

    @contextlib.contextmanager
    def fresh_cluster(self) -> Iterator[LocalCluster]:
        cluster = LocalCluster(3, tuning=self.tuning, name="bench")
        self.cluster = cluster
        try:
            t0 = time.perf_counter()
            cluster.start(wait=60)
            log(f"cluster up in {time.perf_counter() - t0:.1f}s (leader {cluster.leader()}, data {cluster.base_dir})")
            yield cluster
        finally:
            cluster.close()
            self.cluster = None

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        for proc in self.helper_procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.helper_procs.clear()
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def client_pool(self) -> ClientPool:
        if self.pool is None:
            self.pool = ClientPool(self.args.procs)
        return self.pool

    def put_jobs(self, targets: list[str], conc: int, prefix: str, total: int, services: int,
                 warmup: int = 0, request_timeout: float = 10.0) -> list[dict[str, Any]]:
        """One job per client process: the key space split round-robin over the active processes,
        worker w of the run (over all processes) talks to targets[w % len(targets)]."""
        nprocs = self.args.procs
        concs = split(conc, nprocs) if conc >= nprocs else [1] * conc + [0] * (nprocs - conc)
        ranges, warm_ranges = share(total, concs), share(warmup, concs)
        jobs = []
        offset = 0
        for p in range(nprocs):
            job: dict[str, Any] = {
                "kind": "put", "conc": concs[p], "targets": targets, "worker_offset": offset,
                "keys": {"prefix": prefix, "services": services, "start": ranges[p][0], "stop": ranges[p][1],
                         "step": 1, "size": self.args.payload_bytes},
                "request_timeout": request_timeout, "hard_limit": 600.0, "barrier_timeout": 300.0,
            }
            if warmup:
                job["warmup"] = {"prefix": "warm", "services": 10, "start": warm_ranges[p][0],
                                 "stop": warm_ranges[p][1], "step": 1, "size": self.args.payload_bytes}
            jobs.append(job)
            offset += concs[p]
        return jobs

    def get_jobs(self, targets: list[str], conc: int, service: str, expect: int, duration: float,
                 warmup_s: float) -> list[dict[str, Any]]:
        nprocs = self.args.procs
        concs = split(conc, nprocs) if conc >= nprocs else [1] * conc + [0] * (nprocs - conc)
        jobs = []
        offset = 0
        for p in range(nprocs):
            jobs.append({
                "kind": "get", "conc": concs[p], "targets": targets, "worker_offset": offset, "service": service,
                "expect": expect, "duration": duration, "warmup_s": warmup_s, "max_ops": 10_000_000,
                "request_timeout": 10.0, "barrier_timeout": warmup_s + 120.0,
            })
            offset += concs[p]
        return jobs

    def of_ceiling(self, run: dict[str, Any], key: str) -> str:
        """`` = N% of ceiling`` when the ceiling phase ran in this invocation."""
        ceiling = self.results.get("ceiling", {}).get(key, {}).get("ops_per_s")
        if not ceiling or not run.get("ops_per_s"):
            return ""
        return f" = {100.0 * run['ops_per_s'] / ceiling:.0f}% of ceiling"

    def note(self, phase: str, metric: str, value: str, verdict: str = "") -> None:
        self.summary.append((phase, metric, value, verdict))

    # ---- 1. client ceiling ----------------------------------------------------------------
    def phase_ceiling(self) -> dict[str, Any]:
        """The same load generator against a trivial aiohttp server with fixed answers."""
        port = free_ports(1)[0]
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-hello", str(port)],
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.helper_procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: http_json(url + "/v1/health", timeout=0.5)[0] == 200, 20, "the ceiling server")
            pool = self.client_pool()
            servers: dict[str, int | None] = {"hello": proc.pid}
            conc = self.args.concurrency
            out: dict[str, Any] = {"server_pid": proc.pid}
            total = self.size("write_total")
            log(f"ceiling: {total} PUTs, concurrency {conc}, {self.args.procs} client procs")
            out["put"] = pool.run(self.put_jobs([url], conc, "ceil", total, 100, warmup=self.size("warmup_writes")),
                                  servers, 900)
            for svc, n in (("small", 5), ("large", 200)):
                dur = self.size("read_duration")
                log(f"ceiling: GET {n}-instance answer for {dur:.0f}s")
                out[f"get_{svc}"] = pool.run(self.get_jobs([url], conc, svc, n, dur, self.size("read_warmup")),
                                             servers, dur + 120)
        finally:
            proc.kill()
            proc.wait(timeout=10)
            self.helper_procs.remove(proc)
        rows = [("PUT", out["put"]), ("GET 5 inst", out["get_small"]), ("GET 200 inst", out["get_large"])]
        print_run_table("Client ceiling (trivial aiohttp server, fixed answers)", rows)
        self.note("ceiling", "PUT ops/s", fmt_num(out["put"]["ops_per_s"]))
        self.note("ceiling", "GET 5-inst ops/s", fmt_num(out["get_small"]["ops_per_s"]))
        self.note("ceiling", "GET 200-inst ops/s", fmt_num(out["get_large"]["ops_per_s"]))
        return out

    # ---- 2. register throughput -------------------------------------------------------------
    def phase_write(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        total, conc = self.size("write_total"), self.args.concurrency
        for mode in ("leader", "follower", "spread"):
            with self.fresh_cluster() as cluster:
                leader = cluster.leader()
                follower = next(n for n in cluster.names if n != leader)
                names = {"leader": [leader], "follower": [follower], "spread": cluster.names}[mode]
                targets = [cluster.url(n) for n in names]
                log(f"write/{mode}: {total} registrations via {','.join(names)}, concurrency {conc}, "
                    f"{self.args.procs} client procs (+{self.size('warmup_writes')} warm-up)")
                servers = node_pids(cluster)
                res = self.client_pool().run(
                    self.put_jobs(targets, conc, "reg", total, self.args.services, warmup=self.size("warmup_writes")),
                    servers, 900)
                res["leader"] = leader
                res["targets"] = names
                res["stored_instances"] = count_instances(cluster.url(leader), "reg-")
                res["group_commit"] = {n: group_commit_stats(cluster, n) for n in cluster.names}
                out[mode] = res
        print_run_table(f"Register throughput ({total} x ~{self.args.payload_bytes} B, concurrency {conc}, "
                        f"{self.args.procs} client procs)", [(m, r) for m, r in out.items()], roles=True)
        for mode, r in out.items():
            self.note("write", f"{mode} ops/s (p50/p99 ms)",
                      f"{fmt_num(r['ops_per_s'])} ({fmt_ms(r['p50_ms'])}/{fmt_ms(r['p99_ms'])})"
                      + self.of_ceiling(r, "put"), "" if r["errors"] == 0 else f"{r['errors']} errors")
        return out

    # ---- 3. low-load latency ----------------------------------------------------------------
    def phase_latency(self, cluster: LocalCluster) -> dict[str, Any]:
        out: dict[str, Any] = {}
        n = self.size("latency_writes")
        leader = cluster.leader()
        follower = next(x for x in cluster.names if x != leader)
        for mode, node in (("leader", leader), ("follower", follower)):
            log(f"latency/{mode}: {n} sequential registrations via {node}")
            res = self.client_pool().run(
                self.put_jobs([cluster.url(node)], 1, f"lat-{mode}", n, 10, warmup=20), node_pids(cluster), 300)
            res["node"] = node
            res["leader"] = leader
            ok = (res["p50_ms"] is not None and res["p50_ms"] < TARGET_LAT_P50_MS
                  and res["p99_ms"] is not None and res["p99_ms"] < TARGET_LAT_P99_MS and res["errors"] == 0)
            res["meets_target"] = ok
            out[mode] = res
        print_run_table(f"Low-load write latency (concurrency 1, {n} writes; target p50 < {TARGET_LAT_P50_MS:g} ms, "
                        f"p99 < {TARGET_LAT_P99_MS:g} ms)", [(m, r) for m, r in out.items()], roles=True)
        for mode, r in out.items():
            self.note("latency", f"{mode} p50/p99/max ms",
                      f"{fmt_ms(r['p50_ms'])}/{fmt_ms(r['p99_ms'])}/{fmt_ms(r['max_ms'])}",
                      "ok" if r["meets_target"] else "MISS")
        return out

    # ---- 4. lookup throughput ---------------------------------------------------------------
    def phase_read(self, cluster: LocalCluster) -> dict[str, Any]:
        out: dict[str, Any] = {}
        leader = cluster.leader()
        sizes = (("small", 5), ("large", 200))
        for svc, n in sizes:
            for i in range(n):
                url = f"{cluster.url(leader)}/v1/services/{svc}/instances/i{i:07d}"
                body = json.loads(instance_body(i, self.args.payload_bytes))
                code, _ = http_json(url, method="PUT", body=body, timeout=10)
                if code != 200:
                    raise RuntimeError(f"preload of {svc} failed with HTTP {code}")
        cluster.wait_converged(timeout=60)
        dur, conc = self.size("read_duration"), self.args.concurrency
        targets = cluster.urls()
        for svc, n in sizes:
            log(f"read/{svc}: GET /v1/services/{svc} ({n} instances) for {dur:.0f}s, concurrency {conc} over all "
                f"nodes, {self.args.procs} client procs")
            res = self.client_pool().run(self.get_jobs(targets, conc, svc, n, dur, self.size("read_warmup")),
                                         node_pids(cluster), dur + 120)
            res["leader"] = leader
            res["instances"] = n
            out[svc] = res
        out["small"]["meets_target"] = (out["small"]["ops_per_s"] or 0) >= TARGET_READ_SMALL_OPS \
            and out["small"]["errors"] == 0
        print_run_table(f"Lookup throughput (concurrency {conc} spread over 3 nodes, {dur:.0f}s each; "
                        f"target >= {TARGET_READ_SMALL_OPS:,.0f}/s for 5 instances)",
                        [(f"{r['instances']} inst", r) for r in out.values()], roles=True)
        self.note("read", "5-inst lookups/s (p50/p99 ms)",
                  f"{fmt_num(out['small']['ops_per_s'])} ({fmt_ms(out['small']['p50_ms'])}/"
                  f"{fmt_ms(out['small']['p99_ms'])})" + self.of_ceiling(out["small"], "get_small"),
                  "ok" if out["small"]["meets_target"] else "MISS")
        self.note("read", "200-inst lookups/s (p50/p99 ms)",
                  f"{fmt_num(out['large']['ops_per_s'])} ({fmt_ms(out['large']['p50_ms'])}/"
                  f"{fmt_ms(out['large']['p99_ms'])})" + self.of_ceiling(out["large"], "get_large"),
                  "" if out["large"]["errors"] == 0 else f"{out['large']['errors']} errors")
        return out

    # ---- 5. failover ------------------------------------------------------------------------
    def phase_failover(self, cluster: LocalCluster) -> dict[str, Any]:
        trials = self.size("failover_trials")
        out: dict[str, Any] = {"rate_per_s": self.args.failover_rate, "loadavg_at_start": loadavg(), "trials": []}
        for t in range(trials):
            cluster.wait_ready(timeout=60)
            trial = asyncio.run(self._failover_trial(cluster, t))
            out["trials"].append(trial)
            log(f"failover trial {t}: killed {trial['killed']}, new leader {trial['new_leader']} "
                f"after {fmt_s(trial['kill_to_leader_s'])}, first ack after {fmt_s(trial['kill_to_first_ack_s'])}, "
                f"{trial['acked']} acked, {trial['missing_acked']} acked writes missing, "
                f"errors {trial['errors_by_kind']}")
        times = sorted(t["kill_to_first_ack_s"] for t in out["trials"] if t["kill_to_first_ack_s"] is not None)
        failed = sum(1 for t in out["trials"] if t["kill_to_first_ack_s"] is None)
        out["kill_to_first_ack_p50_s"] = pct(times, 50)
        out["kill_to_first_ack_max_s"] = times[-1] if times else None
        out["trials_without_recovery"] = failed
        out["missing_acked_total"] = sum(t["missing_acked"] for t in out["trials"])
        out["meets_target"] = failed == 0 and bool(times) and times[-1] < TARGET_FAILOVER_S
        print_failover_table(out)
        self.note("failover", "kill -> first ack p50/max s",
                  f"{fmt_s(out['kill_to_first_ack_p50_s'])}/{fmt_s(out['kill_to_first_ack_max_s'])}",
                  "ok" if out["meets_target"] else "MISS")
        self.note("failover", "acked writes missing", str(out["missing_acked_total"]),
                  "ok" if out["missing_acked_total"] == 0 else "LOST WRITES")
        return out

    async def _failover_trial(self, cluster: LocalCluster, trial: int) -> dict[str, Any]:
        """Open-loop writes (new key each) through the non-leader nodes; kill -9 the leader; time
        to the first acknowledged write issued after the kill. Then restart it and check that every
        acknowledged write is on every node."""
        loop = asyncio.get_running_loop()
        leader = await asyncio.to_thread(cluster.leader, 30.0)
        survivors = [n for n in cluster.names if n != leader]
        svc = f"fo-{trial}"
        rate = self.args.failover_rate
        attempt_timeout, write_deadline, max_wait, max_inflight = 2.0, 10.0, 20.0, 256
        acked: dict[str, float] = {}
        issued_after_kill_acks: list[float] = []
        latencies_after_kill: list[float] = []
        errs: collections.Counter[str] = collections.Counter()
        st: dict[str, Any] = {"kill_t": None, "gave_up": 0, "skipped": 0, "issued": 0, "leader_t": None,
                              "new_leader": None}
        tasks: set[asyncio.Task[None]] = set()
        connector = aiohttp.TCPConnector(limit=max_inflight + 16, limit_per_host=0)
        session = aiohttp.ClientSession(connector=connector)

        async def write(i: int, issued_at: float) -> None:
            iid = f"i{i:07d}"
            url_path = f"/v1/services/{svc}/instances/{iid}"
            body = instance_body(i, self.args.payload_bytes)
            node = i % len(survivors)
            while loop.time() < issued_at + write_deadline:
                try:
                    async with session.put(cluster.url(survivors[node]) + url_path, data=body, headers=JSON_HEADERS,
                                           timeout=aiohttp.ClientTimeout(total=attempt_timeout)) as resp:
                        await resp.read()
                        err = None if resp.status == 200 else f"http {resp.status}"
                except Exception as exc:
                    err = _error_key(exc)
                now = loop.time()
                if err is None:
                    acked[iid] = now
                    kill_t = st["kill_t"]
                    if kill_t is not None and issued_at >= kill_t:
                        issued_after_kill_acks.append(now)
                    if kill_t is not None and now >= kill_t:
                        latencies_after_kill.append(now - issued_at)
                    return
                errs[err] += 1
                node = (node + 1) % len(survivors)  # the same key, on the other surviving node
                await asyncio.sleep(0.05)
            st["gave_up"] += 1

        async def watch_leader() -> None:
            while st["leader_t"] is None and loop.time() < st["kill_t"] + max_wait:
                for name in survivors:
                    try:
                        async with session.get(cluster.url(name) + "/v1/cluster",
                                               timeout=aiohttp.ClientTimeout(total=0.5)) as resp:
                            info = await resp.json() if resp.status == 200 else {}
                    except Exception:
                        info = {}
                    if info.get("state") == "leader" and st["leader_t"] is None:
                        st["leader_t"], st["new_leader"] = loop.time(), name
                await asyncio.sleep(0.02)

        watcher: asyncio.Task[None] | None = None
        try:
            start = loop.time()
            prekill = self.size("failover_prekill")
            i = 0
            while True:
                now = loop.time()
                if st["kill_t"] is None and now >= start + prekill:
                    st["kill_t"] = loop.time()
                    cluster.kill(leader)  # kill -9 of the node's process group, then reaped
                    watcher = asyncio.create_task(watch_leader())
                kill_t = st["kill_t"]
                if kill_t is not None:
                    if issued_after_kill_acks and now >= issued_after_kill_acks[0] + 1.0:
                        break
                    if now >= kill_t + max_wait:
                        break
                target_t = start + i / rate
                if now < target_t:
                    await asyncio.sleep(min(target_t - now, 0.05))
                    continue
                if len(tasks) >= max_inflight:
                    st["skipped"] += 1
                else:
                    task = asyncio.create_task(write(i, now))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    st["issued"] += 1
                i += 1
            if tasks:
                await asyncio.wait(set(tasks), timeout=write_deadline + attempt_timeout)
            if watcher is not None:
                await asyncio.wait_for(watcher, max_wait + 5)
        finally:
            for task in list(tasks):
                task.cancel()
            if watcher is not None:
                watcher.cancel()
            await asyncio.gather(*tasks, *(w for w in [watcher] if w is not None), return_exceptions=True)
            await session.close()

        kill_t = st["kill_t"]
        acked_before_kill = sum(1 for t in acked.values() if t < kill_t)
        # Restart the killed node and wait until it is ready (and the cluster has converged).
        t0 = time.perf_counter()
        await asyncio.to_thread(cluster.start_node, leader)
        try:
            await asyncio.to_thread(cluster.wait_node_ready, leader, 60.0)
        except TimeoutError:
            for name in cluster.names:
                log(f"{name} status: {json.dumps(cluster.status(name))}")
            log(f"{leader} log tail:\n{cluster.log_text(leader)[-5000:]}")
            raise
        rejoin_s = time.perf_counter() - t0
        await asyncio.to_thread(cluster.wait_ready, 60.0)
        await asyncio.to_thread(cluster.wait_converged, 60.0)
        missing: dict[str, int] = {}
        for name in cluster.names:
            code, body = await asyncio.to_thread(http_json, f"{cluster.url(name)}/v1/services/{svc}", timeout=10.0)
            present = {inst["id"] for inst in body["instances"]} if code == 200 else set()
            missing[name] = len(set(acked) - present)
        first_ack = issued_after_kill_acks[0] if issued_after_kill_acks else None
        lat_after = sorted(latencies_after_kill)
        return {
            "trial": trial,
            "killed": leader,
            "new_leader": st["new_leader"],
            "kill_to_first_ack_s": None if first_ack is None else round(first_ack - kill_t, 4),
            "kill_to_leader_s": None if st["leader_t"] is None else round(st["leader_t"] - kill_t, 4),
            "worst_write_latency_after_kill_s": round(lat_after[-1], 4) if lat_after else None,
            "issued": st["issued"],
            "skipped_inflight_cap": st["skipped"],
            "acked": len(acked),
            "acked_before_kill": acked_before_kill,
            "gave_up": st["gave_up"],
            "errors_by_kind": dict(errs.most_common()),
            "restart_to_ready_s": round(rejoin_s, 3),
            "missing_acked_by_node": missing,
            "missing_acked": max(missing.values()) if missing else 0,
        }

    # ---- 6. memory --------------------------------------------------------------------------
    def phase_memory(self) -> dict[str, Any]:
        n = self.size("memory_instances")
        conc = self.args.concurrency
        with self.fresh_cluster() as cluster:
            time.sleep(1.0)
            pids = node_pids(cluster)
            empty = {name: proc_status_kib(pid, "VmRSS") for name, pid in pids.items()}
            leader = cluster.leader()
            log(f"memory: registering {n} instances via the leader {leader} ({conc} concurrent, "
                f"{self.args.procs} client procs)")
            load = self.client_pool().run(self.put_jobs([cluster.url(leader)], conc, "mem", n, max(1, n // 200)),
                                          pids, 1800)
            index = cluster.wait_converged(timeout=180)
            time.sleep(2.0)
            rss = {name: proc_status_kib(pid, "VmRSS") for name, pid in pids.items()}
            hwm = {name: proc_status_kib(pid, "VmHWM") for name, pid in pids.items()}
            anon = {name: proc_status_kib(pid, "RssAnon") for name, pid in pids.items()}
            mapped = {name: proc_status_kib(pid, "RssFile") for name, pid in pids.items()}
            stored = count_instances(cluster.url(leader), "mem-")
            data = {name: dir_bytes(cluster.config.node_data_dir(name)) for name in cluster.names}
        out = {
            "instances": n,
            "stored_instances": stored,
            "applied_index": index,
            "leader": leader,
            "load": load,
            "rss_empty_mib": {k: _mib(v) for k, v in empty.items()},
            "rss_mib": {k: _mib(v) for k, v in rss.items()},
            "rss_peak_mib": {k: _mib(v) for k, v in hwm.items()},
            "rss_anon_mib": {k: _mib(v) for k, v in anon.items()},
            "rss_file_mib": {k: _mib(v) for k, v in mapped.items()},
            "data_dir_mib": {k: round(v / MIB, 1) for k, v in data.items()},
        }
        worst = max((v for v in out["rss_mib"].values() if v is not None), default=None)
        out["rss_max_mib"] = worst
        out["meets_target"] = worst is not None and worst < TARGET_RSS_MIB and stored == n
        print_memory_table(out)
        self.note("memory", f"max RSS MiB at {n:,} inst", f"{worst}", "ok" if out["meets_target"] else "MISS")
        return out

    # ---- driver -----------------------------------------------------------------------------
    def run(self, phases: list[str]) -> None:
        if "ceiling" in phases:
            self.results["ceiling"] = self.timed("ceiling", self.phase_ceiling)
        if "write" in phases:
            self.results["write"] = self.timed("write", self.phase_write)
        shared = [p for p in ("latency", "read", "failover") if p in phases]
        if shared:
            with self.fresh_cluster() as cluster:
                for p in shared:
                    fn: Callable[[LocalCluster], dict[str, Any]] = getattr(self, f"phase_{p}")
                    self.results[p] = self.timed(p, functools.partial(fn, cluster))
        if "memory" in phases:
            self.results["memory"] = self.timed("memory", self.phase_memory)

    def timed(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        load = loadavg()
        log(f"=== phase {name} (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
        t0 = time.perf_counter()
        out = fn()
        out["phase_loadavg_at_start"] = load
        out["phase_wall_s"] = round(time.perf_counter() - t0, 1)
        return out


def node_pids(cluster: LocalCluster) -> dict[str, int | None]:
    return {name: cluster.procs[name].pid for name in cluster.names}


def count_instances(url: str, prefix: str) -> int | None:
    code, body = http_json(url + "/v1/services", timeout=10.0)
    if code != 200:
        return None
    return int(sum(s["instances"] for s in body["services"] if s["name"].startswith(prefix)))


def group_commit_stats(cluster: LocalCluster, node: str) -> dict[str, Any] | None:
    st = cluster.status(node, timeout=5.0)
    return st.get("group_commit") if st else None


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024.0, 1)


# =============================================================================================
# Output
# =============================================================================================

def fmt_num(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def fmt_cpu(cpu: dict[str, float | None], roles: dict[str, str] | None = None) -> str:
    parts = []
    for k, v in cpu.items():
        tag = f"{k}({roles[k][0].upper()})" if roles and k in roles else k
        parts.append(f"{tag} {'-' if v is None else f'{v:.0f}'}")
    return " ".join(parts)


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(flush=True)


def print_run_table(title: str, runs: list[tuple[str, dict[str, Any]]], roles: bool = False) -> None:
    rows = []
    for name, r in runs:
        node_roles = None
        if roles and r.get("leader"):
            node_roles = {k: ("leader" if k == r["leader"] else "follower") for k in r["server_cpu_pct"]}
        errs = ", ".join(f"{k}: {v}" for k, v in r["errors_by_kind"].items()) or "0"
        rows.append([
            name, fmt_num(r["ops_ok"]), fmt_num(r["ops_per_s"]), fmt_ms(r["p50_ms"]), fmt_ms(r["p99_ms"]),
            fmt_ms(r["max_ms"]), errs, fmt_cpu(r["server_cpu_pct"], node_roles),
            f"{r['client_cpu_pct_total']:.0f} ({fmt_cpu(r['client_cpu_pct'])})",
            f"{r['other_procs_cpu_pct']:.0f}", f"{r['loadavg_at_start'][0]:.2f}",
        ])
    print_table(title, ["run", "ok ops", "ops/s", "p50 ms", "p99 ms", "max ms", "errors", "server CPU %",
                        "client CPU %", "other CPU %", "load"], rows)
    busy = [name for name, r in runs if r["other_procs_cpu_pct"] > 30]
    if busy:
        print(f"note: other processes used > 30% of a core during {', '.join(busy)}: those numbers are "
              "contaminated by a concurrent load\n", flush=True)


def print_failover_table(out: dict[str, Any]) -> None:
    rows = []
    for t in out["trials"]:
        rows.append([
            str(t["trial"]), f"{t['killed']} -> {t['new_leader'] or '?'}", fmt_s(t["kill_to_leader_s"]),
            fmt_s(t["kill_to_first_ack_s"]), fmt_s(t["worst_write_latency_after_kill_s"]),
            f"{t['acked']}/{t['issued']}", str(t["gave_up"]),
            ", ".join(f"{k}: {v}" for k, v in t["errors_by_kind"].items()) or "0",
            fmt_s(t["restart_to_ready_s"]), str(t["missing_acked"]),
        ])
    print_table(f"Failover (kill -9 the leader under ~{out['rate_per_s']} writes/s through the other nodes; "
                f"target < {TARGET_FAILOVER_S:g}s every trial)",
                ["trial", "killed -> new", "leader seen", "first ack", "worst write", "acked/issued", "gave up",
                 "failed attempts", "restart->ready", "acked missing"], rows)
    print(f"kill -> first acknowledged write: p50 {fmt_s(out['kill_to_first_ack_p50_s'])}, "
          f"max {fmt_s(out['kill_to_first_ack_max_s'])}, trials without recovery: {out['trials_without_recovery']}\n")


def print_memory_table(out: dict[str, Any]) -> None:
    rows = [[name, str(out["rss_empty_mib"][name]), str(out["rss_mib"][name]), str(out["rss_anon_mib"][name]),
             str(out["rss_file_mib"][name]), str(out["rss_peak_mib"][name]), str(out["data_dir_mib"][name])]
            for name in out["rss_mib"]]
    load = out["load"]
    print_table(f"Memory after {out['instances']:,} instances (stored {out['stored_instances']}, "
                f"target < {TARGET_RSS_MIB:g} MiB per node); loaded at {fmt_num(load['ops_per_s'])}/s, "
                f"errors {load['errors']}",
                ["node", "RSS empty MiB", "RSS MiB", "of which anon", "of which file/mmap", "peak RSS MiB",
                 "data dir MiB"], rows)


def print_summary(summary: list[tuple[str, str, str, str]]) -> None:
    print_table("Summary", ["phase", "metric", "value", "target"], [list(r) for r in summary])


# =============================================================================================
# Command line
# =============================================================================================

def parse_struct(items: list[str], cls: type[Any], flag: str) -> tuple[Any, dict[str, Any]]:
    """``key=value`` overrides of a config Struct (``--tuning`` and the like): the Struct and the
    overridden fields. Bad input exits with a one-line message naming the flag and the fields."""
    raw: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} wants key=value, got {item!r}")
        raw[key.strip()] = value.strip()
    try:
        obj = msgspec.convert(raw, cls, strict=False)
    except (msgspec.ValidationError, ConfigError) as exc:
        fields = ", ".join(f.name for f in msgspec.structs.fields(cls))
        raise SystemExit(f"bad {flag}: {exc} (fields: {fields})") from None
    return obj, {k: getattr(obj, k) for k in raw}


def parse_tuning(items: list[str]) -> tuple[RaftTuning, dict[str, Any]]:
    tuning, overrides = parse_struct(items, RaftTuning, "--tuning")
    return tuning, overrides


def exit_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C does: partial results are written, every process killed."""

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)


def run_meta(args: argparse.Namespace, argv: list[str] | None, started: float, phases: list[str],
             tuning: RaftTuning, overrides: dict[str, Any]) -> dict[str, Any]:
    """What every benchmark's JSON records about the run and the machine."""
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "phases": phases,
        "procs": args.procs,
        "tuning": msgspec.to_builtins(tuning),
        "tuning_overrides": overrides,
        "git": git_describe(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "loadavg_at_start": loadavg(),
    }


def git_describe() -> dict[str, Any]:
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="tiny sizes: the whole run takes about a minute")
    p.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/registry_bench-<time>.json)")
    p.add_argument("--only", default=",".join(PHASES),
                   help=f"comma-separated phases (default: all of {','.join(PHASES)})")
    p.add_argument("--procs", type=int, default=2, help="client worker processes (default 2)")
    p.add_argument("--tuning", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="raftreg.config.RaftTuning overrides, e.g. max_batch_commands=500 raft_max_timeout=1.0")
    p.add_argument("--concurrency", type=int, default=64,
                   help="concurrent requests in total over all procs (default 64)")
    p.add_argument("--payload-bytes", type=int, default=300, help="size of one registration body (default 300)")
    p.add_argument("--services", type=int, default=100,
                   help="services the register load is spread over (default 100)")
    for name, (full, quick) in SIZES.items():
        p.add_argument("--" + name.replace("_", "-"), type=type(full), default=None,
                       help=f"default {full} ({quick} with --quick)")
    p.add_argument("--failover-rate", type=float, default=150.0,
                   help="open-loop writes/s during failover (default 150)")
    p.add_argument("--serve-hello", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p


def check_common_args(args: argparse.Namespace, known: tuple[str, ...]) -> tuple[list[str], RaftTuning, dict[str, Any]]:
    """``--only``, ``--procs``, ``--concurrency`` and ``--tuning`` checked (SystemExit with the reason);
    returns the phases, the tuning and its overrides. Shared with watch_bench."""
    phases = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = [x for x in phases if x not in known]
    if unknown or not phases:
        raise SystemExit(f"--only: unknown phase(s) {unknown}; choose from {','.join(known)}")
    if args.procs < 1 or args.concurrency < 1:
        raise SystemExit("--procs and --concurrency must be >= 1")
    tuning, overrides = parse_tuning(args.tuning)
    return phases, tuning, overrides


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_hello:
        serve_hello(args.serve_hello)
        return 0
    phases, tuning, overrides = check_common_args(args, PHASES)
    out_path = args.out or REPO / "benchmarks" / "results" / f"registry_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"

    exit_on_sigterm()
    bench = Bench(args, tuning, overrides)
    started = time.time()
    meta = {**run_meta(args, argv, started, phases, tuning, overrides), "concurrency": args.concurrency}
    log(f"raftreg benchmark: phases {','.join(phases)}, {args.procs} client procs, concurrency {args.concurrency}"
        f"{', quick' if args.quick else ''}; load average {meta['loadavg_at_start']}")
    return run_and_report(bench, phases, meta, started, out_path)


def run_and_report(bench: Any, phases: list[str], meta: dict[str, Any], started: float, out_path: Path) -> int:
    """Run the phases, always close the bench, print the summary and write the JSON (partial
    results too, on an error, Ctrl-C or SIGTERM). Returns the exit status. Shared with watch_bench."""
    error = None
    try:
        bench.run(phases)
    except BaseException as exc:  # incl. KeyboardInterrupt and SystemExit from SIGTERM: keep partial results
        error = "".join(traceback.format_exception(exc))
        log(f"benchmark aborted: {exc!r}")
    finally:
        with contextlib.suppress(Exception):
            bench.close()
    meta["wall_s"] = round(time.time() - started, 1)
    meta["loadavg_at_end"] = loadavg()
    print_summary(bench.summary)
    result = {"meta": meta, "results": bench.results, "summary": [list(r) for r in bench.summary], "error": error}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out_path} ({meta['wall_s']}s; load average at the end {meta['loadavg_at_end']})")
    if error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
