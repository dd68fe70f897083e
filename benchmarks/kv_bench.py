"""Key/value benchmark: put/get throughput and latency, CAS contention, prefix-watch wake-up and
memory per node, on fresh local 3-node clusters (real ``raftreg serve`` processes, ``LocalCluster``).

    .venv/bin/python benchmarks/kv_bench.py --quick        # tiny sizes (2,000 keys): a smoke test
    .venv/bin/python benchmarks/kv_bench.py                # full run (= make bench-kv)
    .venv/bin/python benchmarks/kv_bench.py --only memory --keys 20000
    .venv/bin/python benchmarks/kv_bench.py --only memory --keys 10000 --versions 11   # history full

Phases (the load runs in this process on one event loop, over the harness's ``LightPool``
keep-alive connections spread over the three nodes; on a small machine it shares the CPUs with
the nodes, as every benchmark here does, so the load average is printed with each phase):
- ``putget``: ``--conc`` closed-loop writers ``PUT /v1/kv/bench/p/<n>`` with 1 KiB values for
  ``--duration`` s, then as many readers ``GET`` those keys (default reads): ops/s, p50/p99.
- ``cas``: ``--cas-clients`` clients on one key, each ``GET`` then ``PUT ?cas=<modify_index>`` in a
  loop for ``--duration`` s: successful cas/s, 409 conflicts/s, p50/p99 of a successful cas.
- ``watch``: ``--watchers`` blocking queries on the prefix ``bench/w/`` (``?recurse&index=``),
  a third per node, each on its own connection; each of ``--rounds`` rounds waits until every
  watch is parked again (``watches.waiting`` of ``/v1/cluster``), writes one key under the prefix
  and times write sent -> each watcher's answer: p50/p99/max over watchers x rounds.
- ``memory``: a fresh cluster loaded with ``--keys`` keys of 1 KiB (transactions of 64 sets;
  history at the server's default, 10 earlier versions; each key written ``--versions`` times, a
  different value each time, so ``--versions 11`` fills the history): RSS per node empty, right after the
  load (the Raft log still holds the entries), and after every node wrote a snapshot and was
  restarted from it one at a time (the state alone, as a node holds it after a restart).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import itertools
import json
import sys
import time
from typing import Any, ClassVar

from harness import cli
from harness.bench import Bench, node_pids
from harness.light_http import LightPool, err_name
from harness.proc import ensure_fd_limit, loadavg, mib, proc_status_kib
from harness.report import fmt_ms, log, print_table
from harness.stats import lat_stats

from raftreg.node.memory import TRIM_PERIOD_S
from raftreg.testing import LocalCluster, http_json, wait_for

VALUE = b"v" * 1024
NAME = "kv_bench"


def urls_of(cluster: LocalCluster) -> list[str]:
    return [cluster.url(name) for name in cluster.names]


async def closed_loop(pools: list[LightPool], conc: int, duration: float,
                      request: Any) -> tuple[list[float], collections.Counter[str], float]:
    """``conc`` coroutines (coroutine w on pools[w % n]) each run ``await request(pool, k)`` (k
    counts up over all) until ``duration`` s passed: latencies of the ones answered 200, other
    statuses by name, and the elapsed time."""
    lat: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    counter = itertools.count()
    start = time.perf_counter()
    end = start + duration

    async def one(w: int) -> None:
        pool = pools[w % len(pools)]
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            status = await request(pool, next(counter))
            if status == 200:
                lat.append(time.perf_counter() - t0)
            else:
                errors[err_name(status)] += 1

    await asyncio.gather(*(one(w) for w in range(conc)))
    return lat, errors, time.perf_counter() - start


def lat_row(name: str, lat: list[float], errors: collections.Counter[str], elapsed: float) -> list[str]:
    s = lat_stats(lat)
    errs = ", ".join(f"{k} x{v}" for k, v in errors.most_common()) or "-"
    return [name, f"{len(lat):,}", f"{len(lat) / elapsed:,.0f}", fmt_ms(s["p50_ms"]), fmt_ms(s["p99_ms"]),
            fmt_ms(s["max_ms"]), errs, f"{loadavg()[0]:.2f}"]


def parked(cluster: LocalCluster) -> int:
    """Blocking queries parked now over the cluster (``watches.waiting`` of ``/v1/cluster``)."""
    total = 0
    for url in urls_of(cluster):
        code, body = http_json(url + "/v1/cluster", timeout=2.0)
        if code == 200 and isinstance(body, dict):
            total += int(body.get("watches", {}).get("waiting", 0))
    return total


def snapshot_all(cluster: LocalCluster, timeout: float = 60.0) -> None:
    """Make every node write a snapshot (``/v1/debug/snapshot``) and wait until each one's
    ``raft.dump`` was replaced (pysyncobj writes a new file and renames it)."""
    def stamp(name: str) -> tuple[int, int] | None:
        try:
            st = (cluster.config.node_data_dir(name) / "raft.dump").stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def replaced(name: str) -> bool:
        return stamp(name) not in (None, before[name])

    before = {name: stamp(name) for name in cluster.names}
    for name in cluster.names:
        code, body = cluster.debug(name, "snapshot", {})
        if code != 200:
            raise RuntimeError(f"snapshot on {name}: {code} {body}")
    for name in cluster.names:
        wait_for(functools.partial(replaced, name), timeout, f"a new snapshot of {name}")


class KVBench(Bench):
    PHASES: ClassVar[tuple[str, ...]] = ("putget", "cas", "watch", "memory")
    CLUSTER_PHASES: ClassVar[frozenset[str]] = frozenset({"putget", "cas", "watch"})
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = {
        "duration": (10.0, 2.0), "conc": (32, 8), "cas_clients": (10, 10), "watchers": (1000, 100),
        "rounds": (10, 3), "keys": (100_000, 2_000), "versions": (1, 1),
    }

    # ---- put / get -------------------------------------------------------------------------------
    def phase_putget(self, cluster: LocalCluster) -> dict[str, Any]:
        duration, conc = self.size("duration"), self.size("conc")
        written: list[int] = []

        async def run() -> list[list[str]]:
            pools = [LightPool(u, 10.0, conc) for u in urls_of(cluster)]

            async def put(pool: LightPool, k: int) -> int:
                status, _ = await pool.request("PUT", f"/v1/kv/bench/p/{k}", VALUE)
                if status == 200:
                    written.append(k)
                return status

            async def get(pool: LightPool, k: int) -> int:
                status, answer = await pool.request("GET", f"/v1/kv/bench/p/{written[k % len(written)]}")
                return status if answer is None or len(answer.body) > 1024 else -99

            try:
                rows = [lat_row("put 1 KiB", *await closed_loop(pools, conc, duration, put))]
                rows.append(lat_row("get 1 KiB", *await closed_loop(pools, conc, duration, get)))
                return rows
            finally:
                for pool in pools:
                    await pool.close()

        rows = asyncio.run(run())
        print_table(f"KV put/get ({conc} concurrent over 3 nodes, {duration:g}s each)",
                    ["run", "ok ops", "ops/s", "p50 ms", "p99 ms", "max ms", "errors", "load"], rows)
        for row in rows:
            self.note("putget", f"{row[0]}: ops/s, p50 / p99 ms", f"{row[2]}, {row[3]} / {row[4]}")
        return {"rows": rows}

    # ---- CAS contention ----------------------------------------------------------------------------
    def phase_cas(self, cluster: LocalCluster) -> dict[str, Any]:
        duration, clients = self.size("duration"), self.size("cas_clients")
        counts: collections.Counter[str] = collections.Counter()
        wins: list[float] = []

        async def run() -> float:
            pools = [LightPool(u, 10.0, clients) for u in urls_of(cluster)]
            await pools[0].request("PUT", "/v1/kv/bench/cas", b"0")
            end = time.perf_counter() + duration

            async def one(w: int) -> None:
                pool = pools[w % len(pools)]
                while time.perf_counter() < end:
                    status, answer = await pool.request("GET", "/v1/kv/bench/cas")
                    if status != 200 or answer is None:
                        counts[f"read {err_name(status)}"] += 1
                        continue
                    index = json.loads(answer.body)["modify_index"]
                    t0 = time.perf_counter()
                    status, _ = await pool.request("PUT", f"/v1/kv/bench/cas?cas={index}", str(w).encode())
                    if status == 200:
                        wins.append(time.perf_counter() - t0)
                    counts["ok" if status == 200 else "conflict" if status == 409 else err_name(status)] += 1

            t0 = time.perf_counter()
            try:
                await asyncio.gather(*(one(w) for w in range(clients)))
            finally:
                for pool in pools:
                    await pool.close()
            return time.perf_counter() - t0

        elapsed = asyncio.run(run())
        s = lat_stats(wins)
        rows = [["successful cas/s", f"{counts['ok'] / elapsed:,.0f}"],
                 ["409 conflicts/s", f"{counts['conflict'] / elapsed:,.0f}"],
                 ["successful cas p50 / p99 ms", f"{fmt_ms(s['p50_ms'])} / {fmt_ms(s['p99_ms'])}"],
                 ["other answers", ", ".join(f"{k} x{v}" for k, v in counts.items() if k not in ("ok", "conflict"))
                  or "-"]]
        print_table(f"CAS contention ({clients} clients on one key, {duration:g}s)", ["measurement", "value"], rows)
        self.note("cas", f"{clients} clients, 1 key: cas/s ok, conflicts/s", f"{rows[0][1]}, {rows[1][1]}")
        return {"counts": dict(counts), "elapsed_s": elapsed, "win_latency": s}

    # ---- prefix watch wake-up ------------------------------------------------------------------------
    def phase_watch(self, cluster: LocalCluster) -> dict[str, Any]:
        watchers, rounds = self.size("watchers"), self.size("rounds")
        ensure_fd_limit(watchers + 256)  # this process holds one socket per watcher
        woke: list[float] = []

        async def run() -> None:
            urls = urls_of(cluster)
            pools = [LightPool(u, 120.0, watchers // len(urls) + 1, max_connecting=64) for u in urls]
            writer = LightPool(urls[0], 10.0, 1)
            status, answer = await writer.request("PUT", "/v1/kv/bench/w/seed", VALUE)
            assert status == 200 and answer is not None, status
            index = json.loads(answer.body)["index"]
            sent_at = 0.0
            answered: asyncio.Queue[float] = asyncio.Queue()

            async def watch(w: int, at: int) -> None:
                pool = pools[w % len(pools)]
                while True:
                    status, ans = await pool.request("GET", f"/v1/kv/bench/w/?recurse&index={at}&wait=60s")
                    if status == 200 and ans is not None:
                        new = int(ans.header("X-Raftreg-Index") or at)
                        if new > at:
                            answered.put_nowait(time.perf_counter() - sent_at)
                        at = new

            tasks = [asyncio.ensure_future(watch(w, index)) for w in range(watchers)]
            try:
                for r in range(rounds):
                    deadline = time.monotonic() + 60
                    while await asyncio.to_thread(parked, cluster) < watchers:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"round {r}: fewer than {watchers} watches parked after 60s")
                        await asyncio.sleep(0.05)
                    sent_at = time.perf_counter()
                    status, _ = await writer.request("PUT", f"/v1/kv/bench/w/k{r}", VALUE)
                    assert status == 200, status
                    for _ in range(watchers):
                        woke.append(await asyncio.wait_for(answered.get(), 60))
                    log(f"round {r}: {watchers} watchers woke")
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for pool in (*pools, writer):
                    await pool.close()

        asyncio.run(run())
        s = lat_stats(woke)
        rows = [["write -> watcher wakes, p50 ms", fmt_ms(s["p50_ms"])],
                ["write -> watcher wakes, p99 ms", fmt_ms(s["p99_ms"])],
                ["write -> watcher wakes, max ms", fmt_ms(s["max_ms"])]]
        print_table(f"Prefix watch wake-up ({watchers} watchers over 3 nodes, {rounds} writes)",
                    ["measurement", "value"], rows)
        self.note("watch", f"{watchers} prefix watchers: wake p50 / p99 ms", f"{rows[0][1]} / {rows[1][1]}")
        return {"wake": s, "samples": len(woke)}

    # ---- memory ---------------------------------------------------------------------------------------
    def phase_memory(self) -> dict[str, Any]:
        keys, versions = self.size("keys"), self.size("versions")
        with self.fresh_cluster() as cluster:
            before = {n: mib(proc_status_kib(pid, "VmRSS")) for n, pid in node_pids(cluster).items()}

            async def load() -> float:
                pools = [LightPool(u, 30.0, 4) for u in urls_of(cluster)]
                batches = [(v, range(s, min(keys, s + 64))) for v in range(versions) for s in range(0, keys, 64)]
                values = [base64.b64encode(VALUE[:-8] + f"{v:08d}".encode()).decode() for v in range(versions)]
                queue = collections.deque(batches)
                t0 = time.perf_counter()

                async def one(w: int) -> None:
                    pool = pools[w % len(pools)]
                    while queue:
                        version, batch = queue.popleft()
                        body = json.dumps({"ops": [{"op": "set", "key": f"bench/m/{k:07d}", "value": values[version]}
                                                   for k in batch]}).encode()
                        status, _ = await pool.request("PUT", "/v1/txn", body)
                        if status != 200:
                            raise RuntimeError(f"txn answered {status}")

                try:
                    await asyncio.gather(*(one(w) for w in range(6)))
                finally:
                    for pool in pools:
                        await pool.close()
                return time.perf_counter() - t0

            elapsed = asyncio.run(load())
            cluster.wait_converged(timeout=120)
            after = {n: mib(proc_status_kib(pid, "VmRSS")) for n, pid in node_pids(cluster).items()}
            snapshot_all(cluster)  # the log's entries are dropped
            time.sleep(TRIM_PERIOD_S + 5)  # a node gives freed heap pages back every TRIM_PERIOD_S
            settled = {n: mib(proc_status_kib(pid, "VmRSS")) for n, pid in node_pids(cluster).items()}
            settled_anon = {n: mib(proc_status_kib(pid, "RssAnon")) for n, pid in node_pids(cluster).items()}
            restarted: dict[str, float | None] = {}
            for name in cluster.names:  # a process restored from its snapshot holds the state only
                cluster.restart(name, hard=False, wait=120)
                restarted[name] = mib(proc_status_kib(node_pids(cluster)[name], "VmRSS"))
        rows = [[n, f"{before[n]:.0f}", f"{after[n]:.0f}", f"{settled[n]:.0f} (anon {settled_anon[n]:.0f})",
                 f"{restarted[n]:.0f}"]
                for n in sorted(after)]
        print_table(f"Memory with {keys:,} keys x 1 KiB, each written {versions}x "
                    f"(loaded in {elapsed:.1f}s by transactions of 64)",
                    ["node", "RSS empty MiB", "RSS after the load MiB", "RSS after a snapshot, settled MiB",
                     "RSS restarted from a snapshot MiB"], rows)
        top = max((a or 0) for a in after.values())
        calm = max((a or 0) for a in settled.values())
        low = max((a or 0) for a in restarted.values())
        self.note("memory", f"RSS per node with {keys:,} keys x 1 KiB x {versions} versions: after the load / "
                  "settled / restarted (max)",
                  f"{top:.0f} / {calm:.0f} / {low:.0f} MiB")
        return {"before_mib": before, "after_mib": after, "settled_mib": settled, "settled_anon_mib": settled_anon,
                "restarted_mib": restarted,
                "load_s": elapsed, "keys": keys, "versions": versions}


def main(argv: list[str] | None = None) -> int:
    p = cli.common_parser(__doc__, NAME, KVBench.PHASES, procs=1, quick="tiny sizes, about a minute",
                          tuning_example="commit_timeout=5")
    cli.add_size_options(p, KVBench.sizes)
    args = p.parse_args(argv)
    phases, tuning, overrides = cli.check_common_args(args, KVBench.PHASES)
    bench = KVBench(args, tuning, overrides)
    return cli.run_and_report(bench, phases, argv, NAME, "KV benchmark")


if __name__ == "__main__":
    sys.exit(main())
