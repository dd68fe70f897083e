"""The open-loop (rate-driven) load: the ``open_loop`` job sends requests on a fixed schedule,
whatever the answers do, over ``LightPool`` (or aiohttp), and records every request's outcome;
``OpenLoopRecords`` merges the client processes' records and summarizes them.

The schedule is a list of stages ``(seconds, requests/s)`` from a common start time (monotonic,
system-wide, so the processes agree): request ``i`` of a stage of rate r starting at T is due at
``T + j / r``; the processes take every ``nprocs``-th request. Request ``i`` goes to node
``i % len(nodes)``; its path is ``path.format(i=i, s=i % services)`` and, with ``body_size``, its
body a registration of that size. A 5 ms scheduler tick sends whatever is due; a request due while
``max_inflight`` are unanswered is not sent and recorded as ``ERR_SKIPPED``.

Typical use from a benchmark (``self`` a ``Bench``)::

    start = time.monotonic() + 2.0
    jobs = open_loop_jobs(pool.n, cluster.urls(), [(30.0, 4 * rate), (30.0, rate)], start,
                          "/v1/services/ol-{s:03d}/instances/i{i:07d}")
    pool.send(jobs); pool.start(60.0)          # every process built its pools
    ...                                        # meter CPU / sample RSS while it runs
    rec = OpenLoopRecords(pool.collect(120.0))
    rec.summary(start, start + 30.0); rec.timeline(start, start + 60.0); rec.back_to_normal(...)
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from array import array
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

from harness.light_http import ERR_SKIPPED, Answer, NodePools, err_name
from harness.payloads import instance_body
from harness.stats import ms, pct

TICK_S = 0.005  # the scheduler tick
CONTROL_EVERY = 40  # ticks between two looks at the pipe for a {"stop": True} message


def schedule(stages: Sequence[Sequence[float]], start_t: float, proc: int, nprocs: int) -> Iterator[tuple[float, int]]:
    """(due time, request number) of process ``proc``'s requests, in time order."""
    t_stage, base = start_t, 0
    for seconds, rate in stages:
        count = math.floor(seconds * rate) if rate > 0 else 0
        first = (proc - base) % nprocs
        for j in range(first, count, nprocs):
            yield t_stage + j / rate, base + j
        t_stage += seconds
        base += count


def open_loop_jobs(nprocs: int, urls: list[str], stages: Sequence[Sequence[float]], start_t: float, path: str, *,
                   method: str = "PUT", body_size: int | None = 300, services: int = 100, timeout: float = 2.0,
                   max_conns: int = 512, max_inflight: int = 4096, client: str = "light") -> list[dict[str, Any]]:
    """One ``open_loop`` job per client process (see the module docstring). ``stages``: (seconds,
    requests/s over all processes); ``start_t``: time.monotonic() of the first request (leave the
    processes a second or two to get there); ``timeout``: per request, client side."""
    return [{"kind": "open_loop", "nodes": urls, "stages": [list(s) for s in stages], "start_t": start_t,
             "proc": p, "nprocs": nprocs, "path": path, "method": method, "body_size": body_size,
             "services": services, "timeout": timeout, "max_conns": max_conns, "max_inflight": max_inflight,
             "client": client, "barrier_timeout": 120.0,
             "hard_limit": start_t - time.monotonic() + sum(s[0] for s in stages) + timeout + 120.0}
            for p in range(nprocs)]


