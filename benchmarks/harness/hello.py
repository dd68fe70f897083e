"""peerbench's ``hello`` server: the ceiling of peerbench's Python client on this machine, now.

``Hello(peerbench)`` starts ``peerbench/hello_server.py`` (one aiohttp process that keeps
registrations in a dict: no replication, no validation, no journal) on a free loopback port, in a
session of its own, and waits until it answers a lookup; ``stop()`` stops it (SIGTERM, then
SIGKILL after 10 s). A client that drives it as fast as it can measures mostly itself: hello does
almost nothing (80-115 µs of CPU per write here), so the rate against it is about the fastest the
same client drives any server on the same machine, and that rate over etcd's about the highest
ratio against etcd the client can show.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.etcd import with_suppressed_kill
from raftreg.testing import free_ports, http_json, wait_for


class Hello:
    """peerbench's trivial in-memory registry on a free loopback port."""

    def __init__(self, peerbench: Path, timeout: float = 30.0) -> None:
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "peerbench.hello_server", "--port", str(self.port)], cwd=peerbench,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(self._answers, timeout, f"peerbench's hello server on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"peerbench's hello server exited with status {self.proc.returncode}")
        return http_json(f"{self.url}/v1/services/ready", timeout=0.5)[0] == 200

    def stop(self) -> None:
        with_suppressed_kill(self.proc)
