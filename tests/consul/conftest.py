"""Fixtures of the Consul API tests: one real 3-node cluster serving the Consul API, shared by
the tests of a module (``consul_cluster``), with the tail of every node's log printed when a
test of the module failed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from consul_helpers import close_cluster, start_cluster

from raftreg.testing import LocalCluster


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.failed:
        item.module.__dict__["_consul_tests_failed"] = True  # type: ignore[union-attr]
    return report


@pytest.fixture(scope="module")
def consul_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A 3-node cluster serving the Consul API (``cluster.consul_url(name)``), one per module."""
    cluster = start_cluster()
    yield cluster
    close_cluster(cluster, request)
