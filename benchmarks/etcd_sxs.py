"""raftreg next to etcd, interleaved: both 3-node clusters up at once, rounds alternating.

``../shared/peerbench/wrk_sxs.sh`` measures raftreg, then etcd, a minute apart; on these
machines the speed drifts by up to 2x within minutes, so one such pair can give 0.6x and the next
1.1x for the same build. Here both clusters stay up and every workload alternates between them
round by round (the order flips each round), so a drift hits both alike; the ratio of each
pair and the median of the ratios are printed, with each run's p99 latency (``wrk --latency``).

Workloads (``wrk``, a C client; the same bodies and connection counts as ``wrk_sxs.sh``):

* ``register``: 64 connections to the leader; raftreg ``PUT /v1/services/svc-NNN/instances/ID``
  with a ~300-byte JSON body, etcd ``POST /v3/kv/put`` of the same body under ``/reg/svc-NNN/ID``;
* ``register_follower``: the same, 64 connections to one follower (which forwards to the leader);
* ``consistent``: 32 connections to each node; raftreg ``GET /v1/services/small?consistent``,
  etcd a linearizable range over ``/reg/small/`` (5 instances each);
* ``default``: the same with raftreg's default reads and etcd's serializable range.

Run from the repository root (needs Debian's ``wrk`` and ``etcd-server``)::

    .venv/bin/python benchmarks/etcd_sxs.py                         # 5 rounds x 8 s, all workloads
    .venv/bin/python benchmarks/etcd_sxs.py --only register --rounds 7 --json

Every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.cli import add_tuning_option, exit_on_sigterm, missing_tools, parse_struct
from harness.etcd import Etcd, b64, etcd_post
from harness.proc import steal_pct, steal_ticks
from harness.report import SXS_HEADER, steal_matched, sxs_cells, sxs_heading
from harness.wrk import wrk_run

from raftreg.config import RaftTuning
from raftreg.testing import LocalCluster, http_json

PAYLOAD = '{"address":"10.0.0.1","port":8080,"meta":{"payload":"' + "x" * 220 + '"}}'
WORKLOADS = ("register", "register_follower", "consistent", "default")

RAFTREG_PUT_LUA = """
local counter = 0
request = function()
  counter = counter + 1
  local id = string.format("w%d-%d", math.random(1, 1000000000), counter)
  return wrk.format("PUT", string.format("/v1/services/svc-%03d/instances/", counter % 100) .. id,
    {["Content-Type"]="application/json"}, [[BODY]])
