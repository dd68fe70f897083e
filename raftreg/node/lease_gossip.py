"""``LeaseGossip``: the leader tells the followers which leases were renewed (not through the log).

Contract: ``send(keys)`` posts ``{"instances": [[service, id], ...]}`` to every other member's
``POST /v1/internal/lease-digest`` at once, each with a short timeout, and never raises: gossip is
best effort. A follower records the receipt time as the instances' last renewal
(``LeaseKeeper.saw``); a lost message only makes the next leader wait longer before expiring.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from raftreg.node.leases import LeaseKey

log = logging.getLogger("raftreg.leases")

GOSSIP_PATH = "/v1/internal/lease-digest"


class LeaseGossip:
    def __init__(self, peer_urls: list[str], *, timeout: float = 1.0) -> None:
        self._peer_urls = peer_urls
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0

    async def send(self, keys: list[LeaseKey]) -> None:
        if not self._peer_urls:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        body = {"instances": keys}
        await asyncio.gather(*(self._post(url, body) for url in self._peer_urls))
        self.sent += 1

    async def _post(self, url: str, body: object) -> None:
        assert self._session is not None
        try:
            async with self._session.post(url + GOSSIP_PATH, json=body) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("event=lease_gossip_lost url=%s error=%s", url, type(exc).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
