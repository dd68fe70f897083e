"""The closed-loop load: ``put`` (register the instances of a key space) and ``get`` (look a service
up and check its instance count) jobs over aiohttp, their builders and the aggregated result.

In each client process ``conc`` coroutines each send one request at a time until the job's
operation count or duration is reached (and a hard limit). Coroutine ``w`` of the whole run
(counted over all processes) always talks to ``targets[w % len(targets)]``. Warm-up happens
before the start barrier; only what follows the barrier is measured.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import traceback
from array import array
from collections.abc import Awaitable, Callable, Mapping
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

import aiohttp

from harness.cpu import CpuAccount
from harness.light_http import error_key
from harness.payloads import JSON_HEADERS, count_answer, instance_body, key_path
from harness.proc import loadavg
from harness.stats import ms, pct, share, split
from harness.workers import ClientPool

Op = Callable[[int, str], Awaitable[str | None]]  # op(k, target) -> None (ok) or an error kind


async def _put(session: aiohttp.ClientSession, url: str, body: bytes) -> str | None:
    async with session.put(url, data=body, headers=JSON_HEADERS) as resp:
        await resp.read()
        return None if resp.status == 200 else f"http {resp.status}"


async def _get_count(session: aiohttp.ClientSession, url: str, expect: int) -> str | None:
    async with session.get(url) as resp:
        raw = await resp.read()
        if resp.status != 200:
            return f"http {resp.status}"
    return None if count_answer(raw) == expect else "instance count mismatch"


async def _drive(conc: int, targets: list[str], worker_offset: int, op: Op, n_ops: int, duration: float,
                 record: bool) -> tuple[array[float], collections.Counter[str], float, float]:
    """Closed loop: ``conc`` coroutines run op(k, target) until ``n_ops`` ops were started or
    ``duration`` seconds passed. Coroutine w always talks to targets[(offset + w) % len]. Returns
    the latencies of the successful ops (if ``record``), errors by kind, start and end time."""
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
                err = error_key(exc)
            if err is None:
                if record:
                    lat.append(time.perf_counter() - ts)
            else:
                errs[err] += 1

    await asyncio.wait_for(asyncio.gather(*(one(w) for w in range(conc))), duration + 60)
    return lat, errs, t0, time.monotonic()


def _put_op(session: aiohttp.ClientSession, spec: Mapping[str, Any]) -> tuple[Op, int]:
    """op(k, target) registering the k-th local key of a key space (pre-encoded bodies)."""
    indexes = range(spec["start"], spec["stop"], spec["step"])
    reqs = [(key_path(spec["prefix"], spec["services"], i), instance_body(i, spec["size"])) for i in indexes]

    def op(k: int, target: str) -> Awaitable[str | None]:
        path, body = reqs[k]
        return _put(session, target + path, body)

    return op, len(reqs)


async def run_put_get_job(job: dict[str, Any], conn: Connection, barrier: Barrier) -> dict[str, Any]:
    """Handler of the ``put`` and ``get`` jobs (see ``put_jobs`` / ``get_jobs``): warm-up, start
    barrier, measured closed loop. Result: ``lat`` (float64 seconds as bytes), ``errors``,
    ``warmup_errors``, ``t0`` / ``t1`` (monotonic); ``{"idle": True}`` for a process without work."""
    conc = job["conc"]
    if conc == 0:
        barrier.wait(timeout=job["barrier_timeout"])
        return {"idle": True}
    setup_error = None
    warm_errs: collections.Counter[str] = collections.Counter()
    timeout = aiohttp.ClientTimeout(total=job["request_timeout"])
    connector = aiohttp.TCPConnector(limit=conc, limit_per_host=0, force_close=False)
    session = aiohttp.ClientSession(connector=connector, timeout=timeout)
    targets: list[str] = job["targets"]
    op: Op | None = None
    n_ops, duration = 0, 0.0
    try:
        try:
            if job["kind"] == "put":
                op, n_ops = _put_op(session, job["keys"])
                duration = job["hard_limit"]
                if job.get("warmup"):
                    wop, wn = _put_op(session, job["warmup"])
                    _, warm_errs, _, _ = await _drive(conc, targets, job["worker_offset"], wop, wn,
                                                      job["hard_limit"], False)
            else:
                expect, url = job["expect"], f"/v1/services/{job['service']}"

                def get_op(k: int, target: str) -> Awaitable[str | None]:
                    return _get_count(session, target + url, expect)

                op, n_ops, duration = get_op, job["max_ops"], job["duration"]
                if job.get("warmup_s"):
                    _, warm_errs, _, _ = await _drive(conc, targets, job["worker_offset"], op, n_ops,
                                                      job["warmup_s"], False)
        except Exception:
            setup_error = traceback.format_exc(limit=3)
        barrier.wait(timeout=job["barrier_timeout"])
        if setup_error or op is None:
            return {"fatal": setup_error or "no operation"}
        lat, errs, t0, t1 = await _drive(conc, targets, job["worker_offset"], op, n_ops, duration, True)
    finally:
        await session.close()
    return {"lat": lat.tobytes(), "errors": dict(errs), "warmup_errors": dict(warm_errs), "t0": t0, "t1": t1}


def _concs(conc: int, nprocs: int) -> list[int]:
    return split(conc, nprocs) if conc >= nprocs else [1] * conc + [0] * (nprocs - conc)


def put_jobs(nprocs: int, targets: list[str], conc: int, prefix: str, total: int, services: int, size: int,
             warmup: int = 0, request_timeout: float = 10.0) -> list[dict[str, Any]]:
    """One ``put`` job per client process: register instances 0..total-1 of key space ``prefix``
    (``services`` services, ``size``-byte bodies), the key space split over the active processes,
    after ``warmup`` unmeasured registrations in key space ``warm``."""
    concs = _concs(conc, nprocs)
    ranges, warm_ranges = share(total, concs), share(warmup, concs)
    jobs = []
    offset = 0
    for p in range(nprocs):
        job: dict[str, Any] = {
            "kind": "put", "conc": concs[p], "targets": targets, "worker_offset": offset,
            "keys": {"prefix": prefix, "services": services, "start": ranges[p][0], "stop": ranges[p][1],
                     "step": 1, "size": size},
            "request_timeout": request_timeout, "hard_limit": 600.0, "barrier_timeout": 300.0,
        }
        if warmup:
            job["warmup"] = {"prefix": "warm", "services": 10, "start": warm_ranges[p][0],
                             "stop": warm_ranges[p][1], "step": 1, "size": size}
        jobs.append(job)
        offset += concs[p]
    return jobs


def get_jobs(nprocs: int, targets: list[str], conc: int, service: str, expect: int, duration: float,
             warmup_s: float) -> list[dict[str, Any]]:
    """One ``get`` job per client process: ``GET /v1/services/{service}`` (a query string may ride
    on ``service``) for ``duration`` s after ``warmup_s`` s of warm-up; an answer without ``expect``
    instances counts as an error."""
    concs = _concs(conc, nprocs)
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


def run_closed_loop(pool: ClientPool, jobs: list[dict[str, Any]], servers: Mapping[str, int | None],
                    time_limit: float) -> dict[str, Any]:
    """Send one job to each process, release them together, meter the CPU of ``servers`` (name ->
    PID) and of the client processes from the barrier to the last result, and aggregate: ops_ok,
    errors (by kind), ops/s, p50 / p99 / max ms, CPU per server and client, other CPU, load."""
    pool.send(jobs)
    meter = CpuAccount({**servers, **pool.pids()})
    load = loadavg()
    pool.start(jobs[0]["barrier_timeout"] + 5)
    meter.start()
    results = pool.collect(time_limit, what=f"closed loop (limit {time_limit:.0f}s)")
    meter.stop()
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
    cpu = meter.pct()
    server_cpu = {k: v for k, v in cpu.items() if k in servers}
    client_cpu = {k: v for k, v in cpu.items() if k not in servers}
    return {
        "ops_ok": len(ordered),
        "errors": sum(errs.values()),
        "errors_by_kind": dict(errs.most_common()),
        "warmup_errors": dict(warm.most_common()),
        "elapsed_s": round(wall, 3),
        "ops_per_s": round(len(ordered) / wall, 1) if wall > 0 else None,
        "p50_ms": ms(pct(ordered, 50)),
        "p99_ms": ms(pct(ordered, 99)),
        "max_ms": ms(ordered[-1] if ordered else None),
        "server_cpu_pct": server_cpu,
        "client_cpu_pct": client_cpu,
        "client_cpu_pct_total": round(sum(v or 0 for v in client_cpu.values()), 1),
        "machine_busy_pct": meter.machine_busy_pct(),
        "other_procs_cpu_pct": meter.other_pct(),
        "steal_pct": meter.steal_pct(),
        "loadavg_at_start": load,
    }
