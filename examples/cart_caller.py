"""A caller of the "cart" service: discovers its replicas through raftreg and balances calls over them.

    .venv/bin/python examples/cart_caller.py --calls 300 --balancer least_connections

It waits until ``--replicas`` passing replicas are discovered (``client.discovery("cart")``), then
makes ``--calls`` calls, ``--concurrency`` at a time, every ``--interval`` seconds, each through
``client.call("cart", fetch, balancer=..., retries=2)``: the balancer picks a replica, a failed call
(connection refused, timeout, a non-200 answer) is retried at once on another replica, and a replica
that fails 3 times in a row is ejected for a while (``raftreg.client.calls``). Meanwhile the
discovery cache follows the registry: a replica that dies drops out when its check fails or its
lease expires, a new one joins.

At the end it prints how many calls each replica served and how many failed (as a table, or as one
JSON line with ``--json``); ``--trace`` also prints one line per call as it ends
(``call <n> ok <replica> <ms>`` or ``call <n> failed <error>``). Exit status 1 if any call failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from raftreg.client import AsyncRegistryClient, Instance
from raftreg.client.balancers import BALANCER_NAMES

REPO = Path(__file__).resolve().parents[1]
SERVICE = "cart"


@dataclass
class Summary:
    """What a run of calls did."""

    calls: int
    served: dict[str, int]  # replica id -> calls it served
    failed: int
    failures: dict[str, int]  # exception class -> failed calls
    retried: int  # attempts that failed and were retried on another replica (or gave up the call)
    seconds: float
    balancer: str


# One attempt of a call: (replica, user) -> the id of the replica that served the cart. It raises on
# any failure (then ``client.call`` retries on another replica).
Fetch = Callable[[Instance, str], Awaitable[str]]


def http_fetch(session: aiohttp.ClientSession) -> Fetch:
    """``Fetch`` over HTTP: ``GET /cart/{user}``; anything but a 200 with a cart raises."""

    async def fetch(instance: Instance, user: str) -> str:
        async with session.get(f"http://{instance.address}:{instance.port}/cart/{user}") as answer:
            answer.raise_for_status()
            body = await answer.json()
        return str(body["served_by"])

    return fetch


class CartCalls:
    """The calls and their tally."""

    def __init__(self, client: AsyncRegistryClient, service: str, fetch: Fetch, args: argparse.Namespace) -> None:
        self.client = client
        self.service = service
        self.fetch = fetch
        self.args = args
        self.served: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.failed_attempts = 0

    async def attempt(self, instance: Instance, user: str) -> str:
        try:
            return await self.fetch(instance, user)
        except Exception:
            self.failed_attempts += 1
            raise

    async def one(self, n: int) -> None:
        started = time.perf_counter()
        try:
            replica = await self.client.call(self.service, lambda instance: self.attempt(instance, f"user-{n % 50}"),
                                             balancer=self.args.balancer, retries=self.args.retries)
        except Exception as exc:  # the example counts every failure the caller would see
            self.failures[type(exc).__name__] += 1
            if self.args.trace:
                print(f"call {n} failed {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
            return
        self.served[replica] += 1
        if self.args.trace:
            print(f"call {n} ok {replica} {(time.perf_counter() - started) * 1e3:.1f}", flush=True)

    async def run(self) -> None:
        """``--calls`` calls, at most ``--concurrency`` in flight, one started every ``--interval``."""
        slots = asyncio.Semaphore(self.args.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def slot(n: int) -> None:
            try:
                await self.one(n)
            finally:
                slots.release()

        for n in range(self.args.calls):
            await slots.acquire()
            task = asyncio.ensure_future(slot(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if self.args.interval > 0:
                await asyncio.sleep(self.args.interval)
        await asyncio.gather(*tasks)


def registry_client(args: argparse.Namespace) -> AsyncRegistryClient:
    return AsyncRegistryClient(args.registry.split(",") if args.registry else None, config=args.config)


async def call_replicas(client: AsyncRegistryClient, service: str, fetch: Fetch, args: argparse.Namespace) -> Summary:
    """Wait for ``--replicas`` replicas of ``service``, then make the calls (shared by the gRPC example)."""
    found = client.discovery(service)
    await found.wait_ready(args.wait)
    replicas = await found.wait_for(lambda instances: len(instances) >= args.replicas, args.wait)
    print(f"discovered {len(replicas)} replicas: {' '.join(sorted(i.id for i in replicas))}", flush=True)
    calls = CartCalls(client, service, fetch, args)
    started = time.perf_counter()
    await calls.run()
    elapsed = time.perf_counter() - started
    failed = sum(calls.failures.values())
    return Summary(calls=args.calls, served=dict(sorted(calls.served.items())), failed=failed,
                   failures=dict(calls.failures), retried=calls.failed_attempts - failed, seconds=round(elapsed, 3),
                   balancer=args.balancer)


async def run(args: argparse.Namespace) -> Summary:
    async with registry_client(args) as client, \
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout)) as session:
        return await call_replicas(client, SERVICE, http_fetch(session), args)


def parse_args(argv: list[str] | None = None, description: str | None = __doc__) -> argparse.Namespace:
    """The caller's options (shared by the gRPC example)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="calls to make (default 300)")
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight at once (default 1)")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between call starts (default 0.01)")
    parser.add_argument("--balancer", default="round_robin", choices=[n for n in BALANCER_NAMES if n not in
                                                                      ("source_hash", "ring_hash", "rendezvous")])
    parser.add_argument("--retries", type=int, default=2, help="retries of a failed call on other replicas")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per call to a replica")
    parser.add_argument("--replicas", type=int, default=1, help="wait until this many replicas are passing")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for them")
    parser.add_argument("--config", default=None, help="cluster config file (default: cluster-configs/local-3.toml)")
    parser.add_argument("--registry", default=None, help="comma-separated raftreg node addresses (host:port)")
    parser.add_argument("--trace", action="store_true", help="print a line per call")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    args = parser.parse_args(argv)
    if args.config is None and args.registry is None:
        args.config = str(REPO / "cluster-configs" / "local-3.toml")
    return args


def report(summary: Summary, args: argparse.Namespace) -> int:
    """Print the summary; the exit status (1 if any call failed)."""
    if args.json:
        print("summary " + json.dumps(asdict(summary)), flush=True)
    else:
        print(f"{summary.calls} calls in {summary.seconds} s with {summary.balancer}:")
        for replica, count in summary.served.items():
            print(f"  {replica:<12} {count:>6}")
        print(f"  {'failed':<12} {summary.failed:>6}  {summary.failures or ''}")
        print(f"  ({summary.retried} failed attempts were retried on another replica)")
    return 1 if summary.failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return report(asyncio.run(run(args)), args)


if __name__ == "__main__":
    sys.exit(main())
