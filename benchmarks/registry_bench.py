"""Benchmark a local 3-node raftreg cluster: client ceiling, register throughput, low-load write
latency, lookup throughput, leader failover and memory.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/registry_bench.py --quick
    .venv/bin/python benchmarks/registry_bench.py --only write,read --procs 3 --tuning max_batch_commands=500

Everything runs on 127.0.0.1. The load comes from ``--procs`` client worker processes (spawned
once, each with its own asyncio loop and aiohttp connection pool; a shared barrier starts them
together; latencies come back over a pipe): the harness's closed-loop ``put`` / ``get`` jobs. CPU
use of every node and client process is taken from /proc/<pid>/stat (utime + stime) over each
measured run. Every load loop is bounded in operations and in time, and every process we start is
killed at the end.

See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from harness.bench import Bench, catalog_counts, node_pids, serve_app
from harness.cli import add_size_options, check_common_args, common_parser, run_and_report
from harness.closed_loop import get_jobs, put_jobs, run_closed_loop
from harness.light_http import error_key
from harness.payloads import JSON_HEADERS, instance_body
from harness.proc import MIB, dir_bytes, loadavg, mib, proc_status_kib
from harness.report import fmt_ms, fmt_num, fmt_s, kinds_text, log, print_run_table, print_table
from harness.stats import pct

from raftreg.config_sections import QuotaSettings
from raftreg.testing import LocalCluster, http_json

PHASES = ("ceiling", "write", "latency", "read", "failover", "memory")


# Targets the numbers are judged against (printed as ok / MISS).
TARGET_LAT_P50_MS = 5.0
TARGET_LAT_P99_MS = 25.0
TARGET_READ_SMALL_OPS = 8000.0
TARGET_FAILOVER_P50_S = 0.5  # kill -9 of the leader to the next acknowledged write, median (issue 10)
TARGET_FAILOVER_MAX_S = 1.0  # ... and worst trial
TARGET_RSS_MIB = 100.0  # per node at 100,000 instances (issue 10; etcd 3.4 measured 207 MiB)

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
    serve_app(app, port)


# =============================================================================================
# The benchmark
# =============================================================================================

class RegistryBench(Bench):
    """The registry phases on the harness's ``Bench`` (clusters, client processes, summary)."""

    PHASES = PHASES
    CLUSTER_PHASES = frozenset({"latency", "read", "failover"})  # one cluster for these three
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = SIZES

    def cluster_options(self) -> dict[str, Any]:
        """The instance quota raised to ``--memory-instances`` when that is above the default."""
        wanted = self.size("memory_instances") if "memory" in self.args.only.split(",") else 0
        return {"quotas": QuotaSettings(max_instances=wanted)} if wanted > QuotaSettings().max_instances else {}

    def of_ceiling(self, run: dict[str, Any], key: str) -> str:
        """`` = N% of ceiling`` when the ceiling phase ran in this invocation."""
        ceiling = self.results.get("ceiling", {}).get(key, {}).get("ops_per_s")
        if not ceiling or not run.get("ops_per_s"):
            return ""
        return f" = {100.0 * run['ops_per_s'] / ceiling:.0f}% of ceiling"

    # ---- 1. client ceiling ----------------------------------------------------------------
    def phase_ceiling(self) -> dict[str, Any]:
        """The same load generator against a trivial aiohttp server with fixed answers."""
        with self.helper_server(Path(__file__).resolve(), "--serve-hello", "/v1/health", "the ceiling server") as (
                proc, url):
            pool, procs = self.client_pool(), self.args.procs
            servers: dict[str, int | None] = {"hello": proc.pid}
            conc = self.args.concurrency
            out: dict[str, Any] = {"server_pid": proc.pid}
            total = self.size("write_total")
            log(f"ceiling: {total} PUTs, concurrency {conc}, {procs} client procs")
            out["put"] = run_closed_loop(pool, put_jobs(procs, [url], conc, "ceil", total, 100, self.args.payload_bytes,
                                                        warmup=self.size("warmup_writes")), servers, 900)
            for svc, n in (("small", 5), ("large", 200)):
                dur = self.size("read_duration")
                log(f"ceiling: GET {n}-instance answer for {dur:.0f}s")
                out[f"get_{svc}"] = run_closed_loop(
                    pool, get_jobs(procs, [url], conc, svc, n, dur, self.size("read_warmup")), servers, dur + 120)
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
                jobs = put_jobs(self.args.procs, targets, conc, "reg", total, self.args.services,
                                self.args.payload_bytes, warmup=self.size("warmup_writes"))
                res = run_closed_loop(self.client_pool(), jobs, node_pids(cluster), 900)
                res["leader"] = leader
                res["targets"] = names
                res["stored_instances"] = stored_instances(cluster.url(leader), "reg-")
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
            jobs = put_jobs(self.args.procs, [cluster.url(node)], 1, f"lat-{mode}", n, 10, self.args.payload_bytes,
                            warmup=20)
            res = run_closed_loop(self.client_pool(), jobs, node_pids(cluster), 300)
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
            res = run_closed_loop(self.client_pool(),
                                  get_jobs(self.args.procs, targets, conc, svc, n, dur, self.size("read_warmup")),
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
        out: dict[str, Any] = {"rate_per_s": self.args.failover_rate, "loadavg_at_start": loadavg(), "trials": [],
                               "stop": self.args.failover_stop}
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
        out["meets_target"] = (failed == 0 and bool(times) and out["kill_to_first_ack_p50_s"] <= TARGET_FAILOVER_P50_S
                               and times[-1] <= TARGET_FAILOVER_MAX_S)
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
                    err = error_key(exc)
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
        stopper: asyncio.Task[None] | None = None
        try:
            start = loop.time()
            prekill = self.size("failover_prekill")
            i = 0
            while True:
                now = loop.time()
                if st["kill_t"] is None and now >= start + prekill:
                    st["kill_t"] = loop.time()
                    if self.args.failover_stop == "sigterm":  # graceful: it hands leadership over first
                        stopper = asyncio.create_task(asyncio.to_thread(cluster.stop_node, leader))
                    else:
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
            if stopper is not None:
                await asyncio.wait_for(stopper, 30)
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
            jobs = put_jobs(self.args.procs, [cluster.url(leader)], conc, "mem", n, max(1, n // 200),
                            self.args.payload_bytes)
            load = run_closed_loop(self.client_pool(), jobs, pids, 1800)
            index = cluster.wait_converged(timeout=180)
            time.sleep(2.0)
            rss = {name: proc_status_kib(pid, "VmRSS") for name, pid in pids.items()}
            hwm = {name: proc_status_kib(pid, "VmHWM") for name, pid in pids.items()}
            anon = {name: proc_status_kib(pid, "RssAnon") for name, pid in pids.items()}
            mapped = {name: proc_status_kib(pid, "RssFile") for name, pid in pids.items()}
            stored = stored_instances(cluster.url(leader), "mem-")
            data = {name: dir_bytes(cluster.config.node_data_dir(name)) for name in cluster.names}
            restart = restart_follower(cluster, leader)
        out = {
            "instances": n,
            "stored_instances": stored,
            "applied_index": index,
            "leader": leader,
            "load": load,
            "rss_empty_mib": {k: mib(v) for k, v in empty.items()},
            "rss_mib": {k: mib(v) for k, v in rss.items()},
            "rss_peak_mib": {k: mib(v) for k, v in hwm.items()},
            "rss_anon_mib": {k: mib(v) for k, v in anon.items()},
            "rss_file_mib": {k: mib(v) for k, v in mapped.items()},
            "data_dir_mib": {k: round(v / MIB, 1) for k, v in data.items()},
            "restart": restart,
        }
        worst = max((v for v in out["rss_mib"].values() if v is not None), default=None)
        out["rss_max_mib"] = worst
        out["meets_target"] = worst is not None and worst < TARGET_RSS_MIB and stored == n
        print_memory_table(out)
        self.note("memory", f"max RSS MiB at {n:,} inst", f"{worst}", "ok" if out["meets_target"] else "MISS")
        return out

    # ---- driver -----------------------------------------------------------------------------


def restart_follower(cluster: LocalCluster, leader: str) -> dict[str, Any]:
    """kill -9 one follower, start it on its data (its journal and dump), and time it to
    ``/v1/ready``; its RSS once the cluster converged again, and whether the leadership moved (the
    restart must not cause an election)."""
    follower = next(name for name in cluster.names if name != leader)
    term_before = leader_term(cluster, leader)
    cluster.kill(follower)
    started = time.monotonic()
    cluster.start_node(follower)
    cluster.wait_node_ready(follower, 300.0)
    ready_s = time.monotonic() - started
    cluster.wait_converged(timeout=300)
    rss = proc_status_kib(node_pids(cluster)[follower], "VmRSS")
    leader_after = cluster.leader()
    terms = (term_before, leader_term(cluster, leader_after))
    log(f"memory: {follower} restarted on its data -> ready in {ready_s:.2f} s, RSS {mib(rss)} MiB; "
        f"leader {leader} -> {leader_after}, term {terms[0]} -> {terms[1]}")
    return {"node": follower, "restart_to_ready_s": round(ready_s, 2), "rss_after_mib": mib(rss),
            "leader_before": leader, "leader_after": leader_after, "term_before": terms[0], "term_after": terms[1]}


def leader_term(cluster: LocalCluster, leader: str) -> int | None:
    status = cluster.status(leader, timeout=5.0)
    return int(status["term"]) if status else None


def stored_instances(url: str, prefix: str) -> int | None:
    """Instances one node lists over the services named ``prefix``*, or None."""
    counts = catalog_counts(url, prefix)
    return None if counts is None else counts[0]


def group_commit_stats(cluster: LocalCluster, node: str) -> dict[str, Any] | None:
    st = cluster.status(node, timeout=5.0)
    return st.get("group_commit") if st else None



# =============================================================================================
# Output
# =============================================================================================

def print_failover_table(out: dict[str, Any]) -> None:
    rows = []
    for t in out["trials"]:
        rows.append([
            str(t["trial"]), f"{t['killed']} -> {t['new_leader'] or '?'}", fmt_s(t["kill_to_leader_s"]),
            fmt_s(t["kill_to_first_ack_s"]), fmt_s(t["worst_write_latency_after_kill_s"]),
            f"{t['acked']}/{t['issued']}", str(t["gave_up"]),
            kinds_text(t["errors_by_kind"]),
            fmt_s(t["restart_to_ready_s"]), str(t["missing_acked"]),
        ])
    how = "SIGTERM (graceful stop of)" if out.get("stop") == "sigterm" else "kill -9"
    print_table(f"Failover ({how} the leader under ~{out['rate_per_s']} writes/s through the other nodes; "
                f"target median <= {TARGET_FAILOVER_P50_S:g}s, max <= {TARGET_FAILOVER_MAX_S:g}s)",
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
    restart = out["restart"]
    print(f"{restart['node']} killed and restarted on its data: ready in {restart['restart_to_ready_s']} s "
          f"(target < 5 s at 100,000 instances), RSS {restart['rss_after_mib']} MiB after; leader "
          f"{restart['leader_before']} -> {restart['leader_after']}, term {restart['term_before']} -> "
          f"{restart['term_after']} (a restart must not move them)\n")



# =============================================================================================
# Command line
# =============================================================================================

def build_parser() -> argparse.ArgumentParser:
    p = common_parser(__doc__, "registry_bench", PHASES, procs=2,
                      quick="tiny sizes: the whole run takes about a minute",
                      tuning_example="max_batch_commands=500 raft_max_timeout=1.0")
    p.add_argument("--concurrency", type=int, default=64,
                   help="concurrent requests in total over all procs (default 64)")
    p.add_argument("--payload-bytes", type=int, default=300, help="size of one registration body (default 300)")
    p.add_argument("--services", type=int, default=100,
                   help="services the register load is spread over (default 100)")
    add_size_options(p, SIZES)
    p.add_argument("--failover-rate", type=float, default=150.0,
                   help="open-loop writes/s during failover (default 150)")
    p.add_argument("--failover-stop", choices=("kill", "sigterm"), default="kill",
                   help="how the leader is stopped: kill -9 (default) or SIGTERM (a planned restart: it hands "
                        "leadership over first)")
    p.add_argument("--serve-hello", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_hello:
        serve_hello(args.serve_hello)
        return 0
    phases, tuning, overrides = check_common_args(args, PHASES)
    bench = RegistryBench(args, tuning, overrides)
    return run_and_report(bench, phases, argv, "registry_bench", "raftreg benchmark",
                          detail=f", concurrency {args.concurrency}", meta={"concurrency": args.concurrency})


if __name__ == "__main__":
    sys.exit(main())
