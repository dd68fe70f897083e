"""Benchmark TTL leases, heartbeats and active health checks on a local 3-node raftreg cluster:
many heartbeating instances through leader kills (no false expiry allowed), how fast a stopped
instance disappears, and what the nodes' HTTP checks cost.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/lease_bench.py --quick
    .venv/bin/python benchmarks/lease_bench.py --only heartbeat --instances 10000 --duration 300 --kills 3

It reuses registry_bench's machinery: the spawned client worker processes (``ClientPool``, here
with a worker body that also runs ``lease`` jobs), its ``Bench`` (summary, JSON, clean-up),
``--tuning``, the tables and the JSON output; and watch_bench's keep-alive ``Http`` helper. The
heartbeat load is open loop: every instance has a fixed schedule (register, then a heartbeat every
``--hb-interval`` seconds) kept by a 5 ms scheduler tick in each client process, over a minimal
keep-alive HTTP/1.1 client (``_LightPool``; ``--hb-client aiohttp`` for aiohttp's ClientSession).
CPU comes from /proc/<pid>/stat, per process lifetime (a restarted node is a new process). Every
process it starts is killed at the end. See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import heapq
import http.client
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from array import array
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from raftreg.config import CheckTuning, LeaseTuning
from raftreg.testing import LocalCluster, free_ports, http_json, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry_bench as rb
from registry_bench import (
    CLK_TCK,
    JSON_HEADERS,
    REPO,
    Bench,
    ClientPool,
    check_common_args,
    exit_on_sigterm,
    fmt_cpu,
    fmt_ms,
    fmt_num,
    fmt_s,
    loadavg,
    log,
    machine_ticks,
    parse_struct,
    pct,
    print_table,
    run_and_report,
    run_meta,
    share,
)
from watch_bench import ensure_fd_limit, lat_stats

PHASES = ("heartbeat", "expiry", "checks")

# The targets.
TARGET_INSTANCES = 10_000
TARGET_DURATION_S = 300.0
TARGET_KILLS = 3
TARGET_EXPIRY_SLACK_S = 2.0  # last heartbeat -> gone, p99 < ttl + this
TARGET_CHECKS = 2000
TARGET_RATE_TOLERANCE = 0.05  # the checks' target server must see C / interval requests/s within 5%

# (full, quick) defaults for the size options.
SIZES: dict[str, tuple[Any, Any]] = {
    "instances": (10_000, 1000),
    "duration": (300.0, 30.0),
    "kills": (3, 1),
    "expiring": (200, 50),
    "keepalive": (1000, 300),
    "checks": (2000, 200),
    "checks_warmup": (15.0, 5.0),
    "checks_duration": (60.0, 15.0),
}

START_SLACK_S = 2.0  # jobs are sent this long before their first scheduled request
TICK_S = 0.005  # the client processes' scheduler tick
SWEEP_EVERY = 40  # ticks between two request-timeout sweeps (and checks for a "stop" message)
INF = math.inf

# Client-side outcomes that are not HTTP statuses.
ERR_REFUSED, ERR_CONNECT, ERR_LOST, ERR_TIMEOUT = -1, -2, -3, -4
ERR_NAMES = {ERR_REFUSED: "connection refused", ERR_CONNECT: "connect error", ERR_LOST: "connection lost",
             ERR_TIMEOUT: "client timeout"}
OP_REG, OP_HB, OP_REREG = 0, 1, 2
OP_NAMES = ("register", "heartbeat", "re-register")


def err_name(code: int) -> str:
    return ERR_NAMES.get(code, f"http {code}")


def service_name(prefix: str, services: int, i: int) -> str:
    return prefix if services <= 1 else f"{prefix}-{i % services:03d}"


def instance_id(i: int) -> str:
    return f"i{i:06d}"


# =============================================================================================
# Client side (the spawned client processes): connection pools and the open-loop lease load
# =============================================================================================

Callback = Callable[[int], None]  # called once per request with the HTTP status or an ERR_* code


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of a ``_LightPool``: one request at a time, the answer
    framed by ``Content-Length`` (raftreg always sends it); only the status is looked at."""

    __slots__ = ("buf", "cb", "pool", "sent_at", "transport")

    def __init__(self, pool: _LightPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.cb: Callback | None = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, data: bytes, cb: Callback) -> None:
        assert self.transport is not None
        self.cb = cb
        self.sent_at = time.monotonic()
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        if self.cb is None:  # nothing asked: not an answer to frame
            buf.clear()
            return
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end]).lower()
        k = head.find(b"\r\ncontent-length:")
        size = 0
        if k >= 0:
            j = head.find(b"\r\n", k + 2)
            size = int(head[k + 17:j if j >= 0 else len(head)])
        if len(buf) < end + 4 + size:
            return
        status = int(buf[9:12])
        del buf[:end + 4 + size]
        cb, self.cb = self.cb, None
        self.pool.release(self)
        if cb is not None:
            cb(status)

    def connection_lost(self, exc: Exception | None) -> None:
        cb, self.cb = self.cb, None
        self.pool.lost(self)
        if cb is not None:
            cb(ERR_LOST)


