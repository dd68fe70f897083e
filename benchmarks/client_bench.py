"""Micro-benchmarks of the Python client, in this process (no cluster, no network).

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/client_bench.py

Balancers (``bench_balancers``, ``bench_calls``): the cost of one ``pick()`` for every balancer of
``raftreg.client.balancers`` over 1,000 instances (weights 50..500, one in ten ``warning``, keys
``client-<n>``), and the time to build a consistent-hashing ring of 1,000 instances x 160 virtual
nodes, from scratch and from the previous ring after one instance was replaced, and what
``ServiceCaller.call`` adds to a call over 10 instances (lease, reports, ejector). Each number is the
best of 5 runs (the machine is shared: the best run is the least disturbed); the 1-minute load
average is printed first.

Discovery propagation (``bench_propagation``): a fresh local 3-node cluster (``LocalCluster``, real
node processes), ``--caches`` (200) ``discovery()`` caches, each of its own ``AsyncRegistryClient``
(a client shares one watch per service, so one client per cache makes them independent: 200 watches,
200 connections), spread over the 3 nodes (client ``i`` talks to node ``i % 3`` first), all in this
process on one event loop. Each of ``--rounds`` (20) rounds waits until every watch is parked again
(``watches.waiting`` of the nodes), then registers a new instance through a separate client and
times, for each cache, registration sent -> the cache lists the instance (``wait_for``). Printed:
p50 / p99 / max over all caches and rounds, the median of the rounds' first and last cache, and the
registration's own latency. One process runs the 200 caches: the last cache of a round waits for
199 others to be handled on the same loop (the fan-out cost of a client box, not of the server).

    .venv/bin/python benchmarks/client_bench.py                      # everything (= make bench-client)
    .venv/bin/python benchmarks/client_bench.py --only propagation --caches 50 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
from collections.abc import Callable

from harness.proc import loadavg
from harness.report import fmt_ms, log, print_table
from harness.stats import lat_stats

from raftreg.client import AsyncRegistryClient, Registration
from raftreg.client.balancers import BALANCER_NAMES, Balancer, make_balancer
from raftreg.client.calls import OutlierEjector, ServiceCaller
from raftreg.client.discovery import AsyncDiscovery
from raftreg.client.hashing import HashRing
from raftreg.models import Instance
from raftreg.testing import LocalCluster, http_json

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


def calling(caller: ServiceCaller, n: int) -> object:
    """One ``caller.call`` of a function that returns at once."""
    return caller.call(lambda instance: instance)


def bench_calls(instances: int = 10) -> list[tuple[str, float]]:
    """(measurement, µs) rows: what ``ServiceCaller.call`` adds to a call that succeeds at once (lock,
    version check, lease, reports to the balancer and the ejector) over ``instances`` instances."""
    fleet = tuple(bench_instances(instances))
    rows = []
    for name in ("round_robin", "least_connections", "p2c_peak_ewma"):
        caller = ServiceCaller(lambda: fleet, lambda: 1, make_balancer(name, seed=1), OutlierEjector())
        rows.append((f"ServiceCaller.call() µs, {name}, {instances} instances",
                     best_time_per_call(functools.partial(calling, caller)) * 1e6))
    return rows


PROPAGATION_SERVICE = "propagation"


def parked_per_node(cluster: LocalCluster) -> dict[str, int]:
    """Blocking queries parked now per node (``watches.waiting`` of ``/v1/cluster``; 0 if no answer)."""
    parked = {}
    for name in cluster.names:
        code, body = http_json(cluster.url(name) + "/v1/cluster", timeout=2.0)
        ok = code == 200 and isinstance(body, dict)
        parked[name] = int(body.get("watches", {}).get("waiting", 0)) if ok else 0
    return parked


def parked_watches(cluster: LocalCluster) -> int:
    """Blocking queries parked now, summed over the nodes."""
    return sum(parked_per_node(cluster).values())


async def wait_parked(cluster: LocalCluster, count: int, timeout: float = 30.0) -> None:
    """Until at least ``count`` blocking queries are parked over the cluster (TimeoutError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(parked_watches, cluster) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} watches parked after {timeout:.0f}s")
        await asyncio.sleep(0.02)


