"""The HTTP API of API.md (instances, services, cluster, health, ready) over a ``RegistryNode``.

Handlers are thin: validate (raftreg.http.validation), call the node, encode. Every error leaves
through ``error_middleware`` as the JSON body of API.md; no traceback ever reaches a client.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from raftreg.errors import InvalidArgument, NotFound, PayloadTooLarge, RaftregError, Unavailable
from raftreg.http.body_cache import BodyCache
from raftreg.http.validation import (
    ReadOptions,
    check_instance_id,
    check_service_name,
    decode_json,
    parse_flag,
    parse_forwarded_heartbeats,
    parse_meta_filters,
    parse_read_options,
    parse_register,
    parse_status,
)
from raftreg.node.heartbeat_forwarder import FORWARD_PATH
from raftreg.node.lease_gossip import GOSSIP_PATH
from raftreg.node.registry_node import ReadContext, RegistryNode
from raftreg.node.watches import CATALOG, service_topic

log = logging.getLogger("raftreg.http")

MAX_BODY = 1024 * 1024
NODE_KEY = web.AppKey("node", RegistryNode)
JSON = "application/json"
_encode = msgspec.json.Encoder().encode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_encode(body), status=status, content_type=JSON, headers=headers)


def error_response(err: RaftregError) -> web.Response:
    headers = {}
    if isinstance(err, Unavailable):
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    return json_response(err.to_body(), status=err.status, headers=headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RaftregError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "invalid_argument" if exc.status < 500 else "internal")
        body = {"error": {"code": code, "message": exc.reason}}
        return json_response(body, status=exc.status, headers={"Allow": exc.headers["Allow"]}
                             if "Allow" in exc.headers else None)
    except Exception:
        log.exception("event=handler_failed method=%s path=%s", request.method, request.path)
        return json_response({"error": {"code": "internal", "message": "internal error"}}, status=500)


def read_headers(ctx: ReadContext) -> dict[str, str]:
    return {
        "X-Raftreg-Index": str(ctx.index),
        "X-Raftreg-Leader": ctx.leader,
        "X-Raftreg-Last-Contact": str(ctx.last_contact_ms),
    }


async def read_body(request: web.Request) -> bytes:
    """The request body, refusing non-JSON content types and bodies over ``MAX_BODY``."""
    ctype = request.headers.get("Content-Type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media and media != JSON and not media.endswith("+json"):
        raise InvalidArgument(f"Content-Type must be {JSON}, got {media!r}", field="Content-Type")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY} bytes") from None


class Api:
    """Route handlers bound to one node."""

    def __init__(self, node: RegistryNode) -> None:
        self.node = node
        self.bodies = BodyCache()

    async def _prepare_read(self, opts: ReadOptions, topic: str) -> None:
        """Everything a read waits for before it reads local state, in this order: this node has
        applied ``min_index``; the blocking query's index moved past ``index`` (or its wait
        passed); then either a barrier through the log (``consistent``: afterwards the state is
        current by definition) or the check that this node has caught up since it started
        (``RegistryNode.check_readable``). Blocking queries may park on a node still catching up:
        they answer only once its state has moved past what their client already saw."""
        if opts.min_index is not None:
            await self.node.wait_applied(opts.min_index, opts.min_index_wait)
        moved = False
        if opts.index is not None:
            wait = opts.blocking_wait
            # Jitter spreads the re-polls of many watchers that timed out together.
            moved = await self.node.wait_for_change(topic, opts.index, wait + random.uniform(0, wait / 16))
        if opts.consistent:
            await self.node.barrier()
        elif not moved:  # an answer past the client's index is never older than what it saw
            self.node.check_readable()

    def _cached_body(
        self, key: tuple[object, ...], topic: str, build: Callable[[], tuple[int, Any]]
    ) -> tuple[int, bytes]:
        """The encoded body of the query ``key`` at its current index, encoded at most once per index."""
        index = self.node.query_index(topic)
        body = self.bodies.get(key, index)
        if body is None:
            index, doc = build()
            body = _encode(doc)
            self.bodies.put(key, index, body)
        return index, body

    def _read_response(self, index: int, body: bytes) -> web.Response:
        return web.Response(body=body, content_type=JSON, headers=read_headers(self.node.read_context(index)))

    async def put_instance(self, request: web.Request) -> web.Response:
        service, instance_id = request.match_info["service"], request.match_info["id"]
        instance = parse_register(service, instance_id, await read_body(request))
        index, stored = await self.node.register(instance)
        body = msgspec.to_builtins(stored)
        body["index"] = index
        return json_response(body, headers={"X-Raftreg-Index": str(index)})

    async def get_instance(self, request: web.Request) -> web.Response:
        service = check_service_name(request.match_info["service"])
        instance_id = check_instance_id(request.match_info["id"])
        await self._prepare_read(parse_read_options(request.query), service_topic(service))
        index, inst = self.node.get_instance(service, instance_id)
        headers = read_headers(self.node.read_context(index))
        if inst is None:
            err = NotFound(f"no instance {instance_id!r} in service {service!r}")
            return json_response(err.to_body(), status=404, headers=headers)
        return json_response(inst, headers=headers)

    async def delete_instance(self, request: web.Request) -> web.Response:
        service = check_service_name(request.match_info["service"])
        instance_id = check_instance_id(request.match_info["id"])
        index, deleted = await self.node.deregister(service, instance_id)
        if not deleted:
            err = NotFound(f"no instance {instance_id!r} in service {service!r}")
            return json_response(err.to_body(), status=404, headers={"X-Raftreg-Index": str(index)})
        return json_response({"deleted": True, "index": index}, headers={"X-Raftreg-Index": str(index)})

    async def heartbeat(self, request: web.Request) -> web.Response:
        """Renew the instance's lease (through the leader, which holds the leases)."""
        service = check_service_name(request.match_info["service"])
        instance_id = check_instance_id(request.match_info["id"])
        ttl = await self.node.heartbeat(service, instance_id)
        return json_response({"ttl": ttl})

    async def forwarded_heartbeats(self, request: web.Request) -> web.Response:
        """A follower's batch of heartbeats (``HeartbeatForwarder``); served by the leader only."""
        keys = parse_forwarded_heartbeats(await read_body(request))
        if not self.node.holds_leases():
            raise Unavailable("this node does not hold the leases (not the leader)", retry_after=0.5)
        return json_response({"results": self.node.leases.renew_many(keys)})

    async def lease_digest(self, request: web.Request) -> web.Response:
        """The leader's gossip: these leases were renewed (``LeaseGossip``)."""
        self.node.leases.saw(parse_forwarded_heartbeats(await read_body(request)))
        return json_response({"ok": True})

    async def put_status(self, request: web.Request) -> web.Response:
        """Set the status by hand (``warning``/``critical``), or clear it (``passing``)."""
        service = check_service_name(request.match_info["service"])
        instance_id = check_instance_id(request.match_info["id"])
        body = parse_status(await read_body(request))
        index, stored = await self.node.set_manual_status(service, instance_id, body.status, body.note)
        out = msgspec.to_builtins(stored)
        out["index"] = index
        return json_response(out, headers={"X-Raftreg-Index": str(index)})

    async def get_service(self, request: web.Request) -> web.Response:
        service = check_service_name(request.match_info["service"])
        query = request.query
        passing = parse_flag(query.get("passing"), "passing")
        tags = query.getall("tag", [])
        meta = parse_meta_filters(query.getall("meta", []))
        topic = service_topic(service)
        await self._prepare_read(parse_read_options(query), topic)

        def build() -> tuple[int, Any]:
            index, instances = self.node.list_instances(service, passing_only=passing, tags=tags, meta=meta)
            return index, {"index": index, "service": service, "instances": instances}

        key = ("service", service, passing, tuple(sorted(set(tags))), tuple(sorted(set(meta))))
        return self._read_response(*self._cached_body(key, topic, build))

    async def list_services(self, request: web.Request) -> web.Response:
        await self._prepare_read(parse_read_options(request.query), CATALOG)

        def build() -> tuple[int, Any]:
            index, services = self.node.list_services()
            return index, {"index": index, "services": services}

        return self._read_response(*self._cached_body(("catalog",), CATALOG, build))

    async def cluster(self, request: web.Request) -> web.Response:
        info = self.node.cluster_info()
        ctx = self.node.read_context(int(info["applied_index"]))  # type: ignore[call-overload]
        return json_response(info, headers=read_headers(ctx))

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "node": self.node.me.name})

    async def ready(self, request: web.Request) -> web.Response:
        ready, reason = self.node.is_ready()
        if not ready:
            raise Unavailable(f"not ready: {reason}", retry_after=1.0)
        return json_response({"ready": True, "node": self.node.me.name})


