"""Every member must enforce the same ACLs: a node whose ``[acl]`` differs from the leader's
refuses to serve instead of silently applying another policy.

Contract:
- ``settings_view(acl)`` is what a node publishes in ``GET /v1/cluster`` (``"acl"``): its
  ``enabled`` and ``default_policy`` (``audit`` is a node's own logging and may differ).
- ``AclAgreement.run()`` (every node): while this node is a follower that knows a usable
  leader, it reads the leader's ``/v1/cluster`` (signed, over the node-to-node client) every
  ``CHECK_PERIOD`` seconds, every ``RETRY_PERIOD`` until a first comparison succeeded. A leader
  agrees with itself. A leader whose document has no ``"acl"`` (or that does not answer) tells
  nothing, and the last verdict stands.
- ``conflict``: ``None`` while the settings agree (or were never compared), else the reason.
  Once set, the node is not ready (``/v1/ready`` 503 naming the reason) and the HTTP layer
  answers every request but health, ready, ``/v1/cluster`` and the signed node-to-node routes
  with 503 ``unavailable`` (clients move on to another node). It clears when the settings agree
  again (the leader changed, or the odd node was restarted with the right config). One
  ``event=acl_settings_mismatch`` error line is logged when it starts, one ``..._resolved``
  info line when it ends.
- Until the first comparison a freshly started follower may serve; it is not ready before it
  knows a leader and caught up, and the first check follows within ``RETRY_PERIOD``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from raftreg.config import AclSettings
from raftreg.node.peers import Peers
from raftreg.node.view import ClusterView

log = logging.getLogger("raftreg.acl")

CHECK_PERIOD = 2.0  # seconds between two comparisons once one succeeded
RETRY_PERIOD = 0.25  # seconds between attempts until the first comparison


def settings_view(acl: AclSettings) -> dict[str, Any]:
    """The ``[acl]`` settings every member must share, as published in ``/v1/cluster``."""
    return {"enabled": acl.enabled, "default_policy": acl.default_policy}


class AclAgreement:
    """This node's check of its ``[acl]`` against the leader's (module docstring)."""

    def __init__(self, settings: AclSettings, me: str, view: ClusterView, peers: Peers) -> None:
        self.mine = settings_view(settings)
        self._me = me
        self._view = view
        self._peers = peers
        self.conflict: str | None = None
        self.compared = False

    async def run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:  # never let the check take the node down
                log.exception("event=acl_agreement_check_failed")
            await asyncio.sleep(CHECK_PERIOD if self.compared else RETRY_PERIOD)

    async def check_once(self) -> None:
        """Compare with the current leader's settings once (module docstring)."""
        leader = self._view.usable_leader_name()
        if leader is None:
            return
        if leader == self._me:
            self._verdict(None)
            return
        info = await self._peers.cluster_status(leader)
        theirs = info.get("acl") if info is not None else None
        if not isinstance(theirs, dict):
            return
        if theirs == self.mine:
            self._verdict(None)
            return
        self._verdict(f"this node's [acl] ({_describe(self.mine)}) differs from the leader {leader}'s "
                      f"({_describe(theirs)}): it refuses to serve until every member has the same [acl]")

    def _verdict(self, conflict: str | None) -> None:
        self.compared = True
        if conflict is not None and self.conflict is None:
            log.error("event=acl_settings_mismatch node=%s reason=%r", self._me, conflict)
        elif conflict is None and self.conflict is not None:
            log.info("event=acl_settings_mismatch_resolved node=%s", self._me)
        self.conflict = conflict


def _describe(view: dict[str, Any]) -> str:
    return " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in sorted(view.items()))
