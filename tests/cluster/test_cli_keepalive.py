"""``raftreg register ... --ttl 2s --keepalive`` against a real 3-node cluster: the instance stays
while the process heartbeats, Ctrl-C (SIGINT) deregisters it and exits 0, and so does SIGTERM;
``raftreg lookup --passing -o json`` lists only passing instances."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from health_helpers import cluster_info, get_instance, gone_everywhere, register, set_status

from raftreg.testing import LocalCluster, wait_for

pytestmark = pytest.mark.cluster

CLI_TIMEOUT = 60.0
TTL = 2.0


def raftreg_command() -> list[str]:
    """The ``raftreg`` console script of this virtualenv (``python -m raftreg`` if it is missing)."""
    script = Path(sys.executable).with_name("raftreg")
    return [str(script)] if script.exists() else [sys.executable, "-m", "raftreg"]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAFTREG_ADDR"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Lines:
    """The stdout lines of a child process, collected by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def next(self, timeout: float = 20.0) -> str:
        try:
            line = self._q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout}s (so far {self.seen})") from None
        assert line is not None, f"the process exited: rc={self.proc.poll()}, output {self.seen}"
        self.seen.append(line)
        return line

    def rest(self) -> list[str]:
        out = []
        while (line := self._q.get(timeout=10.0)) is not None:
            out.append(line)
        self.seen += out
        return out


def test_register_keepalive_until_sigint_and_lookup_passing(make_cluster: Callable[..., LocalCluster],
                                                           tmp_path: Path) -> None:
    c = make_cluster()
    addrs = ",".join(c.config.node(n).http for n in c.names)
    service = "svc"
    cmd = [*raftreg_command(), "--addr", addrs, "register", service, "i1", "--address", "127.0.0.1", "--port", "80",
           "--ttl", f"{TTL:g}s", "--keepalive"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                            cwd=tmp_path)
    try:
        out = Lines(proc)
        first = out.next()
        t_registered = time.monotonic()
        assert first.startswith(f"registered {service}/i1 at index "), first
        code, inst = get_instance(c, c.leader(), service, "i1")
        assert code == 200 and inst["ttl"] == TTL, (code, inst)
        create_index = inst["create_index"]

        # Present on every node for more than 3 x ttl, never registered anew.
        while time.monotonic() < t_registered + 3 * TTL + 1.0:
            for n in c.names:
                code, now = get_instance(c, n, service, "i1", timeout=2.0)
                assert code == 200, f"i1 missing on {n} {time.monotonic() - t_registered:.1f}s after registering"
                assert now["create_index"] == create_index, f"i1 was registered anew: {now}"
            assert proc.poll() is None, f"the keepalive process exited: {proc.poll()}"
            time.sleep(0.2)
        leader = c.leader()
        assert cluster_info(c, leader)["leases"]["renewals"] >= 3 * 3

        # lookup --passing -o json: only passing instances.
        register(c, leader, service, "i2", {"address": "127.0.0.1", "port": 81})
        set_status(c, leader, service, "i2", "warning", "maintenance")
        register(c, leader, service, "i3", {"address": "127.0.0.1", "port": 82})
        c.wait_converged(timeout=30.0)
        lookups = {}
        for passing in (True, False):
            args = [*raftreg_command(), "--addr", addrs, "-o", "json", "lookup", service,
                    *(["--passing"] if passing else [])]
            done = subprocess.run(args, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=cli_env(),
                                  cwd=tmp_path, check=False)
            assert done.returncode == 0, done.stderr
            lookups[passing] = json.loads(done.stdout)
        assert [i["id"] for i in lookups[True]["instances"]] == ["i1", "i3"], lookups[True]
        assert all(i["status"] == "passing" for i in lookups[True]["instances"]), lookups[True]
        assert [(i["id"], i["status"]) for i in lookups[False]["instances"]] == [
            ("i1", "passing"), ("i2", "warning"), ("i3", "passing")], lookups[False]

        # Ctrl-C: deregistered before the process exits 0.
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=CLI_TIMEOUT)
        rest = out.rest()
        stderr = proc.stderr.read() if proc.stderr else ""
        assert rc == 0, f"exit code {rc}; stdout {out.seen}; stderr {stderr}"
        assert any(line.startswith(f"deregistered {service}/i1 at index") for line in rest), (out.seen, stderr)
        assert not any("expired" in line for line in out.seen), out.seen
        code, body = get_instance(c, c.leader(), service, "i1", query="?consistent")
        assert code == 404, (code, body)
        wait_for(lambda: gone_everywhere(c, service, "i1"), 10.0, "i1 gone on every node")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # SIGTERM (a service manager stopping it) deregisters too.
    term = subprocess.Popen([*cmd[:cmd.index("i1")], "i4", *cmd[cmd.index("i1") + 1:]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=tmp_path)
    try:
        lines = Lines(term)
        assert lines.next().startswith(f"registered {service}/i4 at index ")
        term.send_signal(signal.SIGTERM)
        rc = term.wait(timeout=CLI_TIMEOUT)
        stderr = term.stderr.read() if term.stderr else ""
        assert rc == 0 and any(line.startswith(f"deregistered {service}/i4") for line in lines.rest()), (rc, stderr)
        assert get_instance(c, c.leader(), service, "i4", query="?consistent")[0] == 404
    finally:
        if term.poll() is None:
            term.kill()
            term.wait()
