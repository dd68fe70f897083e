"""One run of ../shared/peerbench's write client against clusters that are already running.

``peer_sxs.py`` starts this as a process of its own for every measurement, so the client is the
same code and the same single process as in ``bench.py --workload write`` (peerbench's adapters,
its ``closed_loop`` of 64 workers and its ~300-byte payloads), only pointed at clusters that stay
up between the rounds instead of clusters it starts itself::

    python benchmarks/harness/peer_client.py --peerbench ../shared/peerbench --target raftreg \\
        --urls http://127.0.0.1:8501,... --node 0 --seconds 6 --prefix r3-

Prints one JSON object: ``ops_per_s``, ``p50_ms``, ``p99_ms``, ``errors`` (peerbench's
``finish``), ``client_cpu_us``: this process's CPU time per successful write, and with ``--pids``
``server_cpu_us``: the CPU time of those processes (the cluster's nodes, with their children) per
successful write, over the same measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids`` and their waited-for children (snapshot processes), in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def adapter_for(target: str, urls: list[str], checkout: str, config: str | None, work: str) -> Any:
    """A peerbench adapter whose node ``i`` is ``urls[i]`` (peerbench must be importable); ``work``:
    the adapter's working directory (it starts nothing there)."""
    from peerbench.adapters.etcd import EtcdAdapter
    from peerbench.adapters.http_registry import HelloAdapter, RaftregAdapter

    if target == "raftreg":
        adapter: Any = RaftregAdapter(work, 0, checkout=checkout, config=config)
    elif target == "hello":
        adapter = HelloAdapter(work, 0)
    else:
        adapter = EtcdAdapter(work, 0)
    adapter.n = len(urls)
    adapter.url = lambda i: urls[i]  # the running cluster's addresses, not the adapter's own ports
    return adapter


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from peerbench.workloads import closed_loop, finish, make_op

    urls = args.urls.split(",")
    work = tempfile.mkdtemp(prefix="peer-client-")
    adapter = adapter_for(args.target, urls, args.checkout, args.config, work)
    await adapter.connect_clients()
    try:
        spec = {"kind": "write", "target": args.node, "services": 100, "payload_bytes": 300}
        if args.warmup:
            await closed_loop(make_op(adapter, dict(spec, svc_prefix=args.prefix + "warm-")), args.concurrency,
                              total=args.warmup, hard_limit=60)
        pids = [int(p) for p in args.pids.split(",") if p]
        cpu0, server0 = time.process_time(), cpu_seconds(pids)
        raw = await closed_loop(make_op(adapter, dict(spec, svc_prefix=args.prefix)), args.concurrency,
                                duration=args.seconds, hard_limit=args.seconds + 30)
        cpu, server = time.process_time() - cpu0, cpu_seconds(pids) - server0
    finally:
        await adapter.close_clients()
        shutil.rmtree(work, ignore_errors=True)
    out: dict[str, Any] = finish(raw)
    out["client_cpu_us"] = round(cpu / max(1, out["ops_ok"]) * 1e6, 1)
    if pids:
        out["server_cpu_us"] = round(server / max(1, out["ops_ok"]) * 1e6, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peerbench", required=True, help="the peerbench directory (holds peerbench/)")
    parser.add_argument("--target", choices=("raftreg", "etcd", "hello"), required=True)
    parser.add_argument("--urls", required=True, help="comma-separated base URLs, node 0 first")
    parser.add_argument("--node", type=int, required=True, help="index in --urls that every write goes to")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=int, default=2000, help="unmeasured writes first (other keys)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--prefix", default="", help="service-name prefix: new keys in every run")
    parser.add_argument("--checkout", default=".", help="raftreg: the repository (for its adapter)")
    parser.add_argument("--config", default=None, help="raftreg: the cluster's config file")
    parser.add_argument("--pids", default="", help="comma-separated PIDs of the cluster's processes")
    args = parser.parse_args()
    sys.path.insert(0, args.peerbench)
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
