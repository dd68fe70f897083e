"""The cost of metrics on the hot path (issue 15 item 7): registration and lookup throughput of a
3-node cluster with ``[metrics] enabled = true`` against one with ``enabled = false``, on the same
machine in the same run.

    .venv/bin/python benchmarks/metrics_cost.py --quick      # 2 rounds, small: a smoke test (~1 min)
    .venv/bin/python benchmarks/metrics_cost.py              # 6 rounds (= make bench-metrics, ~2 min)
    .venv/bin/python benchmarks/metrics_cost.py --rounds 10 --read-duration 5

``overhead`` first times, in process, the CPU the metrics middleware adds to one request (aiohttp's
dispatch of a trivial handler with and without it): the noise-free part of the answer. Then ``compare``:
both clusters run side by side (so each sees the same machine, the other one idling; both are
started again, in the other order, half-way through the rounds); each round measures both, one
after the other, the order alternating between rounds:
- ``write``: ``--write-total`` registrations (a fresh key space per round, ~300-byte bodies, 100
  services), concurrency ``--concurrency`` spread over the three nodes;
- ``read``: ``GET /v1/services/{svc}`` of a 5-instance service for ``--read-duration`` s, spread
  over the three nodes; each answer's instance count is checked.
The machine is noisy (other work shares it), so the summary gives, per mode, the median and the
spread (min - max) over the rounds of two measures: ops/s, and the server CPU per operation (CPU of
the three nodes over the run / operations: other work on the machine slows a run down but is not
charged to it, so this one is the steadier). The cost of metrics is the median of the per-round
differences in % of the 'off' run (``(off - on) / off`` for ops/s, ``(on - off) / off`` for CPU per
operation; positive: metrics cost that much). Target: under 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.error
import urllib.request
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from harness.bench import Bench, node_pids
from harness.cli import add_size_options, check_common_args, common_parser, run_and_report
from harness.closed_loop import get_jobs, put_jobs, run_closed_loop
from harness.payloads import instance_body
from harness.report import fmt_num, log, print_table
from prometheus_client import CollectorRegistry

from raftreg.config import MetricsSettings
from raftreg.http.metrics import RequestMetrics
from raftreg.http.wire import Handler
from raftreg.testing import LocalCluster, http_json

NAME = "metrics_cost"
PHASES = ("overhead", "compare")
MODES = ("on", "off")
SERVICE, SERVICE_SIZE = "small", 5
TARGET_PCT = 5.0
MEASURES = (("ops_per_s", "ops/s", True), ("server_cpu_us_per_op", "us CPU/op", False))  # key, unit, higher better
SIZES: dict[str, tuple[Any, Any]] = {
    "rounds": (6, 2),
    "write_total": (4000, 800),
    "warmup_writes": (300, 100),
    "read_duration": (4.0, 1.5),
    "read_warmup": (0.5, 0.3),
}


def _cost_pct(on: float | None, off: float | None, higher_better: bool = True) -> float | None:
    """How much worse ``on`` is than ``off``, in % of ``off`` (negative: better): lower for a
    throughput, higher for a cost such as CPU per operation."""
    if not on or not off:
        return None
    return round(100.0 * ((off - on) if higher_better else (on - off)) / off, 2)


def _cpu_us_per_op(run: dict[str, Any]) -> float | None:
    """Server CPU (all three nodes) per acknowledged operation, in microseconds: less sensitive
    than ops/s to other work on the machine (which slows the run but is not charged to it)."""
    cpu = sum(v or 0.0 for v in run["server_cpu_pct"].values()) / 100.0
    if not run["ops_ok"] or not run["elapsed_s"]:
        return None
    return round(cpu * float(run["elapsed_s"]) / int(run["ops_ok"]) * 1e6, 1)


def _status(url: str) -> int:
    """The HTTP status of a GET (the body is not JSON for /metrics)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def _fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f} %"


