"""Benchmark TTL leases, heartbeats and active health checks on a local 3-node raftreg cluster:
many heartbeating instances through leader kills (no false expiry allowed), how fast a stopped
instance disappears, and what the nodes' HTTP checks cost.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/lease_bench.py --quick
    .venv/bin/python benchmarks/lease_bench.py --only heartbeat --instances 10000 --duration 300 --kills 3

It runs on the shared harness (``benchmarks/harness``): the spawned client worker processes (here
with a ``lease`` job kind), ``Bench`` (summary, JSON, clean-up), ``--tuning``, the tables and the
JSON output. The heartbeat load is open loop: every instance has a fixed schedule (register, then a
heartbeat every ``--hb-interval`` seconds) kept by a 5 ms scheduler tick in each client process,
over the harness's minimal keep-alive HTTP/1.1 client (``LightPool``; ``--hb-client aiohttp`` for
aiohttp's ClientSession).
CPU comes from /proc/<pid>/stat, per process lifetime (a restarted node is a new process). Every
process it starts is killed at the end. See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import collections
import functools
import heapq
import http.client
import json
import math
import os
import sys
import threading
import time
from array import array
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, ClassVar

import msgspec
from aiohttp import web
from harness.bench import Bench, catalog_counts, serve_app
from harness.cli import add_size_options, check_common_args, common_parser, parse_struct, run_and_report
from harness.cpu import CpuAccount
from harness.light_http import Answer, NodePools, err_name
from harness.open_loop import TickLoad
from harness.proc import ensure_fd_limit, loadavg
from harness.report import BUSY_OTHER_PCT, fmt_cpu, fmt_ms, fmt_num, fmt_s, kinds_text, log, note_busy, print_table
from harness.stats import lat_stats, pct, r3, share
from harness.sync_http import Http
from harness.workers import ClientPool, JobHandler

from raftreg.config import CheckTuning, LeaseTuning, RaftTuning
from raftreg.testing import LocalCluster, http_json

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
INF = math.inf

OP_REG, OP_HB, OP_REREG = 0, 1, 2
OP_NAMES = ("register", "heartbeat", "re-register")


def service_name(prefix: str, services: int, i: int) -> str:
    return prefix if services <= 1 else f"{prefix}-{i % services:03d}"


def instance_id(i: int) -> str:
    return f"i{i:06d}"


# =============================================================================================
# Client side (the spawned client processes): the open-loop lease load
# =============================================================================================

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


class _LeaseLoad(TickLoad):
    """The open-loop lease load of one client process (see ``lease_job``)."""

    def __init__(self, job: dict[str, Any], conn: Connection) -> None:
        super().__init__(conn, NodePools(job["client"], job["nodes"], job["request_timeout"], job["max_conns"]))
        self.m0, self.m1, self.end_t = job["m0"], job["m1"], job["end_t"]
        self.timeout, self.retry_pause = job["request_timeout"], job["retry_pause"]
        self.finish_when_idle = bool(job.get("finish_when_idle"))
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
        self.ack_t, self.ack_lat = array("d"), array("f")
        self.ack_node, self.ack_op = array("b"), array("b")
        self.err_t, self.err_done = array("d"), array("d")
        self.err_node, self.err_op, self.err_code = array("b"), array("b"), array("h")
        self.lag_t, self.lag = array("d"), array("f")
        self.skipped = array("d")
        self.false_expiries: list[tuple[float, float, str, int]] = []

    # ---- the scheduler (the pools time out old requests by themselves) ------------------------
    def accepts_control(self) -> bool:
        return not self.stopping

    def control(self, msg: Any, now: float) -> None:
        if isinstance(msg, dict) and msg.get("stop"):
            self.end_t = now

    def step(self, now: float) -> None:
        if not self.stopping and now >= self.end_t:
            self.stopping, self.stop_t = True, now
        if self.stopping:
            if self.inflight == 0 or now > self.stop_t + self.timeout + 1.0:
                self.finish()
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
            self.finish()

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

    def answer(self, x: _Inst, op: int, t_send: float, status: int, _answer: Answer | None) -> None:
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
            "max_open_conns": self.nodes.max_open(),
            "stop_t": self.stop_t,
            "inflight_at_end": self.inflight,
        }


async def lease_job(job: dict[str, Any], conn: Connection, barrier: Barrier) -> dict[str, Any]:
    """Simulated instances: each registers (through node ``i % 3``, at its slot of the groups'
    registration ramp), then heartbeats on a fixed schedule (``count`` times, or until the job
    ends). A 503, 5xx, connection error or timeout is retried on the same node after
    ``retry_pause`` unless the next slot comes first; a 404 on a heartbeat is a false expiry (the
    client never stopped): the instance registers again at once. Ends at ``end_t``, on a
    ``{"stop": True}`` message, or (``finish_when_idle``) when every instance is done; then waits
    for the requests in flight. Everything is recorded with system-wide monotonic times."""
    load = _LeaseLoad(job, conn)
    barrier.wait(timeout=job["barrier_timeout"])
    await load.run(job["hard_limit"])
    return load.result()


# =============================================================================================
# The checks' target: an aiohttp server answering 200 on GET /health/<i> (runs as a subprocess)
# =============================================================================================

def serve_target(port: int) -> None:
    """``GET /health/{i}`` -> 200; ``GET /stats[?reset=1]`` -> the request count and the
    intervals between two probes of the same path (since the last reset)."""
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
    serve_app(app, port)


# =============================================================================================
# Parent side: the cluster monitor, the expiry watcher
# =============================================================================================

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
        self.http = Http(url, timeout=60.0)
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
        self.http.abort()
        self._thread.join(timeout=10)
        self.http.close()

    def _run(self) -> None:
        index = 0
        present: set[str] = set()
        while not self._stop:
            query = f"?index={index}&wait={self.wait}" if self.wait else ""
            try:
                status, raw, headers = self.http.request("GET", f"/v1/services/{self.service}{query}", retry=False)
            except (OSError, http.client.HTTPException):
                if self._stop:
                    return
                self.errors += 1
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
    return {"p50": r3(pct(delays, 50)), "p99": r3(pct(delays, 99)), "max": r3(delays[-1] if delays else None),
            "min": r3(delays[0] if delays else None), "gone": len(delays), "never_gone": never_gone,
            "answers": watcher.answers, "errors": watcher.errors}


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


# =============================================================================================
# The benchmark
# =============================================================================================

class LeaseBench(Bench):
    """The lease phases on the harness's ``Bench``; each phase starts its own cluster."""

    PHASES = PHASES
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = SIZES
    handlers: ClassVar[dict[str, JobHandler]] = {**Bench.handlers, "lease": lease_job}

    def __init__(self, args: argparse.Namespace, tuning: RaftTuning, tuning_overrides: dict[str, Any],
                 leases: LeaseTuning, checks: CheckTuning) -> None:
        super().__init__(args, tuning, tuning_overrides)
        self.lease_tuning = leases
        self.check_tuning = checks

    def cluster_options(self) -> dict[str, Any]:
        return {"leases": self.lease_tuning, "checks": self.check_tuning, "keep_data": self.args.keep_data}

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
        job = {"kind": "lease", "nodes": urls, "m0": m0, "m1": m1, "end_t": end_t,
               "request_timeout": request_timeout, "retry_pause": retry_pause, "finish_when_idle": finish_when_idle,
               "client": self.args.hb_client, "max_conns": self.args.max_conns, "barrier_timeout": 120.0,
               "hard_limit": max(60.0, end_t - time.monotonic() + request_timeout + 120.0)}
        splits = [share(g["n"], [1] * pool.n) for g in groups]
        pool.send([{**job, "groups": [{**g, "start": sp[p][0], "stop": sp[p][1]} for g, sp in zip(groups, splits,
                                                                                                   strict=True)]}
                   for p in range(pool.n)])
        pool.start(125.0)
        return pool

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
                cpu = CpuAccount({**monitor.node_pids(), **pool.pids(), "bench": os.getpid()})
                cpu.start()
                monitor.cpu = cpu
                log(f"heartbeat: all {n:,} registered and heartbeating; measuring for {dur:g}s")
                for k in range(kills):
                    self.sleep_until(m0 + dur * (k + 1) / (kills + 1))
                    kill_log.append(self.kill_leader(cluster, monitor, cpu, m0, m1))
                self.sleep_until(m1 - 1.0)
                listing = {name: catalog_counts(cluster.url(name), "hb-" if services > 1 else "hb")
                           for name in cluster.names}
                self.sleep_until(m1)
                monitor.cpu = None
                cpu.stop()
                results = self.client_pool().collect(timeout + 60.0)
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
            "longest_ack_gap_s": {"p50": r3(pct(gaps, 50)), "p99": r3(pct(gaps, 99)),
                                  "max": r3(gaps[-1] if gaps else None)},
            "leases": totals,
            "kills_detail": kills_out,
            "server_cpu_pct": node_cpu,
            "client_cpu_pct": client_cpu,
            "client_cpu_pct_total": round(sum(v or 0.0 for k, v in client_cpu.items() if k != "bench"), 1),
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
                pool = self.client_pool()
                pool.send([{"stop": True}] * pool.n)
                rec = Records(self.client_pool().collect(60.0))
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
        with self.helper_server(Path(__file__).resolve(), "--serve-target", "/health/0",
                                "the check target server") as (target, turl), self.fresh_cluster() as cluster:
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
                rec = Records(self.client_pool().collect(spread + 120.0))
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
            cpu = CpuAccount({**pids, "target": target.pid, "bench": os.getpid()})
            cpu.start()
            time.sleep(dur)
            cpu.stop()
            _, tg1 = http_json(turl + "/stats", timeout=5.0)
            s1 = {name: cluster.status(name, timeout=5.0) for name in names}
            leader = next((n for n in names if (s1[n] or {}).get("state") == "leader"), names[0])
            counts = catalog_counts(cluster.url(leader), "chk")
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
    if out["other_procs_cpu_pct"] > BUSY_OTHER_PCT:
        note_busy("the run", those=False)


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
    p = common_parser(__doc__, "lease_bench", PHASES, procs=2,
                      quick="small sizes: the whole run takes well under 2 minutes",
                      tuning_example="raft_max_timeout=1.0")
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
    add_size_options(p, SIZES)
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
    meta = {
        "hb_client": args.hb_client,
        "sizes": {name: bench.size(name) for name in SIZES},
        "options": {k: getattr(args, k) for k in ("ttl", "hb_interval", "register_rate", "restart_after", "expiry_ttl",
                                                  "expiry_heartbeats", "expiry_spread", "expiry_wait", "check_interval",
                                                  "check_timeout", "max_conns")},
        "lease_tuning": msgspec.to_builtins(leases), "lease_tuning_overrides": lease_overrides,
        "check_tuning": msgspec.to_builtins(checks), "check_tuning_overrides": check_overrides,
    }
    return run_and_report(bench, phases, argv, "lease_bench", "raftreg lease benchmark",
                          detail=f" ({args.hb_client})", meta=meta)


if __name__ == "__main__":
    sys.exit(main())
