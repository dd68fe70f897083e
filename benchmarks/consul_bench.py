"""Lookup throughput through the Consul-compatible API next to the native API, on the same 3-node
cluster with the same client (``wrk``, a C load generator, so the client is not the limit).

A 5-instance service is registered; then, alternately, every node is loaded at once with
``GET /v1/services/NAME`` (native) and ``GET /v1/health/service/NAME`` (Consul), one ``wrk`` per
node. The runs alternate so that a busy machine's drift hits both APIs alike; the medians of
each are printed with the ratio (the target: the translation costs under 25 %).

Run from the repository root::

    .venv/bin/python benchmarks/consul_bench.py            # 5 rounds of 5 s per API
    .venv/bin/python benchmarks/consul_bench.py --rounds 3 --duration 3 --json

Needs Debian's ``wrk``. Every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys

from harness.wrk import wrk_all

from raftreg.testing import LocalCluster, http_json

SERVICE = "bench"
INSTANCES = 5


def run(rounds: int, duration: float, connections: int) -> dict[str, object]:
    with LocalCluster(3, consul=True, name="consul-bench") as cluster:
        for i in range(INSTANCES):
            code, body = http_json(f"{cluster.url('n1')}/v1/services/{SERVICE}/instances/{SERVICE}-{i}",
                                   method="PUT", body={"address": f"10.0.0.{i + 1}", "port": 8080,
                                                       "tags": ["v1"], "meta": {"zone": "a"}})
            if code != 200:
                raise RuntimeError(f"register failed: {code} {body}")
        cluster.wait_converged()
        native_urls = [f"{cluster.url(n)}/v1/services/{SERVICE}" for n in cluster.names]
        consul_urls = [f"{cluster.consul_url(n)}/v1/health/service/{SERVICE}" for n in cluster.names]
        for url in native_urls[:1] + consul_urls[:1]:  # warm up (and check that both answer)
            wrk_all([url], duration=1, connections=4)
        native: list[float] = []
        consul: list[float] = []
        errors: list[str] = []
        for _ in range(rounds):
            for urls, out in ((native_urls, native), (consul_urls, consul)):
                rate, errs = wrk_all(urls, duration=duration, connections=connections)
                out.append(rate)
                errors += errs
    med_native, med_consul = statistics.median(native), statistics.median(consul)
    return {"native_rps": native, "consul_rps": consul, "native_median": med_native, "consul_median": med_consul,
            "consul_over_native": med_consul / med_native, "translation_cost_pct": 100 * (1 - med_consul / med_native),
            "errors": errors, "rounds": rounds, "duration_s": duration, "connections_per_node": connections}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections per node")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("consul_bench needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    result = run(args.rounds, args.duration, args.connections)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"lookups of a {INSTANCES}-instance service, 3 nodes, {args.connections} connections per node, "
          f"{args.rounds} alternating rounds of {args.duration:g}s (medians; the machine may be busy)")
    print(f"  native  GET /v1/services/{SERVICE}          {result['native_median']:10.0f} req/s  "
          f"{[round(x) for x in result['native_rps']]}")  # type: ignore[attr-defined]
    print(f"  consul  GET /v1/health/service/{SERVICE}    {result['consul_median']:10.0f} req/s  "
          f"{[round(x) for x in result['consul_rps']]}")  # type: ignore[attr-defined]
    print(f"  consul / native = {result['consul_over_native']:.2f}  "
          f"(translation cost {result['translation_cost_pct']:.1f} %, target < 25 %)")
    if result["errors"]:
        print(f"  errors: {result['errors']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
