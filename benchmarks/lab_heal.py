"""Heal -> caught up after a long partition, in the lab (root; README "Testing on a real network").

For each setting of ``RAFTREG_RAFT_TCP_USER_TIMEOUT`` (``off`` = 0, pysyncobj's plain TCP;
``on`` = raftreg's default, ``raftreg.raft.tcp_liveness``) a fresh 3-node lab runs; a writer in
the client namespace registers an instance every 50 ms through the leader; a follower is cut
from its peers in the switch (nft) for ``--partition`` seconds; on the heal, the leader's commit
index is read, and the time until the follower has applied it is the figure. Repeated
``--rounds`` times per setting.

    sudo .venv/bin/python benchmarks/lab_heal.py --partition 15 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from pathlib import Path

from harness.report import fmt_s, print_table
from harness.stats import pct

from raftreg.lab.cluster import LabCluster
from raftreg.lab.control import up
from raftreg.lab.netns import entered, in_ns
from raftreg.lab.topology import destroy, switch_port
from raftreg.testing import http_json, wait_for

TABLE = "rrheal"


def _writer(cluster: LabCluster, stop: threading.Event, cutoff: dict[str, str]) -> None:
    with entered(cluster.state.client):
        i, leader = 0, cluster.names[0]
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):  # an election: keep writing to the last leader known
                leader = cluster.leader(timeout=1.0, among=[n for n in cluster.names if n != cutoff.get("node")])
            http_json(f"{cluster.url(leader)}/v1/services/bench/instances/i{i % 20}", method="PUT",
                      body={"address": "198.18.0.100", "port": 1, "meta": {"v": str(i)}}, timeout=3.0)
            i += 1
            stop.wait(0.05)


def _cut(cluster: LabCluster, name: str) -> None:
    port = switch_port(cluster.index_of(name))
    peers = [switch_port(cluster.index_of(n)) for n in cluster.names if n != name]
    rules = [f'iifname "{port}" oifname "{p}" drop' for p in peers] + \
            [f'iifname "{p}" oifname "{port}" drop' for p in peers]
    body = "\n".join([f"table bridge {TABLE} {{", "chain forward_filter {",
                      "type filter hook forward priority 0; policy accept;", *rules, "}", "}", ""])
    in_ns(cluster.state.switch, "nft", "-f", "-", stdin=body)


def _heal(cluster: LabCluster) -> None:
    in_ns(cluster.state.switch, "nft", "delete", "table", "bridge", TABLE)


def one_setting(timeout_env: str, partition: float, rounds: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory(prefix="raftreg-lab-heal-") as tmp:
        cluster = up(Path(tmp), 3, extra_env={"RAFTREG_RAFT_TCP_USER_TIMEOUT": timeout_env})
        stop = threading.Event()
        cutoff: dict[str, str] = {}
        writer = threading.Thread(target=_writer, args=(cluster, stop, cutoff), daemon=True)
        writer.start()
        try:
            for _ in range(rounds):
                leader = cluster.leader(timeout=30.0)
                victim = next(n for n in cluster.names if n != leader)
                cutoff["node"] = victim
                _cut(cluster, victim)
                time.sleep(partition)  # the fault's hold time, not a wait for a condition
                _heal(cluster)
                healed = time.monotonic()
                leader = cluster.leader(timeout=30.0, among=[n for n in cluster.names if n != victim])
                st = cluster.status(leader, timeout=2.0)
                target = int(st["commit_index"]) if st else 0

                def caught_up(name: str = victim, index: int = target) -> bool:
                    s = cluster.status(name, timeout=1.0)
                    return s is not None and int(s["applied_index"]) >= index

                wait_for(caught_up, 60.0, f"{victim} caught up", interval=0.02)
                times.append(time.monotonic() - healed)
                print(f"  TCP_USER_TIMEOUT={timeout_env}: {victim} caught up {times[-1]:.2f}s after the heal",
                      flush=True)
                cluster.wait_converged(timeout=30.0)
        finally:
            stop.set()
            writer.join(timeout=10.0)
            cluster.close()
            destroy(cluster.state)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partition", type=float, default=15.0, help="seconds the follower is cut off")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for label, env in (("off (plain TCP)", "0"), ("on (2 s, default)", "2")):
        times = sorted(one_setting(env, args.partition, args.rounds))
        rows.append([label, str(len(times)), fmt_s(pct(times, 50)), fmt_s(times[-1] if times else None)])
    print_table(f"heal -> caught up after a {args.partition:g} s partition of a follower",
                ["TCP_USER_TIMEOUT", "rounds", "p50", "max"], rows)


if __name__ == "__main__":
    main()
