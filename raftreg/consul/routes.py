"""``ConsulRoutes``: how every module of the Consul-compatible API adds its routes, each with the
permission it needs (``raftreg.http.permissions.Need``), recorded in the one table the ACL
middleware reads (``raftreg.consul.acl``). A route added any other way has no entry and is
refused when ACLs are on."""

from __future__ import annotations

from aiohttp import web

from raftreg.consul.acl import RouteTable
from raftreg.http.permissions import Need
from raftreg.http.wire import Handler
from raftreg.node.registry_node import RegistryNode

NODE_KEY = web.AppKey("consul_node", RegistryNode)
ROUTE_TABLE = web.AppKey("consul_route_table", dict)  # the RouteTable of the app (read by tests and tools)


class ConsulRoutes:
    """Adds routes to ``app`` together with the permission each needs; ``node`` is what the
    handlers serve."""

    def __init__(self, app: web.Application, node: RegistryNode) -> None:
        self.app = app
        self.node = node
        self.table: RouteTable = {}
        app[ROUTE_TABLE] = self.table

    def add(self, method: str, path: str, handler: Handler, need: Need) -> None:
        """Serve ``method path`` with ``handler``; ``need`` is what ACLs require of it."""
        route = self.app.router.add_route(method, path, handler)
        if route.resource is None:
            raise RuntimeError(f"route {method} {path} has no resource")
        self.table[(method, route.resource.canonical)] = need  # the form the middleware looks up