end
"""

ETCD_PUT_LUA = """
local counter = 0
local chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2^i - b % 2^(i-1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if (#x < 6) then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i,i) == '1' and 2^(6-i) or 0) end
    return chars:sub(c+1, c+1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
request = function()
  counter = counter + 1
  local key = string.format("/reg/svc-%03d/w%d-%d", counter % 100, math.random(1, 1000000000), counter)
  return wrk.format("POST", "/v3/kv/put", {["Content-Type"]="application/json"},
    '{"key":"' .. b64(key) .. '","value":"VALUE"}')
end
"""

RANGE_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"KEY","range_end":"END"SERIAL}'
"""


def setups(work: Path, cluster: LocalCluster, etcd: Etcd) -> dict[str, dict[str, tuple[list[str], int, str | None]]]:
    """Per workload and system: (urls, connections per url, wrk script or None)."""
    leader = cluster.leader()
    for i in range(5):
        code, body = http_json(f"{cluster.url(leader)}/v1/services/small/instances/s{i}", method="PUT",
                               body=json.loads(PAYLOAD))
        if code != 200:
            raise RuntimeError(f"register failed: {code} {body}")
    etcd_leader = etcd.leader()
    value = b64(PAYLOAD)
    for i in range(5):
        etcd_post(f"{etcd_leader}/v3/kv/put", {"key": b64(f"/reg/small/s{i}"), "value": value})
    cluster.wait_converged()
    scripts = {"rr_put": RAFTREG_PUT_LUA.replace("BODY", PAYLOAD), "etcd_put": ETCD_PUT_LUA.replace("VALUE", value)}
    for name, serial in (("etcd_lin", ""), ("etcd_ser", ',"serializable":true')):
        scripts[name] = (RANGE_LUA.replace("KEY", b64("/reg/small/")).replace("END", b64("/reg/small0"))
                         .replace("SERIAL", serial))
    for name, text in scripts.items():
        (work / f"{name}.lua").write_text(text)
    nodes = [cluster.url(n) for n in cluster.names]
    follower = next(n for n in cluster.names if n != leader)
    etcd_follower = next(u for u in etcd.client if u != etcd_leader)
    return {
        "register": {"raftreg": ([cluster.url(leader)], 64, str(work / "rr_put.lua")),
                     "etcd": ([etcd_leader], 64, str(work / "etcd_put.lua"))},
        "register_follower": {"raftreg": ([cluster.url(follower)], 64, str(work / "rr_put.lua")),
                              "etcd": ([etcd_follower], 64, str(work / "etcd_put.lua"))},
        "consistent": {"raftreg": ([f"{u}/v1/services/small?consistent" for u in nodes], 32, None),
                       "etcd": ([f"{u}/v3/kv/range" for u in etcd.client], 32, str(work / "etcd_lin.lua"))},
        "default": {"raftreg": ([f"{u}/v1/services/small" for u in nodes], 32, None),
                    "etcd": ([f"{u}/v3/kv/range" for u in etcd.client], 32, str(work / "etcd_ser.lua"))},
    }


def run(workloads: list[str], rounds: int, duration: float, tuning: RaftTuning) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="etcd-sxs-"))
    etcd = Etcd(work)
    results: dict[str, Any] = {}
    try:
        with LocalCluster(3, name="etcd-sxs", tuning=tuning) as cluster:
            plan = setups(work, cluster, etcd)
            for workload in workloads:
                rates: dict[str, list[float]] = {"raftreg": [], "etcd": []}
                p99s: dict[str, list[float]] = {"raftreg": [], "etcd": []}
                steal: dict[str, list[float]] = {"raftreg": [], "etcd": []}  # % of the machine, per run
                errors: list[str] = []
                for r in range(rounds):
                    for system in (("raftreg", "etcd") if r % 2 == 0 else ("etcd", "raftreg")):
                        urls, conns, script = plan[workload][system]
                        mark = steal_ticks()
                        got = wrk_run(urls, duration=duration, connections=conns, script=script)
                        steal[system].append(steal_pct(mark))
                        rates[system].append(got.rate)
                        p99s[system].append(got.p99_ms)
                        errors += [f"{system}: {e}" for e in got.errors]
                    ratio = rates["raftreg"][-1] / rates["etcd"][-1]
                    print(f"{workload:>17} round {r + 1}: raftreg {rates['raftreg'][-1]:8.0f}/s "
                          f"p99 {p99s['raftreg'][-1]:6.1f} ms  etcd {rates['etcd'][-1]:8.0f}/s "
                          f"p99 {p99s['etcd'][-1]:6.1f} ms  ratio {ratio:.2f}x  "
                          f"steal {steal['raftreg'][-1]:.0f}/{steal['etcd'][-1]:.0f} %", flush=True)
                ratios = [a / b for a, b in zip(rates["raftreg"], rates["etcd"], strict=True)]
                results[workload] = {"raftreg_rps": rates["raftreg"], "etcd_rps": rates["etcd"], "ratios": ratios,
                                     "raftreg_p99_ms": p99s["raftreg"], "etcd_p99_ms": p99s["etcd"],
                                     "median_ratio": statistics.median(ratios), "errors": errors,
                                     "steal_pct": steal}
    finally:
        etcd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated subset of {WORKLOADS}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    add_tuning_option(parser, "raftreg.config.RaftTuning overrides, e.g. tick_on_loop=false")
    args = parser.parse_args(argv)
    exit_on_sigterm()  # SIGTERM unwinds like Ctrl-C: both clusters are stopped
    if missing_tools(("wrk", "etcd"), "wrk etcd-server"):
        return 2
    workloads = [w for w in args.only.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {sorted(unknown)}")
    tuning, overrides = parse_struct(args.tuning, RaftTuning, "--tuning")
    results = run(workloads, args.rounds, args.duration, tuning)
    steal = [v for res in results.values() for runs in res["steal_pct"].values() for v in runs]
    print(sxs_heading("raftreg / etcd 3.4, same rounds", overrides, steal))
    print(f"{'workload':>17}  {SXS_HEADER}  ratios")
    for workload, res in results.items():
        each = " ".join(f"{r:.2f}" for r in res["ratios"])
        print(f"{workload:>17}  {sxs_cells(res)}  {each}{steal_matched(res)}"
              + (f"  ({len(res['errors'])} error lines)" if res["errors"] else ""))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
