"""``RemovalWatch``: a member that was removed from the cluster while it kept running notices it.

pysyncobj never tells a removed node: the leader stops sending to it, the others drop what it
sends (its address is no longer a member's), and it campaigns in vain. Its terms stay its own,
so the cluster is not disturbed, but the node itself would look merely cut off. Every
``period`` seconds without a usable leader, this asks the other members it knows for
``GET /v1/cluster``; when one that leads lists no member of this name, ``removed`` says so
(``RegistryNode.is_ready`` then answers 503 with it) and one warning is logged. It clears when a
leader is usable again (the node was added back).
"""

from __future__ import annotations

import asyncio
import logging

from raftreg.config import ClusterConfig
from raftreg.node.peers import Peers
from raftreg.node.view import ClusterView

log = logging.getLogger("raftreg.membership")


class RemovalWatch:
    def __init__(self, config: ClusterConfig, me: str, view: ClusterView, peers: Peers, period: float = 2.0) -> None:
        self._config = config
        self._me = me
        self._view = view
        self._peers = peers
        self._period = period
        self.removed: str | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            try:
                await self.check_once()
            except Exception:
                log.exception("event=removal_check_failed")

    async def check_once(self) -> None:
        if self._view.usable_leader() is not None:
            self.removed = None
            return
        for name in [n.name for n in self._config.nodes if n.name != self._me]:
            info = await self._peers.cluster_status(name)
            if info is None or info.get("state") != "leader" or not isinstance(info.get("members"), list):
                continue
            names = {m.get("name") for m in info["members"] if isinstance(m, dict)}
            if self._me not in names:
                if self.removed is None:
                    log.warning("event=removed_from_cluster leader=%s: this node is no longer a member; stop it "
                                "(or add it back: raftreg cluster add, then serve --join on a fresh data dir)", name)
                self.removed = f"this node was removed from the cluster (leader {name} does not list it)"
            return