class TickLoad:
    """Base of the tick-driven loads of a client process (this module's open loop, the lease
    benchmark's heartbeats): ``step(now)`` runs every ``TICK_S`` until it calls ``finish()``; every
    ``CONTROL_EVERY`` ticks, while ``accepts_control()``, a message waiting on the pipe goes to
    ``control``. An exception in a tick ends the run with it. Create it inside the event loop."""

    def __init__(self, conn: Connection, nodes: NodePools) -> None:
        self.conn = conn
        self.nodes = nodes
        self.pools = nodes.pools
        self.loop = asyncio.get_running_loop()
        self.ticks = 0
        self.done: asyncio.Future[None] = self.loop.create_future()

    async def run(self, hard_limit: float) -> None:
        """Tick until ``finish()`` (TimeoutError after ``hard_limit`` s), then close the pools."""
        self.loop.call_soon(self._tick)
        try:
            await asyncio.wait_for(self.done, hard_limit)
        finally:
            await self.nodes.close()

    def finish(self) -> None:
        """End the run after this tick."""
        if not self.done.done():
            self.done.set_result(None)

    def _tick(self) -> None:
        try:
            now = time.monotonic()
            self.ticks += 1
            if self.ticks % CONTROL_EVERY == 0 and self.accepts_control() and self.conn.poll():
                self.control(self.conn.recv(), now)
            self.step(now)
        except BaseException as exc:
            if not self.done.done():
                self.done.set_exception(exc)
            return
        if not self.done.done():
            self.loop.call_later(TICK_S, self._tick)

    def step(self, now: float) -> None:
        """One tick's work (send what is due, notice the end)."""
        raise NotImplementedError

    def accepts_control(self) -> bool:
        """Whether a message on the pipe should be read now (default: always)."""
        return True

    def control(self, msg: Any, now: float) -> None:
        """A message from the parent (default: ignored)."""


class _Load(TickLoad):
    """One process's open loop (see ``run_open_loop_job``)."""

    def __init__(self, job: dict[str, Any], conn: Connection) -> None:
        super().__init__(conn, NodePools(job["client"], job["nodes"], job["timeout"], job["max_conns"],
                                         idle_keep=job["max_conns"]))
        self.job = job
        self.due = schedule(job["stages"], job["start_t"], job["proc"], job["nprocs"])
        self.next: tuple[float, int] | None = next(self.due, None)
        self.inflight = 0
        self.stop_t: float | None = None
        self.t, self.lag, self.lat = array("d"), array("f"), array("f")
        self.status, self.node, self.num = array("h"), array("b"), array("q")

    def result(self) -> dict[str, Any]:
        return {"t": self.t.tobytes(), "lag": self.lag.tobytes(), "lat": self.lat.tobytes(),
                "status": self.status.tobytes(), "node": self.node.tobytes(), "num": self.num.tobytes(),
                "inflight_at_end": self.inflight, "max_open_conns": self.nodes.max_open()}

    def accepts_control(self) -> bool:
        return self.stop_t is None

    def control(self, msg: Any, now: float) -> None:
        if isinstance(msg, dict) and msg.get("stop"):
            self.next = None

    def step(self, now: float) -> None:
        if self.next is None:
            if self.stop_t is None:
                self.stop_t = now
            if self.inflight == 0 or now > self.stop_t + self.job["timeout"] + 1.0:
                self.finish()
            return
        job, pools = self.job, self.pools
        while self.next is not None and self.next[0] <= now:
            due, i = self.next
            self.next = next(self.due, None)
            n = i % len(pools)
            if self.inflight >= job["max_inflight"]:
                self.record(due, 0.0, 0.0, ERR_SKIPPED, n, i)
                continue
            body = instance_body(i, job["body_size"]) if job["body_size"] else None
            self.inflight += 1
            sent = time.monotonic()

            def answered(status: int, answer: Answer | None, due: float = due, sent: float = sent,
                         n: int = n, i: int = i) -> None:
                self.inflight -= 1
                self.record(due, sent - due, time.monotonic() - sent, status, n, i)

            pools[n].send(job["method"], job["path"].format(i=i, s=i % job["services"]), body, answered)

    def record(self, due: float, lag: float, lat: float, status: int, node: int, num: int) -> None:
        self.t.append(due)
        self.lag.append(lag)
        self.lat.append(lat)
        self.status.append(status)
        self.node.append(node)
        self.num.append(num)


