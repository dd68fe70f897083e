"""A node whose data directory was lost cannot rejoin under its old name as if nothing happened
(issue 16 item 2): ``raftreg serve`` refuses, changes nothing, and starts only with
``--replace-identity`` once the leader confirms a majority of the others holds every committed
entry; the new incarnation is then recorded and the cluster serves writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

import pytest
from cluster_helpers import put_instance, service_ids

from raftreg.cli.serve import EXIT_IDENTITY_REFUSED
from raftreg.node.incarnation import has_raft_data, read_incarnation
from raftreg.testing import LocalCluster, wait_for

pytestmark = pytest.mark.cluster


def _identities(cluster: LocalCluster, name: str) -> dict[str, Any]:
    status = cluster.status(name)
    return status["identities"] if status is not None else {}


def test_a_wiped_follower_is_refused_until_replaced_explicitly(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    recorded = wait_for(lambda: ids if len(ids := _identities(cluster, leader)) == 3 else None,
                        15, "every member's incarnation recorded")
    victim = next(n for n in cluster.names if n != leader)
    data_dir = cluster.config.node_data_dir(victim)
    assert recorded[victim] == read_incarnation(data_dir)
    assert put_instance(cluster, leader, "ident", "before")[0] == 200
    cluster.wait_converged()

    cluster.kill(victim)
    shutil.rmtree(data_dir)
    run = subprocess.run(
        [sys.executable, "-m", "raftreg", "serve", "--config", str(cluster.config_path), "--node", victim,
         "--data-dir", str(data_dir)],
        env={**os.environ, "RAFTREG_SECRET": cluster.secret}, capture_output=True, text=True, timeout=30)
    output = run.stdout + run.stderr
    assert run.returncode == EXIT_IDENTITY_REFUSED, output
    assert f"the cluster already holds '{victim}'" in run.stderr and "--replace-identity" in run.stderr, output
    assert "event=identity_refused" in output
    assert not has_raft_data(data_dir) and read_incarnation(data_dir) is None  # nothing written
    assert _identities(cluster, leader) == recorded

    cluster.procs[victim].extra_args = ["--replace-identity"]
    cluster.start_node(victim)
    cluster.wait_node_ready(victim)
    fresh = read_incarnation(data_dir)
    assert fresh is not None and fresh != recorded[victim]
    wait_for(lambda: _identities(cluster, leader).get(victim) == fresh or None, 15, "the new incarnation recorded")
    assert put_instance(cluster, victim, "ident", "after")[0] == 200
    cluster.wait_converged()
    assert service_ids(cluster, victim, "ident") == {"before", "after"}  # caught up, and serves writes
    assert "event=identity_recorded" in cluster.log_text(victim)
