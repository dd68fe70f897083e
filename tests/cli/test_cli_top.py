"""``raftreg top`` against a real 3-node cluster (one cluster for the module): ``--once`` as JSON and as
a table, given one address only; writes/s, watchers and leases move with traffic; a killed node shows
as down, not as an error."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftreg.testing import LocalCluster, http_json

pytestmark = pytest.mark.cluster

START_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(3, name="top")
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


def top(cluster: LocalCluster, node: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``raftreg --addr NODE top --once --interval 0.5s ARGS`` (one address: the others are discovered)."""
    cmd = [sys.executable, "-m", "raftreg", "--addr", cluster.config.node(node).http, *args, "top", "--once",
           "--interval", "0.5s"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def top_json(cluster: LocalCluster, node: str, cwd: Path) -> dict[str, Any]:
    done = top(cluster, node, "-o", "json", cwd=cwd)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_once_as_json_shows_every_member_and_the_traffic(cluster: LocalCluster, tmp_path: Path) -> None:
    leader = cluster.leader()
    follower = next(n for n in cluster.names if n != leader)
    base = cluster.url(leader)
    code, body = http_json(f"{base}/v1/services/app/instances/a1", method="PUT",
                           body={"address": "10.0.0.1", "port": 80, "ttl": "30s"}, timeout=10)
    assert code == 200, body
    # A watcher: a blocking query parked on the follower for the whole run of ``top`` (nothing
    # changes the service "app" meanwhile).
    parked = threading.Thread(target=http_json, args=(
        f"{cluster.url(follower)}/v1/services/app?index={body['index']}&wait=20s",),
        kwargs={"timeout": 25}, daemon=True)
    parked.start()
    stop = threading.Event()

    def writes() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            http_json(f"{base}/v1/kv/top/k{n % 5}", method="PUT", body=f"v{n}", timeout=5)

    writer = threading.Thread(target=writes, daemon=True)
    writer.start()
    try:
        frame = top_json(cluster, follower, tmp_path)  # asked through a follower: the leader is discovered
    finally:
        stop.set()
        writer.join(10)
    rows = {n["node"]: n for n in frame["nodes"]}
    assert sorted(rows) == sorted(cluster.names)
    assert frame["leader"] == leader and frame["cluster"] == "top"
    assert [n for n, r in rows.items() if r["state"] == "leader"] == [leader]
    assert all(r["state"] in ("leader", "follower") and r["term"] == frame["term"] for r in rows.values())
    assert all(isinstance(r["lag"], int) and r["lag"] >= 0 for r in rows.values())
    assert rows[leader]["writes_per_s"] > 0 and frame["writes_per_s"] == rows[leader]["writes_per_s"]
    assert rows[leader]["leases"] >= 1 and frame["leases"] == rows[leader]["leases"]
    assert rows[follower]["leases"] is None  # only the leader holds leases
    assert rows[follower]["watchers"] >= 1 and frame["watchers"] >= 1


def test_once_as_a_table(cluster: LocalCluster, tmp_path: Path) -> None:
    leader = cluster.leader()
    done = top(cluster, leader, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("writes/s" in line and "watchers" in line for line in lines), done.stdout
    for name in cluster.names:
        row = next(line for line in lines if f" {name} " in line)
        assert ("leader" if name == leader else "follower") in row, row
    assert f"leader {leader}" in done.stdout and "3/3 up" in done.stdout


def test_a_killed_node_shows_as_down(cluster: LocalCluster, tmp_path: Path) -> None:
    leader = cluster.leader()
    victim = next(n for n in cluster.names if n != leader)
    cluster.kill(victim)
    try:
        frame = top_json(cluster, leader, tmp_path)
        rows = {n["node"]: n for n in frame["nodes"]}
        assert rows[victim]["state"] == "down" and rows[victim]["term"] is None, rows[victim]
        assert rows[victim]["address"] == cluster.config.node(victim).http
        assert frame["leader"] == leader and sum(r["state"] != "down" for r in rows.values()) == 2
        table = top(cluster, leader, cwd=tmp_path)
        assert table.returncode == 0 and "2/3 up" in table.stdout and "Traceback" not in table.stderr
    finally:
        cluster.start_node(victim)
        cluster.wait_ready(timeout=START_TIMEOUT)