class _LightPool:
    """Keep-alive connections to one node: a request takes an idle connection, or waits for one
    (new ones are opened, at most 8 at a time, up to ``max_conns``). A failed connect fails every
    waiting request (the node is down); ``sweep`` times out requests older than ``timeout``."""

    MAX_CONNECTING = 8
    IDLE_KEEP = 256

    def __init__(self, url: str, timeout: float, max_conns: int) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.hostport = f"{self.host}:{self.port}"
        self.timeout = timeout
        self.max_conns = max_conns
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Conn] = []
        self.busy: set[_Conn] = set()
        self.waiting: collections.deque[tuple[bytes, Callback, float]] = collections.deque()
        self.connecting = 0
        self.open = 0
        self.max_open = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, method: str, path: str, body: bytes | None, cb: Callback) -> None:
        if body:
            data = (f"{method} {path} HTTP/1.1\r\nHost: {self.hostport}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        else:
            data = f"{method} {path} HTTP/1.1\r\nHost: {self.hostport}\r\nContent-Length: 0\r\n\r\n".encode()
        if self.idle:
            conn = self.idle.pop()
            self.busy.add(conn)
            conn.send(data, cb)
            return
        self.waiting.append((data, cb, time.monotonic()))
        self._grow()

    def _grow(self) -> None:
        while (self.connecting < self.MAX_CONNECTING and self.open + self.connecting < self.max_conns
               and len(self.waiting) > self.connecting):
            self.connecting += 1
            task = self.loop.create_task(self._connect())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _connect(self) -> None:
        try:
            _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except OSError as exc:
            self.connecting -= 1
            code = ERR_REFUSED if isinstance(exc, ConnectionRefusedError) else ERR_CONNECT
            waiting, self.waiting = self.waiting, collections.deque()
            for _, cb, _ in waiting:
                cb(code)
            return
        self.connecting -= 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        self.release(conn)
        if self.waiting:
            self._grow()

    def release(self, conn: _Conn) -> None:
        """``conn`` is free: serve the oldest waiting request, or keep it (most recent on top)."""
        if self.waiting:
            data, cb, _ = self.waiting.popleft()
            self.busy.add(conn)
            conn.send(data, cb)
            return
        self.busy.discard(conn)
        self.idle.append(conn)
        if len(self.idle) > self.IDLE_KEEP:
            old = self.idle.pop(0)
            if old.transport is not None:
                old.transport.close()

    def lost(self, conn: _Conn) -> None:
        self.open -= 1
        self.busy.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    def sweep(self, now: float) -> None:
        expired = [c for c in self.busy if now - c.sent_at > self.timeout]
        for conn in expired:
            cb, conn.cb = conn.cb, None
            self.busy.discard(conn)
            if conn.transport is not None:
                conn.transport.abort()
            if cb is not None:
                cb(ERR_TIMEOUT)
        while self.waiting and now - self.waiting[0][2] > self.timeout:
            _, cb, _ = self.waiting.popleft()
            cb(ERR_TIMEOUT)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for conn in [*self.idle, *self.busy]:
            if conn.transport is not None:
                conn.transport.abort()


class _AiohttpPool:
    """The same interface over one shared aiohttp ``ClientSession`` (a task per request)."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[None]] = set()
        self.max_open = 0

    def send(self, method: str, path: str, body: bytes | None, cb: Callback) -> None:
        task = self.loop.create_task(self._do(method, path, body, cb))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.max_open = max(self.max_open, len(self.tasks))

    async def _do(self, method: str, path: str, body: bytes | None, cb: Callback) -> None:
        try:
            async with self.session.request(method, self.url + path, data=body,
                                            headers=JSON_HEADERS if body else None) as resp:
                await resp.read()
                status = resp.status
        except TimeoutError:
            status = ERR_TIMEOUT
        except aiohttp.ClientConnectorError as exc:
            status = ERR_REFUSED if isinstance(exc.os_error, ConnectionRefusedError) else ERR_CONNECT
        except (aiohttp.ClientError, OSError):
            status = ERR_LOST
        cb(status)

    def sweep(self, now: float) -> None:
        pass  # the session's timeout does it

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class _Inst:
    """One simulated instance of a client process."""

    __slots__ = ("acks", "body", "count", "first_hb", "hb_path", "idx", "iid", "inflight", "last_ack", "max_gap",
                 "needs_register", "next_t", "node", "period", "reg_path", "registered", "report", "retry_gen",
                 "slot", "track_gaps")

    def __init__(self, idx: int, iid: str, service: str, node: int, body: bytes, period: float, count: int | None,
                 first_hb: float, report: bool, track_gaps: bool) -> None:
        self.idx = idx
        self.iid = iid
        self.node = node
        self.reg_path = f"/v1/services/{service}/instances/{iid}"
        self.hb_path = self.reg_path + "/heartbeat"
        self.body = body
        self.period = period
        self.count = count  # heartbeats after the registration (None: until the end)
        self.first_hb = first_hb  # the first heartbeat slot; then one every period
        self.report = report
        self.track_gaps = track_gaps
        self.slot = 0  # schedule slots done (0: the registration)
        self.next_t = INF  # the next slot's time
        self.inflight = False
        self.needs_register = True
        self.registered = False
        self.retry_gen = 0
        self.last_ack = 0.0
        self.max_gap = 0.0
        self.acks = 0


def _register_body(group: dict[str, Any], i: int) -> bytes:
    doc: dict[str, Any] = {"address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", "port": 20000 + i % 20000}
    if group["ttl"] is not None:
        doc["ttl"] = f"{group['ttl']:g}s"
    if group.get("check"):
        chk = group["check"]
        doc["check"] = {"http": chk["url"].format(i=i), "interval": f"{chk['interval']:g}s",
                        "timeout": f"{chk['timeout']:g}s"}
    return json.dumps(doc, separators=(",", ":")).encode()


class _LeaseLoad:
    """The open-loop lease load of one client process (see ``_lease_job``)."""

    def __init__(self, job: dict[str, Any], conn: Connection) -> None:
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.m0, self.m1, self.end_t = job["m0"], job["m1"], job["end_t"]
        self.timeout, self.retry_pause = job["request_timeout"], job["retry_pause"]
        self.finish_when_idle = bool(job.get("finish_when_idle"))
        self.session: aiohttp.ClientSession | None = None
        self.pools: list[_LightPool | _AiohttpPool]
        if job["client"] == "aiohttp":
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=job["max_conns"]),
                                                 timeout=aiohttp.ClientTimeout(total=self.timeout))
            self.pools = [_AiohttpPool(url, self.session) for url in job["nodes"]]
        else:
            self.pools = [_LightPool(url, self.timeout, job["max_conns"]) for url in job["nodes"]]
        nodes = len(job["nodes"])
        self.insts: list[_Inst] = []
        self.slots: list[tuple[float, int]] = []  # heap of (slot time, instance number)
        for g in job["groups"]:
            period, n = g["period"], max(1, g["n"])
            for i in range(g["start"], g["stop"]):
                idx = len(self.insts)
                # Registration slot: on the group's ramp. Heartbeat slots: phase period * i / n (spread
                # evenly over the period, whatever the ramp), the first one at least period / 2 after
                # the registration slot.
                reg_t = g["reg_start"] + g["reg_spread"] * i / n
                phase = g["reg_start"] + period * i / n
                first_hb = phase + period * math.ceil((reg_t + period / 2 - phase) / period)
                self.insts.append(_Inst(idx, instance_id(i), service_name(g["prefix"], g["services"], i), i % nodes,
                                        _register_body(g, i), period, g["count"], first_hb, bool(g.get("report")),
                                        bool(g.get("track_gaps"))))
                self.slots.append((reg_t, idx))
        heapq.heapify(self.slots)
        self.retries: list[tuple[float, int, int]] = []  # heap of (time, instance number, retry_gen)
        self.inflight = 0
        self.stopping = False
        self.stop_t = 0.0
        self.ticks = 0
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.ack_t, self.ack_lat = array("d"), array("f")
        self.ack_node, self.ack_op = array("b"), array("b")
        self.err_t, self.err_done = array("d"), array("d")
        self.err_node, self.err_op, self.err_code = array("b"), array("b"), array("h")
        self.lag_t, self.lag = array("d"), array("f")
        self.skipped = array("d")
        self.false_expiries: list[tuple[float, float, str, int]] = []

    async def run(self, hard_limit: float) -> dict[str, Any]:
        self.loop.call_soon(self.tick)
        try:
            await asyncio.wait_for(self.done, hard_limit)
        finally:
            for pool in self.pools:
                await pool.close()
            if self.session is not None:
                await self.session.close()
        return self.result()

    # ---- the scheduler ----------------------------------------------------------------------
    def tick(self) -> None:
        try:
            self._tick()
        except BaseException as exc:
            if not self.done.done():
                self.done.set_exception(exc)
            return
        if not self.done.done():
            self.loop.call_later(TICK_S, self.tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self.ticks += 1
        if self.ticks % SWEEP_EVERY == 0:
            for pool in self.pools:
                pool.sweep(now)
            if not self.stopping and self.conn.poll():
                msg = self.conn.recv()
                if isinstance(msg, dict) and msg.get("stop"):
                    self.end_t = now
        if not self.stopping and now >= self.end_t:
            self.stopping, self.stop_t = True, now
        if self.stopping:
            if self.inflight == 0 or now > self.stop_t + self.timeout + 1.0:
                self.done.set_result(None)
            return
        insts, slots = self.insts, self.slots
        while slots and slots[0][0] <= now:
            t, idx = heapq.heappop(slots)
            x = insts[idx]
            if x.slot > 0:
                self.lag_t.append(t)
                self.lag.append(now - t)
            x.slot += 1
            if x.count is None or x.slot <= x.count:
                x.next_t = x.first_hb if x.slot == 1 else t + x.period
                heapq.heappush(slots, (x.next_t, idx))
            else:
                x.next_t = INF
            if x.inflight:  # the previous attempt has no answer yet: this slot is skipped
                self.skipped.append(t)
                continue
            x.retry_gen += 1  # a retry still pending is replaced by this slot
            self.send(x, now)
        retries = self.retries
        while retries and retries[0][0] <= now:
            _, idx, gen = heapq.heappop(retries)
            x = insts[idx]
            if gen == x.retry_gen and not x.inflight:
                self.send(x, now)
        if (self.finish_when_idle and not slots and self.inflight == 0
                and not any(gen == insts[idx].retry_gen for _, idx, gen in retries)):
            self.stopping, self.stop_t = True, now
            self.done.set_result(None)

    def send(self, x: _Inst, now: float) -> None:
        op = OP_HB if not x.needs_register else OP_REREG if x.registered else OP_REG
        x.inflight = True
        self.inflight += 1
        cb = functools.partial(self.answer, x, op, now)
        if op == OP_HB:
            self.pools[x.node].send("PUT", x.hb_path, None, cb)
        else:
            self.pools[x.node].send("PUT", x.reg_path, x.body, cb)

    def retry(self, x: _Inst, t: float) -> None:
        x.retry_gen += 1
        heapq.heappush(self.retries, (t, x.idx, x.retry_gen))

    def answer(self, x: _Inst, op: int, t_send: float, status: int) -> None:
        now = time.monotonic()
        x.inflight = False
        self.inflight -= 1
        if status == 200:
            self.ack_t.append(t_send)
            self.ack_lat.append(now - t_send)
            self.ack_node.append(x.node)
            self.ack_op.append(op)
            if x.track_gaps and x.last_ack > 0.0 and now > self.m0:
                x.max_gap = max(x.max_gap, min(now, self.m1) - x.last_ack)
            x.last_ack = now
            x.acks += 1
            if op != OP_HB:
                x.needs_register, x.registered = False, True
            return
        self.err_t.append(t_send)
        self.err_done.append(now)
        self.err_node.append(x.node)
        self.err_op.append(op)
        self.err_code.append(status)
        if status == 404 and op == OP_HB:  # the lease is gone although this client never stopped
            self.false_expiries.append((t_send, now, x.reg_path, x.node))
            x.needs_register = True
            self.retry(x, now)  # register again at the next tick
            return
        if 400 <= status < 500:
            return  # refused by the API: counted, not retried (a bug in the benchmark or the server)
        t = now + self.retry_pause  # 503 / 5xx / connection error / timeout: retry on the same node
        if t < x.next_t and not self.stopping:
            self.retry(x, t)

    def result(self) -> dict[str, Any]:
        gaps = array("f")
        for x in self.insts:
            if x.track_gaps:
                end = min(self.stop_t or self.m1, self.m1)
                open_gap = end - x.last_ack if x.last_ack else end - self.m0
                gaps.append(max(x.max_gap, open_gap))
        return {
            "acks": {"t": self.ack_t.tobytes(), "lat": self.ack_lat.tobytes(), "node": self.ack_node.tobytes(),
                     "op": self.ack_op.tobytes()},
            "errors": {"t": self.err_t.tobytes(), "done": self.err_done.tobytes(), "node": self.err_node.tobytes(),
                       "op": self.err_op.tobytes(), "code": self.err_code.tobytes()},
            "lag": {"t": self.lag_t.tobytes(), "lag": self.lag.tobytes()},
            "skipped": self.skipped.tobytes(),
            "false_expiries": self.false_expiries,
            "max_gap": gaps.tobytes(),
            "last_ack": {x.iid: (x.last_ack, x.acks) for x in self.insts if x.report},
            "never_registered": sum(1 for x in self.insts if not x.registered),
            "max_open_conns": [p.max_open for p in self.pools],
            "stop_t": self.stop_t,
            "inflight_at_end": self.inflight,
        }


async def _lease_job(job: dict[str, Any], conn: Connection, barrier: Any) -> dict[str, Any]:
    """Simulated instances: each registers (through node ``i % 3``, at its slot of the groups'
    registration ramp), then heartbeats on a fixed schedule (``count`` times, or until the job
    ends). A 503, 5xx, connection error or timeout is retried on the same node after
    ``retry_pause`` unless the next slot comes first; a 404 on a heartbeat is a false expiry (the
    client never stopped): the instance registers again at once. Ends at ``end_t``, on a
    ``{"stop": True}`` message, or (``finish_when_idle``) when every instance is done; then waits
    for the requests in flight. Everything is recorded with system-wide monotonic times."""
    load = _LeaseLoad(job, conn)
    barrier.wait(timeout=job["barrier_timeout"])
    return await load.run(job["hard_limit"])


async def _run_job(job: dict[str, Any], conn: Connection, barrier: Any) -> dict[str, Any]:
    """Client worker jobs: ``lease`` here, every other kind to registry_bench's ``_run_job``."""
    if job["kind"] == "lease":
        return await _lease_job(job, conn, barrier)
    return await rb._run_job(job, barrier)


# =============================================================================================
# The checks' target: an aiohttp server answering 200 on GET /health/<i> (runs as a subprocess)
# =============================================================================================

def serve_target(port: int) -> None:
    """``GET /health/{i}`` -> 200; ``GET /stats[?reset=1]`` -> the request count and the
    intervals between two probes of the same path (since the last reset)."""
    from aiohttp import web

    state: dict[str, Any] = {"requests": 0, "last": {}, "gaps": array("d")}

    async def health(request: web.Request) -> web.Response:
        now = time.monotonic()
        state["requests"] += 1
        path = request.match_info["i"]
        prev = state["last"].get(path)
        if prev is not None:
            state["gaps"].append(now - prev)
        state["last"][path] = now
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        gaps = sorted(state["gaps"])
        body = {"requests": state["requests"], "paths": len(state["last"]), "intervals": len(gaps),
                "interval_s": {"p1": pct(gaps, 1), "p50": pct(gaps, 50), "p99": pct(gaps, 99),
                               "max": gaps[-1] if gaps else None}}
        if request.query.get("reset"):
            state["gaps"] = array("d")
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/health/{i}", health)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


# =============================================================================================
# Parent side: CPU per process lifetime, the cluster monitor, the expiry watcher
# =============================================================================================

def proc_stat(pid: int) -> tuple[int, int] | None:
    """(utime + stime, start time), both in clock ticks (the start since boot), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12]), int(fields[19])


def uptime_ticks() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) * CLK_TCK


class CpuAccount:
    """CPU % (100 = one core) of named processes over a window; a name is summed over every PID
    that carried it (a restarted node is a new process). Per PID: from its ticks at the window
    start (0 for a process started inside the window) to the last sample before it died or the
    window ended. ``see`` is called by the monitor thread at each poll and before each kill."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: dict[int, list[Any]] = {}  # pid -> [name, base ticks, last ticks]
        self.t0 = self.t1 = 0.0
        self.m0 = self.m1 = (0, 0)
        self.boot0 = 0.0
        self.open = False

    def begin(self, named: dict[str, int | None]) -> None:
        with self.lock:
            self.t0, self.m0, self.boot0, self.open = time.monotonic(), machine_ticks(), uptime_ticks(), True
        for name, pid in named.items():
            if pid:
                self.see(name, pid)

    def see(self, name: str, pid: int) -> None:
        st = proc_stat(pid)
        with self.lock:
            if not self.open or st is None:
                return
            ticks, started = st
            entry = self.procs.get(pid)
            if entry is None:
                self.procs[pid] = [name, 0 if started > self.boot0 else ticks, ticks]
            else:
                entry[2] = max(entry[2], ticks)

    def end(self) -> None:
        for pid, (name, _, _) in list(self.procs.items()):
            self.see(name, pid)
        with self.lock:
            self.t1, self.m1, self.open = time.monotonic(), machine_ticks(), False

    def pct(self) -> dict[str, float]:
        wall = max(1e-9, self.t1 - self.t0)
        out: dict[str, float] = {}
        for name, base, last in self.procs.values():
            out[name] = out.get(name, 0.0) + 100.0 * (last - base) / CLK_TCK / wall
        return {k: round(v, 1) for k, v in out.items()}

    def other_pct(self) -> float:
        busy = 100.0 * (os.cpu_count() or 1) * (self.m1[0] - self.m0[0]) / max(1, self.m1[1] - self.m0[1])
        return round(busy - sum(self.pct().values()), 1)

    def lifetimes(self) -> list[dict[str, Any]]:
        return [{"name": name, "pid": pid, "cpu_s": round((last - base) / CLK_TCK, 2)}
                for pid, (name, base, last) in self.procs.items()]


class Monitor:
    """A thread polling ``GET /v1/cluster`` of every node (every ``period`` s, every 0.1 s until
    ``fast_until``): per node PID (a restart is a new PID) the maxima of its lease counters, the
    leadership timeline, and CPU samples for ``cpu``."""

    def __init__(self, cluster: LocalCluster, period: float = 0.5) -> None:
        self.urls = {n: cluster.url(n) for n in cluster.names}
        self.period = period
        self.fast_until = 0.0
        self.cpu: CpuAccount | None = None
        self.lock = threading.Lock()
        self.pids: dict[int, dict[str, Any]] = {}
        self.events: list[tuple[float, str, int, str, bool]] = []  # (t, node, pid, state, holds leases)
        self.last: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-monitor", daemon=True)

    def start(self) -> None:
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            self.poll()
            period = 0.1 if t0 < self.fast_until else self.period
            self._stop.wait(max(0.0, t0 + period - time.monotonic()))

    def poll(self, only: str | None = None) -> None:
        for name, url in self.urls.items():
            if only is None or name == only:
                code, info = http_json(url + "/v1/cluster", timeout=1.0)
                if code == 200 and isinstance(info, dict):
                    self.record(name, info)

    def record(self, name: str, info: dict[str, Any]) -> None:
        t = time.monotonic()
        pid = int(info["pid"])
        leases = info.get("leases") or {}
        with self.lock:
            p = self.pids.setdefault(pid, {"node": name, "pid": pid, "first_t": t, "led": False, "max": {}})
            p["last_t"] = t
            mx = p["max"]
            for key in ("expired", "guard_trips", "renewals", "overdue", "held", "leases"):
                mx[key] = max(mx.get(key, 0), int(leases.get(key) or 0))
            mx["throttled"] = bool(mx.get("throttled")) or bool(leases.get("throttled"))
            p["led"] = p["led"] or bool(leases.get("active"))
            p["last"] = {k: info.get(k) for k in ("state", "term", "commit_index", "leases", "heartbeats_forwarded",
                                                  "checks")}
            self.events.append((t, name, pid, str(info.get("state")), bool(leases.get("active"))))
            self.last[name] = info
        if self.cpu is not None:
            self.cpu.see(name, pid)

    def node_pids(self) -> dict[str, int]:
        with self.lock:
            return {name: int(info["pid"]) for name, info in self.last.items()}

    def lease_totals(self) -> dict[str, Any]:
        """Summed over every PID (each one's counters start at 0): expiries, guard trips, renewals."""
        with self.lock:
            ps = list(self.pids.values())
        return {"expired": sum(p["max"].get("expired", 0) for p in ps),
                "guard_trips": sum(p["max"].get("guard_trips", 0) for p in ps),
                "renewals": sum(p["max"].get("renewals", 0) for p in ps),
                "overdue_max": max((p["max"].get("overdue", 0) for p in ps if p["led"]), default=0),
                "held_max": max((p["max"].get("held", 0) for p in ps if p["led"]), default=0),
                "throttled_seen": any(p["max"].get("throttled") for p in ps),
                "leases_max": max((p["max"].get("leases", 0) for p in ps if p["led"]), default=0)}

    def armed_after(self, t: float, not_node: str) -> tuple[float, str] | None:
        """The first poll after ``t`` in which a node other than ``not_node`` held the leases."""
        with self.lock:
            for et, name, _, _, holds in self.events:
                if et > t and holds and name != not_node:
                    return et, name
        return None


class GoneWatcher:
    """A thread reading one service on one node, either with blocking queries (``wait``:
    ``?index=<last>&wait=<wait>``) or by polling every ``poll`` seconds: when each instance was
    first listed and when it stopped being listed (answer read, time.monotonic)."""

    def __init__(self, url: str, service: str, *, wait: str | None = None, poll: float = 0.05) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60.0)
        self.service, self.wait, self.poll = service, wait, poll
        self.appeared: dict[str, float] = {}
        self.gone: dict[str, float] = {}
        self.answers = 0
        self.errors = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="gone-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop now: shutting the socket down ends a parked query at once."""
        self._stop = True
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)
        self.conn.close()

    def _run(self) -> None:
        index = 0
        present: set[str] = set()
        while not self._stop:
            query = f"?index={index}&wait={self.wait}" if self.wait else ""
            try:
                self.conn.request("GET", f"/v1/services/{self.service}{query}")
                resp = self.conn.getresponse()
                status, raw, headers = resp.status, resp.read(), resp.headers
            except (OSError, http.client.HTTPException):
                if self._stop:
                    return
                self.errors += 1
                self.conn.close()
                time.sleep(0.2)
                continue
            t = time.monotonic()
            if status != 200:
                self.errors += 1
                time.sleep(0.2)
                continue
            self.answers += 1
            ids = {inst["id"] for inst in json.loads(raw)["instances"]}
            for iid in ids - present:
                self.appeared.setdefault(iid, t)
                self.gone.pop(iid, None)
            for iid in present - ids:
                self.gone[iid] = t
            present = ids
            index = int(headers.get("X-Raftreg-Index") or index)
            if not self.wait:
                time.sleep(self.poll)


