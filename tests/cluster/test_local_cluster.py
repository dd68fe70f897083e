"""``LocalCluster`` itself: a start that fails says why, though ``close`` removes the logs.

Benchmarks and scripts start clusters without the cluster fixture (which prints the logs of a
failed test); a start that timed out there used to leave only "timed out ... waiting for node n3
ready", its logs already deleted.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from raftreg.testing import LocalCluster


@contextmanager
def one_node_whose_http_port_is_taken(name: str) -> Iterator[LocalCluster]:
    """A 1-node cluster, not started, whose node cannot serve (it exits); closed at the end."""
    cluster = LocalCluster(1, name=name)
    host, port = cluster.url("n1").removeprefix("http://").rsplit(":", 1)
    with socket.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()
        try:
            yield cluster
        finally:
            cluster.close()


@pytest.mark.cluster
def test_a_start_that_times_out_carries_each_nodes_last_log_lines() -> None:
    with one_node_whose_http_port_is_taken("start-fails") as cluster:
        with pytest.raises(TimeoutError) as failure:
            cluster.start(wait=3.0)
        notes = "\n".join(failure.value.__notes__)
        assert "--- last lines of n1's log ---" in notes
        assert cluster.log_tail("n1") in notes
        assert cluster.log_tail("n1").strip(), "n1 logged nothing"


@pytest.mark.cluster
def test_waiting_for_a_node_that_exited_fails_at_once() -> None:
    with one_node_whose_http_port_is_taken("node-exits") as cluster:
        for proc in cluster.procs.values():
            proc.start()
        with pytest.raises(RuntimeError, match="node n1 exited"):  # the timeout would be a TimeoutError
            cluster.wait_node_ready("n1", timeout=60.0)