async def bench_propagation(cluster: LocalCluster, caches: int, rounds: int) -> dict[str, list[float]]:
    """Per round: seconds from sending a registration to each of ``caches`` discovery caches listing
    it (``seen``), and the registration's own latency (``ack``)."""
    addrs = [cluster.config.node(name).http for name in cluster.names]
    writer = AsyncRegistryClient(addrs)
    clients = [AsyncRegistryClient(addrs[i % len(addrs):] + addrs[:i % len(addrs)]) for i in range(caches)]
    seen: list[float] = []
    acks: list[float] = []
    firsts: list[float] = []
    lasts: list[float] = []
    try:
        await writer.register(PROPAGATION_SERVICE, "seed", Registration(address="127.0.0.1", port=1000))
        found = [client.discovery(PROPAGATION_SERVICE) for client in clients]
        await asyncio.gather(*(d.wait_ready(60.0) for d in found))
        await wait_parked(cluster, caches)
        parked = await asyncio.to_thread(parked_per_node, cluster)
        log(f"{caches} discovery caches ready; watches parked per node: {parked}")
        for round_no in range(rounds):
            await wait_parked(cluster, caches)
            new_id = f"p{round_no:03d}"

            async def sees(d: AsyncDiscovery, new_id: str = new_id) -> float:
                await d.wait_for(lambda instances: any(i.id == new_id for i in instances), 30.0)
                return time.perf_counter()

            waiters = [asyncio.ensure_future(sees(d)) for d in found]
            await asyncio.sleep(0)  # every waiter checked the list once and waits
            sent = time.perf_counter()
            await writer.register(PROPAGATION_SERVICE, new_id, Registration(address="127.0.0.1", port=1001 + round_no))
            acks.append(time.perf_counter() - sent)
            times = sorted(t - sent for t in await asyncio.gather(*waiters))
            seen.extend(times)
            firsts.append(times[0])
            lasts.append(times[-1])
        for d in found:
            d.close()
    finally:
        for client in (writer, *clients):
            await client.aclose()
    return {"seen": seen, "ack": acks, "first": firsts, "last": lasts}


def propagation_rows(result: dict[str, list[float]]) -> list[list[str]]:
    seen = lat_stats(result["seen"])
    ack = lat_stats(result["ack"])
    return [
        ["registration -> every cache, p50 ms", fmt_ms(seen["p50_ms"])],
        ["registration -> every cache, p99 ms", fmt_ms(seen["p99_ms"])],
        ["registration -> every cache, max ms", fmt_ms(seen["max_ms"])],
        ["first cache of a round, median ms", fmt_ms(statistics.median(result["first"]) * 1e3)],
        ["last cache of a round, median ms", fmt_ms(statistics.median(result["last"]) * 1e3)],
        ["registration answered, p50 / max ms", f"{fmt_ms(ack['p50_ms'])} / {fmt_ms(ack['max_ms'])}"],
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("balancers", "propagation"), help="run one part only")
    parser.add_argument("--caches", type=int, default=200, help="discovery caches (default 200)")
    parser.add_argument("--rounds", type=int, default=20, help="registrations timed (default 20)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(f"client micro-benchmarks; load average {' '.join(f'{x:.2f}' for x in loadavg())}")
    if args.only in (None, "balancers"):
        balancer_rows = bench_balancers() + bench_calls()
        print_table(f"Balancers ({INSTANCES:,} instances, best of {REPEATS})", ["measurement", "value"],
                    [[name, f"{value:.2f}"] for name, value in balancer_rows])
    if args.only in (None, "propagation"):
        log("starting a local 3-node cluster")
        with LocalCluster(3, name="bench") as cluster:
            log(f"cluster ready (leader {cluster.leader()}); load average {' '.join(f'{x:.2f}' for x in loadavg())}")
            result = asyncio.run(bench_propagation(cluster, args.caches, args.rounds))
        print_table(f"Discovery propagation ({args.caches} caches over 3 nodes, {args.rounds} registrations)",
                    ["measurement", "value"], propagation_rows(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
