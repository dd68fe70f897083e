"""``LabCluster``: a ``LocalCluster`` whose nodes run one per lab host (network namespace).

Node ``n<i>`` runs in ``<prefix>-n<i>`` (``ip netns exec``, which execs: the recorded pid is the
node's) and binds ``198.18.0.<i>`` for HTTP (port ``HTTP_PORT``) and Raft (``RAFT_PORT``);
nothing listens on loopback. Every other ``LocalCluster`` method works unchanged (kill, pause,
restart, leader, wait_ready, ...). Its own observation calls (``status``, ``is_ready``,
``debug``) enter the client namespace for the call, so they work from any thread; anything else
that talks to the nodes (the chaos workload, a test's requests) must run inside
``netns.entered(state.client)``.

``lab up`` starts the nodes and exits; they keep running (own sessions) until ``lab down``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from raftreg.config import NodeConfig, RaftTuning, dump_config
from raftreg.lab.netns import entered, exec_prefix
from raftreg.lab.topology import LabState, host_address
from raftreg.testing import LocalCluster

HTTP_PORT = 8080
RAFT_PORT = 7070

# The lab's Raft settings: a cut-off leader steps down sooner than the default 3 s, so a
# partitioned minority stops claiming leadership quickly (research §3.5).
LAB_TUNING = RaftTuning(leader_fallback_timeout=1.5)


class LabCluster(LocalCluster):
    """The nodes of lab ``state``; data and logs under ``state.dir``, never removed by ``close``."""

    def __init__(self, state: LabState, *, tuning: RaftTuning | None = None, name: str = "lab",
                 data_dirs: dict[str, Path] | None = None, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(state.nodes, base_dir=Path(state.dir), tuning=tuning or LAB_TUNING, name=name,
                         keep_data=True, extra_env=extra_env)
        self.state = state
        nodes = [NodeConfig(name=f"n{i}", http=f"{host_address(i)}:{HTTP_PORT}", raft=f"{host_address(i)}:{RAFT_PORT}")
                 for i in range(1, state.nodes + 1)]
        self.config = msgspec.structs.replace(self.config, nodes=nodes)
        self.config_path.write_text(dump_config(self.config))
        if state.secret:
            self.secret = state.secret
        else:
            state.secret = self.secret
            state.save()
        for i, node in enumerate(nodes, start=1):
            proc = self.procs[node.name]
            proc.wrapper = exec_prefix(state.host(i))
            proc._secret = self.secret
            if data_dirs and node.name in data_dirs:
                proc.data_dir = data_dirs[node.name]

    def host_of(self, name: str) -> str:
        """The namespace node ``name`` runs in."""
        return self.state.host(self.names.index(name) + 1)

    def index_of(self, name: str) -> int:
        """Node ``name``'s host number (1-based: its address and switch port)."""
        return self.names.index(name) + 1

    def start(self, wait: float = 30.0) -> None:
        for name in self.names:
            self.start_node(name)
        self.wait_ready(timeout=wait)

    def start_node(self, name: str) -> None:
        proc = self.procs[name]
        proc.start()
        if proc.pid is not None and self.state.pids.get(name) != proc.pid:
            self.state.pids[name] = proc.pid
            self.state.save()

    def status(self, name: str, timeout: float = 1.0) -> dict[str, Any] | None:
        with entered(self.state.client):
            return super().status(name, timeout)

    def is_ready(self, name: str) -> bool:
        with entered(self.state.client):
            return super().is_ready(name)

    def debug(self, name: str, action: str, body: Any = None, *, timeout: float = 10.0) -> tuple[int, Any]:
        with entered(self.state.client):
            return super().debug(name, action, body, timeout=timeout)
