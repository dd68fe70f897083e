"""The ``watch`` job of the client worker processes: many blocking queries (watchers) on one
service of one node, each re-parking at once, reporting each round's receive times to the parent
(``watch_bench`` and ``replica_bench``)."""

from __future__ import annotations

import asyncio
import collections
import time
from array import array
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

from harness.light_http import NodePools, err_name
from harness.payloads import count_answer


async def watch_job(job: dict[str, Any], conn: Connection, barrier: Barrier) -> dict[str, Any]:
    """``job["watchers"]`` blocking queries on one service of one node, each re-parking at once with
    the index it got, until each has seen ``job["rounds"]`` changes. When the last watcher of this
    process has its answer of round r, the receive times (time.monotonic, system-wide, taken when
    the watcher resumes with its answer) go to the parent at once as ``{"round": r, ...}``; the
    job's result has the error and timeout counts. ``job["client"]``: ``light`` (``LightPool``, a
    connection per parked watcher) or ``aiohttp`` (one ``ClientSession``)."""
    n, rounds = job["watchers"], job["rounds"]
    errs: collections.Counter[str] = collections.Counter()
    counts = {"requests": 0, "timeouts": 0}
    recv = [array("d") for _ in range(rounds)]
    seen: list[collections.Counter[str]] = [collections.Counter() for _ in range(rounds)]
    nodes = NodePools(job["client"], [job["url"]], job["request_timeout"], n + 8, max_connecting=n, idle_keep=n + 8)
    pool = nodes.pools[0]
    target = f"/v1/services/{job['service']}?wait={job['wait']}&index="

    async def watcher() -> None:
        index = job["index"]
        for r in range(rounds):
            while True:
                counts["requests"] += 1
                status, answer = await pool.request("GET", target + str(index))
                t = time.monotonic()
                if status != 200 or answer is None:
                    errs[err_name(status)] += 1
                    await asyncio.sleep(0.2)
                    continue
                new = int(answer.header("X-Raftreg-Index") or "-1")
                if new == index:  # the wait passed without a change: park again
                    counts["timeouts"] += 1
                    continue
                if new < index:
                    errs["index went backwards"] += 1
                recv[r].append(t)
                seen[r][f"{new}/{count_answer(answer.body)}"] += 1
                index = new
                if len(recv[r]) == n:
                    conn.send({"round": r, "recv": recv[r].tobytes(), "seen": dict(seen[r])})
                break

    try:
        await asyncio.wait_for(asyncio.gather(*(watcher() for _ in range(n))), job["hard_limit"])
    finally:
        await nodes.close()
    return {"done": True, "errors": dict(errs), **counts}
