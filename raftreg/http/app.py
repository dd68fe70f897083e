"""The HTTP API of API.md (instances, services, cluster, health, ready) over a ``RegistryNode``;
the key/value routes are in ``raftreg.http.kv_api``.

Handlers are thin: validate (raftreg.http.validation), call the node facade, encode. Errors
leave through ``raftreg.http.wire.error_middleware``. The signed node-to-node and debug routes
are in ``raftreg.http.internal``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from raftreg.errors import InvalidArgument, NotFound, Unavailable
from raftreg.http import routes
from raftreg.http.acl_api import add_acl_routes
from raftreg.http.auth import AclMiddleware
from raftreg.http.body_cache import BodyCache
from raftreg.http.internal import add_signed_routes
from raftreg.http.kv_api import add_kv_routes
from raftreg.http.limits import install_limits
from raftreg.http.members_api import add_member_routes
from raftreg.http.metrics import install_metrics
from raftreg.http.openapi import OPENAPI_PATH, document_bytes
from raftreg.http.request_log import install_request_log
from raftreg.http.session_api import add_session_routes
from raftreg.http.snapshot_api import add_snapshot_routes
from raftreg.http.ui import add_ui_routes
from raftreg.http.validation import (
    check_instance_id,
    check_service_name,
    parse_flag,
    parse_meta_filters,
    parse_read_options,
    parse_register,
    parse_status,
)
from raftreg.http.wire import (
    JSON,
    MAX_BODY,
    encode,
    error_middleware,
    instance_with_index,
    json_response,
    read_body,
    read_headers,
)
from raftreg.node.reads import CATALOG, service_topic
from raftreg.node.registry_node import RegistryNode
from raftreg.signing import Verifier

NODE_KEY = web.AppKey("node", RegistryNode)


def _write_headers(index: int) -> dict[str, str]:
    return {"X-Raftreg-Index": str(index)}


class Api:
    """Route handlers bound to one node."""

    def __init__(self, node: RegistryNode) -> None:
        self.node = node
        self.bodies = BodyCache()

    def _cached_body(
        self, key: tuple[object, ...], topic: str, build: Callable[[], tuple[int, Any]]
    ) -> tuple[int, bytes]:
        """The encoded body of the query ``key`` at its current index, encoded at most once per index."""
        index = self.node.query_index(topic)
        body = self.bodies.get(key, index)
        if body is None:
            index, doc = build()
            body = encode(doc)
            self.bodies.put(key, index, body)
        return index, body

    def _read_response(self, index: int, body: bytes) -> web.Response:
        return web.Response(body=body, content_type=JSON, headers=read_headers(self.node.read_context(index)))

    async def put_instance(self, request: web.Request) -> web.Response:
        service, instance_id = request.match_info["service"], request.match_info["id"]
        self.node.check_write_capacity()
        instance = parse_register(service, instance_id, await read_body(request))
        index, stored = await self.node.register(instance)
        return web.Response(body=instance_with_index(stored, index), content_type=JSON, headers=_write_headers(index))

    async def get_instance(self, request: web.Request) -> web.Response:
        service = check_service_name(request.match_info["service"])
        instance_id = check_instance_id(request.match_info["id"])
        await self.node.prepare_read(parse_read_options(request.query), service_topic(service))
        index, inst = self.node.get_instance(service, instance_id)
        headers = read_headers(self.node.read_context(index))
        if inst is None:
            err = NotFound(f"no instance {instance_id!r} in service {service!r}")
            return json_response(err.to_body(), status=404, headers=headers)
        return json_response(inst, headers=headers)

    async def delete_instance(self, request: web.Request) -> web.Response:
        service = check_service_name(request.match_info["service"])
        instance_id = check_instance_id(request.match_info["id"])
        self.node.check_write_capacity()
        index, deleted = await self.node.deregister(service, instance_id)
        if not deleted:
            err = NotFound(f"no instance {instance_id!r} in service {service!r}")
            return json_response(err.to_body(), status=404, headers=_write_headers(index))
        return json_response({"deleted": True, "index": index}, headers=_write_headers(index))

    async def heartbeat(self, request: web.Request) -> web.Response:
        """Renew the instance's lease (through the leader, which holds the leases)."""
        service = check_service_name(request.match_info["service"])
        instance_id = check_instance_id(request.match_info["id"])
        return json_response({"ttl": await self.node.heartbeat(service, instance_id)})

    async def put_status(self, request: web.Request) -> web.Response:
        """Set the status by hand (``warning``/``critical``), or clear it (``passing``)."""
        service = check_service_name(request.match_info["service"])
        instance_id = check_instance_id(request.match_info["id"])
        self.node.check_write_capacity()
        body = parse_status(await read_body(request))
        index, stored = await self.node.set_manual_status(service, instance_id, body.status, body.note)
        return web.Response(body=instance_with_index(stored, index), content_type=JSON, headers=_write_headers(index))

    async def get_service(self, request: web.Request) -> web.Response:
        service = check_service_name(request.match_info["service"])
        query = request.query
        passing = parse_flag(query.get("passing"), "passing")
        tags = query.getall("tag", [])
        meta = parse_meta_filters(query.getall("meta", []))
        topic = service_topic(service)
        await self.node.prepare_read(parse_read_options(query), topic)

        def build() -> tuple[int, Any]:
            index, instances = self.node.list_instances(service, passing_only=passing, tags=tags, meta=meta)
            return index, {"index": index, "service": service, "instances": instances}

        key = ("service", service, passing, tuple(sorted(set(tags))), tuple(sorted(set(meta))))
        return self._read_response(*self._cached_body(key, topic, build))

    async def leases(self, request: web.Request) -> web.Response:
        """Seconds left on the leases of a service's instances, as this node knows them
        (``RegistryNode.lease_remaining``); not a blocking read: heartbeats move no index."""
        service = check_service_name(request.match_info["service"])
        index, exact, left = self.node.lease_remaining(service)
        body = {"index": index, "service": service, "node": self.node.name, "exact": exact, "leases": left}
        return json_response(body, headers=read_headers(self.node.read_context(index)))

    async def list_services(self, request: web.Request) -> web.Response:
        await self.node.prepare_read(parse_read_options(request.query), CATALOG)

        def build() -> tuple[int, Any]:
            index, services = self.node.list_services()
            return index, {"index": index, "services": services}

        return self._read_response(*self._cached_body(("catalog",), CATALOG, build))

    async def cluster(self, request: web.Request) -> web.Response:
        """This node's Raft view. ``?index=N&wait=W`` holds the answer until this node's applied
        index exceeds N, or its role, leader (or whether it is usable), term or connected peers
        change, or W passes."""
        opts = parse_read_options(request.query)
        for unsupported in ("consistent", "min_index"):
            if unsupported in request.query:
                raise InvalidArgument(f"/v1/cluster takes ?index and ?wait, not ?{unsupported}", field=unsupported)
        if opts.index is not None:
            wait = opts.blocking_wait
            await self.node.wait_cluster_change(opts.index, wait + random.uniform(0, wait / 16))
        info = self.node.cluster_info()
        return json_response(info, headers=read_headers(self.node.read_context(int(info["applied_index"]))))

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "node": self.node.name})

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 document of this API (``raftreg.http.openapi``), encoded once."""
        return web.Response(body=document_bytes(), content_type=JSON)

    async def ready(self, request: web.Request) -> web.Response:
        ready, reason = self.node.is_ready()
        if not ready:
            raise Unavailable(f"not ready: {reason}", retry_after=1.0)
        return json_response({"ready": True, "node": self.node.name})


def build_app(node: RegistryNode, *, secret: str, debug_endpoints: bool | None = None) -> web.Application:
    """The aiohttp application serving ``node``. ``secret`` verifies node-to-node requests."""
    app = web.Application(middlewares=[error_middleware, AclMiddleware(node, Verifier(secret)).middleware],
                          client_max_size=MAX_BODY)
    app[NODE_KEY] = node
    install_limits(app, node.config.limits, node.acl.accessor_of if node.acl.enabled else None)
    install_metrics(app, node)  # outside the limits: refused requests are counted too
    install_request_log(app, node.config.logging.requests)  # outermost: logs what the client got
    api = Api(node)
    inst = "/v1/services/{service}/instances/{id}"
    app.router.add_put(inst, api.put_instance)
    app.router.add_get(inst, api.get_instance, allow_head=False)
    app.router.add_delete(inst, api.delete_instance)
    app.router.add_put(inst + "/heartbeat", api.heartbeat)
    app.router.add_put(inst + "/status", api.put_status)
    app.router.add_get("/v1/services/{service}", api.get_service, allow_head=False)
    app.router.add_get("/v1/services/{service}/leases", api.leases, allow_head=False)
    app.router.add_get("/v1/services", api.list_services, allow_head=False)
    app.router.add_get(routes.CLUSTER, api.cluster, allow_head=False)
    app.router.add_get("/v1/health", api.health)
    app.router.add_get("/v1/ready", api.ready)
    app.router.add_get(OPENAPI_PATH, api.openapi, allow_head=False)
    add_kv_routes(app, node)
    add_session_routes(app, node)
    add_acl_routes(app, node)
    add_member_routes(app, node)
    add_snapshot_routes(app, node)
    add_ui_routes(app)
    if debug_endpoints is None:
        debug_endpoints = os.environ.get("RAFTREG_DEBUG_ENDPOINTS") == "1"
    add_signed_routes(app, node, Verifier(secret), debug=debug_endpoints)
    return app
