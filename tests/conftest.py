"""Fixtures shared by the test directories."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raftreg.testing import LocalCluster

START_TIMEOUT = 60.0  # other engineers may run multi-node clusters on this 2-core machine


@pytest.fixture(scope="module")
def single_node() -> Iterator[LocalCluster]:
    """One real single-node cluster (a ``raftreg serve`` process) for the whole module."""
    c = LocalCluster(1)
    try:  # not ``with``: a start that times out must still kill the process
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()
