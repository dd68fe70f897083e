"""``PeerClient``: the node-to-node HTTP client (implements ``raftreg.node.peers.Peers``).

Contract:
- Every request to an internal endpoint is signed (``raftreg.signing``) over its exact body, and
  so is ``cluster_status``'s ``GET /v1/cluster`` (with ACLs on, a signed request is the operator).
- ``renew_leases`` raises ``Unavailable`` when the leader cannot be reached in time, answers a
  non-200, or answers a body that is not ``{"results": [...]}`` of the right length (nothing is
  assumed renewed); ``share_renewals`` never raises; ``cluster_status`` answers None when the
  member does not answer in time with a JSON object.
- One aiohttp session (keep-alive) for all peers, opened lazily, closed by ``close``.
- With ``[tls]`` every call is HTTPS: the peer is verified against ``tls.ca_file`` (hostname
  included) and this node presents its own certificate (``raftreg.tls.peer_context``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import msgspec

from raftreg.config import ClusterConfig
from raftreg.errors import Unavailable, error_from_body
from raftreg.http.routes import CLUSTER, FORWARD_HEARTBEATS, LEASE_DIGEST
from raftreg.node.leases import LeaseKey
from raftreg.signing import Signer
from raftreg.tls import peer_context

log = logging.getLogger("raftreg.peers")

_encode = msgspec.json.Encoder().encode
JSON_HEADERS = {"Content-Type": "application/json"}


class PeerClient:
    def __init__(self, config: ClusterConfig, me: str, secret: str, *, timeout: float = 2.0,
                 gossip_timeout: float = 1.0) -> None:
        self._config, self._me = config, me  # config.nodes: the live members (raftreg.node.membership)
        self._ssl = peer_context(config.tls, me) if config.tls is not None else None
        self._signer = Signer(secret, me)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._gossip_timeout = aiohttp.ClientTimeout(total=gossip_timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def _others(self) -> list[str]:  # lease gossip: replicas hold no leases
        return [n.name for n in self._config.voters if n.name != self._me]

    def _url(self, member: str) -> str:
        return self._config.url(member)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16, ssl=self._ssl or True))
        return self._session

    async def _post(self, member: str, path: str, payload: object, timeout: aiohttp.ClientTimeout) -> tuple[int, Any]:
        body = _encode(payload)
        headers = {**JSON_HEADERS, **self._signer.headers("POST", path, body)}
        async with self._client().post(self._url(member) + path, data=body, headers=headers,
                                       timeout=timeout) as resp:
            return resp.status, await resp.json(content_type=None)

    async def renew_leases(self, leader: str, keys: list[LeaseKey]) -> list[dict[str, Any]]:
        try:
            status, body = await self._post(leader, FORWARD_HEARTBEATS, {"instances": keys}, self._timeout)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("event=heartbeat_forward_failed leader=%s error=%s", leader, type(exc).__name__)
            raise Unavailable("could not reach the leader to renew the lease; retry") from None
        if status != 200:
            err = error_from_body(status, body)
            raise Unavailable(f"the leader did not take the heartbeats: {err.message}")
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(keys):
            raise Unavailable("the leader answered the heartbeats with an unexpected body")
        return results

    async def share_renewals(self, keys: list[LeaseKey]) -> None:
        await asyncio.gather(*(self._gossip(member, keys) for member in self._others))

    async def _gossip(self, member: str, keys: list[LeaseKey]) -> None:
        try:
            await self._post(member, LEASE_DIGEST, {"instances": keys}, self._gossip_timeout)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("event=lease_gossip_lost member=%s error=%s", member, type(exc).__name__)

    async def cluster_status(self, member: str) -> dict[str, Any] | None:
        try:
            async with self._client().get(self._url(member) + CLUSTER, timeout=self._timeout,
                                          headers=self._signer.headers("GET", CLUSTER, b"")) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
