"""raftreg next to etcd with peerbench's Python client, interleaved round by round.

``bench.py --target raftreg`` and ``--target etcd`` of ../shared/peerbench run a minute or more
apart, and these machines drift by up to 2x within minutes: sets of four alternations gave
1.49x to 1.64x for the same build. Here every round starts a fresh 3-node raftreg cluster and a
fresh 3-node etcd 3.4 side by side, then measures peerbench's write client (its adapters, its
closed loop of 64 workers, its ~300-byte payloads; ``harness/peer_client.py``, one process per
run, 2,000 unmeasured writes first) against each, via the leader and via a follower, the order
flipping every round, and stops both. The ratio of each pair and the median of the ratios are
printed, with each run's p99 and the CPU per write of the servers and of the client (on a
saturated box the rate ratio follows the ratio of their sums).

Each round also measures the client's own ceiling: the same client against peerbench's ``hello``
server (one aiohttp process, registrations kept in a dict, nothing replicated;
``harness/hello.py``), between the two modes: about the fastest this client drives any server on
this machine at that moment (hello still spends 80-115 µs of CPU per write; a server cheaper than
that would leave the client a little more). *ceiling/etcd* (hello's rate over etcd's, per mode)
is then about the highest ratio against etcd this client can show, and *raftreg/ceiling* how much
of that room raftreg uses.

Run from the repository root (needs Debian's ``etcd-server`` and the peerbench directory)::

    .venv/bin/python benchmarks/peer_sxs.py                    # 8 rounds x 2 modes x 6 s
    .venv/bin/python benchmarks/peer_sxs.py --rounds 12 --json --peerbench /path/to/peerbench

Every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.cli import add_tuning_option, exit_on_sigterm, missing_tools, parse_struct
from harness.etcd import Etcd
from harness.hello import Hello
from harness.proc import steal_pct, steal_ticks
from harness.report import SXS_HEADER, steal_matched, sxs_cells, sxs_heading

from raftreg.config import RaftTuning
from raftreg.testing import LocalCluster

REPO = Path(__file__).resolve().parents[1]
CLIENT = Path(__file__).resolve().parent / "harness" / "peer_client.py"
MODES = ("leader", "follower")
SYSTEMS = ("raftreg", "etcd")


def client_run(peerbench: Path, system: str, urls: list[str], node: int, seconds: float, prefix: str,
               config: Path, pids: list[int]) -> dict[str, Any]:
    """One measurement (``harness/peer_client.py``) as a process of its own."""
    argv = [sys.executable, str(CLIENT), "--peerbench", str(peerbench), "--target", system, "--urls", ",".join(urls),
            "--node", str(node), "--seconds", str(seconds), "--prefix", prefix, "--checkout", str(REPO),
            "--config", str(config), "--pids", ",".join(map(str, pids))]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"peer client failed ({system}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ceiling_run(peerbench: Path, hello: Hello, r: int, seconds: float, config: Path) -> dict[str, Any]:
    """The client against peerbench's ``hello`` server (``harness/hello.py``): its ceiling now."""
    mark = steal_ticks()
    run = client_run(peerbench, "hello", [hello.url], 0, seconds, f"r{r}h-", config, [hello.proc.pid])
    run["steal_pct"] = steal_pct(mark)
    print(f"round {r + 1}  ceiling: hello   {run['ops_per_s']:6.0f}/s p99 {run['p99_ms']:5.1f} ms "
          f"CPU/write {run['server_cpu_us']:3.0f}+{run['client_cpu_us']:3.0f} µs  (peerbench's client against "
          f"an unreplicated in-memory aiohttp server)  steal {run['steal_pct']:.0f} %", flush=True)
    return run


def one_round(r: int, peerbench: Path, seconds: float, tuning: RaftTuning) -> dict[str, dict[str, dict[str, Any]]]:
    """Fresh clusters of both systems; every mode measured on each (order flipping with ``r``)."""
    work = Path(tempfile.mkdtemp(prefix="peer-sxs-"))
    etcd = Etcd(work)
    out: dict[str, dict[str, dict[str, Any]]] = {mode: {} for mode in MODES}
    hello: Hello | None = None
    try:
        hello = Hello(peerbench)
        with LocalCluster(3, name="peer-sxs", tuning=tuning) as cluster:
            leader = cluster.wait_ready()
            raftreg_urls = [cluster.url(name) for name in cluster.names]
            etcd_leader = etcd.leader()
            nodes = {"raftreg": (raftreg_urls, raftreg_urls.index(cluster.url(leader))),
                     "etcd": (etcd.client, etcd.client.index(etcd_leader))}
            pids = {"raftreg": [pid for name in cluster.names if (pid := cluster.procs[name].pid) is not None],
                    "etcd": [proc.pid for proc in etcd.procs]}
            for mode in MODES:
                if mode == MODES[1]:
                    out["ceiling"] = {"hello": ceiling_run(peerbench, hello, r, seconds, cluster.config_path)}
                for system in (SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]):
                    urls, lead = nodes[system]
                    node = lead if mode == "leader" else (lead + 1) % len(urls)
                    mark = steal_ticks()
                    out[mode][system] = client_run(peerbench, system, urls, node, seconds, f"r{r}{mode[0]}-",
                                                   cluster.config_path, pids[system])
                    out[mode][system]["steal_pct"] = steal_pct(mark)
                rr, et = out[mode]["raftreg"], out[mode]["etcd"]
                print(f"round {r + 1} {mode:>8}: raftreg {rr['ops_per_s']:6.0f}/s p99 {rr['p99_ms']:5.1f} ms "
                      f"CPU/write {rr['server_cpu_us']:3.0f}+{rr['client_cpu_us']:3.0f} µs  "
                      f"etcd {et['ops_per_s']:6.0f}/s "
                      f"p99 {et['p99_ms']:5.1f} ms CPU/write {et['server_cpu_us']:3.0f}+{et['client_cpu_us']:3.0f} µs  "
                      f"ratio {rr['ops_per_s'] / et['ops_per_s']:.2f}x  "
                      f"steal {rr['steal_pct']:.0f}/{et['steal_pct']:.0f} %", flush=True)
    finally:
        if hello is not None:
            hello.stop()
        etcd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return out


