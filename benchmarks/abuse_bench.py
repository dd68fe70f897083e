"""Good traffic's latency with and without abusive clients (issue 13 item 10), on a local 3-node
cluster with the default ``[limits]``.

Run from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/abuse_bench.py            # or: make bench-abuse
    .venv/bin/python benchmarks/abuse_bench.py --seconds 10 --slowloris 200 --malformed 10000

Good traffic: ``--conc`` closed-loop clients (keep-alive) on one node, 90 % ``GET
/v1/services/good`` and 10 % registrations, for ``--seconds``. It runs twice: alone (baseline),
then while a second process keeps ``--slowloris`` connections trickling a request head one byte
every ``--trickle`` seconds (reopening each one the server closes) and sends ``--malformed``
malformed requests spread over the same window (broken request lines, bad JSON, bad names,
oversized headers, a lying Content-Length), all to the same node. Prints the p50/p99 of both runs
and the ratio of the p99s (target: under 2). Every process it starts is stopped at the end.

Measured on the shared 2-core machine (load average ~5 from other work), good traffic on a
follower: 200 slowloris alone, p99 21.2 -> 23.7 ms (x1.12); 200 slowloris + 10,000 malformed
over the default 30 s (~300 malformed connections/s), p99 27.2 -> 39.8 ms (x1.46); the same
10,000 squeezed into 10 s (~770/s), x4.3: each malformed request is a new connection that the
node must accept and parse, and on two cores the abusing process competes for the same CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import time

import aiohttp
from harness.stats import pct

from raftreg.testing import LocalCluster

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /v1/services HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    b"PUT /v1/services/good/instances/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 9\r\n\r\n{\"port\": ",
    b"PUT /v1/services/BAD/instances/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    b"PUT /v1/services/good/instances/x HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n"
    b"{\"address\": 1, \"address\": 2}  ",
    b"GET /v1/services/..%2f..%2fadmin HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /v1/services/good/instances/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{",
]


async def _slowloris_conn(host: str, port: int, trickle: float, stop: float) -> None:
    head = b"GET /v1/services HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a\r\n" * 1000
    while time.monotonic() < stop:
        try:
            _reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(trickle)
            continue
        try:
            for byte in head:
                if time.monotonic() >= stop or writer.is_closing():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(trickle)
        except OSError:
            pass  # closed by the server: open the next one
        finally:
            writer.close()


async def _malformed(host: str, port: int, count: int, stop: float) -> int:
    sent, start = 0, time.monotonic()
    gap = (stop - start) / max(1, count)
    while sent < count and time.monotonic() < stop + 5:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(MALFORMED[sent % len(MALFORMED)])
            await writer.drain()
            await asyncio.wait_for(reader.read(4096), 2.0)
            writer.close()
        except (OSError, TimeoutError):
            pass
        sent += 1
        await asyncio.sleep(max(0.0, start + sent * gap - time.monotonic()))
    return sent


def _abuse(host: str, port: int, slowloris: int, malformed: int, trickle: float, seconds: float) -> None:
    async def main() -> None:
        stop = time.monotonic() + seconds
        tasks = [asyncio.create_task(_slowloris_conn(host, port, trickle, stop)) for _ in range(slowloris)]
        senders = 8
        await asyncio.gather(*[_malformed(host, port, malformed // senders, stop) for _ in range(senders)])
        await asyncio.gather(*tasks)

    asyncio.run(main())


async def good_traffic(url: str, conc: int, seconds: float) -> list[float]:
    """Latencies (s) of ``conc`` closed-loop clients for ``seconds``; any non-2xx answer counts as an error."""
    lat: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def client(k: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        rng = random.Random(k)
        n = 0
        while time.monotonic() < stop:
            n += 1
            t0 = time.monotonic()
            if rng.random() < 0.1:
                resp = await session.put(f"{url}/v1/services/good/instances/c{k}-{n % 50}",
                                         json={"address": "10.0.0.1", "port": 80})
            else:
                resp = await session.get(f"{url}/v1/services/good")
            await resp.read()
            lat.append(time.monotonic() - t0)
            errors += resp.status >= 300

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*[client(k, session) for k in range(conc)])
    if errors:
        print(f"  ({errors} good requests were not answered 2xx)")
    return sorted(lat)


def report(name: str, lat: list[float], seconds: float) -> float:
    p50, p99 = pct(lat, 50) or 0.0, pct(lat, 99) or 0.0
    print(f"{name:<10} requests {len(lat):>7}  ({len(lat) / seconds:,.0f}/s)  p50 {p50 * 1000:7.2f} ms  "
          f"p99 {p99 * 1000:7.2f} ms")
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--conc", type=int, default=8)
    parser.add_argument("--slowloris", type=int, default=200)
    parser.add_argument("--malformed", type=int, default=10_000)
    parser.add_argument("--trickle", type=float, default=1.0, help="seconds between two slowloris bytes")
    args = parser.parse_args()
    with LocalCluster(3, name="abuse-bench") as cluster:
        leader = cluster.leader()
        node = next(n for n in cluster.names if n != leader)  # a follower: it forwards writes
        url = cluster.url(node)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        asyncio.run(good_traffic(url, args.conc, 2.0))  # warm-up
        base = report("baseline", asyncio.run(good_traffic(url, args.conc, args.seconds)), args.seconds)
        ramp = args.trickle * 3
        abuser = multiprocessing.Process(target=_abuse, args=(host, int(port), args.slowloris, args.malformed,
                                                              args.trickle, args.seconds + ramp))
        abuser.start()
        try:
            time.sleep(ramp)  # the slowloris connections open and start trickling
            abused = report("abused", asyncio.run(good_traffic(url, args.conc, args.seconds)), args.seconds)
        finally:
            abuser.join(timeout=args.seconds + 30)
            if abuser.is_alive():
                abuser.terminate()
                abuser.join()
        print(f"{args.slowloris} slowloris connections + {args.malformed:,} malformed requests on {node}: "
              f"p99 ratio {abused / base if base else float('nan'):.2f} (target < 2)")


if __name__ == "__main__":
    main()
