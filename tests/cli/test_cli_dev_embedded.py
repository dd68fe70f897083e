"""``raftreg dev`` refuses to start on a taken port (one line naming it, before any node starts)
and refuses --nodes/--port-base with --config; ``raftreg serve`` refuses a data directory
written in a newer data format. The embedded cluster running from an empty directory is
tests/packaging/test_wheel.py's job (it runs the installed wheel)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from raftreg.config import ClusterConfig, NodeConfig, dump_config
from raftreg.raft.data_format import DATA_FORMAT_VERSION
from raftreg.testing import free_ports
from tests.cli.port_block import free_port_base

pytestmark = pytest.mark.cluster


def raftreg(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAFTREG_SECRET": "s3cret"}
    return subprocess.run([sys.executable, "-m", "raftreg", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_dev_names_a_taken_port_and_starts_nothing(tmp_path: Path) -> None:
    base = free_port_base(3)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 11))  # n2's raft port
        holder.listen()
        result = raftreg(tmp_path, "dev", "--nodes", "3", "--port-base", str(base))
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: port {base + 11} (tcp 127.0.0.1, the raft of n2) is already in use, "
                                    f"used by pid {os.getpid()} (")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "raftreg-data").exists()  # nothing written, no node started


def test_dev_keeps_the_embedded_options_away_from_a_config(tmp_path: Path) -> None:
    result = raftreg(tmp_path, "dev", "--config", "x.toml", "--nodes", "5")
    assert (result.returncode, result.stderr) == (
        2, "error: --nodes and --port-base shape the embedded cluster: not with --config\n")


def test_serve_refuses_a_data_directory_from_a_newer_format(tmp_path: Path) -> None:
    http, raft = free_ports(2)
    config = ClusterConfig(name="c", data_dir=str(tmp_path / "data"),
                           nodes=[NodeConfig("n1", f"127.0.0.1:{http}", f"127.0.0.1:{raft}")])
    (tmp_path / "c.toml").write_text(dump_config(config))
    data = tmp_path / "data" / "n1"
    data.mkdir(parents=True)
    marker = json.dumps({"format": DATA_FORMAT_VERSION + 1, "written_by": "raftreg 7.0.0"})
    (data / "FORMAT").write_text(marker)
    result = raftreg(tmp_path, "serve", "--config", "c.toml", "--node", "n1")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: data directory {data} was written by raftreg 7.0.0 in data format {DATA_FORMAT_VERSION + 1}; "
        f"this build (raftreg 0.1.0) reads format {DATA_FORMAT_VERSION} at most: run a newer raftreg, or start "
        "this node on an empty directory to resync it from the cluster")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in data.iterdir()) == ["FORMAT"]
