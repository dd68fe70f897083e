"""Micro-benchmarks of the Python client, in this process (no cluster, no network).

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/client_bench.py

Balancers (``bench_balancers``): the cost of one ``pick()`` for every balancer of
``raftreg.client.balancers`` over 1,000 instances (weights 50..500, one in ten ``warning``, keys
``client-<n>``), and the time to build a consistent-hashing ring of 1,000 instances x 160 virtual
nodes, from scratch and from the previous ring after one instance was replaced. Each number is the
best of 5 runs (the machine is shared: the best run is the least disturbed); the 1-minute load
average is printed first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from harness.proc import loadavg
from harness.report import log, print_table

from raftreg.client.balancers import BALANCER_NAMES, Balancer, make_balancer
from raftreg.client.hashing import HashRing
from raftreg.models import Instance

INSTANCES = 1000
VNODES = 160
REPEATS = 5
RUN_BUDGET_S = 0.1  # each timed run lasts about this long


def best_time_per_call(call: Callable[[int], object], budget_s: float = RUN_BUDGET_S, repeats: int = REPEATS) -> float:
    """Seconds per ``call(n)`` (n = 0, 1, ...): the best of ``repeats`` runs of about ``budget_s``."""
    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < budget_s / 10:  # calibration: how many calls fit in a run
        call(calls)
        calls += 1
    per_run = max(1, round(calls * budget_s / (time.perf_counter() - started)))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for n in range(per_run):
            call(n)
        best = min(best, (time.perf_counter() - started) / per_run)
    return best


def bench_instances(count: int = INSTANCES) -> list[Instance]:
    """``count`` instances of one service: weights 50..500, every tenth ``warning``."""
    return [
        Instance(service="bench", id=f"i{n:04d}", address=f"10.0.{n // 250}.{n % 250 + 1}", port=8080,
                 weight=50 * (n % 10 + 1), status="warning" if n % 10 == 9 else "passing")
        for n in range(count)
    ]


def picking(balancer: Balancer, keys: list[str]) -> Callable[[int], object]:
    """``call(n)``: ``balancer.pick`` with the n-th key (cycling over ``keys``, a power of 2 long)."""
    pick, mask = balancer.pick, len(keys) - 1
    return lambda n: pick(keys[n & mask])


def bench_balancers(instances: int = INSTANCES, vnodes: int = VNODES) -> list[tuple[str, float]]:
    """(measurement, value) rows: ``pick()`` in µs per balancer over ``instances`` instances, then
    hash-ring builds in ms for ``instances`` x ``vnodes``."""
    fleet = bench_instances(instances)
    keys = [f"client-{n}" for n in range(4096)]
    rows: list[tuple[str, float]] = []
    for name in BALANCER_NAMES:
        balancer = make_balancer(name, seed=1, **({"vnodes": vnodes} if name == "ring_hash" else {}))
        balancer.update(fleet)
        rows.append((f"pick() µs, {name}", best_time_per_call(picking(balancer, keys)) * 1e6))

    points = {f"bench/{i.id}": vnodes for i in fleet}
    ring = HashRing(points)
    one_replaced = {**{k: v for k, v in points.items() if k != "bench/i0500"}, "bench/new": vnodes}
    full = best_time_per_call(lambda _: HashRing(points), budget_s=1.0, repeats=3)
    incremental = best_time_per_call(lambda _: HashRing(one_replaced, reuse=ring), budget_s=0.5, repeats=3)
    rows.append((f"ring build ms, {instances} x {vnodes} vnodes", full * 1e3))
    rows.append((f"ring rebuild ms, 1 of {instances} replaced", incremental * 1e3))
    return rows


def main() -> int:
    log(f"client micro-benchmarks; load average {' '.join(f'{x:.2f}' for x in loadavg())}")
    balancer_rows = bench_balancers()
    print_table(f"Balancers ({INSTANCES:,} instances, best of {REPEATS})", ["measurement", "value"],
                [[name, f"{value:.2f}"] for name, value in balancer_rows])

    # discovery propagation: added by the client engineer

    return 0


if __name__ == "__main__":
    sys.exit(main())
