"""Benchmark read replicas: lookups/s and watchers served, and commit latency, on 3 voters alone
vs 3 voters + 2 read replicas, in one run (so the ratios compare like with like).

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/replica_bench.py --quick
    .venv/bin/python benchmarks/replica_bench.py --only lookup,commit --lookup-duration 20

For each topology a fresh cluster runs the chosen phases in order:

* ``lookup``: closed-loop ``GET /v1/services/small`` (5 instances) spread over *all* nodes (the
  replicas too), ``--concurrency`` in flight, for ``--lookup-duration`` seconds.
* ``watch``: ``--watchers`` blocking queries on one service, spread evenly over all nodes (one
  client process per node: ``--procs`` must be at least 5), ``--rounds`` registrations through
  the leader; every watcher's wake-up latency from the write's send.
* ``commit``: both clusters up at once; ``--commit-rounds`` rounds of sequential registrations
  (concurrency 1) through each one's leader, alternating, and a third arm with the two replicas
  paused (SIGSTOP): the commit latency with and without replicas to stream to, and the leader's
  own cost of streaming apart from the CPU the replica processes take on a shared machine.

It runs on the shared harness (``benchmarks/harness``; the watchers are its ``watch`` job, as in
``watch_bench``). Everything runs on one machine: with 2 cores, the replicas share the CPU the
voters had, so the ratios here show the cost and the spread, not the capacity replicas add on
machines of their own. See benchmarks/README.md ("replica_bench").
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time
from array import array
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from harness.bench import Bench, node_pids
from harness.cli import add_size_options, check_common_args, common_parser, run_and_report
from harness.closed_loop import get_jobs, put_jobs, run_closed_loop
from harness.payloads import instance_body
from harness.proc import ensure_fd_limit, loadavg
from harness.report import fmt_ms, fmt_num, kinds_text, log, print_run_table, print_table
from harness.stats import lat_stats, split
from harness.sync_http import Http
from harness.watch_job import watch_job
from harness.workers import JobHandler

from raftreg.testing import LocalCluster, http_json, wait_for

PHASES = ("lookup", "watch", "commit")
TOPOLOGIES = (("3v", 0), ("3v+2r", 2))  # (label, read replicas added to 3 voters)
LOOKUP_SERVICE, LOOKUP_INSTANCES = "small", 5
ROUND_TIMEOUT_S = 30.0

SIZES: dict[str, tuple[Any, Any]] = {
    "lookup_duration": (10.0, 3.0),
    "lookup_warmup": (1.0, 0.5),
    "watchers": (3000, 300),
    "rounds": (5, 3),
    "commit_writes": (600, 120),
    "commit_rounds": (6, 2),
}


class ReplicaBench(Bench):
    """The phases on each topology in turn, one fresh cluster per topology."""

    PHASES = PHASES
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = SIZES
    handlers: ClassVar[dict[str, JobHandler]] = {**Bench.handlers, "watch": watch_job}

    @contextlib.contextmanager
    def topology(self, replicas: int) -> Iterator[LocalCluster]:
        cluster = LocalCluster(3, replicas=replicas, tuning=self.tuning, name="bench")
        self.cluster = cluster
        try:
            t0 = time.perf_counter()
            cluster.start(wait=60)
            log(f"cluster of {cluster.names} up in {time.perf_counter() - t0:.1f}s (leader {cluster.leader()})")
            yield cluster
        finally:
            cluster.close()
            self.cluster = None

    def run(self, phases: list[str]) -> None:
        """``lookup`` and ``watch`` on 3 voters, then on 3 voters + 2 replicas; ``commit`` on both
        clusters at once, alternating; then the comparison."""
        self.client_pool()
        for label, replicas in TOPOLOGIES:
            if not {"lookup", "watch"} & set(phases):
                break
            with self.topology(replicas) as cluster:
                for p in ("lookup", "watch"):
                    if p in phases:
                        result = self.timed(f"{p} on {label}", functools.partial(getattr(self, f"phase_{p}"), cluster))
                        self.results.setdefault(p, {})[label] = result
        if "commit" in phases:
            with contextlib.ExitStack() as stack:
                clusters = {label: stack.enter_context(self.topology(replicas)) for label, replicas in TOPOLOGIES}
                self.results["commit"] = self.timed("commit", lambda: self.phase_commit(clusters))
        self.compare()

    # ---- 1. lookups spread over every node ----------------------------------------------------
    def phase_lookup(self, cluster: LocalCluster) -> dict[str, Any]:
        leader = cluster.leader()
        for i in range(LOOKUP_INSTANCES):
            code, _ = http_json(f"{cluster.url(leader)}/v1/services/{LOOKUP_SERVICE}/instances/i{i:07d}",
                                method="PUT", body=json.loads(instance_body(i, self.args.payload_bytes)), timeout=10)
            if code != 200:
                raise RuntimeError(f"preload of {LOOKUP_SERVICE} failed with HTTP {code}")
        cluster.wait_converged(timeout=60)
        dur, conc = self.size("lookup_duration"), self.args.concurrency
        log(f"lookup: GET /v1/services/{LOOKUP_SERVICE} for {dur:.0f}s, concurrency {conc} over "
            f"{len(cluster.names)} nodes, {self.args.procs} client procs")
        jobs = get_jobs(self.args.procs, cluster.urls(), conc, LOOKUP_SERVICE, LOOKUP_INSTANCES, dur,
                        self.size("lookup_warmup"))
        res = run_closed_loop(self.client_pool(), jobs, node_pids(cluster), dur + 120)
        res["leader"] = leader
        return res

    # ---- 2. watchers spread over every node ---------------------------------------------------
    def phase_watch(self, cluster: LocalCluster) -> dict[str, Any]:
        names, total, rounds = cluster.names, self.size("watchers"), self.size("rounds")
        pool = self.client_pool()
        if pool.n < len(names):
            raise RuntimeError(f"the watch phase runs one client process per node: --procs >= {len(names)}")
        leader = cluster.leader()
        writer = Http(cluster.url(leader))
        service = "watched"
        try:
            _, _, seed = writer.register(service, "seed", 0, self.args.payload_bytes)
            cluster.wait_converged(timeout=60, min_index=seed)
            index = writer.service_index(service)
            shares = dict(zip(names, split(total, len(names)), strict=True))
            job = {"kind": "watch", "service": service, "index": index, "rounds": rounds, "wait": "60s",
                   "client": "light", "request_timeout": 200.0, "hard_limit": 120.0 + rounds * 120.0}
            used = pool.send([{**job, "url": cluster.url(names[i]), "watchers": shares[names[i]]}
                              if i < len(names) else None for i in range(pool.n)])
            self.wait_parked(cluster, shares)
            log(f"watch: {total} watchers parked over {len(names)} nodes ({shares})")
            lat: array[float] = array("d")
            commits = []
            for r in range(rounds):
                t_send, t_ack, _ = writer.register(service, f"r{r:04d}", r + 1, self.args.payload_bytes)
                commits.append(t_ack - t_send)
                for rep in pool.collect(ROUND_TIMEOUT_S, used, f"watch round {r}"):
                    if rep.get("round") != r:
                        raise RuntimeError(f"watch round {r}: unexpected report {sorted(rep)}")
                    lat.extend(t - t_send for t in array("d", rep["recv"]))
                if r < rounds - 1:
                    self.wait_parked(cluster, shares)
            finals = pool.collect(30.0, used, "watch end")
        except BaseException:
            self.drop_pool()  # its workers may still hold parked watchers
            raise
        finally:
            writer.close()
        errors: dict[str, int] = {}
        for f in finals:
            for kind, count in f["errors"].items():
                errors[kind] = errors.get(kind, 0) + count
        return {"watchers": total, "per_node": shares, "rounds": rounds, "leader": leader,
                "wakeups": len(lat), **{f"wake_{k}": v for k, v in lat_stats(lat).items()},
                "commit": lat_stats(commits), "errors_by_kind": errors, "errors": sum(errors.values()),
                "loadavg": loadavg()}

    @staticmethod
    def wait_parked(cluster: LocalCluster, shares: dict[str, int]) -> None:
        def parked() -> bool:
            for name, n in shares.items():
                st = cluster.status(name, timeout=5.0)
                if st is None or st["watches"]["waiting"] != n:
                    return False
            return True

        wait_for(parked, 60.0 + sum(shares.values()) / 20.0, "every node's watchers to park", interval=0.02)

    # ---- 3. commit latency at low load, both clusters alternating ------------------------------
    def phase_commit(self, clusters: dict[str, LocalCluster]) -> dict[str, Any]:
        """``--commit-rounds`` rounds; in each, every arm (3v, 3v+2r, 3v+2r with its replicas
        paused by SIGSTOP: connected and streamed to, but using no CPU) makes its share of
        ``--commit-writes`` sequential registrations through its leader, the arms' order reversed
        every other round, so a busy machine's drift hits all arms alike. Per arm: the rounds, and
        the medians of their p50 and p99."""
        (base, _), (more, _) = TOPOLOGIES
        paused_arm = f"{more}, replicas paused"
        arms = [(base, clusters[base], False), (more, clusters[more], False), (paused_arm, clusters[more], True)]
        rounds = self.size("commit_rounds")
        n = max(1, self.size("commit_writes") // rounds)
        log(f"commit: {rounds} rounds of {n} sequential registrations per arm ({', '.join(a for a, _, _ in arms)})")
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm, _, _ in arms}
        for r in range(rounds):
            for arm, cluster, pause in arms if r % 2 == 0 else arms[::-1]:
                replicas = [m.name for m in cluster.config.replicas] if pause else []
                for name in replicas:
                    cluster.pause(name)
                try:
                    leader = cluster.leader(among=[m.name for m in cluster.config.voters])
                    jobs = put_jobs(self.args.procs, [cluster.url(leader)], 1, f"commit-{r}-{len(runs[arm])}", n, 10,
                                    self.args.payload_bytes, warmup=10)
                    res = run_closed_loop(self.client_pool(), jobs, node_pids(cluster), 300)
                finally:
                    for name in replicas:
                        cluster.resume(name)
                res["leader"] = leader
                runs[arm].append(res)
        out: dict[str, Any] = {"arms": {}}
        for arm, results in runs.items():
            out["arms"][arm] = {"rounds": results, "p50_ms": median(r["p50_ms"] for r in results),
                        "p99_ms": median(r["p99_ms"] for r in results),
                        "max_ms": max((r["max_ms"] or 0.0) for r in results),
                        "errors": sum(r["errors"] for r in results), "writes_per_round": n,
                        "other_cpu_pct": median(r["other_procs_cpu_pct"] for r in results)}
        return out

    # ---- the comparison -------------------------------------------------------------------------
    def compare(self) -> None:
        (base, _), (more, _) = TOPOLOGIES
        lookup, watch, commit = (self.results.get(p, {}) for p in PHASES)
        if base in lookup and more in lookup:
            print_run_table(f"Lookups of a {LOOKUP_INSTANCES}-instance service spread over every node "
                            f"(concurrency {self.args.concurrency})",
                            [(label, lookup[label]) for label in (base, more)], roles=True)
            self.note("lookup", f"lookups/s {base} -> {more}",
                      f"{fmt_num(lookup[base]['ops_per_s'])} -> {fmt_num(lookup[more]['ops_per_s'])} "
                      f"(x{ratio(lookup[more]['ops_per_s'], lookup[base]['ops_per_s'])})",
                      errors_text(lookup[base], lookup[more]))
        if base in watch and more in watch:
            rows = [[label, fmt_num(w["watchers"]), str(w["per_node"]), f"{w['wakeups']}/{w['watchers'] * w['rounds']}",
                     fmt_ms(w["wake_p50_ms"]), fmt_ms(w["wake_p99_ms"]), fmt_ms(w["wake_max_ms"]),
                     fmt_ms(w["commit"]["p50_ms"]), kinds_text(w["errors_by_kind"]), f"{w['loadavg'][0]:.2f}"]
                    for label, w in ((base, watch[base]), (more, watch[more]))]
            print_table("Watchers spread over every node: wake-up latency of one change",
                        ["run", "watchers", "per node", "wake-ups", "p50 ms", "p99 ms", "max ms", "commit p50 ms",
                         "errors", "load"], rows)
            self.note("watch", f"wake p99 ms {base} -> {more}",
                      f"{fmt_ms(watch[base]['wake_p99_ms'])} -> {fmt_ms(watch[more]['wake_p99_ms'])} "
                      f"({watch[base]['watchers']} watchers; most per node {max(watch[base]['per_node'].values())} "
                      f"-> {max(watch[more]['per_node'].values())})", errors_text(watch[base], watch[more]))
        if "arms" in commit:
            arms = commit["arms"]
            rows = [[arm, " ".join(fmt_ms(r["p50_ms"]) for r in c["rounds"]), fmt_ms(c["p50_ms"]), fmt_ms(c["p99_ms"]),
                     fmt_ms(c["max_ms"]), str(c["errors"]), f"{c['other_cpu_pct']:.0f}"] for arm, c in arms.items()]
            per_round = arms[base]["writes_per_round"]
            print_table(f"Commit latency: rounds of {per_round} sequential registrations via the leader, the arms "
                        "alternating", ["arm", "p50 ms per round", "median p50 ms", "median p99 ms", "max ms", "errors",
                                        "median other CPU %"], rows)
            for arm in list(arms)[1:]:
                self.note("commit", f"median p50/p99 ms {base} -> {arm}",
                          f"{fmt_ms(arms[base]['p50_ms'])}/{fmt_ms(arms[base]['p99_ms'])} -> "
                          f"{fmt_ms(arms[arm]['p50_ms'])}/{fmt_ms(arms[arm]['p99_ms'])} "
                          f"(p50 x{ratio(arms[arm]['p50_ms'], arms[base]['p50_ms'])})",
                          errors_text(arms[base], arms[arm]))

def median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def ratio(new: float | None, old: float | None) -> str:
    return "-" if not new or not old else f"{new / old:.2f}"


def errors_text(*runs: dict[str, Any]) -> str:
    errors = sum(int(r.get("errors") or 0) for r in runs)
    return "" if errors == 0 else f"{errors} errors"


def build_parser() -> argparse.ArgumentParser:
    p = common_parser(__doc__, "replica_bench", PHASES, procs=5,
                      quick="small sizes: the whole run takes about a minute",
                      tuning_example="max_batch_commands=500")
    p.add_argument("--concurrency", type=int, default=64,
                   help="concurrent lookups in total over all procs in the lookup phase (default 64)")
    p.add_argument("--payload-bytes", type=int, default=300, help="size of one registration body (default 300)")
    add_size_options(p, SIZES)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    phases, tuning, overrides = check_common_args(args, PHASES)
    bench = ReplicaBench(args, tuning, overrides)
    ensure_fd_limit(bench.size("watchers") + 1024)
    meta = {"concurrency": args.concurrency, "sizes": {name: bench.size(name) for name in SIZES},
            "topologies": [label for label, _ in TOPOLOGIES]}
    return run_and_report(bench, phases, argv, "replica_bench", "raftreg read replica benchmark", meta=meta)


if __name__ == "__main__":
    sys.exit(main())
