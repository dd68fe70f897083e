"""Benchmark overload on a local 3-node raftreg cluster: offer it ``--factor`` (4) times the
registration rate it sustains and show what the write-queue bound (``raft.max_queued_commands``,
fast 503s instead of an unbounded queue) does to accepted throughput, latency, memory, recovery
and durability.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/overload_bench.py --quick
    .venv/bin/python benchmarks/overload_bench.py --via leader
    .venv/bin/python benchmarks/overload_bench.py --tuning max_queued_commands=250
    .venv/bin/python benchmarks/overload_bench.py --load wrk --pin

Two phases, each on a fresh cluster. ``sustain``: the closed-loop write phase of
``registry_bench.py`` (64 concurrent PUTs of a ~300-byte body) gives S, the sustainable rate.
``overload``: the harness's open loop (light keep-alive client, a new instance id per request)
offers S/2 (baseline), then factor x S (overload), then S/2 again (after); it measures each stage
(accepted/s, latency, 503s, other errors, CPU, RSS, the nodes' group-commit counters), the time
back to normal after the overload, and finally that every acknowledged registration is listed on
every node. Every process it starts is killed at the end. See benchmarks/README.md for what each
number means.

``--load wrk``: the Python clients cost more CPU per request than a node spends refusing one, so
on 2 cores they cannot offer several times what the cluster sustains, and S measured through them
is their rate, not the cluster's. With ``wrk`` (``harness.wrk_load``) S is the rate of a ``wrk``
closed loop (``--wrk-sustain-connections`` per target node), and the stages are ``wrk`` paced at
S/2, factor x S, S/2 (``--wrk-connections`` per node while overloaded), while one Python open
loop at ``--probe-rate`` runs through every stage: its requests give the latency figures and the
time back to normal. ``--pin``: the nodes on all CPUs but the last, the load generators and this
process on the last: a load generator on a machine of its own, as far as 2 cores allow.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import dataclasses
import os
import sys
import time
from typing import Any, ClassVar

import msgspec
from harness.bench import Bench, catalog_counts, node_pids
from harness.cli import add_size_options, check_common_args, common_parser, run_and_report
from harness.closed_loop import put_jobs, run_closed_loop
from harness.cpu import CpuAccount
from harness.light_http import ERR_SKIPPED, err_name
from harness.open_loop import OpenLoopRecords, open_loop_jobs
from harness.overload_goals import (
    FAST_MS,
    NORMAL_BUCKET_S,
    NORMAL_HOLD,
    NORMAL_P99_FACTOR,
    NORMAL_SHARE,
    OFFERED_OK_RATIO,
    TARGET_ACCEPTED_RATIO,
    TARGET_EXCESS_GROWTH_MIB,
    TARGET_NORMAL_S,
)
from harness.overload_monitor import ForkWatcher, NodeMonitor, leader_changes, proposed_times
from harness.overload_report import print_overload
from harness.overload_stats import log_events, pct_text, per_node, pin_pids, stat_pct, stat_ticks, timeline
from harness.proc import ensure_fd_limit, loadavg, mib, proc_status_kib
from harness.report import (
    BUSY_OTHER_PCT,
    fmt_cpu,
    fmt_ms,
    fmt_num,
    fmt_s,
    kinds_text,
    log,
    print_run_table,
)
from harness.rss import RssSampler
from harness.sync_http import Http
from harness.wrk_load import ID_PREFIX, WrkCounts, WrkLoad

from raftreg.testing import LocalCluster

PHASES = ("sustain", "overload")

SERVICES = 100
PATH = "/v1/services/ol-{s:03d}/instances/i{i:07d}"

# (full, quick) defaults for the size options.
SIZES: dict[str, tuple[Any, Any]] = {
    "write_total": (20_000, 3_000),
    "warmup_writes": (1_000, 200),
    "warm_seconds": (2.0, 1.0),
    "baseline_seconds": (10.0, 4.0),
    "overload_seconds": (30.0, 10.0),
    "after_seconds": (15.0, 8.0),
    "sustain_seconds": (10.0, 5.0),  # --load wrk
}


class _Id(msgspec.Struct):
    id: str


class _Listing(msgspec.Struct):
    instances: list[_Id] = []


_listing = msgspec.json.Decoder(_Listing)


class OverloadBench(Bench):
    """The sustain and overload phases on the harness's ``Bench``."""

    PHASES = PHASES
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = SIZES

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.rate_s: float | None = self.args.rate
        self.ref_kib_per_write: dict[str, float] | None = None  # role -> RSS KiB per stored write
        self.wrk = self.args.load == "wrk"
        ncpu = os.cpu_count() or 1
        pin = self.args.pin and ncpu > 1
        self.node_cpus = f"0-{ncpu - 2}" if pin else None  # taskset -c lists
        self.load_cpus = str(ncpu - 1) if pin else None
        if self.load_cpus:
            pin_pids({"bench": os.getpid()}, self.load_cpus)

    def pin(self, cluster_pids: dict[str, int | None]) -> None:
        """With ``--pin``: the nodes (threads and future snapshot children) on ``node_cpus``, the
        client processes on ``load_cpus``."""
        if self.node_cpus and self.load_cpus:
            pin_pids(cluster_pids, self.node_cpus)
            if self.pool is not None:
                pin_pids(self.pool.pids(), self.load_cpus)

    def cluster_options(self) -> dict[str, Any]:
        return {"keep_data": self.args.keep_data}

    def targets(self, cluster: LocalCluster) -> tuple[str, list[str]]:
        """(leader, the node names the load goes to: the leader, or all for ``spread``)."""
        leader = cluster.leader()
        return leader, ([leader] if self.args.via == "leader" else list(cluster.names))

    # ---- 1. sustainable rate ----------------------------------------------------------------
    def phase_sustain(self) -> dict[str, Any]:
        if self.wrk:
            return self.sustain_wrk()
        total, conc, warm = self.size("write_total"), self.args.concurrency, self.size("warmup_writes")
        with self.fresh_cluster() as cluster:
            leader, names = self.targets(cluster)
            pids = node_pids(cluster)
            log(f"sustain: {total} registrations via {','.join(names)}, concurrency {conc}, "
                f"{self.args.procs} client procs (+{warm} warm-up)")
            rss0 = {n: proc_status_kib(pid, "VmRSS") for n, pid in pids.items()}
            jobs = put_jobs(self.args.procs, [cluster.url(n) for n in names], conc, "sus", total, SERVICES,
                            self.args.payload_bytes, warmup=warm)
            res = run_closed_loop(self.client_pool(), jobs, pids, 900)
            cluster.wait_converged(timeout=120)
            rss1 = {n: proc_status_kib(pid, "VmRSS") for n, pid in pids.items()}
            res["leader"] = leader
            res["targets"] = names
            res["group_commit"] = {n: (cluster.status(n, timeout=5.0) or {}).get("group_commit") for n in cluster.names}
            written = res["ops_ok"] + warm
            per: dict[str, float | None] = {}
            for n in cluster.names:
                a, b = rss0[n], rss1[n]
                per[n] = round((b - a) / written, 3) if a and b and written else None
            res["rss_before_mib"] = {n: mib(v) for n, v in rss0.items()}
            res["rss_after_mib"] = {n: mib(v) for n, v in rss1.items()}
            res["rss_kib_per_write"] = per
            roles: dict[str, float] = {}
            for n, v in per.items():
                if v is not None:
                    role = "leader" if n == leader else "follower"
                    roles[role] = max(roles.get(role, 0.0), v)
            self.ref_kib_per_write = roles or None
        print_run_table(f"Sustainable registration rate S (closed loop, {total} x ~{self.args.payload_bytes} B, "
                        f"concurrency {conc} via {self.args.via}, {self.args.procs} client procs)",
                        [(self.args.via, res)], roles=True)
        print(f"RSS growth per stored write (reference for the overload's memory check): "
              f"{', '.join(f'{n} {v} KiB' for n, v in per.items())}\n")
        if res["ops_per_s"] and not self.args.rate:
            self.rate_s = float(res["ops_per_s"])
        self.note("sustain", f"S = registrations/s via {self.args.via} (p50/p99 ms)",
                  f"{fmt_num(res['ops_per_s'])} ({fmt_ms(res['p50_ms'])}/{fmt_ms(res['p99_ms'])})",
                  ("" if res["errors"] == 0 else f"{res['errors']} errors")
                  + (" BUSY BOX" if res["other_procs_cpu_pct"] > BUSY_OTHER_PCT else ""))
        return res

    def sustain_wrk(self) -> dict[str, Any]:
        """S with ``wrk``: a closed loop of ``--wrk-sustain-connections`` per target node for
        ``--sustain-seconds`` after 2 s of warm-up, on a fresh cluster."""
        conns, secs = self.args.wrk_sustain_connections, self.size("sustain_seconds")
        with self.fresh_cluster() as cluster:
            leader, names = self.targets(cluster)
            pids = node_pids(cluster)
            self.pin(pids)
            urls = [cluster.url(n) for n in names]
            log(f"sustain: wrk closed loop, {conns} connections to each of {','.join(names)} for {secs:g}s "
                f"(+2 s warm-up){'; pinned' if self.node_cpus else ''}")
            WrkLoad(urls, connections=conns, duration=2.0, prefix="warm", cpus=self.load_cpus).start().wait()
            cluster.wait_converged(timeout=120)
            rss0 = {n: proc_status_kib(pid, "VmRSS") for n, pid in pids.items()}
            cpu = CpuAccount({**pids, "bench": os.getpid()})
            cpu.start()
            counts = WrkLoad(urls, connections=conns, duration=secs, prefix="sus", cpus=self.load_cpus).start().wait()
            cpu.stop()
            cluster.wait_converged(timeout=120)
            rss1 = {n: proc_status_kib(pid, "VmRSS") for n, pid in pids.items()}
        written = counts.accepted
        roles: dict[str, float] = {}
        for n in rss0:
            a, b = rss0[n], rss1[n]
            if a and b and written:
                role = "leader" if n == leader else "follower"
                roles[role] = max(roles.get(role, 0.0), round((b - a) / written, 3))
        self.ref_kib_per_write = roles or None
        rate = counts.per_s(counts.accepted)
        if not self.args.rate:
            self.rate_s = rate
        pcts = cpu.pct()
        res = {"generator": "wrk", "connections_per_node": conns, "seconds": secs, "ops_per_s": round(rate, 1),
               "wrk": dataclasses.asdict(counts), "server_cpu_pct": {n: pcts.get(n) for n in pids},
               "other_procs_cpu_pct": cpu.other_pct(), "leader": leader, "targets": names,
               "rss_kib_per_write": roles}
        print(f"S (wrk closed loop, {conns} connections per node): {rate:,.0f}/s accepted; sent {counts.sent:,}, "
              f"503 {counts.refused:,}, other {counts.other:,}, socket errors {counts.socket_errors:,}; wrk CPU "
              f"{counts.cpu_s:.1f} s; server CPU % {fmt_cpu(res['server_cpu_pct'])}; RSS KiB per write {roles}\n",
              flush=True)
        self.note("sustain", "S = registrations/s (wrk closed loop)", fmt_num(rate),
                  "" if counts.refused + counts.other == 0 else f"{counts.refused + counts.other} not accepted")
        return res

    # ---- 2. overload ------------------------------------------------------------------------
    def phase_overload(self) -> dict[str, Any]:
        if not self.rate_s:
            raise RuntimeError("no sustainable rate: run the sustain phase or give --rate")
        s, factor = self.rate_s, self.args.factor
        warm_s, base_s = self.size("warm_seconds"), self.size("baseline_seconds")
        over_s, after_s = self.size("overload_seconds"), self.size("after_seconds")
        low, high = s / 2.0, factor * s
        stages = [(warm_s, low), (base_s, low), (over_s, high), (after_s, low)]
        wrk_rates: dict[str, float] = {}
        if self.wrk:  # the Python open loop is the probe; wrk offers the rest
            probe = min(self.args.probe_rate, low)
            wrk_rates = {"baseline": low - probe, "overload": high - probe, "after": low - probe}
            stages = [(secs, probe) for secs, _ in stages]
        bound = self.tuning.max_queued_commands
        pool = self.client_pool()
        with self.fresh_cluster() as cluster:
            leader, names = self.targets(cluster)
            urls = [cluster.url(n) for n in names]
            pids = node_pids(cluster)
            roles = {n: ("leader" if n == leader else "follower") for n in cluster.names}
            log(f"overload: S = {s:,.0f}/s via {','.join(names)}; {warm_s:g}s warm-up + {base_s:g}s at "
                f"{low:,.0f}/s, {over_s:g}s at {high:,.0f}/s ({factor:g} x S), {after_s:g}s at {low:,.0f}/s; "
                f"max_queued_commands {bound}, {pool.n} client procs"
                + (f"; wrk offers all but the probe's {stages[0][1]:,.0f}/s" if self.wrk else "")
                + ("; pinned" if self.node_cpus else ""))
            start_t = time.monotonic() + 3.0
            t_base = start_t + warm_s
            t_over = t_base + base_s
            t_after = t_over + over_s
            t_end = t_after + after_s
            max_inflight = self.args.max_inflight
            jobs = open_loop_jobs(pool.n, urls, stages, start_t, PATH, body_size=self.args.payload_bytes,
                                  services=SERVICES, timeout=self.args.timeout,
                                  max_conns=self.args.max_conns or max_inflight, max_inflight=max_inflight)
            monitor = NodeMonitor({n: cluster.url(n) for n in cluster.names})
            forks = ForkWatcher(pids)
            rss = RssSampler(pids, period=0.1)
            named = {**pids, **pool.pids(), "bench": os.getpid()}
            cpu = {k: CpuAccount(named) for k in ("baseline", "overload", "after")}
            ticks: dict[str, dict[str, int]] = {}
            load = loadavg()
            pool.send(jobs)
            self.pin(pids)
            loads: dict[str, WrkLoad] = {}
            monitor.start()
            forks.start()
            rss.start()
            try:
                pool.start(60.0)
                stage_plan = [("baseline", "base", t_base, ""), ("overload", "over", t_over,
                              f"overload stage: {high:,.0f}/s for {over_s:g}s"),
                              ("after", "after", t_after, f"after stage: {low:,.0f}/s for {after_s:g}s")]
                previous: str | None = None
                for stage, tick_key, starts, message in stage_plan:
                    self.sleep_until(starts)
                    if previous is not None:
                        cpu[previous].stop()
                    cpu[stage].start()
                    forks.account = cpu[stage]
                    ticks[tick_key] = stat_ticks()
                    if message:
                        log(message)
                    if stage in wrk_rates:
                        conns = self.args.wrk_connections if stage == "overload" else self.args.wrk_sustain_connections
                        secs = {"baseline": base_s, "overload": over_s, "after": after_s}[stage]
                        loads[stage] = WrkLoad(urls, connections=conns, duration=secs, prefix=stage[0],
                                               rate=wrk_rates[stage] / len(urls), timeout=self.args.timeout,
                                               cpus=self.load_cpus).start()
                    previous = stage
                time.sleep(max(0.0, t_end - time.monotonic()))  # the clients may end a hair before
                forks.account = None
                cpu["after"].stop()
                ticks["end"] = stat_ticks()
                rec = OpenLoopRecords(pool.collect(self.args.timeout + 60.0, what="open loop"))
                wrk_counts = {stage: w.wait() for stage, w in loads.items()}
            finally:
                for w in loads.values():
                    w.kill()
                rss.stop()
                monitor.stop()
                forks.stop()
            out = self.analyze(rec, monitor, rss, cpu, stages, (t_base, t_over, t_after, t_end), names, roles, load,
                               wrk_counts)
            out["node_forks"] = [{"node": node, "pid": pid, "from_s": round(a - t_base, 2),
                                  "to_s": round(b - t_base, 2)}
                                 for pid, (node, a, b) in sorted(forks.seen.items(), key=lambda kv: kv[1][1])]
            for row in out["timeline"]:
                row["forks"] = forks.alive_between(t_base + row["t_s"], t_base + row["t_s"] + 1.0)
            for name, (a, b) in (("baseline", ("base", "over")), ("overload", ("over", "after")),
                                 ("after", ("after", "end"))):
                out["stages"][name]["kernel_pct"] = stat_pct(ticks[a], ticks[b])
            out["leader"] = leader
            out["targets"] = names
            out["max_queued_commands"] = bound
            out["max_inflight"] = max_inflight
            out["durability"] = self.check_acked(cluster, rec, wrk_counts)
            out["log_events"] = {n: log_events(cluster.log_text(n)) for n in cluster.names}
            out["node_logs"] = str(cluster.base_dir / "logs") if self.args.keep_data else None
            out["leader_changes"] = leader_changes(monitor)
            out["monitor"] = {n: [[round(t - t_base, 2), gc.get("queued"), gc.get("refused"), gc.get("commands"),
                                   gc.get("entries"), gc.get("retries"), state]
                                  for t, gc, state in monitor.samples[n]] for n in cluster.names}
        print_overload(out, roles)
        self.summarize(out)
        return out

    def analyze(self, rec: OpenLoopRecords, monitor: NodeMonitor, rss: RssSampler, cpu: dict[str, CpuAccount],
                stages: list[tuple[float, float]], ts: tuple[float, float, float, float], names: list[str],
                roles: dict[str, str], load: list[float], wrk_counts: dict[str, WrkCounts]) -> dict[str, Any]:
        """Per stage: the open loop's figures, plus (``--load wrk``) the wrk counts folded into the
        offered, accepted and 503 figures (latencies stay the open loop's: wrk's are not per answer)."""
        t_base, t_over, t_after, t_end = ts
        s = self.rate_s or 0.0
        windows = {"baseline": (t_base, t_over, stages[1][1]), "overload": (t_over, t_after, stages[2][1]),
                   "after": (t_after, t_end, stages[3][1])}
        out: dict[str, Any] = {"S": s, "factor": self.args.factor, "via": self.args.via, "loadavg_at_start": load,
                               "load": self.args.load, "pinned": bool(self.node_cpus), "stages": {}}
        for name, (a, b, rate) in windows.items():
            summ = rec.summary(a, b, fast_ms=FAST_MS)
            thr = rec.throughput(a, b)
            sent = summ["sent"] or 0
            n503 = summ["by_kind"].get("http 503", 0)
            fast503 = round(summ["fast_share"].get("http 503", 0.0) * sent)
            other = {k: v for k, v in summ["by_kind"].items()
                     if not k.startswith("http 2") and k not in ("http 503", err_name(ERR_SKIPPED))}
            c = cpu[name]
            pcts = c.pct()
            out["stages"][name] = {
                "seconds": round(b - a, 3), "target_per_s": round(rate, 1), **summ,
                "offered_per_s": thr["sent_per_s"], "not_sent": summ["by_kind"].get(err_name(ERR_SKIPPED), 0),
                "accepted_by_answer_per_s": thr["accepted_per_s"],
                "answered_per_s": thr["answered_per_s"],
                "share_503": round(n503 / sent, 4) if sent else None,
                "fast_share_of_503": round(fast503 / n503, 4) if n503 else None,
                "other_errors": other,
                "server_cpu_pct": {n: pcts.get(n) for n in roles},
                "client_cpu_pct": {k: v for k, v in pcts.items() if k.startswith("client")},
                "bench_cpu_pct": pcts.get("bench"),
                "fork_cpu_pct": {k: v for k, v in pcts.items() if k.endswith("-fork")},
                "other_procs_cpu_pct": c.other_pct(),
                "machine_busy_pct": c.machine_busy_pct(),
                "group_commit": {n: monitor.window(n, a, b) for n in roles},
                "per_node": per_node(rec, a, b, names),
            }
            st = out["stages"][name]
            st["client_cpu_pct_total"] = round(sum(v or 0.0 for v in st["client_cpu_pct"].values()), 1)
            counts = wrk_counts.get(name)
            if counts is not None:
                st["probe"] = {k: st[k] for k in ("target_per_s", "offered_per_s", "accepted_by_answer_per_s",
                                                  "share_503")}
                st["wrk"] = dataclasses.asdict(counts)
                secs = b - a
                st["target_per_s"] = round(self.args.factor * s if name == "overload" else s / 2, 1)
                st["offered_per_s"] = round((st["offered_per_s"] or 0) + counts.sent / secs, 1)
                accepted = (st["accepted_by_answer_per_s"] or 0) + counts.accepted / secs
                st["accepted_by_answer_per_s"] = round(accepted, 1)
                both = sent + counts.sent
                st["share_503"] = round((n503 + counts.refused) / both, 4) if both else None
                wrk_pct = 100.0 * counts.cpu_s / secs  # not among the accounted PIDs: counted as "other"
                st["client_cpu_pct_total"] = round(st["client_cpu_pct_total"] + wrk_pct, 1)
                st["other_procs_cpu_pct"] = round(max(0.0, st["other_procs_cpu_pct"] - wrk_pct), 1)
        over = out["stages"]["overload"]
        out["offered_ratio_to_S"] = round(over["offered_per_s"] / s, 3) if s and over["offered_per_s"] else None
        out["accepted_ratio_to_S"] = (round(over["accepted_by_answer_per_s"] / s, 3)
                                      if s and over["accepted_by_answer_per_s"] is not None else None)
        # Back to normal after the overload.
        base_p99 = out["stages"]["baseline"]["p99_ms"]
        limit = NORMAL_P99_FACTOR * base_p99 if base_p99 else None
        out["normal_p99_limit_ms"] = limit
        out["time_to_normal_s"] = None if limit is None else rec.back_to_normal(
            t_after, t_end, max_p99_ms=limit, min_accepted_share=NORMAL_SHARE, bucket=NORMAL_BUCKET_S,
            hold=NORMAL_HOLD)
        out["time_to_latency_normal_s"] = None if limit is None else rec.back_to_normal(
            t_after, t_end, max_p99_ms=limit, min_accepted_share=0.0, bucket=NORMAL_BUCKET_S, hold=NORMAL_HOLD)
        out["recovery_timeline"] = rec.timeline(t_after - 1.0, min(t_end, t_after + 8.0), NORMAL_BUCKET_S)
        out["timeline"] = timeline(rec, monitor, rss, t_base, t_end, 1.0, roles)
        out["memory"] = self.memory(rec, monitor if wrk_counts else None, rss, t_over, t_after, t_end, roles)
        out["max_open_conns"] = rec.max_open_conns
        out["monitor_failures"] = dict(monitor.failures)
        return out

    def memory(self, rec: OpenLoopRecords, monitor: NodeMonitor | None, rss: RssSampler, t_over: float,
               t_after: float, t_end: float, roles: dict[str, str]) -> dict[str, Any]:
        """Per node: RSS peak of the baseline stage, at its end, peak during the overload (and 1 s
        after), at the end of the run. The *excess* at a sample is its RSS minus the baseline end
        minus the writes accepted since the overload began x the sustain phase's RSS KiB per stored
        write (of that role): memory the stored data does not explain (queues, connections, requests
        waiting in the server). Its peak in the first and in the second half of the overload: a
        bounded server plateaus, an unbounded queue keeps growing. The writes accepted: the open loop's
        answers, or with ``monitor`` (``--load wrk``) the commands the nodes proposed by their samples."""
        series = rss.series()
        if monitor is None:
            acc_times = sorted(t + lag + lat for t, lag, lat, st in zip(rec.t, rec.lag, rec.lat, rec.status,
                                                                        strict=True) if 200 <= st < 300)
        else:
            acc_times = proposed_times(monitor)
        k0 = bisect.bisect_left(acc_times, t_over)
        ref = self.ref_kib_per_write
        t_mid = (t_over + t_after) / 2.0
        out: dict[str, Any] = {"ref_kib_per_write": ref, "nodes": {}}
        t_start_base = t_over - self.size("baseline_seconds")
        for n, role in roles.items():
            mine = [(t, kib) for t, name, kib in series if name == n]
            base = [kib for t, kib in mine if t_start_base <= t < t_over]
            over = [(t, kib) for t, kib in mine if t_over <= t < t_after + 1.0]
            last = [kib for t, kib in mine if t < t_end]
            base_end = base[-1] if base else None
            halves: list[float | None] = [None, None]
            if ref and base_end is not None and role in ref:
                for t, kib in over:
                    ex = kib - base_end - (bisect.bisect_left(acc_times, t) - k0) * ref[role]
                    h = 0 if t < t_mid else 1
                    halves[h] = ex if halves[h] is None else max(ex, halves[h] or 0.0)
            first, second = halves
            out["nodes"][n] = {
                "baseline_peak_mib": mib(max(base)) if base else None, "baseline_end_mib": mib(base_end),
                "overload_peak_mib": mib(max(k for _, k in over)) if over else None,
                "end_mib": mib(last[-1]) if last else None,
                "excess_first_half_mib": None if first is None else mib(round(first)),
                "excess_second_half_mib": None if second is None else mib(round(second)),
                "excess_growth_mib": None if first is None or second is None else mib(round(second - first)),
            }
        vals = [v["excess_growth_mib"] for v in out["nodes"].values() if v["excess_growth_mib"] is not None]
        out["max_excess_growth_mib"] = max(vals) if vals else None
        peaks = [max(v["excess_first_half_mib"] or 0.0, v["excess_second_half_mib"] or 0.0)
                 for v in out["nodes"].values() if v["excess_first_half_mib"] is not None]
        out["max_excess_mib"] = max(peaks) if peaks else None
        return out

    # ---- 3. nothing acknowledged lost -------------------------------------------------------
    def check_acked(self, cluster: LocalCluster, rec: OpenLoopRecords, wrk_counts: dict[str, WrkCounts]
                    ) -> dict[str, Any]:
        """Wait for convergence (``--converge-timeout``), then list every ``ol-*`` service on every
        node: every acknowledged registration must be listed everywhere. If they did not converge,
        each node's applied index against the leader's commit index says which ones lag. wrk's
        requests are checked by count: listed between the accepted and the sent but not refused."""
        t0 = time.perf_counter()
        limit = self.args.converge_timeout
        try:
            index: int | None = cluster.wait_converged(timeout=limit)
        except TimeoutError:
            index = None
            log(f"durability: the nodes did not converge within {limit:g} s; listing them anyway")
        converge_s = time.perf_counter() - t0
        status = {n: cluster.status(n, timeout=10.0) or {} for n in cluster.names}
        commit = max((int(st.get("commit_index", 0)) for st in status.values() if st.get("state") == "leader"),
                     default=None)
        applied = {n: st.get("applied_index") for n, st in status.items()}
        acked: dict[int, set[str]] = collections.defaultdict(set)
        nums = rec.accepted_numbers()
        for i in nums:
            acked[i % SERVICES].add(f"i{i:07d}")
        missing: dict[str, int] = {}
        stored: dict[str, int | None] = {}
        listed: dict[str, int] = {}
        wrk_listed: dict[str, int] = {}
        for n in cluster.names:
            http = Http(cluster.url(n), timeout=60.0)
            lost = count = wrk_count = 0
            try:
                for k in range(SERVICES):
                    code, raw, _ = http.request("GET", f"/v1/services/ol-{k:03d}")
                    ids = {x.id for x in _listing.decode(raw).instances} if code == 200 else set()
                    wrk_ids = sum(1 for x in ids if x.startswith(ID_PREFIX))
                    count += len(ids) - wrk_ids
                    wrk_count += wrk_ids
                    lost += len(acked[k] - ids)
            finally:
                http.close()
            missing[n], listed[n], wrk_listed[n] = lost, count, wrk_count
            counts = catalog_counts(cluster.url(n), "ol-")
            stored[n] = None if counts is None else counts[0]
        lagging = [n for n, a in applied.items() if commit is None or a is None or a < commit]
        out = {"applied_index": index, "converged": index is not None, "leader_commit_index": commit,
               "applied_by_node": applied, "lagging_nodes": lagging,
               "acked_missing_on_caught_up_nodes": max((missing[n] for n in missing if n not in lagging), default=0),
               "acked": len(nums), "acked_unique": sum(len(v) for v in acked.values()),
               "listed_by_node": listed, "stored_by_node": stored, "acked_missing_by_node": missing,
               "acked_missing": max(missing.values()) if missing else 0,
               "stored_not_acked": {n: v - len(nums) for n, v in listed.items()},
               "converge_s": round(converge_s, 2), "check_s": round(time.perf_counter() - t0, 2)}
        if wrk_counts:
            total = WrkCounts()
            for c in wrk_counts.values():
                total.add(c)
            low, high = total.accepted, total.sent - total.refused
            out["wrk"] = {"accepted": low, "sent_not_refused": high, "listed_by_node": wrk_listed,
                          "below_accepted": {n: max(0, low - v) for n, v in wrk_listed.items()},
                          "above_not_refused": {n: max(0, v - high) for n, v in wrk_listed.items()}}
            log(f"durability (wrk, by count): listed per node {wrk_listed}, between {low:,} accepted and {high:,} "
                "sent and not refused")
        log(f"durability: {out['acked']} acknowledged, listed per node {listed}, acked missing {missing} "
            f"(converged after {out['converge_s']}s, checked after {out['check_s']}s)")
        return out

    # ---- summary ------------------------------------------------------------------------------
    def summarize(self, out: dict[str, Any]) -> None:
        s, factor = out["S"], out["factor"]
        over, base = out["stages"]["overload"], out["stages"]["baseline"]
        offered_ok = (over["offered_per_s"] or 0) >= OFFERED_OK_RATIO * factor * s
        self.note("overload", f"offered/s (target {factor:g} x S = {factor * s:,.0f}); not sent (in-flight cap)",
                  f"{fmt_num(over['offered_per_s'])} = {out['offered_ratio_to_S']} x S; {over['not_sent']:,}",
                  "ok" if offered_ok else "SHORT: in-flight cap" if over["not_sent"]
                  else "SHORT: wrk (connections busy or CPU)" if "wrk" in over else "SHORT: client CPU")
        ratio = out["accepted_ratio_to_S"]
        self.note("overload", f"accepted/s during overload (goal >= {TARGET_ACCEPTED_RATIO:g} x S)",
                  f"{fmt_num(over['accepted_by_answer_per_s'])} = {ratio} x S",
                  "ok" if ratio is not None and ratio >= TARGET_ACCEPTED_RATIO else "MISS")
        self.note("overload", "accepted p50/p99/max ms (baseline p99)",
                  f"{fmt_ms(over['p50_ms'])}/{fmt_ms(over['p99_ms'])}/{fmt_ms(over['max_ms'])} "
                  f"({fmt_ms(base['p99_ms'])})")
        self.note("overload", f"503 share (of them < {FAST_MS:g} ms)",
                  f"{pct_text(over['share_503'])} ({pct_text(over['fast_share_of_503'])})")
        n_other = sum(over["other_errors"].values())
        self.note("overload", "other errors (504, timeouts, connection)", kinds_text(over["other_errors"]),
                  "ok" if n_other == 0 else f"{n_other} errors")
        bound = out["max_queued_commands"]
        after = out["stages"]["after"]["group_commit"]
        peaks = {n: max(g["peak_queued"] or 0, after[n]["peak_queued"] or 0) for n, g in over["group_commit"].items()}
        refused = {n: f"{g['refused']} ({g['refused_at_once']} at once)" for n, g in over["group_commit"].items()}
        self.note("overload", f"peak queued per node, overload+after (bound {bound}); refused in overload",
                  f"{peaks}; {refused}",
                  "ok" if all(v is not None and v <= bound for v in peaks.values()) else "MISS")
        mem = out["memory"]
        self.note("overload", "peak RSS MiB baseline -> overload",
                  ", ".join(f"{n} {v['baseline_peak_mib']} -> {v['overload_peak_mib']}"
                            for n, v in mem["nodes"].items()))
        growth = mem["max_excess_growth_mib"]
        self.note("overload", f"RSS excess MiB: peak; growth 1st -> 2nd half (goal < {TARGET_EXCESS_GROWTH_MIB:g})",
                  f"{mem['max_excess_mib']}; {growth}",
                  "-" if growth is None else "ok" if growth < TARGET_EXCESS_GROWTH_MIB else "MISS")
        ttn = out["time_to_normal_s"]
        self.note("overload", f"time to normal (goal < {TARGET_NORMAL_S:g} s)",
                  f"{fmt_s(ttn)} (p99 limit {fmt_ms(out['normal_p99_limit_ms'])} ms; latency alone "
                  f"{fmt_s(out['time_to_latency_normal_s'])})",
                  "ok" if ttn is not None and ttn < TARGET_NORMAL_S else "MISS")
        changes = out["leader_changes"]
        self.note("overload", "leader changes while loaded (issue 10: none)", str(changes),
                  "ok" if changes == 0 else "MISS")
        d = out["durability"]
        lost = d["acked_missing"]
        if d["converged"]:
            self.note("overload", "acked_missing", f"{lost} of {d['acked']:,}", "ok" if lost == 0 else "LOST WRITES")
        else:
            self.note("overload", "acked_missing (NOT CONVERGED)",
                      f"{lost} of {d['acked']:,}: lagging {d['lagging_nodes']} at applied {d['applied_by_node']} < "
                      f"commit {d['leader_commit_index']}; {d['acked_missing_on_caught_up_nodes']} on the others",
                      "MISS: not converged" if d["acked_missing_on_caught_up_nodes"] == 0 else "LOST WRITES")
        if "wrk" in d:
            w = d["wrk"]
            bad = max(w["below_accepted"].values()) + max(w["above_not_refused"].values())
            self.note("overload", "wrk writes listed (accepted <= listed <= sent - refused)",
                      f"{w['listed_by_node']} in [{w['accepted']:,}, {w['sent_not_refused']:,}]",
                      "ok" if bad == 0 else "LOST OR REFUSED-BUT-STORED WRITES")
        self.note("overload", "node log ERROR/CRITICAL lines",
                  ", ".join(f"{n} {ev.get('ERROR', 0)}/{ev.get('CRITICAL', 0)}" for n, ev in out["log_events"].items()))
        others = {k: v["other_procs_cpu_pct"] for k, v in out["stages"].items()}
        k = out["stages"]["overload"].get("kernel_pct", {})
        self.note("overload", "other CPU % (baseline/overload/after; steal, softirq in overload)",
                  "/".join(f"{v:.0f}" for v in others.values())
                  + f" ({k.get('steal', 0):.0f}, {k.get('softirq', 0):.0f})",
                  "ok" if max(others.values()) <= BUSY_OTHER_PCT else "BUSY BOX: unreliable")


