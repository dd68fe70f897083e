"""``Peers``: what a node asks of the other members, as an interface.

The node layer decides *what* to ask and when; the HTTP layer (``raftreg.http.peer_client``)
owns *how*: the internal routes, the request signatures, timeouts and connection pools. Members
are named as in the cluster config.
"""

from __future__ import annotations

from typing import Any, Protocol

from raftreg.node.leases import LeaseKey


class Peers(Protocol):
    async def renew_leases(self, leader: str, keys: list[LeaseKey]) -> list[dict[str, Any]]:
        """Ask the leader to renew these leases (forwarded heartbeats): one result per key,
        ``{"ttl": x}`` or an error body. Raises ``Unavailable`` (nothing renewed: retry) when the
        leader cannot be reached or does not take them."""
        ...

    async def share_renewals(self, keys: list[LeaseKey]) -> None:
        """Leader: tell every other member these leases were renewed just now. Best effort,
        never raises."""
        ...

    async def cluster_status(self, member: str) -> dict[str, Any] | None:
        """That member's ``GET /v1/cluster`` document, or None if it does not answer in time."""
        ...

    async def close(self) -> None: ...