class MetricsCostBench(Bench):
    """Two clusters (metrics on, metrics off), measured alternately (module docstring)."""

    PHASES = PHASES
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = SIZES

    def __init__(self, args: argparse.Namespace, *rest: Any) -> None:
        super().__init__(args, *rest)
        self.clusters: dict[str, LocalCluster] = {}
        self.fresh: set[int] = set()  # rounds that run on freshly started clusters (they warm up)

    def start_clusters(self, order: tuple[str, ...] = MODES) -> None:
        """Start both clusters, in ``order`` (the second half of the run reverses it: whatever
        the first-started cluster gains or loses from its place is then shared)."""
        for cluster in self.clusters.values():
            cluster.close()
        self.clusters.clear()
        for mode in order:
            cluster = LocalCluster(3, tuning=self.tuning, name=f"metrics-{mode}",
                                   metrics=MetricsSettings(enabled=mode == "on"))
            self.clusters[mode] = cluster
            cluster.start(wait=60)
            code = _status(cluster.url(cluster.names[0]) + "/metrics")
            if code != (200 if mode == "on" else 404):
                raise RuntimeError(f"metrics {mode}: GET /metrics answered {code}")
            leader = cluster.leader()
            for i in range(SERVICE_SIZE):
                body = json.loads(instance_body(i, self.args.payload_bytes))
                url = f"{cluster.url(leader)}/v1/services/{SERVICE}/instances/i{i:07d}"
                if http_json(url, method="PUT", body=body, timeout=10)[0] != 200:
                    raise RuntimeError(f"metrics {mode}: preload failed")
            cluster.wait_converged(timeout=60)
            log(f"cluster with metrics {mode} up (leader {leader})")

    def close(self) -> None:
        for cluster in self.clusters.values():
            cluster.close()
        self.clusters.clear()
        super().close()

    def measure(self, mode: str, rnd: int) -> dict[str, Any]:
        cluster = self.clusters[mode]
        targets, pids, conc = cluster.urls(), node_pids(cluster), self.args.concurrency
        jobs = put_jobs(self.args.procs, targets, conc, f"r{rnd}", self.size("write_total"), 100,
                        self.args.payload_bytes, warmup=self.size("warmup_writes") if rnd in self.fresh else 0)
        write = run_closed_loop(self.client_pool(), jobs, pids, 600)
        dur = self.size("read_duration")
        jobs = get_jobs(self.args.procs, targets, conc, SERVICE, SERVICE_SIZE, dur, self.size("read_warmup"))
        read = run_closed_loop(self.client_pool(), jobs, pids, dur + 120)
        for run in (write, read):
            run["server_cpu_us_per_op"] = _cpu_us_per_op(run)
        log(f"round {rnd + 1} metrics {mode}: write {fmt_num(write['ops_per_s'])}/s "
            f"({write['server_cpu_us_per_op']} us CPU/op, {write['errors']} errors), "
            f"read {fmt_num(read['ops_per_s'])}/s "
            f"({read['server_cpu_us_per_op']} us CPU/op, {read['errors']} errors), other CPU "
            f"{write['other_procs_cpu_pct']}/{read['other_procs_cpu_pct']} %")
        return {"write": write, "read": read}

    def phase_overhead(self) -> dict[str, Any]:
        """In-process, without the noise of a cluster: the CPU the request middleware adds to one
        request (``_middleware_overhead``)."""
        out = asyncio.run(_middleware_overhead())
        self.results["overhead"] = out
        log(f"overhead: {out['added_us']:.2f} us per request added by the metrics middleware "
            f"(aiohttp dispatch without it {out['bare_us']:.2f} us, with it {out['wrapped_us']:.2f} us)")
        self.note("overhead", "CPU added per request (in process)", f"{out['added_us']:.2f} us")
        return out

    def phase_compare(self) -> dict[str, Any]:
        rounds: list[dict[str, Any]] = []
        total = self.size("rounds")
        for rnd in range(total):
            if rnd in (0, total // 2):
                self.start_clusters(MODES if rnd == 0 else MODES[::-1])
                self.fresh.add(rnd)
            order = MODES if rnd % 2 == 0 else MODES[::-1]
            rounds.append({mode: self.measure(mode, rnd) for mode in order})
        out: dict[str, Any] = {"rounds": rounds}
        rows: list[list[str]] = []
        for kind in ("write", "read"):
            for key, unit, higher_better in MEASURES:
                summary = _summarize(rounds, kind, key, higher_better)
                out[f"{kind}_{key}"] = summary
                rows += _rows(f"{kind} {unit}", summary)
                cost = summary["cost_pct_median_of_rounds"]
                self.note("compare", f"{kind} {unit}: metrics cost (median of rounds)",
                          f"{_fmt_pct(cost)} ({_fmt(summary['median']['on'])} on, "
                          f"{_fmt(summary['median']['off'])} off)",
                          "ok" if cost is not None and cost < TARGET_PCT else "MISS")
            out[kind + "_errors"] = sum(r[m][kind]["errors"] for r in rounds for m in MODES)
        added = self.results.get("overhead", {}).get("added_us")
        base = out["read_server_cpu_us_per_op"]["median"]["off"]
        if added is not None and base:
            out["read_overhead_pct_estimate"] = round(100.0 * added / base, 2)
            self.note("compare", "read: in-process overhead / server CPU per read (off)",
                      f"{out['read_overhead_pct_estimate']:.2f} % ({added:.2f} of {_fmt(base)} us)",
                      "ok" if out["read_overhead_pct_estimate"] < TARGET_PCT else "MISS")
        print_table(f"Metrics on vs off ({len(rounds)} rounds, concurrency {self.args.concurrency}, "
                    f"{self.args.procs} client procs; cost: how much worse 'on' is, in % of 'off')",
                    ["measure", "mode", "per round", "median", "spread (min - max)", "cost: median of rounds"], rows)
        return out


async def _middleware_overhead(calls: int = 50_000, repeats: int = 7) -> dict[str, float]:
    """Microseconds per request through aiohttp's own dispatch (router, middleware chain, a trivial
    handler; a request made once and handled over and over), of an application with one no-op
    middleware (as raftreg's always has some: errors, ACLs, limits) and of the same with the
    metrics middleware added; best of ``repeats``, alternating."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"{}")

    @web.middleware
    async def noop(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(request)

    def app_with(metrics: bool) -> web.Application:
        app = web.Application(middlewares=[noop])
        if metrics:
            app.middlewares.insert(0, RequestMetrics(CollectorRegistry()).middleware("native"))
        app.router.add_get("/v1/services/{service}", handler)
        app.freeze()
        return app

    apps = {"bare": app_with(False), "wrapped": app_with(True)}
    best = dict.fromkeys(apps, float("inf"))
    for _ in range(repeats):
        for name, app in apps.items():
            request = make_mocked_request("GET", "/v1/services/cart", app=app)
            t0 = time.perf_counter()
            for _ in range(calls):
                await app._handle(request)
            best[name] = min(best[name], (time.perf_counter() - t0) / calls * 1e6)
    return {"bare_us": round(best["bare"], 3), "wrapped_us": round(best["wrapped"], 3),
            "added_us": round(best["wrapped"] - best["bare"], 3)}


def _fmt(v: float | None) -> str:
    return "-" if v is None else (fmt_num(v) if v >= 100 else f"{v:.1f}")


def _summarize(rounds: list[dict[str, Any]], kind: str, key: str, higher_better: bool) -> dict[str, Any]:
    """Per mode: the values of ``key`` over the rounds, their median and spread; the cost of
    metrics per round (paired: the two runs of a round are back to back) and its median."""
    per_mode = {m: [r[m][kind][key] for r in rounds] for m in MODES}
    paired = [_cost_pct(on, off, higher_better) for on, off in zip(per_mode["on"], per_mode["off"], strict=True)]
    known = [p for p in paired if p is not None]
    medians = {m: statistics.median(v) if all(x is not None for x in v) else None for m, v in per_mode.items()}
    return {
        "values": per_mode, "median": medians,
        "spread": {m: (min(v), max(v)) if medians[m] is not None else None for m, v in per_mode.items()},
        "cost_pct_per_round": paired,
        "cost_pct_median_of_rounds": statistics.median(known) if known else None,
    }


def _rows(label: str, summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for m in MODES:
        spread = summary["spread"][m]
        rows.append([label, m, " ".join(_fmt(v) for v in summary["values"][m]), _fmt(summary["median"][m]),
                     f"{_fmt(spread[0])} - {_fmt(spread[1])}" if spread else "-", ""])
    rows.append([label, "cost", " ".join(_fmt_pct(p) for p in summary["cost_pct_per_round"]), "", "",
                 _fmt_pct(summary["cost_pct_median_of_rounds"])])
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = common_parser(__doc__, NAME, PHASES, procs=2, quick="2 short rounds: about a minute",
                      tuning_example="max_batch_commands=500")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent requests in total (default 64)")
    p.add_argument("--payload-bytes", type=int, default=300, help="size of one registration body (default 300)")
    add_size_options(p, SIZES)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    phases, tuning, overrides = check_common_args(args, PHASES)
    bench = MetricsCostBench(args, tuning, overrides)
    return run_and_report(bench, phases, argv, NAME, "raftreg metrics-cost benchmark",
                          detail=f", concurrency {args.concurrency}", meta={"concurrency": args.concurrency})


if __name__ == "__main__":
    sys.exit(main())