async def run_open_loop_job(job: dict[str, Any], conn: Connection, barrier: Barrier) -> dict[str, Any]:
    """Handler of the ``open_loop`` job: build the pools, wait at the start barrier, send on
    schedule until the last stage ends (or a ``{"stop": True}`` message), then wait for the
    requests in flight (at most ``timeout`` + 1 s). Result: per request (in answer order) its due
    time ``t`` (float64), ``lag`` (sent - due) and ``lat`` (answer - sent) in s (float32), ``status``
    (int16, HTTP or ``ERR_*``), ``node`` (int8) and ``num`` (int64, the request number ``i`` of its
    path), as bytes; ``max_open_conns`` per node."""
    load = _Load(job, conn)
    barrier.wait(timeout=job["barrier_timeout"])
    await load.run(job["hard_limit"])
    return load.result()


class OpenLoopRecords:
    """The ``open_loop`` results of every client process, concatenated (arrays as in the job
    result). Windows select requests by due time, [t0, t1), except in ``throughput``. Accepted =
    HTTP 2xx."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.t, self.lag, self.lat = array("d"), array("f"), array("f")
        self.status, self.node, self.num = array("h"), array("b"), array("q")
        self.max_open_conns: list[list[int]] = []
        for r in results:
            for arr, key in ((self.t, "t"), (self.lag, "lag"), (self.lat, "lat"), (self.status, "status"),
                             (self.node, "node"), (self.num, "num")):
                arr.frombytes(r[key])
            self.max_open_conns.append(r["max_open_conns"])

    def _rows(self, t0: float, t1: float) -> Iterator[tuple[float, float, float, int, int]]:
        for row in zip(self.t, self.lag, self.lat, self.status, self.node, strict=True):
            if t0 <= row[0] < t1:
                yield row

    def summary(self, t0: float, t1: float, *, fast_ms: float = 50.0) -> dict[str, Any]:
        """Over the requests due in [t0, t1): ``scheduled``, ``sent`` (not skipped), ``accepted`` and
        ``accepted_per_s`` (over t1 - t0), latency p50 / p99 / max ms of the accepted ones (sent ->
        answer), slot lag p99 / max ms (due -> sent), ``by_kind`` (outcome -> count), and
        ``fast_share`` / ``slow_share``: outcome -> share of the sent requests that got it within /
        after ``fast_ms`` (e.g. fast 503s: ``fast_share["http 503"]``)."""
        kinds: collections.Counter[str] = collections.Counter()
        fast: collections.Counter[str] = collections.Counter()
        ok_lat: list[float] = []
        lags: list[float] = []
        scheduled = 0
        for _, lag, lat, status, _ in self._rows(t0, t1):
            scheduled += 1
            kind = err_name(status)
            kinds[kind] += 1
            if status == ERR_SKIPPED:
                continue
            lags.append(lag)
            if lat * 1000.0 <= fast_ms:
                fast[kind] += 1
            if 200 <= status < 300:
                ok_lat.append(lat)
        sent = scheduled - kinds[err_name(ERR_SKIPPED)]
        ok_lat.sort()
        lags.sort()
        accepted = len(ok_lat)
        return {
            "scheduled": scheduled, "sent": sent, "accepted": accepted,
            "accepted_per_s": round(accepted / (t1 - t0), 1) if t1 > t0 else None,
            "accepted_share": round(accepted / sent, 4) if sent else None,
            "p50_ms": ms(pct(ok_lat, 50)), "p99_ms": ms(pct(ok_lat, 99)),
            "max_ms": ms(ok_lat[-1] if ok_lat else None),
            "lag_p99_ms": ms(pct(lags, 99)), "lag_max_ms": ms(lags[-1] if lags else None),
            "by_kind": dict(kinds.most_common()),
            "fast_ms": fast_ms,
            "fast_share": {k: round(v / sent, 4) for k, v in fast.most_common()} if sent else {},
            "slow_share": {k: round((v - fast[k]) / sent, 4) for k, v in kinds.items()
                           if v > fast[k] and k != err_name(ERR_SKIPPED)} if sent else {},
        }

    def timeline(self, t0: float, t1: float, bucket: float = 1.0) -> list[dict[str, Any]]:
        """Per ``bucket`` s from t0 (by due time): ``t_s`` (bucket start - t0), ``sent``, ``skipped``,
        ``accepted``, ``accepted_per_s``, ``errors`` (sent, not accepted) and ``errors_by_kind``, and
        latency p50 / p99 ms of the accepted."""
        n = max(1, math.ceil((t1 - t0) / bucket))
        sent, skipped = [0] * n, [0] * n
        lats: list[list[float]] = [[] for _ in range(n)]
        kinds: list[collections.Counter[str]] = [collections.Counter() for _ in range(n)]
        for t, _, lat, status, _ in self._rows(t0, t1):
            b = min(n - 1, int((t - t0) / bucket))
            if status == ERR_SKIPPED:
                skipped[b] += 1
                continue
            sent[b] += 1
            if 200 <= status < 300:
                lats[b].append(lat)
            else:
                kinds[b][err_name(status)] += 1
        out = []
        for b in range(n):
            s = sorted(lats[b])
            out.append({"t_s": round(b * bucket, 3), "sent": sent[b], "skipped": skipped[b], "accepted": len(s),
                        "accepted_per_s": round(len(s) / bucket, 1), "errors": sent[b] - len(s),
                        "errors_by_kind": dict(kinds[b].most_common()),
                        "p50_ms": ms(pct(s, 50)), "p99_ms": ms(pct(s, 99))})
        return out

    def throughput(self, t0: float, t1: float) -> dict[str, Any]:
        """By when things happened rather than when they were due, over [t0, t1) of length d:
        ``sent`` (requests sent in it: due + lag) and ``sent_per_s`` (the rate the client really
        offered), ``answered`` / ``accepted`` (answers, and 2xx answers, read in it) and their rates."""
        sent = answered = accepted = 0
        for t, lag, lat, status in zip(self.t, self.lag, self.lat, self.status, strict=True):
            if status == ERR_SKIPPED:
                continue
            ts = t + lag
            if t0 <= ts < t1:
                sent += 1
            ta = ts + lat
            if t0 <= ta < t1:
                answered += 1
                if 200 <= status < 300:
                    accepted += 1
        d = t1 - t0
        return {"sent": sent, "answered": answered, "accepted": accepted,
                "sent_per_s": round(sent / d, 1) if d > 0 else None,
                "answered_per_s": round(answered / d, 1) if d > 0 else None,
                "accepted_per_s": round(accepted / d, 1) if d > 0 else None}

    def accepted_numbers(self) -> list[int]:
        """The request numbers (``i`` of the path) of every accepted request, in answer order."""
        return [i for i, status in zip(self.num, self.status, strict=True) if 200 <= status < 300]

    def back_to_normal(self, after: float, t1: float, *, max_p99_ms: float, min_accepted_share: float = 0.99,
                       bucket: float = 1.0, hold: int = 3) -> float | None:
        """Seconds from ``after`` to the start of the first ``hold`` consecutive buckets (before t1)
        in which at least ``min_accepted_share`` of the due requests (skipped ones included) were
        accepted, with p99 <= ``max_p99_ms``; None if that never happened."""
        run = 0
        for b in self.timeline(after, t1, bucket):
            due = b["sent"] + b["skipped"]
            good = (due > 0 and b["accepted"] >= min_accepted_share * due
                    and b["p99_ms"] is not None and b["p99_ms"] <= max_p99_ms)
            run = run + 1 if good else 0
            if run >= hold:
                return round(float(b["t_s"]) - (hold - 1) * bucket, 3)
        return None
