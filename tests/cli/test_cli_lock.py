"""``raftreg lock`` and ``raftreg elect`` against a real single-node cluster, run as subprocesses:
the command runs with the fence in its environment and its exit code is the lock's; a destroyed
session (a lost lock) stops the command with SIGTERM; ``elect`` prints ``elected`` as JSON lines
and ``resigned`` on SIGINT, freeing the key for the next candidate."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from raftreg.client import RegistryClient

LINE_TIMEOUT = 20.0  # deadline for a process's next line (loaded 2-core machine)


def spawn(addr: str, cwd: Path, *args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """``python -m raftreg --addr ADDR -o json ARGS``; its stdout and stderr lines in one queue."""
    env = {k: v for k, v in os.environ.items() if k != "RAFTREG_ADDR"} | {"PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "raftreg", "--addr", addr, "-o", "json", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    lines: queue.Queue[str] = queue.Queue()
    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=lambda s=stream: [lines.put(line.strip()) for line in s or ()], daemon=True).start()
    return proc, lines


def next_event(lines: queue.Queue[str], event: str) -> dict[str, object]:
    """The next JSON line whose ``event`` is ``event`` (other lines are skipped)."""
    while True:
        line = lines.get(timeout=LINE_TIMEOUT)
        if line.startswith("{") and json.loads(line).get("event") == event:
            return dict(json.loads(line))


def test_lock_runs_the_command_with_the_fence_and_returns_its_exit_code(cli) -> None:
    script = "import os, sys; print('fence=' + os.environ['RAFTREG_LOCK_FENCE']); sys.exit(3)"
    first = cli("lock", "cli-a", "--ttl", "5s", "--", sys.executable, "-c", script)
    assert first.returncode == 3, first.stderr
    assert "fence=1" in first.stdout and "acquired locks/cli-a (fence 1)" in first.stderr
    second = cli("lock", "cli-a", "--lock-delay", "0s", "--", sys.executable, "-c", script)
    assert second.returncode == 3 and "fence=2" in second.stdout, second.stderr  # released at exit: a new holder


def test_a_lost_lock_stops_the_command(addr: str, tmp_path: Path) -> None:
    proc, lines = spawn(addr, tmp_path, "lock", "cli-b", "--ttl", "3s", "--grace", "2s", "--",
                        sys.executable, "-c", "import time; print('working', flush=True); time.sleep(120)")
    try:
        assert next_event(lines, "acquired")["fence"] == 1
        with RegistryClient([addr]) as client:
            entry = client.kv_get("locks/cli-b", consistent=True)
            assert entry is not None and entry.session is not None
            assert client.session_destroy(entry.session).destroyed  # the lock is lost
        assert next_event(lines, "lost")["key"] == "locks/cli-b"
        assert proc.wait(LINE_TIMEOUT) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait(10)


def test_elect_prints_its_leadership_and_resigns_on_ctrl_c(addr: str, tmp_path: Path) -> None:
    first, first_lines = spawn(addr, tmp_path, "elect", "cli-e", "--identity", "one", "--lock-delay", "0s")
    second, second_lines = None, None
    try:
        assert next_event(first_lines, "elected") == {"event": "elected", "name": "cli-e", "identity": "one",
                                                      "fence": 1}
        second, second_lines = spawn(addr, tmp_path, "elect", "cli-e", "--identity", "two", "--lock-delay", "0s")
        with RegistryClient([addr]) as client:
            assert client.election("cli-e", "x").leader() == "one"
        first.send_signal(signal.SIGINT)
        assert next_event(first_lines, "resigned")["fence"] == 1 and first.wait(LINE_TIMEOUT) == 0
        assert next_event(second_lines, "elected")["fence"] == 2
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.wait(10)
