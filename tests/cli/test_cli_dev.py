"""``raftreg dev`` stops every node it started, whatever happens to its standard output; and it
passes ``--log-format`` on to its nodes.

Run as ``raftreg dev | tee dev.log`` and stopped with Ctrl-C, the terminal's SIGINT reaches tee
too: the pipe dies first, and ``dev`` used to die of the broken pipe before it stopped its nodes
(they run in their own sessions, so the SIGINT never reaches them). Here the pipe's reader goes
away before the SIGINT, as tee does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftreg.config import ClusterConfig, NodeConfig, dump_config
from raftreg.testing import free_ports, wait_for

pytestmark = pytest.mark.cluster

PID_LINE = re.compile(r"^\s+(n\d)\s+http://\S+\s+raft \S+\s+pid (\d+)$")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def start_dev(tmp_path: Path, *options: str) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """``raftreg dev`` (with ``options``) on a fresh 3-node config; returns it and its nodes' PIDs."""
    ports = free_ports(6)
    config = ClusterConfig(name="devtest", data_dir=str(tmp_path / "data"), nodes=[
        NodeConfig(name=f"n{i + 1}", http=f"127.0.0.1:{ports[2 * i]}", raft=f"127.0.0.1:{ports[2 * i + 1]}")
        for i in range(3)])
    path = tmp_path / "devtest.toml"
    path.write_text(dump_config(config))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    dev = subprocess.Popen([sys.executable, "-m", "raftreg", "dev", "--config", str(path), *options],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
                           cwd=tmp_path)
    assert dev.stdout is not None
    pids: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while len(pids) < 3 and time.monotonic() < deadline:
        line = dev.stdout.readline().decode()
        if not line:
            break
        if match := PID_LINE.match(line.rstrip("\n")):
            pids[match.group(1)] = int(match.group(2))
    assert len(pids) == 3, f"dev did not list its three nodes: {pids}"
    return dev, pids


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_dev_stops_every_node_after_its_output_pipe_died(tmp_path: Path, stop_signal: signal.Signals) -> None:
    dev, pids = start_dev(tmp_path)
    try:
        assert all(alive(pid) for pid in pids.values())
        assert dev.stdout is not None
        dev.stdout.close()  # the reader (tee) is gone: dev's next write ("stopping nodes...") breaks the pipe
        dev.send_signal(stop_signal)
        dev.wait(timeout=60)
        wait_for(lambda: not any(alive(pid) for pid in pids.values()), 30.0, "every node to stop")
    finally:
        if dev.poll() is None:
            dev.kill()
        for pid in pids.values():
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_dev_passes_the_log_format_to_its_nodes(tmp_path: Path) -> None:
    dev, pids = start_dev(tmp_path, "--log-format", "json")
    try:
        logs = [tmp_path / "data" / "logs" / f"{name}.log" for name in sorted(pids)]

        def serving(log: Path) -> dict[str, object] | None:
            lines = log.read_text().splitlines() if log.exists() else []
            events = [json.loads(line) for line in lines if line.startswith("{")]
            return next((e for e in events if e.get("event") == "serving"), None)

        for log in logs:
            line = wait_for(lambda log=log: serving(log), 30.0, f"a JSON 'serving' line in {log.name}")
            assert line["logger"] == "raftreg.server" and line["level"] == "INFO"
            assert all(x.startswith(("{", "==== start")) for x in log.read_text().splitlines() if x), log.read_text()
        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=60)
    finally:
        if dev.poll() is None:
            dev.kill()
        for pid in pids.values():
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
