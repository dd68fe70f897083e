"""The signed endpoints: node-to-node (``/v1/internal/...``) and debug hooks (``/v1/debug/...``).

Contract: every handler here first reads the body and checks its signature
(``raftreg.signing.Verifier``) over the method, the raw request target and the body. An unsigned,
badly signed, stale or replayed request gets 403 ``permission_denied`` with the usual error body
and changes nothing; the reason is logged (rate-limited), never sent. The check sits in each
handler, not in a path filter, so no spelling of a path can reach a handler unchecked.

Debug hooks are mounted only when the node runs with ``RAFTREG_DEBUG_ENDPOINTS=1``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from raftreg.errors import PermissionDenied
from raftreg.http import routes
from raftreg.http.validation import decode_json, parse_forwarded_heartbeats
from raftreg.http.wire import json_response, read_body
from raftreg.node.registry_node import RegistryNode
from raftreg.signing import HEADER, SignatureRejected, Verifier

log = logging.getLogger("raftreg.http")

SignedHandler = Callable[[web.Request, bytes], Awaitable[web.Response]]
LOG_EVERY = 10.0


class SignedEndpoints:
    """Checks signatures for the handlers it wraps (see the module docstring)."""

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier
        self._rejected = 0
        self._last_log = float("-inf")

    def wrap(self, handler: SignedHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def checked(request: web.Request) -> web.Response:
            body = await read_body(request)
            try:
                self._verifier.verify(request.headers.get(HEADER), request.method, request.raw_path, body)
            except SignatureRejected as exc:
                self._note_rejection(request, str(exc))
                raise PermissionDenied("this endpoint accepts only requests signed by a cluster member") from None
            return await handler(request, body)

        return checked

    def _note_rejection(self, request: web.Request, reason: str) -> None:
        self._rejected += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY:
            self._last_log = now
            log.warning("event=unsigned_request_rejected path=%s remote=%s reason=%r rejected_so_far=%d",
                        request.path, request.remote, reason, self._rejected)


class InternalApi:
    def __init__(self, node: RegistryNode) -> None:
        self.node = node

    async def forwarded_heartbeats(self, request: web.Request, body: bytes) -> web.Response:
        """A follower's batch of heartbeats (``HeartbeatForwarder``); served by the leader only."""
        return json_response({"results": self.node.renew_forwarded(parse_forwarded_heartbeats(body))})

    async def lease_digest(self, request: web.Request, body: bytes) -> web.Response:
        """The leader's gossip: these leases were renewed."""
        self.node.note_renewals(parse_forwarded_heartbeats(body))
        return json_response({"ok": True})


class _PartitionBody(msgspec.Struct, forbid_unknown_fields=True):
    block: list[str]


_partition_decoder = msgspec.json.Decoder(_PartitionBody)


class DebugApi:
    """Fault and maintenance hooks for tests and chaos runs."""

    def __init__(self, node: RegistryNode) -> None:
        self.node = node

    async def resync(self, request: web.Request, body: bytes) -> web.Response:
        """Wipe this node's Raft data and state (keeping term and vote) and rejoin."""
        await self.node.resync()
        return json_response({"resyncing": True})

    async def partition(self, request: web.Request, body: bytes) -> web.Response:
        """Body ``{"block": ["n2", ...]}``: drop Raft traffic with these nodes (``[]`` heals).
        Call it on both sides of a cut."""
        blocked = self.node.block_peers(decode_json(body, _partition_decoder).block)
        return json_response({"blocked": blocked})

    async def wedge(self, request: web.Request, body: bytes) -> web.Response:
        """Put this replica into pysyncobj's empty-log candidate wedge; the watchdog repairs it."""
        self.node.inject_wedge()
        return json_response({"wedged": True})

    async def digest(self, request: web.Request, body: bytes) -> web.Response:
        """SHA-256 of this node's state-machine snapshot, with the index it reflects."""
        return json_response(self.node.state_digest())

    async def snapshot(self, request: web.Request, body: bytes) -> web.Response:
        """Compact the Raft log into a snapshot at the next tick."""
        self.node.force_snapshot()
        return json_response({"snapshot": "requested"})


def add_signed_routes(app: web.Application, node: RegistryNode, verifier: Verifier, *, debug: bool) -> None:
    signed = SignedEndpoints(verifier)
    internal = InternalApi(node)
    app.router.add_post(routes.FORWARD_HEARTBEATS, signed.wrap(internal.forwarded_heartbeats))
    app.router.add_post(routes.LEASE_DIGEST, signed.wrap(internal.lease_digest))
    if debug:
        hooks = DebugApi(node)
        app.router.add_post(routes.DEBUG_RESYNC, signed.wrap(hooks.resync))
        app.router.add_post(routes.DEBUG_SNAPSHOT, signed.wrap(hooks.snapshot))
        app.router.add_post(routes.DEBUG_PARTITION, signed.wrap(hooks.partition))
        app.router.add_post(routes.DEBUG_WEDGE, signed.wrap(hooks.wedge))
        app.router.add_get(routes.DEBUG_DIGEST, signed.wrap(hooks.digest), allow_head=False)
