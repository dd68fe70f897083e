"""A 3-member etcd 3.4 (Debian's ``etcd-server``) for the side-by-side benchmarks.

``Etcd(work)`` starts three members on free loopback ports with their data in ``work`` (each in a
session of its own); ``leader()`` waits for and returns the leader's client URL; ``stop()`` stops
every member (SIGTERM, then SIGKILL after 10 s). ``etcd_post`` is one blocking JSON request of
etcd's v3 gRPC gateway; ``b64`` its key/value encoding.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from raftreg.testing import free_ports


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def etcd_post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


class Etcd:
    """Three etcd members on free loopback ports, in a temporary directory."""

    def __init__(self, work: Path) -> None:
        ports = free_ports(6)
        self.client = [f"http://127.0.0.1:{p}" for p in ports[:3]]
        peers = [f"http://127.0.0.1:{p}" for p in ports[3:]]
        cluster = ",".join(f"e{i}={peers[i]}" for i in range(3))
        self.procs = [subprocess.Popen(
            ["etcd", "--name", f"e{i}", "--data-dir", str(work / f"etcd{i}"), "--listen-client-urls", self.client[i],
             "--advertise-client-urls", self.client[i], "--listen-peer-urls", peers[i],
             "--initial-advertise-peer-urls", peers[i], "--initial-cluster", cluster,
             "--initial-cluster-state", "new", "--initial-cluster-token", "etcd-sxs"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True) for i in range(3)]

    def leader(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for url in self.client:
                try:
                    st = etcd_post(f"{url}/v3/maintenance/status", {})
                except OSError:
                    continue
                if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                    return url
            time.sleep(0.2)
        raise RuntimeError("etcd elected no leader")

    def stop(self) -> None:
        for proc in self.procs:
            with_suppressed_kill(proc)


def with_suppressed_kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