class _PartitionBody(msgspec.Struct, forbid_unknown_fields=True):
    block: list[str]


_partition_decoder = msgspec.json.Decoder(_PartitionBody)


class DebugApi:
    """Fault and maintenance hooks for tests and chaos runs. Mounted only when the environment
    variable ``RAFTREG_DEBUG_ENDPOINTS=1`` is set for the node process."""

    def __init__(self, node: RegistryNode) -> None:
        self.node = node

    async def resync(self, request: web.Request) -> web.Response:
        """Wipe this node's Raft data and state and rejoin (the watchdog's recovery action)."""
        await self.node.resync()
        return json_response({"resyncing": True})

    async def partition(self, request: web.Request) -> web.Response:
        """Body ``{"block": ["n2", ...]}``: drop Raft traffic with these nodes (``[]`` heals).
        Call it on both sides of a cut."""
        body = decode_json(await read_body(request), _partition_decoder)
        by_name = {n.name: n.raft for n in self.node.config.nodes if n.name != self.node.me.name}
        unknown = [name for name in body.block if name not in by_name]
        if unknown:
            raise InvalidArgument(f"not peers of this node: {unknown}", field="block")
        self.node.raft.block_peers(by_name[name] for name in body.block)
        return json_response({"blocked": sorted(body.block)})

    async def digest(self, request: web.Request) -> web.Response:
        """SHA-256 of this node's state-machine snapshot, with the index it reflects: replicas
        that applied the same log have the same digest (chaos convergence check)."""
        return json_response(self.node.state_digest())

    async def snapshot(self, request: web.Request) -> web.Response:
        """Compact the Raft log into a snapshot at the next tick."""
        self.node.raft.force_snapshot()
        return json_response({"snapshot": "requested"})


