"""The lease benchmark's client side (``lease_bench.py``): the open-loop lease load that each
spawned client process runs as a ``lease`` job.

Every simulated instance has a fixed schedule (register, then a heartbeat every ``period``
seconds) kept by the harness's 5 ms scheduler tick (``harness.open_loop.TickLoad``), over the
harness's minimal keep-alive HTTP/1.1 client (``LightPool``) or aiohttp's ClientSession. Every
answer and error is recorded with system-wide monotonic times, in arrays the parent merges
(``harness.lease_records.Records``).
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import time
from array import array
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

from harness.light_http import Answer, NodePools
from harness.open_loop import TickLoad

INF = math.inf

OP_REG, OP_HB, OP_REREG = 0, 1, 2
OP_NAMES = ("register", "heartbeat", "re-register")


def service_name(prefix: str, services: int, i: int) -> str:
    return prefix if services <= 1 else f"{prefix}-{i % services:03d}"


def instance_id(i: int) -> str:
    return f"i{i:06d}"


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