def summarize(rounds: list[dict[str, dict[str, dict[str, Any]]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for mode in MODES:
        rates = {s: [rnd[mode][s]["ops_per_s"] for rnd in rounds] for s in SYSTEMS}
        p99 = {s: [rnd[mode][s]["p99_ms"] for rnd in rounds] for s in SYSTEMS}
        ratios = [a / b for a, b in zip(rates["raftreg"], rates["etcd"], strict=True)]
        cpu = {s: [rnd[mode][s]["server_cpu_us"] + rnd[mode][s]["client_cpu_us"] for rnd in rounds] for s in SYSTEMS}
        summary[mode] = {
            "raftreg_rps": rates["raftreg"], "etcd_rps": rates["etcd"], "ratios": ratios,
            "median_ratio": statistics.median(ratios),
            "ratio_of_medians": statistics.median(rates["raftreg"]) / statistics.median(rates["etcd"]),
            "raftreg_p99_ms": p99["raftreg"], "etcd_p99_ms": p99["etcd"],
            "raftreg_cpu_us": cpu["raftreg"], "etcd_cpu_us": cpu["etcd"],
            "cpu_ratio": statistics.median(e / r for r, e in zip(cpu["raftreg"], cpu["etcd"], strict=True)),
            "errors": {s: sum(rnd[mode][s]["errors"] for rnd in rounds) for s in SYSTEMS},
            "steal_pct": {s: [rnd[mode][s]["steal_pct"] for rnd in rounds] for s in SYSTEMS},
        }
        ceiling = [rnd["ceiling"]["hello"]["ops_per_s"] for rnd in rounds]
        summary[mode]["ceiling_rps"] = ceiling
        summary[mode]["ceiling_over_etcd"] = statistics.median(
            c / e for c, e in zip(ceiling, rates["etcd"], strict=True))
        summary[mode]["raftreg_over_ceiling"] = statistics.median(
            r / c for r, c in zip(rates["raftreg"], ceiling, strict=True))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peerbench", type=Path, default=REPO.parent / "shared" / "peerbench",
                        help="the peerbench directory (default: ../shared/peerbench)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    add_tuning_option(parser, "raftreg.config.RaftTuning overrides, e.g. batch_wait=0")
    args = parser.parse_args(argv)
    exit_on_sigterm()  # SIGTERM unwinds like Ctrl-C: both clusters are stopped
    if missing_tools(("etcd",), "etcd-server"):
        return 2
    if not (args.peerbench / "peerbench" / "workloads.py").is_file():
        print(f"no peerbench at {args.peerbench} (--peerbench DIR)", file=sys.stderr)
        return 2
    tuning, overrides = parse_struct(args.tuning, RaftTuning, "--tuning")
    rounds = [one_round(r, args.peerbench.resolve(), args.seconds, tuning) for r in range(args.rounds)]
    summary = summarize(rounds)
    steal = [v for res in summary.values() for runs in res["steal_pct"].values() for v in runs]
    print(sxs_heading("peerbench's Python client, raftreg / etcd 3.4, fresh clusters every round", overrides, steal))
    print(f"{'writes via':>10}  {SXS_HEADER}  {'CPU/write ratio':>15}  {'ceiling/etcd':>12}  "
          f"{'raftreg/ceiling':>15}  ratios")
    for mode, res in summary.items():
        each = " ".join(f"{r:.2f}" for r in res["ratios"])
        errors = res["errors"]
        print(f"{mode:>10}  {sxs_cells(res)}  {res['cpu_ratio']:14.2f}x  {res['ceiling_over_etcd']:11.2f}x  "
              f"{res['raftreg_over_ceiling']:15.2f}  {each}{steal_matched(res)}"
              + (f"  (errors: {errors})" if any(errors.values()) else ""))
    print(f"ceiling: peerbench's client against its unreplicated hello server, median "
          f"{statistics.median(summary[MODES[0]]['ceiling_rps']):.0f}/s; ceiling/etcd: about the highest ratio "
          "this client can show here")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
