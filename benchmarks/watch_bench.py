"""Benchmark blocking queries (watches) and read consistency on a local 3-node raftreg cluster:
wake-up latency of many watchers parked on one follower, lookups plain vs ``?consistent`` vs
``?min_index``, and that writes to another service wake no watcher.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/watch_bench.py --quick
    .venv/bin/python benchmarks/watch_bench.py --only watch --watchers 1000 --rounds 10 --procs 4

It runs on the shared harness (``benchmarks/harness``): the spawned client worker processes (here
with a ``watch`` job kind besides the closed-loop ``put`` / ``get`` of the read phase), the light
HTTP client of the watchers, CPU accounting, ``--tuning``, the tables and the JSON output. Every
process it starts is killed at the end. See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import sys
import threading
import time
from array import array
from collections.abc import Callable
from typing import Any, ClassVar

from harness.bench import Bench, node_pids
from harness.cli import add_size_options, check_common_args, common_parser, run_and_report
from harness.closed_loop import get_jobs, run_closed_loop
from harness.cpu import CpuAccount
from harness.payloads import instance_body
from harness.proc import ensure_fd_limit, loadavg
from harness.report import fmt_cpu, fmt_ms, fmt_num, kinds_text, log, note_busy, print_run_table, print_table
from harness.stats import lat_stats, ms, split
from harness.sync_http import Http
from harness.watch_job import watch_job
from harness.workers import JobHandler

from raftreg.durations import parse_duration
from raftreg.testing import LocalCluster, http_json, wait_for

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
# Parent side helpers
# =============================================================================================

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


def roles_of(names: list[str], leader: str, watched: str | None) -> dict[str, str]:
    return {n: "leader" if n == leader else "watched" if n == watched else "follower" for n in names}


# =============================================================================================
# The benchmark
# =============================================================================================

class WatchBench(Bench):
    """The watch phases on the harness's ``Bench``; they share one cluster."""

    PHASES = PHASES
    CLUSTER_PHASES = frozenset(PHASES)
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = SIZES
    handlers: ClassVar[dict[str, JobHandler]] = {**Bench.handlers, "watch": watch_job}

    # ---- the watch machinery ----------------------------------------------------------------
    def start_watchers(self, url: str, service: str, index: int, n: int, rounds: int) -> list[int]:
        """Send one ``watch`` job per client process with a share of the ``n`` watchers; returns the
        numbers of the processes that got watchers."""
        pool = self.client_pool()
        job = {"kind": "watch", "url": url, "service": service, "index": index, "rounds": rounds,
               "wait": self.args.wait, "client": self.args.watch_client, "request_timeout": 3 * self.wait_s() + 30,
               "hard_limit": 120.0 + rounds * (self.wait_s() + 60.0)}
        return pool.send([{**job, "watchers": k} if k else None for k in split(n, pool.n)])

    def wait_s(self) -> float:
        return float(parse_duration(self.args.wait))

    def collect(self, used: list[int], timeout: float, what: str, want_round: int | None) -> list[dict[str, Any]]:
        """One message from each process of ``used``: the round report ``want_round``, or (None) the
        job result."""
        out = self.client_pool().collect(timeout, used, what)
        for msg in out:
            if want_round is not None and msg.get("round") != want_round:
                raise RuntimeError(f"{what}: expected the report of round {want_round}, got {sorted(msg)}")
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
            # "bench" is this process: the writer, the /v1/cluster poller and the collector of reports.
            meter = CpuAccount({**pids, **{f"client{i}": pool.procs[i].pid for i in used}, "bench": os.getpid()})
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
                reports = self.collect(used, ROUND_TIMEOUT_S, f"{label} round {r}", r)
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
                detail.append({"index": widx, "commit_ms": ms(t_ack - t_send), "first_ms": st["min_ms"],
                               **st, "answers": len(lat), "wrong_answers": wrong,
                               "server_wakeups": watches["wakeups"] - w0["wakeups"],
                               "server_timeouts": watches["timeouts"] - w0["timeouts"],
                               "repark_s": round(repark[-1], 3) if r < rounds - 1 else None})
                log(f"{label} round {r}: commit {fmt_ms(ms(t_ack - t_send))} ms, wake-up first/p50/p99/max "
                    f"{fmt_ms(st['min_ms'])}/{fmt_ms(st['p50_ms'])}/{fmt_ms(st['p99_ms'])}/{fmt_ms(st['max_ms'])} ms"
                    + (f", wrong answers {wrong}" if wrong else ""))
            finals = self.collect(used, 30.0, f"{label} end", None)
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
        # The harness's get job reads f"{target}/v1/services/{service}": the query rides on the name.
        for mode in ("default", "consistent", "min_index"):
            index = cluster.wait_converged(timeout=60)
            query = {"default": "", "consistent": "?consistent", "min_index": f"?min_index={index}"}[mode]
            log(f"read/{mode}: GET /v1/services/{svc}{query} ({n} instances) for {dur:.0f}s, concurrency {conc} "
                f"over all nodes, {self.args.procs} client procs")
            jobs = get_jobs(self.args.procs, targets, conc, svc + query, n, dur, warm)
            res = run_closed_loop(self.client_pool(), jobs, node_pids(cluster), dur + 120)
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
        errs = kinds_text(r["errors_by_kind"])
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
        note_busy(f"the wake windows of {', '.join(busy)} watchers")


# =============================================================================================
# Command line
# =============================================================================================

def build_parser() -> argparse.ArgumentParser:
    p = common_parser(__doc__, "watch_bench", PHASES, procs=4,
                      quick="small sizes: the whole run takes well under a minute",
                      tuning_example="max_batch_commands=500")
    p.add_argument("--concurrency", type=int, default=64,
                   help="concurrent lookups in total over all procs in the read phase (default 64)")
    p.add_argument("--wait", default="60s", help="the watchers' ?wait= (default 60s)")
    p.add_argument("--watch-client", choices=("light", "aiohttp"), default="light",
                   help="the watchers' HTTP client: a minimal keep-alive protocol (default; the load "
                   "generator shares the 2 cores with the nodes) or aiohttp's ClientSession")
    p.add_argument("--payload-bytes", type=int, default=300, help="size of one registration body (default 300)")
    add_size_options(p, SIZES)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    phases, tuning, overrides = check_common_args(args, PHASES)
    bench = WatchBench(args, tuning, overrides)
    most = max([int(x) for x in str(bench.size("watchers")).split(",") if x.strip()]
               + [bench.size("crosstalk_watchers")])
    ensure_fd_limit(most + 1024)  # the watched node holds one socket per watcher (clients hold their share)
    meta = {"concurrency": args.concurrency, "watch_client": args.watch_client, "wait": args.wait,
            "sizes": {name: bench.size(name) for name in SIZES}}
    return run_and_report(bench, phases, argv, "watch_bench", "raftreg watch benchmark", meta=meta)


if __name__ == "__main__":
    sys.exit(main())
