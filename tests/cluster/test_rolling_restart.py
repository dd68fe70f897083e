"""Rolling restart without downtime (issue 16 item 6): ``raftreg cluster rolling-restart`` restarts every
member in turn (followers first, the leader last after handing leadership over, each back and
caught up before the next) while a client writes all the while: no acknowledged write is lost,
and the longest gap between two successful writes stays below one election timeout (plus a
generous margin: this checks the hand-over, it is no speed benchmark).

The operator's restart command is a tiny script that asks the test (through files) to restart the
member through its LocalCluster, the way ``systemctl restart`` would: SIGTERM, then start."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cluster_helpers import assert_all_nodes_have

from raftreg.cli.main import cli
from raftreg.client import RaftregError, RegistryClient
from raftreg.testing import LocalCluster, wait_for

pytestmark = pytest.mark.cluster

WRITE_PACE = 0.01  # seconds between writes: a steady load that leaves the 2 cores to the restarts
MARGIN = 1.5  # seconds on top of one election timeout (raft_max_timeout): a loaded 2-core CI box

RESTART_SCRIPT = """\
import pathlib, sys, time
base, name = pathlib.Path(sys.argv[1]), sys.argv[2]
(base / (name + ".request")).write_text("")
done, deadline = base / (name + ".done"), time.monotonic() + 60
while not done.exists():
    if time.monotonic() > deadline:
        sys.exit("the test did not restart " + name)
    time.sleep(0.02)
done.unlink()
"""


def _serve_restarts(cluster: LocalCluster, base: Path, restarted: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        for request in base.glob("*.request"):
            name = request.stem
            request.unlink()
            cluster.stop_node(name)  # SIGTERM: the graceful stop, which hands leadership over
            cluster.start_node(name)
            restarted.append(name)
            (base / f"{name}.done").write_text("")
        stop.wait(0.02)


def test_a_rolling_restart_loses_no_write_and_no_more_than_an_election(cluster: LocalCluster,
                                                                       tmp_path: Path) -> None:
    leader = cluster.leader()
    script = tmp_path / "restart.py"
    script.write_text(RESTART_SCRIPT)
    acked: list[tuple[float, str]] = []
    errors: list[str] = []
    restarted: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with RegistryClient(cluster.urls(), timeout=2.0, deadline=10.0) as client:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    client.register("roll", f"w{i}", {"address": "10.0.0.1", "port": 1000 + i % 50000})
                except RaftregError as exc:  # the client retried within its deadline and gave up
                    errors.append(f"w{i}: {exc}")
                else:
                    acked.append((time.monotonic(), f"w{i}"))
                stop.wait(WRITE_PACE)

    threads = [threading.Thread(target=writer), threading.Thread(target=_serve_restarts,
                                                                 args=(cluster, tmp_path, restarted, stop))]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(acked) > 10 or None, 10, "the writer's first writes")
        result = CliRunner().invoke(cli, ["--addr", cluster.url(cluster.names[0]), "cluster", "rolling-restart",
                                          "--restart-cmd", f"{sys.executable} {script} {tmp_path} {{name}}",
                                          "--node-timeout", "60s"])
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    ended = time.monotonic()

    assert result.exit_code == 0, result.output
    assert sorted(restarted) == sorted(cluster.names) and restarted[-1] == leader, result.output
    assert f"restarting {leader} (it led)" in result.output and "rolling restart done" in result.output
    assert not errors, errors[:5]
    times = [began] + [at for at, _ in acked] + [ended]
    gap = max(b - a for a, b in itertools.pairwise(times))
    assert gap < cluster.config.raft.raft_max_timeout + MARGIN, (gap, result.output)
    cluster.wait_converged()
    assert_all_nodes_have(cluster, "roll", {ident for _, ident in acked})
    print(result.output)
    print(f"rolling restart: {len(acked)} writes acknowledged, longest gap {gap:.2f}s, {ended - began:.1f}s")
