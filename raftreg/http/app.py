"""The HTTP API of API.md (instances, services, cluster, health, ready) over a ``RegistryNode``.

Handlers are thin: validate (raftreg.http.validation), call the node, encode. Every error leaves
through ``error_middleware`` as the JSON body of API.md; no traceback ever reaches a client.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from raftreg.errors import InvalidArgument, NotFound, PayloadTooLarge, RaftregError, Unavailable
from raftreg.http.validation import (
    check_instance_id,
    check_service_name,
    parse_flag,
    parse_meta_filters,
    parse_register,
)
from raftreg.node.registry_node import ReadContext, RegistryNode

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

    async def _barrier_if_consistent(self, request: web.Request) -> None:
        if parse_flag(request.query.get("consistent"), "consistent"):
            await self.node.barrier()

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
        await self._barrier_if_consistent(request)
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

    async def get_service(self, request: web.Request) -> web.Response:
        service = check_service_name(request.match_info["service"])
        query = request.query
        passing = parse_flag(query.get("passing"), "passing")
        tags = query.getall("tag", [])
        meta = parse_meta_filters(query.getall("meta", []))
        await self._barrier_if_consistent(request)
        index, instances = self.node.list_instances(service, passing_only=passing, tags=tags, meta=meta)
        body = {"index": index, "service": service, "instances": instances}
        return json_response(body, headers=read_headers(self.node.read_context(index)))

    async def list_services(self, request: web.Request) -> web.Response:
        await self._barrier_if_consistent(request)
        index, services = self.node.list_services()
        return json_response({"index": index, "services": services},
                             headers=read_headers(self.node.read_context(index)))

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


class DebugApi:
    """Fault and maintenance hooks for tests and chaos runs. Mounted only when the environment
    variable ``RAFTREG_DEBUG_ENDPOINTS=1`` is set for the node process."""

    def __init__(self, node: RegistryNode) -> None:
        self.node = node

    async def resync(self, request: web.Request) -> web.Response:
        """Wipe this node's Raft data and state and rejoin (the watchdog's recovery action)."""
        await asyncio.get_running_loop().run_in_executor(None, self.node.raft.wipe_and_restart)
        return json_response({"resyncing": True})

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
    return app
