"""Fixtures shared by the test directories, and the whole-suite check that no token secret
reaches a node log (``tests.secret_watch``): after every test, the logs of every live
LocalCluster are scanned for the secrets minted so far, failing that test on a leak; a cluster
closing scans its logs a last time (a leak found then, after its module's last test, fails the
session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raftreg import testing
from raftreg.testing import LocalCluster
from tests.secret_watch import WATCH

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


_leaks_at_close: list[str] = []


def _scan_on_close(cluster: LocalCluster) -> None:
    _leaks_at_close.extend(WATCH.scan(cluster))


testing.CLOSE_HOOKS.append(_scan_on_close)


@pytest.fixture(autouse=True)
def no_secret_in_node_logs() -> Iterator[None]:
    """Fail the test whose clusters' logs gained a token secret (module docstring)."""
    pending = len(_leaks_at_close)
    yield
    leaks = [leak for cluster in testing.live_clusters() for leak in WATCH.scan(cluster)]
    leaks += _leaks_at_close[pending:]  # clusters this test closed
    del _leaks_at_close[pending:]
    if leaks:
        pytest.fail(f"a token secret reached a node log: {leaks}", pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leaks found as module-scoped clusters closed, after their last test (module docstring)."""
    if _leaks_at_close:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"FAILED: a token secret reached a node log: {_leaks_at_close}", red=True)

