"""``raftreg dev`` with a config that holds read replicas starts them too, and they serve."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftreg.config import ClusterConfig, NodeConfig, dump_config
from raftreg.testing import free_ports, http_json, wait_for

pytestmark = pytest.mark.cluster

NODE_LINE = re.compile(r"^\s+([nr]\d)\s+(http://\S+)\s+(raft \S+|read replica)\s+pid (\d+)$")


def test_dev_starts_the_replicas_of_its_config(tmp_path: Path) -> None:
    ports = free_ports(8)
    nodes = [NodeConfig(name=f"n{i + 1}", http=f"127.0.0.1:{ports[2 * i]}", raft=f"127.0.0.1:{ports[2 * i + 1]}")
             for i in range(3)]
    nodes.append(NodeConfig(name="r1", http=f"127.0.0.1:{ports[6]}", raft=f"127.0.0.1:{ports[7]}", role="replica"))
    path = tmp_path / "devtest.toml"
    path.write_text(dump_config(ClusterConfig(name="devtest", data_dir=str(tmp_path / "data"), nodes=nodes)))
    dev = subprocess.Popen([sys.executable, "-m", "raftreg", "dev", "--config", str(path)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)
    assert dev.stdout is not None
    listed: dict[str, tuple[str, str, int]] = {}
    try:
        deadline = time.monotonic() + 60
        while len(listed) < 4 and time.monotonic() < deadline:
            line = dev.stdout.readline().decode()
            if not line:
                break
            if match := NODE_LINE.match(line.rstrip("\n")):
                listed[match.group(1)] = (match.group(2), match.group(3), int(match.group(4)))
        assert sorted(listed) == ["n1", "n2", "n3", "r1"], listed
        url, kind, _ = listed["r1"]
        assert kind == "read replica"
        wait_for(lambda: http_json(url + "/v1/ready")[0] == 200, 30, "the replica to be ready")
        code, info = http_json(url + "/v1/cluster")
        assert code == 200 and info["role"] == "replica" and info["leader"] in ("n1", "n2", "n3"), info
    finally:  # (test_cli_dev.py covers dev's clean stop; here everything is killed at once)
        dev.kill()
        dev.wait(timeout=30)
        for _, _, pid in listed.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
