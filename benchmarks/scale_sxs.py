"""Registrations on a large registry next to a small one, interleaved (issue 10: the rate with
100,000 instances already registered within 10 % of the rate on an empty registry).

Two 3-node clusters stay up at once: ``large`` is first filled to ``--instances`` (100,000)
through its leader, ``small`` starts empty. Then every round ``wrk`` (64 connections to the
leader, the ~300-byte body of ``etcd_sxs.py``) re-registers one fixed set of ids on each cluster
in turn, the order flipping each round: the first round on ``small`` creates the set, later ones
replace it, so ``small`` holds only that set (about 15,000 instances) and ``large`` 100,000 more,
throughout. A drift of the machine hits both alike; each pair's ratio and the median are printed,
with the CPU the nodes' forked snapshot children used meanwhile (log compaction encodes the whole
state: ``raftreg.raft.compaction``), the part of the cost that grows with the registry.

Run from the repository root (needs Debian's ``wrk``)::

    .venv/bin/python benchmarks/scale_sxs.py                 # 100,000 instances, 7 rounds x 5 s
    .venv/bin/python benchmarks/scale_sxs.py --instances 20000 --rounds 3 --tuning log_compaction_ratio=0.3

Every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.bench import catalog_counts, node_pids
from harness.cli import add_tuning_option, exit_on_sigterm, missing_tools, parse_struct
from harness.proc import CLK_TCK, children_cpu_ticks
from harness.wrk import wrk_all

from raftreg.config import RaftTuning
from raftreg.testing import LocalCluster

BODY = '{"address":"10.0.0.1","port":8080,"meta":{"payload":"' + "x" * 220 + '"}}'
# ids "<prefix>-<n>": wrk's counter restarts with every run, so one prefix names one fixed set.
PUT_LUA = """
local counter = 0
local prefix = "p"
function init(args)
  prefix = args[1] or "p"
end
request = function()
  counter = counter + 1
  return wrk.format("PUT", string.format("/v1/services/sc-%03d/instances/%s-%d", counter % 100, prefix, counter),
    {["Content-Type"]="application/json"}, [[BODY]])
end
"""
FILL_RUN_S = 6.0


def children_cpu_s(pids: dict[str, int | None]) -> float:
    """CPU seconds of the reaped children (the snapshot forks) of these processes, summed."""
    return sum(children_cpu_ticks(pid) or 0 for pid in pids.values()) / CLK_TCK


def instances(cluster: LocalCluster) -> int:
    counts = catalog_counts(cluster.url(cluster.leader()), "sc-")
    return counts[0] if counts else -1


def run(target: int, rounds: int, duration: float, tuning: RaftTuning) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="scale-sxs-"))
    script = work / "put.lua"
    script.write_text(PUT_LUA.replace("BODY", BODY))
    try:
        with LocalCluster(3, name="scale-large", tuning=tuning) as large, \
                LocalCluster(3, name="scale-small", tuning=tuning) as small:
            clusters = {"large": large, "small": small}
            fill, started = 0, time.monotonic()
            while instances(large) < target:
                fill += 1
                wrk_all([large.url(large.leader())], duration=FILL_RUN_S, connections=64, script=str(script),
                        script_args=(f"fill{fill}",))
            took = time.monotonic() - started
            print(f"large holds {instances(large):,} instances (filled in {took:.0f} s)", flush=True)
            large.wait_converged()
            rates: dict[str, list[float]] = {"large": [], "small": []}
            forks = {name: children_cpu_s(node_pids(c)) for name, c in clusters.items()}
            for r in range(rounds):
                for name in (("large", "small") if r % 2 == 0 else ("small", "large")):
                    cluster = clusters[name]
                    rate, errors = wrk_all([cluster.url(cluster.leader())], duration=duration, connections=64,
                                           script=str(script), script_args=("set",))
                    if errors:
                        print(f"  {name}: {errors}", flush=True)
                    rates[name].append(rate)
                ratio = rates["large"][-1] / rates["small"][-1]
                print(f"round {r + 1}: large {rates['large'][-1]:7.0f}/s  small {rates['small'][-1]:7.0f}/s  "
                      f"ratio {ratio:.2f}", flush=True)
            forks = {name: children_cpu_s(node_pids(c)) - forks[name] for name, c in clusters.items()}
            ratios = [a / b for a, b in zip(rates["large"], rates["small"], strict=True)]
            return {"instances": {name: instances(c) for name, c in clusters.items()}, "rates": rates,
                    "ratios": ratios, "median_ratio": statistics.median(ratios), "snapshot_cpu_s": forks}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000, help="what the large registry holds first")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    add_tuning_option(parser, "raftreg.config.RaftTuning overrides for both clusters")
    args = parser.parse_args(argv)
    exit_on_sigterm()  # SIGTERM unwinds like Ctrl-C: both clusters are stopped
    if missing_tools(("wrk",), "wrk"):
        return 2
    tuning, overrides = parse_struct(args.tuning, RaftTuning, "--tuning")
    res = run(args.instances, args.rounds, args.duration, tuning)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {load}"
          + (f"; tuning {overrides}" if overrides else "") + ":")
    print(f"  instances at the end: large {res['instances']['large']:,}, small {res['instances']['small']:,}")
    print(f"  registrations/s, medians: large {statistics.median(res['rates']['large']):.0f}, "
          f"small {statistics.median(res['rates']['small']):.0f}; large / small median "
          f"{res['median_ratio']:.2f} (pairs {' '.join(f'{r:.2f}' for r in res['ratios'])}; goal >= 0.90)")
    print(f"  snapshot children's CPU during the rounds (s, three nodes): large {res['snapshot_cpu_s']['large']:.1f}, "
          f"small {res['snapshot_cpu_s']['small']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