def build_app(node: RegistryNode, *, debug_endpoints: bool | None = None) -> web.Application:
    """The aiohttp application serving ``node``."""
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    app[NODE_KEY] = node
    api = Api(node)
    inst = "/v1/services/{service}/instances/{id}"
    app.router.add_put(inst, api.put_instance)
    app.router.add_get(inst, api.get_instance, allow_head=False)
    app.router.add_delete(inst, api.delete_instance)
    app.router.add_put(inst + "/heartbeat", api.heartbeat)
    app.router.add_put(inst + "/status", api.put_status)
    app.router.add_post(FORWARD_PATH, api.forwarded_heartbeats)
    app.router.add_post(GOSSIP_PATH, api.lease_digest)
    app.router.add_get("/v1/services/{service}", api.get_service, allow_head=False)
    app.router.add_get("/v1/services", api.list_services, allow_head=False)
    app.router.add_get("/v1/cluster", api.cluster, allow_head=False)
    app.router.add_get("/v1/health", api.health)
    app.router.add_get("/v1/ready", api.ready)
    if debug_endpoints is None:
        debug_endpoints = os.environ.get("RAFTREG_DEBUG_ENDPOINTS") == "1"
    if debug_endpoints:
        debug = DebugApi(node)
        app.router.add_post("/v1/debug/resync", debug.resync)
        app.router.add_post("/v1/debug/snapshot", debug.snapshot)
        app.router.add_post("/v1/debug/partition", debug.partition)
        app.router.add_get("/v1/debug/digest", debug.digest)
    return app