def gone_stats(watcher: GoneWatcher, rec: Records) -> dict[str, Any]:
    """Per reporting instance: its last acknowledged heartbeat -> not listed any more (s)."""
    delays, never_gone = [], 0
    for iid, (last_ack, _) in rec.last_ack.items():
        gone = watcher.gone.get(iid)
        if gone is None or not last_ack:
            never_gone += 1
        else:
            delays.append(gone - last_ack)
    delays.sort()
    return {"p50": _r(pct(delays, 50)), "p99": _r(pct(delays, 99)), "max": _r(delays[-1] if delays else None),
            "min": _r(delays[0] if delays else None), "gone": len(delays), "never_gone": never_gone,
            "answers": watcher.answers, "errors": watcher.errors}


def catalog_counts(url: str, prefix: str) -> tuple[int, int] | None:
    """(instances, passing) over the services named ``prefix``* on one node, or None."""
    code, body = http_json(url + "/v1/services", timeout=10.0)
    if code != 200:
        return None
    rows = [s for s in body["services"] if s["name"].startswith(prefix)]
    return sum(int(s["instances"]) for s in rows), sum(int(s["passing"]) for s in rows)


# =============================================================================================
# Merging the client processes' records
# =============================================================================================

class Records:
    """Every client process's acks, errors, slot lags and per-instance numbers, concatenated."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.ack_t, self.ack_lat = array("d"), array("f")
        self.ack_node, self.ack_op = array("b"), array("b")
        self.err_t, self.err_done = array("d"), array("d")
        self.err_node, self.err_op, self.err_code = array("b"), array("b"), array("h")
        self.lag_t, self.lag = array("d"), array("f")
        self.skipped, self.max_gap = array("d"), array("f")
        self.false_expiries: list[tuple[float, float, str, int]] = []
        self.last_ack: dict[str, tuple[float, int]] = {}
        self.never_registered = 0
        self.max_open_conns: list[list[int]] = []
        for r in results:
            for arr, raw in ((self.ack_t, r["acks"]["t"]), (self.ack_lat, r["acks"]["lat"]),
                             (self.ack_node, r["acks"]["node"]), (self.ack_op, r["acks"]["op"]),
                             (self.err_t, r["errors"]["t"]), (self.err_done, r["errors"]["done"]),
                             (self.err_node, r["errors"]["node"]), (self.err_op, r["errors"]["op"]),
                             (self.err_code, r["errors"]["code"]), (self.lag_t, r["lag"]["t"]),
                             (self.lag, r["lag"]["lag"]), (self.skipped, r["skipped"]), (self.max_gap, r["max_gap"])):
                arr.frombytes(raw)
            self.false_expiries += r["false_expiries"]
            self.last_ack.update(r["last_ack"])
            self.never_registered += r["never_registered"]
            self.max_open_conns.append(r["max_open_conns"])

    def errors_by_kind(self, t0: float, t1: float, *, by_answer: bool = False) -> dict[str, int]:
        """Failed requests by kind, sent (``by_answer``: failed) in [t0, t1)."""
        c: collections.Counter[str] = collections.Counter()
        for t, code in zip(self.err_done if by_answer else self.err_t, self.err_code, strict=True):
            if t0 <= t < t1:
                c[err_name(code)] += 1
        return dict(c.most_common())

    def first_acks_after(self, t: float, nodes: int) -> tuple[float | None, list[float | None]]:
        """The first answer time of a heartbeat sent at or after ``t``: over all nodes, and through
        each node."""
        best = [INF] * nodes
        for ts, lat, n, op in zip(self.ack_t, self.ack_lat, self.ack_node, self.ack_op, strict=True):
            if ts >= t and op == OP_HB and ts + lat < best[n]:
                best[n] = ts + lat
        per = [None if b == INF else b for b in best]
        found = [b for b in per if b is not None]
        return (min(found) if found else None), per


def kinds_text(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in kinds.items()) or "0"


# =============================================================================================
# The benchmark
# =============================================================================================

class LeaseBench(Bench):
    """registry_bench's Bench (client pool, summary, clean-up) with the lease phases."""

    sizes = SIZES

    def __init__(self, args: argparse.Namespace, tuning: Any, tuning_overrides: dict[str, Any],
                 leases: LeaseTuning, checks: CheckTuning) -> None:
        super().__init__(args, tuning, tuning_overrides)
        self.lease_tuning = leases
        self.check_tuning = checks

    @contextlib.contextmanager
    def fresh_cluster(self) -> Iterator[LocalCluster]:
        cluster = LocalCluster(3, tuning=self.tuning, leases=self.lease_tuning, checks=self.check_tuning,
                               name="bench", keep_data=self.args.keep_data)
        self.cluster = cluster
        try:
            t0 = time.perf_counter()
            cluster.start(wait=60)
            log(f"cluster up in {time.perf_counter() - t0:.1f}s (leader {cluster.leader()}, data {cluster.base_dir}"
                f"{', kept' if self.args.keep_data else ''})")
            yield cluster
        finally:
            cluster.close()
            self.cluster = None

    def client_pool(self) -> ClientPool:
        if self.pool is None:
            self.pool = ClientPool(self.args.procs, target=functools.partial(rb._worker_main, run_job=_run_job))
        return self.pool

    def drop_pool(self) -> None:
        """Kill the client processes at once (they may be in the middle of a load job)."""
        if self.pool is not None:
            for proc in self.pool.procs:
                proc.kill()
            for proc in self.pool.procs:
                proc.join(timeout=5)
            for conn in self.pool.conns:
                conn.close()
            self.pool = None

    def close(self) -> None:
        self.drop_pool()
        super().close()

    def run(self, phases: list[str]) -> None:
        self.client_pool()  # spawn the client processes first: their start-up is not part of any number
        for p in PHASES:
            if p in phases:
                fn: Callable[[], dict[str, Any]] = getattr(self, f"phase_{p}")
                self.results[p] = self.timed(p, fn)

    # ---- jobs ---------------------------------------------------------------------------------
    def group(self, prefix: str, n: int, *, services: int, ttl: float | None, period: float, count: int | None,
              reg_start: float, reg_spread: float, check: dict[str, Any] | None = None, track_gaps: bool = False,
              report: bool = False) -> dict[str, Any]:
        return {"prefix": prefix, "n": n, "services": services, "ttl": ttl, "period": period, "count": count,
                "reg_start": reg_start, "reg_spread": reg_spread, "check": check, "track_gaps": track_gaps,
                "report": report}

    def start_lease_jobs(self, urls: list[str], groups: list[dict[str, Any]], *, m0: float, m1: float,
                         end_t: float, request_timeout: float, retry_pause: float,
                         finish_when_idle: bool = False) -> ClientPool:
        """One ``lease`` job per client process, each with a contiguous share of every group's
        instances; returns once every process has built its instances (the start barrier)."""
        pool = self.client_pool()
        nprocs = pool.n
        for p, conn in enumerate(pool.conns):
            mine = []
            for g in groups:
                start, stop = share(g["n"], [1] * nprocs)[p]
                mine.append({**g, "start": start, "stop": stop})
            conn.send({"kind": "lease", "nodes": urls, "groups": mine, "m0": m0, "m1": m1, "end_t": end_t,
                       "request_timeout": request_timeout, "retry_pause": retry_pause,
                       "finish_when_idle": finish_when_idle, "client": self.args.hb_client,
                       "max_conns": self.args.max_conns, "barrier_timeout": 120.0,
                       "hard_limit": max(60.0, end_t - time.monotonic() + request_timeout + 120.0)})
        try:
            pool.barrier.wait(timeout=125.0)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"client processes did not reach the start barrier: {self.collect(10.0)}") from None
        return pool

    def collect(self, timeout: float) -> list[dict[str, Any]]:
        assert self.pool is not None
        deadline = time.monotonic() + timeout
        out = []
        for conn in self.pool.conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"client processes did not finish within {timeout:.0f}s")
            out.append(conn.recv())
        fatal = [r["fatal"] for r in out if "fatal" in r]
        if fatal:
            raise RuntimeError("client worker failed:\n" + "\n".join(fatal))
        return out

    def sleep_until(self, t: float) -> None:
        """Sleep until monotonic time ``t``; fail early if a client process has already answered
        (it died or failed)."""
        while True:
            now = time.monotonic()
            if now >= t:
                return
            if self.pool is not None and any(c.poll() for c in self.pool.conns):
                raise RuntimeError(f"a client process ended early: {self.collect(5.0)}")
            time.sleep(min(0.2, t - now))

    # ---- 1. heartbeats through leader kills ----------------------------------------------------
    def phase_heartbeat(self) -> dict[str, Any]:
        n, dur, kills = self.size("instances"), float(self.size("duration")), int(self.size("kills"))
        ttl, interval = self.args.ttl, self.args.hb_interval
        spread = n / self.args.register_rate
        timeout, pause = max(1.0, interval), max(0.2, ttl / 10)  # as raftreg.client.keep_alive
        services = max(1, min(100, n // 100))
        out: dict[str, Any] = {"instances": n, "duration_s": dur, "kills": kills, "ttl_s": ttl,
                               "interval_s": interval, "client": self.args.hb_client, "procs": self.args.procs,
                               "expected_per_s": round(n / interval, 1), "loadavg_at_start": loadavg()}
        with self.fresh_cluster() as cluster:
            urls = cluster.urls()
            t0 = time.monotonic() + START_SLACK_S
            m0 = t0 + spread + 1.5 * interval + 1.0  # every instance registered and heartbeating
            m1 = m0 + dur
            out["warmup_s"] = round(m0 - t0, 1)
            group = self.group("hb", n, services=services, ttl=ttl, period=interval, count=None, reg_start=t0,
                               reg_spread=spread, track_gaps=True)
            monitor = Monitor(cluster)
            monitor.start()
            cpu = CpuAccount()
            kill_log: list[dict[str, Any]] = []
            try:
                log(f"heartbeat: {n:,} instances (ttl {ttl:g}s, heartbeat every {interval:g}s = "
                    f"{n / interval:,.0f}/s, instance i via node i % 3), registered at {self.args.register_rate:g}/s, "
                    f"then {dur:g}s measured with {kills} leader kill(s); {self.args.procs} client procs "
                    f"({self.args.hb_client} client)")
                pool = self.start_lease_jobs(urls, [group], m0=m0, m1=m1, end_t=m1, request_timeout=timeout,
                                             retry_pause=pause)
                self.sleep_until(m0)
                monitor.poll()
                cpu.begin({**monitor.node_pids(), **pool.pids(), "bench": os.getpid()})
                monitor.cpu = cpu
                log(f"heartbeat: all {n:,} registered and heartbeating; measuring for {dur:g}s")
                for k in range(kills):
                    self.sleep_until(m0 + dur * (k + 1) / (kills + 1))
                    kill_log.append(self.kill_leader(cluster, monitor, cpu, m0, m1))
                self.sleep_until(m1 - 1.0)
                listing = {name: catalog_counts(cluster.url(name), "hb-" if services > 1 else "hb")
                           for name in cluster.names}
                self.sleep_until(m1)
                cpu.end()
                monitor.cpu = None
                results = self.collect(timeout + 60.0)
                monitor.poll()
            except BaseException:
                self.drop_pool()
                raise
            finally:
                monitor.stop()
            out.update(self.analyze_heartbeat(Records(results), monitor, cpu, kill_log, listing, m0, m1, n, ttl))
            out["node_logs"] = str(cluster.base_dir / "logs") if self.args.keep_data else None
        print_heartbeat_tables(out)
        self.note_heartbeat(out)
        return out

    def kill_leader(self, cluster: LocalCluster, monitor: Monitor, cpu: CpuAccount, m0: float,
                    m1: float) -> dict[str, Any]:
        """kill -9 the leader (its process group, reaped), start it again ``--restart-after`` s
        later on its data, wait until it is ready."""
        victim = cluster.leader(timeout=15.0)
        monitor.poll(only=victim)  # its counters and CPU just before it dies
        pid = monitor.node_pids().get(victim)
        if pid:
            cpu.see(victim, pid)
        monitor.fast_until = time.monotonic() + 20.0
        t_kill = time.monotonic()
        cluster.kill(victim)
        log(f"heartbeat: killed leader {victim} (pid {pid}) at {t_kill - m0:.1f}s")
        self.sleep_until(t_kill + self.args.restart_after)
        t_start = time.monotonic()
        cluster.start_node(victim)
        ready = None
        while time.monotonic() < min(t_start + 60.0, m1):
            if cluster.is_ready(victim):
                ready = time.monotonic()
                break
            self.sleep_until(time.monotonic() + 0.1)
        armed = monitor.armed_after(t_kill, victim)
        log(f"heartbeat: {victim} restarted, ready after {fmt_s(None if ready is None else ready - t_start)}; "
            f"leases held by {armed[1] if armed else '?'} {fmt_s(armed[0] - t_kill if armed else None)} after the kill")
        return {"victim": victim, "pid": pid, "t_kill": t_kill, "at_s": round(t_kill - m0, 2),
                "restart_t": t_start, "ready_t": ready,
                "restart_to_ready_s": None if ready is None else round(ready - t_start, 3)}

    def analyze_heartbeat(self, rec: Records, monitor: Monitor, cpu: CpuAccount, kill_log: list[dict[str, Any]],
                          listing: dict[str, tuple[int, int] | None], m0: float, m1: float, n: int,
                          ttl: float) -> dict[str, Any]:
        dur = m1 - m0
        names = list(monitor.urls)
        hb_lat = sorted(lat for t, lat, op in zip(rec.ack_t, rec.ack_lat, rec.ack_op, strict=True)
                        if op == OP_HB and m0 <= t < m1)
        hb_err = sum(1 for t, op in zip(rec.err_t, rec.err_op, strict=True) if op == OP_HB and m0 <= t < m1)
        slot_lags = sorted(lag for t, lag in zip(rec.lag_t, rec.lag, strict=True) if m0 <= t < m1)
        skipped = sum(1 for t in rec.skipped if m0 <= t < m1)
        rereg_ok = sum(1 for op in rec.ack_op if op == OP_REREG)
        errors = rec.errors_by_kind(m0, m1)
        warm_errors = rec.errors_by_kind(0.0, m0)
        gaps = sorted(rec.max_gap)
        # Kills: per kill, from the kill to the next one (or the end) -------------------------------
        kills_out = []
        quiet_until: list[tuple[float, float]] = []  # windows around each kill where errors are expected
        for k, kl in enumerate(kill_log):
            t_kill = kl["t_kill"]
            seg_end = kill_log[k + 1]["t_kill"] if k + 1 < len(kill_log) else m1
            first, firsts = rec.first_acks_after(t_kill, len(names))
            per_node = dict(zip(names, firsts, strict=True))
            all_nodes = None if any(v is None for v in per_node.values()) else max(
                v for v in per_node.values() if v is not None)
            armed = monitor.armed_after(t_kill, kl["victim"])
            recovered = max(x for x in (all_nodes, kl["ready_t"], t_kill + 5.0) if x is not None)
            quiet_until.append((t_kill, recovered + 3.0))
            kills_out.append({
                **{k2: v for k2, v in kl.items() if k2 not in ("t_kill", "restart_t", "ready_t")},
                "new_leader": armed[1] if armed else None,
                "kill_to_leases_armed_s": None if armed is None else round(armed[0] - t_kill, 3),
                "kill_to_first_ack_s": None if first is None else round(first - t_kill, 3),
                "kill_to_first_ack_by_node_s": {k2: None if v is None else round(v - t_kill, 3)
                                                for k2, v in per_node.items()},
                "kill_to_all_nodes_acking_s": None if all_nodes is None else round(all_nodes - t_kill, 3),
                "errors_by_kind": rec.errors_by_kind(t_kill, seg_end, by_answer=True),
            })
        # Errors are expected from a kill (answer failed after it) until the cluster has recovered.
        stray = collections.Counter[str]()
        for t, done, code in zip(rec.err_t, rec.err_done, rec.err_code, strict=True):
            if m0 <= t < m1 and not any(done >= a and t < b for a, b in quiet_until):
                stray[err_name(code)] += 1
        # False expiries -----------------------------------------------------------------------------
        fe_window = [f for f in rec.false_expiries if m0 <= f[0] < m1]
        totals = monitor.lease_totals()
        leader_name = next((nm for nm, info in monitor.last.items() if info.get("state") == "leader"), None)
        present = listing.get(leader_name) if leader_name else None
        if present is None:
            present = max((v for v in listing.values() if v is not None), default=None)
        missing = None if present is None else n - present[0]
        false_total = len(rec.false_expiries) + (missing if missing is not None else n) + totals["expired"]
        node_cpu = {name: v for name, v in cpu.pct().items() if name in names}
        client_cpu = {name: v for name, v in cpu.pct().items() if name not in names}
        acked_ok = len(hb_lat)
        return {
            "window_s": round(dur, 1),
            "scheduled_per_s": round(len(slot_lags) / dur, 1),
            "attempts_per_s": round((acked_ok + hb_err) / dur, 1),
            "acked_per_s": round(acked_ok / dur, 1),
            "acked": acked_ok,
            **{f"hb_{k}": v for k, v in lat_stats(hb_lat).items()},
            "errors_by_kind": errors,
            "errors": sum(errors.values()),
            "errors_away_from_kills": dict(stray.most_common()),
            "warmup_errors_by_kind": warm_errors,
            "slot_lag": {**lat_stats(slot_lags), "over_100ms": sum(1 for x in slot_lags if x > 0.1)},
            "skipped_slots": skipped,
            "false_expiries": {
                "heartbeat_404": len(rec.false_expiries),
                "heartbeat_404_in_window": len(fe_window),
                "first_404s": [{"t_s": round(t - m0, 3), "instance": path, "node": names[nd]}
                               for t, _, path, nd in rec.false_expiries[:20]],
                "missing_at_end": missing,
                "listed_at_end": {k: None if v is None else v[0] for k, v in listing.items()},
                "leases_expired_on_leaders": totals["expired"],
                "total": false_total,
            },
            "reregistered": rereg_ok,
            "never_registered": rec.never_registered,
            "longest_ack_gap_s": {"p50": _r(pct(gaps, 50)), "p99": _r(pct(gaps, 99)),
                                  "max": _r(gaps[-1] if gaps else None)},
            "leases": totals,
            "kills_detail": kills_out,
            "server_cpu_pct": node_cpu,
            "client_cpu_pct": client_cpu,
            "client_cpu_pct_total": round(sum(v for k, v in client_cpu.items() if k != "bench"), 1),
            "other_procs_cpu_pct": cpu.other_pct(),
            "cpu_per_process": cpu.lifetimes(),
            "max_open_conns_per_proc": rec.max_open_conns,
            "pids": list(monitor.pids.values()),
        }

    def note_heartbeat(self, out: dict[str, Any]) -> None:
        fe = out["false_expiries"]
        ok = fe["total"] == 0
        self.note("heartbeat", f"{out['instances']:,} instances, {out['duration_s']:g}s, {out['kills']} leader kills: "
                  "false expiries (404 / missing / expired)",
                  f"{fe['total']} ({fe['heartbeat_404']} / {fe['missing_at_end']} / {fe['leases_expired_on_leaders']})",
                  ("ok" if ok else "FALSE EXPIRIES")
                  + ("" if (out["instances"], out["duration_s"], out["kills"]) ==
                     (TARGET_INSTANCES, TARGET_DURATION_S, TARGET_KILLS) else
                     f", below target size ({TARGET_INSTANCES:,} / {TARGET_DURATION_S:g}s / {TARGET_KILLS} kills)"))
        self.note("heartbeat", "acked heartbeats/s of expected (p50/p99 ms)",
                  f"{fmt_num(out['acked_per_s'])} of {fmt_num(out['expected_per_s'])} "
                  f"({fmt_ms(out['hb_p50_ms'])}/{fmt_ms(out['hb_p99_ms'])})",
                  "" if not out["errors_away_from_kills"] else f"errors away from kills: "
                  f"{kinds_text(out['errors_away_from_kills'])}")
        firsts = [k["kill_to_first_ack_s"] for k in out["kills_detail"]]
        if firsts:
            worst = None if any(f is None for f in firsts) else max(f for f in firsts if f is not None)
            self.note("heartbeat", "kill -> next acked heartbeat, worst kill", fmt_s(worst),
                      "" if worst is not None else "NO RECOVERY")
        self.note("heartbeat", "longest gap between acks of one instance (max)",
                  fmt_s(out["longest_ack_gap_s"]["max"]), f"ttl {out['ttl_s']:g}s")
        self.note("heartbeat", "server CPU % (client procs)",
                  f"{fmt_cpu(out['server_cpu_pct'])} ({out['client_cpu_pct_total']:.0f})")

    # ---- 2. expiry latency --------------------------------------------------------------------
    def phase_expiry(self) -> dict[str, Any]:
        m, keep = self.size("expiring"), self.size("keepalive")
        ttl_e, hbs = self.args.expiry_ttl, self.args.expiry_heartbeats
        e_interval = ttl_e / 3
        k_ttl, k_interval = self.args.ttl, self.args.hb_interval
        spread_k = keep / self.args.register_rate
        out: dict[str, Any] = {"expiring": m, "keepalive": keep, "ttl_s": ttl_e, "heartbeats": hbs,
                               "interval_s": round(e_interval, 3), "loadavg_at_start": loadavg()}
        with self.fresh_cluster() as cluster:
            leader = cluster.leader()
            watched = next(x for x in cluster.names if x != leader)
            t0 = time.monotonic() + START_SLACK_S
            e_start = t0 + spread_k + 1.5 * k_interval + 1.0
            e_spread = self.args.expiry_spread
            hold = self.lease_tuning.mass_expiry_hold_extra
            end_t = e_start + e_spread + (hbs + 1) * e_interval + 2 * ttl_e + hold + 30.0
            groups = [
                self.group("keep", keep, services=max(1, min(10, keep // 100)), ttl=k_ttl, period=k_interval,
                           count=None, reg_start=t0, reg_spread=spread_k),
                self.group("exp", m, services=1, ttl=ttl_e, period=e_interval, count=hbs, reg_start=e_start,
                           reg_spread=e_spread, report=True),
            ]
            poller = GoneWatcher(cluster.url(watched), "exp", poll=0.05)
            watcher = GoneWatcher(cluster.url(watched), "exp", wait=self.args.expiry_wait)
            before = (cluster.status(leader, timeout=5.0) or {}).get("leases", {})
            log(f"expiry: {keep:,} instances kept alive (ttl {k_ttl:g}s), then {m} instances (ttl {ttl_e:g}s) "
                f"registered over {e_spread:g}s heartbeat {hbs} times every {e_interval:.2f}s and stop; "
                f"seen on {watched} (follower; leader {leader}) by polling every 50 ms and by a blocking query "
                f"(wait={self.args.expiry_wait})")
            try:
                self.start_lease_jobs(cluster.urls(), groups, m0=e_start, m1=end_t, end_t=end_t,
                                      request_timeout=max(1.0, e_interval), retry_pause=max(0.2, ttl_e / 10))
                self.sleep_until(e_start - 1.0)
                watcher.start()
                poller.start()
                deadline = end_t - 5.0
                while time.monotonic() < deadline:
                    if all(len(w.appeared) >= m and len(w.gone) >= m for w in (poller, watcher)):
                        break
                    self.sleep_until(time.monotonic() + 0.2)
                time.sleep(0.3)
                keep_listed = catalog_counts(cluster.url(leader), "keep")
                after = (cluster.status(leader, timeout=5.0) or {}).get("leases", {})
                assert self.pool is not None
                for conn in self.pool.conns:
                    conn.send({"stop": True})
                rec = Records(self.collect(60.0))
            except BaseException:
                self.drop_pool()
                raise
            finally:
                watcher.stop()
                poller.stop()
        views = {"poll": gone_stats(poller, rec), "blocking": gone_stats(watcher, rec)}
        out.update({
            "leader": leader, "watched": watched,
            "views": views,
            "expired_delta": int(after.get("expired", 0)) - int(before.get("expired", 0)),
            "guard_trips_delta": int(after.get("guard_trips", 0)) - int(before.get("guard_trips", 0)),
            "guard_throttled_at_end": after.get("throttled"),
            "keepalive_listed": None if keep_listed is None else keep_listed[0],
            "false_expiry_404s": len(rec.false_expiries),
            "errors_by_kind": rec.errors_by_kind(0.0, INF),
            "blocking_wait": self.args.expiry_wait,
            "first_404s": [{"t": round(t - e_start, 3), "instance": path} for t, _, path, _ in
                           rec.false_expiries[:20]],
        })
        target = ttl_e + TARGET_EXPIRY_SLACK_S
        for v in views.values():
            v["meets_target"] = v["p99"] is not None and v["p99"] < target and v["never_gone"] == 0
        out["meets_target"] = (all(v["meets_target"] for v in views.values()) and out["guard_trips_delta"] == 0
                               and out["false_expiry_404s"] == 0 and out["keepalive_listed"] == keep)
        print_expiry_table(out)
        for name, label in (("poll", "polled every 50 ms"), ("blocking", "blocking query")):
            v = views[name]
            self.note("expiry", f"{m} of {m + keep:,} stop: last ack -> gone ({label}) p50/p99/max s",
                      f"{fmt_s(v['p50'])}/{fmt_s(v['p99'])}/{fmt_s(v['max'])}"
                      + (f", {v['never_gone']} never gone" if v["never_gone"] else ""),
                      f"{'ok' if v['meets_target'] else 'MISS'} (p99 < {target:g}s)")
        self.note("expiry", "mass-expiry guard trips / keep-alive false expiries",
                  f"{out['guard_trips_delta']} / {out['false_expiry_404s']}",
                  "ok" if out["guard_trips_delta"] == 0 and out["false_expiry_404s"] == 0 else "MISS")
        return out

    # ---- 3. active health checks --------------------------------------------------------------
    def phase_checks(self) -> dict[str, Any]:
        c = self.size("checks")
        warm, dur = float(self.size("checks_warmup")), float(self.size("checks_duration"))
        interval, ctimeout = self.args.check_interval, self.args.check_timeout
        out: dict[str, Any] = {"checks": c, "interval_s": interval, "timeout_s": ctimeout, "warmup_s": warm,
                               "duration_s": dur, "expected_per_s": round(c / interval, 1),
                               "loadavg_at_start": loadavg()}
        port = free_ports(1)[0]
        target = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-target", str(port)],
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        self.helper_procs.append(target)
        turl = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: http_json(turl + "/health/0", timeout=0.5)[0] == 200, 20, "the check target server")
            with self.fresh_cluster() as cluster:
                names = cluster.names
                t0 = time.monotonic() + START_SLACK_S
                spread = c / self.args.register_rate
                services = max(1, min(20, c // 100))
                check = {"url": turl + "/health/{i}", "interval": interval, "timeout": ctimeout}
                group = self.group("chk", c, services=services, ttl=None, period=1.0, count=0, reg_start=t0,
                                   reg_spread=spread, check=check)
                log(f"checks: registering {c:,} instances with an HTTP check every {interval:g}s "
                    f"(timeout {ctimeout:g}s) against {turl}")
                try:
                    self.start_lease_jobs(cluster.urls(), [group], m0=t0, m1=t0 + spread + 60.0,
                                          end_t=t0 + spread + 60.0, request_timeout=5.0, retry_pause=0.5,
                                          finish_when_idle=True)
                    rec = Records(self.collect(spread + 120.0))
                except BaseException:
                    self.drop_pool()
                    raise
                out["register_errors_by_kind"] = rec.errors_by_kind(0.0, INF)
                out["never_registered"] = rec.never_registered
                log(f"checks: registered; warming up {warm:g}s, then measuring {dur:g}s")
                time.sleep(warm)
                pids = {name: int((cluster.status(name, timeout=5.0) or {}).get("pid") or 0) or None
                        for name in names}
                s0 = {name: cluster.status(name, timeout=5.0) for name in names}
                http_json(turl + "/stats?reset=1", timeout=5.0)
                _, tg0 = http_json(turl + "/stats", timeout=5.0)
                cpu = CpuAccount()
                cpu.begin({**pids, "target": target.pid, "bench": os.getpid()})
                time.sleep(dur)
                cpu.end()
                _, tg1 = http_json(turl + "/stats", timeout=5.0)
                s1 = {name: cluster.status(name, timeout=5.0) for name in names}
                leader = next((n for n in names if (s1[n] or {}).get("state") == "leader"), names[0])
                counts = catalog_counts(cluster.url(leader), "chk")
        finally:
            target.kill()
            target.wait(timeout=10)
            self.helper_procs.remove(target)
        per_node: dict[str, dict[str, Any]] = {}
        for name in names:
            a, b = (s0[name] or {}).get("checks") or {}, (s1[name] or {}).get("checks") or {}
            probes = int(b.get("probes", 0)) - int(a.get("probes", 0))
            per_node[name] = {
                "role": (s1[name] or {}).get("state"), "owned": b.get("owned"), "members": b.get("members"),
                "probes": probes, "probes_per_s": round(probes / dur, 1),
                "failed_probes": int(b.get("failed_probes", 0)) - int(a.get("failed_probes", 0)),
                "transitions": int(b.get("transitions", 0)) - int(a.get("transitions", 0)),
                "lag_ms": b.get("lag_ms") or {}, "running_at_end": b.get("running"),
            }
        owned = [v["owned"] or 0 for v in per_node.values()]
        node_cpu = cpu.pct()
        for name in names:
            per_node[name]["cpu_pct"] = node_cpu.get(name)
        requests = int(tg1["requests"]) - int(tg0["requests"])
        rate = requests / dur
        p99s = [v["lag_ms"].get("p99") for v in per_node.values() if v["lag_ms"].get("p99") is not None]
        out.update({
            "leader": leader, "nodes": per_node,
            "owned_total": sum(owned), "owned_min": min(owned), "owned_max": max(owned),
            "owned_spread_pct": round(100.0 * (max(owned) - min(owned)) / max(1, sum(owned) / len(owned)), 1),
            "target_requests_per_s": round(rate, 1),
            "target_interval_s": tg1.get("interval_s"), "target_paths": tg1.get("paths"),
            "lag_p99_ms_worst_node": max(p99s) if p99s else None,
            "lag_max_ms_worst_node": max((v["lag_ms"].get("max") or 0) for v in per_node.values()),
            "failed_probes": sum(v["failed_probes"] for v in per_node.values()),
            "instances_listed": None if counts is None else counts[0],
            "passing_at_end": None if counts is None else counts[1],
            "server_cpu_pct": {k: v for k, v in node_cpu.items() if k in names},
            "target_cpu_pct": node_cpu.get("target"), "bench_cpu_pct": node_cpu.get("bench"),
            "other_procs_cpu_pct": cpu.other_pct(),
        })
        out["rate_ok"] = abs(rate - c / interval) <= TARGET_RATE_TOLERANCE * (c / interval)
        out["meets_target"] = (out["rate_ok"] and out["failed_probes"] == 0 and out["owned_total"] == c
                               and out["passing_at_end"] == c)
        print_checks_table(out)
        self.note("checks", f"{c:,} checks at {interval:g}s over 3 nodes: probe lag p99 / max ms (worst node)",
                  f"{fmt_ms(out['lag_p99_ms_worst_node'])} / {fmt_ms(out['lag_max_ms_worst_node'])}",
                  "" if c == TARGET_CHECKS else f"below target size ({TARGET_CHECKS:,})")
        self.note("checks", "probes/s at the target (expected), failed probes, passing",
                  f"{rate:,.1f} ({c / interval:,.1f}), {out['failed_probes']}, {out['passing_at_end']}/{c}",
                  "ok" if out["meets_target"] else "MISS")
        self.note("checks", "server CPU %, owned checks per node",
                  f"{fmt_cpu(out['server_cpu_pct'])}; owned {'/'.join(str(o) for o in owned)}")
        return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


# =============================================================================================
# Output
# =============================================================================================

def print_heartbeat_tables(out: dict[str, Any]) -> None:
    lag = out["slot_lag"]
    print_table(
        f"Heartbeats: {out['instances']:,} instances (ttl {out['ttl_s']:g}s) every {out['interval_s']:g}s, "
        f"{out['window_s']:g}s measured, {out['kills']} leader kill(s); {out['procs']} client procs "
        f"({out['client']})",
        ["expected/s", "scheduled/s", "attempts/s", "acked/s", "p50 ms", "p99 ms", "max ms", "slot lag p99/max ms",
         "skipped", "errors", "errors away from kills", "re-registered"],
        [[fmt_num(out["expected_per_s"]), fmt_num(out["scheduled_per_s"]), fmt_num(out["attempts_per_s"]),
          fmt_num(out["acked_per_s"]), fmt_ms(out["hb_p50_ms"]), fmt_ms(out["hb_p99_ms"]), fmt_ms(out["hb_max_ms"]),
          f"{fmt_ms(lag['p99_ms'])}/{fmt_ms(lag['max_ms'])}", str(out["skipped_slots"]),
          kinds_text(out["errors_by_kind"]), kinds_text(out["errors_away_from_kills"]), str(out["reregistered"])]])
    fe, gap, ls = out["false_expiries"], out["longest_ack_gap_s"], out["leases"]
    print_table(
        "False expiries (all must be 0) and lease safety margin",
        ["heartbeat 404s", "missing at end", "leases.expired on leaders", "total", "longest ack gap p50/p99/max s",
         "leader overdue max", "guard trips", "listed at end"],
        [[str(fe["heartbeat_404"]), str(fe["missing_at_end"]), str(fe["leases_expired_on_leaders"]), str(fe["total"]),
          f"{fmt_s(gap['p50'])}/{fmt_s(gap['p99'])}/{fmt_s(gap['max'])}", str(ls["overdue_max"]),
          str(ls["guard_trips"]), " ".join(f"{k} {v}" for k, v in fe["listed_at_end"].items())]])
    if out["kills_detail"]:
        rows = []
        for i, k in enumerate(out["kills_detail"]):
            by_node = " ".join(f"{n} {fmt_s(v)}" for n, v in k["kill_to_first_ack_by_node_s"].items())
            rows.append([str(i + 1), f"{k['at_s']:.0f}s", f"{k['victim']} -> {k['new_leader'] or '?'}",
                         fmt_s(k["kill_to_leases_armed_s"]), fmt_s(k["kill_to_first_ack_s"]),
                         fmt_s(k["kill_to_all_nodes_acking_s"]), by_node, fmt_s(k["restart_to_ready_s"]),
                         kinds_text(k["errors_by_kind"])])
        print_table("Leader kills (kill -9, restart after the set delay)",
                    ["kill", "at", "killed -> leases held by", "leases armed", "first ack", "all nodes acking",
                     "first ack via node", "restart->ready", "errors until next kill / end"], rows)
    print_table("CPU over the measured window (100 = one core; a node summed over its processes)",
                ["server CPU %", "client CPU %", "other CPU %", "load"],
                [[fmt_cpu(out["server_cpu_pct"]),
                  f"{out['client_cpu_pct_total']:.0f} ({fmt_cpu(out['client_cpu_pct'])})",
                  f"{out['other_procs_cpu_pct']:.0f}", f"{out['loadavg_at_start'][0]:.2f}"]])
    if out["other_procs_cpu_pct"] > 30:
        print("note: other processes used > 30% of a core during the run: the numbers are contaminated by a "
              "concurrent load\n", flush=True)


def print_expiry_table(out: dict[str, Any]) -> None:
    rows = []
    for name, label in (("poll", "poll every 50 ms"), ("blocking", f"blocking query, wait={out['blocking_wait']}")):
        g = out["views"][name]
        rows.append([label, f"{g['gone']}/{out['expiring']}",
                     f"{fmt_s(g['p50'])} / {fmt_s(g['p99'])} / {fmt_s(g['max'])}",
                     str(out["expired_delta"]), str(out["guard_trips_delta"]),
                     f"{out['keepalive_listed']}/{out['keepalive']}", str(out["false_expiry_404s"]),
                     kinds_text(out["errors_by_kind"])])
    print_table(
        f"Expiry: {out['expiring']} instances (ttl {out['ttl_s']:g}s) stop after {out['heartbeats']} heartbeats while "
        f"{out['keepalive']:,} keep heartbeating; seen on {out['watched']} (follower); "
        f"target p99 < ttl + {TARGET_EXPIRY_SLACK_S:g}s",
        ["seen by", "gone", "last ack -> gone p50 / p99 / max s", "expired (leader)", "guard trips",
         "keep-alive listed", "heartbeat 404s", "errors"], rows)


def print_checks_table(out: dict[str, Any]) -> None:
    rows = []
    for name, v in out["nodes"].items():
        lag = v["lag_ms"]
        rows.append([f"{name}({(v['role'] or '?')[0].upper()})", str(v["owned"]),
                     f"{100.0 * (v['owned'] or 0) / max(1, out['owned_total']):.0f}%", fmt_num(v["probes"]),
                     f"{v['probes_per_s']:.1f}", str(v["failed_probes"]), str(v["transitions"]),
                     f"{fmt_ms(lag.get('p50'))}/{fmt_ms(lag.get('p99'))}/{fmt_ms(lag.get('max'))}",
                     "-" if v["cpu_pct"] is None else f"{v['cpu_pct']:.0f}"])
    ti = out["target_interval_s"] or {}
    print_table(
        f"Checks: {out['checks']:,} HTTP checks every {out['interval_s']:g}s (timeout {out['timeout_s']:g}s), "
        f"{out['duration_s']:g}s measured after {out['warmup_s']:g}s warm-up",
        ["node", "owned", "share", "probes", "probes/s", "failed", "transitions", "lag p50/p99/max ms", "CPU %"], rows)
    print_table(
        "Check target server",
        ["requests/s (expected)", "interval between probes of one path p1/p50/p99/max s", "passing at end",
         "owned total (spread)", "target CPU %", "other CPU %", "load"],
        [[f"{out['target_requests_per_s']:,.1f} ({out['expected_per_s']:,.1f})",
          "/".join(fmt_s(ti.get(k)) for k in ("p1", "p50", "p99", "max")),
          f"{out['passing_at_end']}/{out['checks']}", f"{out['owned_total']} ({out['owned_spread_pct']:.0f}%)",
          "-" if out["target_cpu_pct"] is None else f"{out['target_cpu_pct']:.0f}",
          f"{out['other_procs_cpu_pct']:.0f}", f"{out['loadavg_at_start'][0]:.2f}"]])


# =============================================================================================
# Command line
# =============================================================================================

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes: the whole run takes well under 2 minutes")
    p.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/lease_bench-<time>.json)")
    p.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases (default: all of "
                   f"{','.join(PHASES)})")
    p.add_argument("--procs", type=int, default=2, help="client worker processes (default 2)")
    p.add_argument("--tuning", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="raftreg.config.RaftTuning overrides, e.g. raft_max_timeout=1.0")
    p.add_argument("--lease-tuning", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="raftreg.config.LeaseTuning overrides, e.g. check_period=0.05 mass_expiry_share=0.6")
    p.add_argument("--check-tuning", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="raftreg.config.CheckTuning overrides, e.g. max_concurrent=256")
    p.add_argument("--hb-client", choices=("light", "aiohttp"), default="light",
                   help="the load's HTTP client: a minimal keep-alive protocol (default) or aiohttp's ClientSession")
    p.add_argument("--max-conns", type=int, default=2048,
                   help="connections per node per client process at most (default 2048)")
    p.add_argument("--ttl", type=float, default=10.0, help="heartbeating instances' ttl in s (default 10)")
    p.add_argument("--hb-interval", type=float, default=3.0, help="seconds between two heartbeats (default 3)")
    p.add_argument("--register-rate", type=float, default=1000.0,
                   help="registrations/s of the ramp before a load starts (default 1000)")
    p.add_argument("--restart-after", type=float, default=2.0, help="s from a leader kill to its restart (default 2)")
    p.add_argument("--expiry-ttl", type=float, default=3.0, help="the expiring instances' ttl in s (default 3)")
    p.add_argument("--expiry-heartbeats", type=int, default=3,
                   help="heartbeats (every ttl/3) an expiring instance sends before it stops (default 3)")
    p.add_argument("--expiry-spread", type=float, default=1.0,
                   help="the expiring instances start (and so stop) spread over this many s (default 1)")
    p.add_argument("--expiry-wait", default="10s",
                   help="the expiry phase's blocking query ?wait= (default 10s)")
    p.add_argument("--check-interval", type=float, default=5.0, help="check interval in s (default 5)")
    p.add_argument("--check-timeout", type=float, default=1.0, help="check timeout in s (default 1)")
    p.add_argument("--keep-data", action="store_true", help="keep each cluster's data directory and node logs")
    for name, (full, quick) in SIZES.items():
        p.add_argument("--" + name.replace("_", "-"), type=type(full), default=None,
                       help=f"default {full} ({quick} with --quick)")
    p.add_argument("--serve-target", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.set_defaults(concurrency=1)  # for check_common_args; the lease load is open loop
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_target:
        serve_target(args.serve_target)
        return 0
    phases, tuning, overrides = check_common_args(args, PHASES)
    leases, lease_overrides = parse_struct(args.lease_tuning, LeaseTuning, "--lease-tuning")
    checks, check_overrides = parse_struct(args.check_tuning, CheckTuning, "--check-tuning")
    if args.hb_interval <= 0 or args.ttl <= 0 or args.register_rate <= 0 or args.expiry_ttl <= 0:
        raise SystemExit("--ttl, --hb-interval, --register-rate and --expiry-ttl must be > 0")
    bench = LeaseBench(args, tuning, overrides, leases, checks)
    # Each node may hold a connection per in-flight heartbeat during a failover; clients hold theirs.
    ensure_fd_limit(min(3 * args.procs * args.max_conns, 16384) + 1024)
    out_path = args.out or REPO / "benchmarks" / "results" / f"lease_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"

    exit_on_sigterm()
    started = time.time()
    meta = {
        **run_meta(args, argv, started, phases, tuning, overrides),
        "hb_client": args.hb_client,
        "sizes": {name: bench.size(name) for name in SIZES},
        "options": {k: getattr(args, k) for k in ("ttl", "hb_interval", "register_rate", "restart_after", "expiry_ttl",
                                                  "expiry_heartbeats", "expiry_spread", "expiry_wait", "check_interval",
                                                  "check_timeout", "max_conns")},
        "lease_tuning": msgspec.to_builtins(leases), "lease_tuning_overrides": lease_overrides,
        "check_tuning": msgspec.to_builtins(checks), "check_tuning_overrides": check_overrides,
    }
    log(f"raftreg lease benchmark: phases {','.join(phases)}, {args.procs} client procs ({args.hb_client})"
        f"{', quick' if args.quick else ''}; load average {meta['loadavg_at_start']}")
    return run_and_report(bench, phases, meta, started, out_path)


if __name__ == "__main__":
    sys.exit(main())
