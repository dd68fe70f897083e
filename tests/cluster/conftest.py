"""Fixtures for the cluster tests: real ``raftreg serve`` processes on 127.0.0.1 (LocalCluster).

``make_cluster(**kwargs)`` starts a LocalCluster and closes it at the end of the test; when the
test fails, the tail of every node's log is printed (shown by pytest with the failure report).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from raftreg.testing import LocalCluster

LOG_TAIL_CHARS = 12000


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def make_cluster(request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalCluster]]:
    clusters: list[LocalCluster] = []

    def make(nodes: int = 3, **kwargs: Any) -> LocalCluster:
        cluster = LocalCluster(nodes, name=f"t{len(clusters)}", **kwargs)
        clusters.append(cluster)
        cluster.start(wait=60.0)
        return cluster

    yield make

    failed = request.node.stash.get(_FAILED, False)
    for cluster in clusters:
        if failed:
            for name in cluster.names:
                print(f"\n----- log of {name} (last {LOG_TAIL_CHARS} chars) -----")
                print(cluster.log_text(name)[-LOG_TAIL_CHARS:])
        cluster.close()


@pytest.fixture
def cluster(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    """A fresh 3-node cluster with default tuning, ready (leader elected, all nodes ready)."""
    return make_cluster()