# =============================================================================================
# Command line
# =============================================================================================

def build_parser() -> argparse.ArgumentParser:
    p = common_parser(__doc__, "overload_bench", PHASES, procs=2,
                      quick="short stages and fewer writes: the whole run takes about a minute",
                      tuning_example="max_queued_commands=500")
    p.add_argument("--via", choices=("spread", "leader"), default="spread",
                   help="spread: request i goes to node i %% 3 (default); leader: every request to the leader")
    p.add_argument("--factor", type=float, default=4.0, help="overload rate as a multiple of S (default 4)")
    p.add_argument("--rate", type=float, default=None,
                   help="use this S (registrations/s) instead of the sustain phase's (needed for --only overload)")
    p.add_argument("--concurrency", type=int, default=64,
                   help="concurrent writes in total in the sustain phase (default 64)")
    p.add_argument("--payload-bytes", type=int, default=300, help="size of one registration body (default 300)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="client timeout per open-loop request, s (default 10, above the 5 s commit timeout)")
    p.add_argument("--max-inflight", type=int, default=4096,
                   help="open-loop requests in flight per client process (the client population); a request due "
                   "while that many wait for their answer is not sent (default 4096)")
    p.add_argument("--max-conns", type=int, default=None,
                   help="open-loop connections per node per client process, opened on demand (default: "
                   "--max-inflight, so that no request waits for a connection in the client)")
    p.add_argument("--converge-timeout", type=float, default=180.0,
                   help="how long the durability check waits for the nodes to converge, s (default 180)")
    p.add_argument("--keep-data", action="store_true", help="keep each cluster's data directory and node logs")
    p.add_argument("--load", choices=("python", "wrk"), default="python",
                   help="python: the harness's clients make all the load (default); wrk: wrk measures S and "
                   "offers the stages, the Python open loop is a probe at --probe-rate (module docstring)")
    p.add_argument("--pin", action="store_true",
                   help="nodes on all CPUs but the last, load generators and this process on the last")
    p.add_argument("--probe-rate", type=float, default=300.0,
                   help="--load wrk: the Python open loop's rate in every stage, /s (default 300)")
    p.add_argument("--wrk-sustain-connections", type=int, default=256,
                   help="--load wrk: connections per target node for S and the S/2 stages (default 256)")
    p.add_argument("--wrk-connections", type=int, default=3000,
                   help="--load wrk: connections per target node in the overload stage (default 3000)")
    add_size_options(p, SIZES)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    phases, tuning, overrides = check_common_args(args, PHASES)
    if "sustain" not in phases and not args.rate:
        raise SystemExit("--only overload needs --rate S (the sustainable registrations/s)")
    if args.factor <= 0:
        raise SystemExit("--factor must be > 0")
    bench = OverloadBench(args, tuning, overrides)
    # A connection per request in flight, some idle ones; wrk's connections (its processes inherit the limit).
    ensure_fd_limit(max(args.max_inflight, args.wrk_connections if args.load == "wrk" else 0) + 2048)
    meta = {"via": args.via, "factor": args.factor, "rate": args.rate, "concurrency": args.concurrency,
            "load": args.load, "pin": args.pin, "probe_rate": args.probe_rate,
            "wrk_connections": args.wrk_connections, "wrk_sustain_connections": args.wrk_sustain_connections,
            "timeout": args.timeout, "max_inflight": args.max_inflight, "max_conns": args.max_conns,
            "max_queued_commands": tuning.max_queued_commands,
            "sizes": {name: bench.size(name) for name in SIZES}}
    return run_and_report(bench, phases, argv, "overload_bench", "raftreg overload benchmark",
                          detail=f", via {args.via}, factor {args.factor:g}", meta=meta)


if __name__ == "__main__":
    sys.exit(main())
