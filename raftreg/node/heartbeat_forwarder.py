"""``HeartbeatForwarder``: a follower passes heartbeats on to the leader, which holds the leases.

Contract:
- ``renew(service, id)`` returns the instance's ttl once the leader renewed its lease, or raises
  the leader's verdict (``NotFound``, ``InvalidArgument``, ``Unavailable``); ``Unavailable`` too
  when the leader cannot be reached in time (the client retries: a new leader re-arms every
  lease with a grace, so a heartbeat lost in a failover never expires an instance).
- Heartbeats are batched like group commit: one ``POST /v1/internal/heartbeats`` in flight to the
  leader at a time; what arrives meanwhile goes out together in the next one (at most
  ``max_batch``). Under load a follower sends the leader a few batches instead of thousands of
  requests per second.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from raftreg.errors import InvalidArgument, NotFound, RaftregError, Unavailable
from raftreg.node.leases import LeaseKey
from raftreg.node.tasks import cancel_and_wait

log = logging.getLogger("raftreg.heartbeats")

FORWARD_PATH = "/v1/internal/heartbeats"
_ERRORS: dict[str, type[RaftregError]] = {"not_found": NotFound, "invalid_argument": InvalidArgument}


class HeartbeatForwarder:
    def __init__(self, leader_url: Callable[[], str | None], *, timeout: float, max_batch: int) -> None:
        self._leader_url = leader_url
        self._timeout = timeout
        self._max_batch = max_batch
        self._queue: collections.deque[tuple[LeaseKey, asyncio.Future[float]]] = collections.deque()
        self._sender: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.batches = 0
        self.forwarded = 0

    async def renew(self, service: str, instance_id: str) -> float:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.append(((service, instance_id), fut))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all(), name="heartbeat-forwarder")
        return await fut

    async def close(self) -> None:
        await cancel_and_wait([self._sender])
        while self._queue:
            _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(Unavailable("this node is shutting down; retry another node"))
        if self._session is not None:
            await self._session.close()

    async def _send_all(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            batch = [(key, fut) for key, fut in batch if not fut.done()]  # callers that gave up
            if not batch:
                continue
            try:
                results = await self._send([key for key, _ in batch])
            except RaftregError as err:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(Unavailable(err.message, retry_after=0.5))
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if "ttl" in result:
                    fut.set_result(float(result["ttl"]))
                else:
                    detail = result.get("error") or {}
                    cls = _ERRORS.get(detail.get("code", ""), Unavailable)
                    fut.set_exception(cls(detail.get("message") or "the leader did not renew the lease"))

    async def _send(self, keys: list[LeaseKey]) -> list[dict[str, Any]]:
        url = self._leader_url()
        if url is None:
            raise Unavailable("no leader is reachable from this node to renew the lease; retry")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout),
                                                  connector=aiohttp.TCPConnector(limit=4))
        self.batches += 1
        self.forwarded += len(keys)
        try:
            async with self._session.post(url + FORWARD_PATH, json={"instances": keys}) as resp:
                body = await resp.json()
                if resp.status != 200:
                    message = (body or {}).get("error", {}).get("message", f"HTTP {resp.status}")
                    raise Unavailable(f"the leader did not take the heartbeats: {message}")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("event=heartbeat_forward_failed url=%s error=%s", url, type(exc).__name__)
            raise Unavailable("could not reach the leader to renew the lease; retry") from None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(keys):
            raise Unavailable("the leader answered the heartbeats with an unexpected body")
        return results
