"""Fixtures for the CLI tests: one real single-node cluster per test module, and a runner for
``python -m raftreg`` as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from raftreg.testing import LocalCluster

CLI_TIMEOUT = 60.0

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def cluster(single_node: LocalCluster) -> LocalCluster:
    """The module's single-node cluster (``single_node`` in tests/conftest.py)."""
    return single_node


@pytest.fixture(scope="module")
def addr(cluster: LocalCluster) -> str:
    """host:port of n1's HTTP API."""
    return cluster.config.node("n1").http


@pytest.fixture(scope="module")
def cli(addr: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``cli(*args, addr=...)`` runs ``python -m raftreg --addr ADDR *args`` and returns the result.

    It runs in an empty directory with $RAFTREG_ADDR unset, so only --addr decides where it goes."""
    cwd: Path = tmp_path_factory.mktemp("cli")
    env = {k: v for k, v in os.environ.items() if k != "RAFTREG_ADDR"}

    def run(*args: str, addr: str = addr) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "raftreg", "--addr", addr, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env, cwd=cwd,
                              check=False)

    return run
