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
import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import msgspec
from harness.bench import Bench, catalog_counts
from harness.check_target import serve_target
from harness.cli import add_size_options, check_common_args, common_parser, parse_struct, run_and_report
from harness.cpu import CpuAccount
from harness.lease_load import INF, lease_job
from harness.lease_records import GoneWatcher, Monitor, Records, analyze_heartbeat, gone_stats
from harness.lease_report import print_checks_table, print_expiry_table, print_heartbeat_tables
from harness.proc import ensure_fd_limit, loadavg
from harness.report import fmt_cpu, fmt_ms, fmt_num, fmt_s, kinds_text, log
from harness.stats import share
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
            out.update(analyze_heartbeat(Records(results), monitor, cpu, kill_log, listing, m0, m1, n))
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
        print_expiry_table(out, TARGET_EXPIRY_SLACK_S)
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
