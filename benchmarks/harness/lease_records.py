"""The lease benchmark's parent side (``lease_bench.py``): what it observes of the cluster while a
phase runs (``Monitor``: every node's lease counters and leadership; ``GoneWatcher``: when each
instance stops being listed), the client processes' records merged (``Records``), and the
heartbeat phase's analysis of them (``analyze_heartbeat``).
"""

from __future__ import annotations

import collections
import http.client
import json
import threading
import time
from array import array
from typing import Any

from harness.cpu import CpuAccount
from harness.lease_load import INF, OP_HB, OP_REREG
from harness.light_http import err_name
from harness.stats import lat_stats, pct, r3
from harness.sync_http import Http
from raftreg.testing import LocalCluster, http_json


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


def analyze_heartbeat(rec: Records, monitor: Monitor, cpu: CpuAccount, kill_log: list[dict[str, Any]],
                      listing: dict[str, tuple[int, int] | None], m0: float, m1: float, n: int) -> dict[str, Any]:
    """The heartbeat phase's figures over the measured window ``[m0, m1)``: latencies, errors (and
    those away from the kills), per kill the recovery times, the false expiries (404s, instances
    missing from ``listing`` at the end, expiries counted by the leaders), CPU."""
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
