"""``HeartbeatForwarder``: a follower passes heartbeats on to the leader, which holds the leases.

Contract:
- ``renew(service, id)`` returns the instance's ttl once the leader renewed its lease, or raises
  the leader's verdict for it (``NotFound``, ``InvalidArgument``, ``Unavailable``, from the one
  error table); ``Unavailable`` too when the leader cannot be reached in time (the client
  retries: a new leader re-arms every lease with a grace, so a heartbeat lost in a failover never
  expires an instance).
- Heartbeats are batched like group commit: one batch in flight to the leader at a time; what
  arrives meanwhile goes out together in the next one (at most ``max_batch``). Under load a
  follower sends the leader a few batches instead of thousands of requests per second.
- Backpressure: at most ``max_queued`` heartbeats wait; more are refused at once with
  ``Unavailable`` (nothing was renewed; the client retries, here or on another node).
- The transport (route, signature) is ``Peers.renew_leases``; this module only batches.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from raftreg.errors import RaftregError, Unavailable, error_from_body
from raftreg.node.leases import LeaseKey
from raftreg.node.peers import Peers
from raftreg.node.tasks import cancel_and_wait

log = logging.getLogger("raftreg.heartbeats")


class HeartbeatForwarder:
    def __init__(self, leader: Callable[[], str | None], peers: Peers, *, max_batch: int, max_queued: int) -> None:
        self._leader = leader
        self._peers = peers
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._queue: collections.deque[tuple[LeaseKey, asyncio.Future[float]]] = collections.deque()
        self._sender: asyncio.Task[None] | None = None
        self.batches = 0
        self.forwarded = 0
        self.refused = 0

    async def renew(self, service: str, instance_id: str) -> float:
        if len(self._queue) >= self._max_queued:
            self.refused += 1
            raise Unavailable(f"this node holds {len(self._queue)} heartbeats for the leader (its limit); "
                              "retry shortly", retry_after=1.0)
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

    async def _send_all(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            batch = [(key, fut) for key, fut in batch if not fut.done()]  # callers that gave up
            if not batch:
                continue
            try:
                results = await self._send([key for key, _ in batch])
            except Exception as exc:  # never leave a caller waiting on a batch that failed
                if not isinstance(exc, RaftregError):
                    log.exception("event=heartbeat_forward_failed")
                message = exc.message if isinstance(exc, RaftregError) else "forwarding the heartbeat failed; retry"
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(Unavailable(message, retry_after=0.5))
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    _settle(fut, result)

    async def _send(self, keys: list[LeaseKey]) -> list[object]:
        leader = self._leader()
        if leader is None:
            raise Unavailable("no leader is reachable from this node to renew the lease; retry")
        self.batches += 1
        self.forwarded += len(keys)
        results = await self._peers.renew_leases(leader, keys)
        if len(results) != len(keys):
            raise Unavailable("the leader answered the heartbeats with an unexpected body")
        return list(results)


def _settle(fut: asyncio.Future[float], result: object) -> None:
    """One per-key result from the leader: ``{"ttl": x}`` or an error body (anything else is
    treated as "not renewed": ``Unavailable``)."""
    ttl = result.get("ttl") if isinstance(result, dict) else None
    if isinstance(ttl, int | float) and not isinstance(ttl, bool):
        fut.set_result(float(ttl))
        return
    err = error_from_body(503, result)
    if err.status >= 500 or type(err) is RaftregError:
        err = Unavailable(err.message or "the leader did not renew the lease")
    fut.set_exception(err)
