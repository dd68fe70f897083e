"""``/v1/catalog/...``: services, one service's instances, the synthetic nodes, datacenters.

Every registering host is a synthetic catalog node (``raftreg.node.hosts``). Blocking queries
park on the topic behind the answer: ``services``, ``nodes`` and ``node/:node`` on the catalog
topic (any service change), ``service/:name`` on that service's topic only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from raftreg.consul.listing import ConsulReads, all_instances, compile_filter, node_meta, readable
from raftreg.consul.model import CATALOG_SCHEMA, NODE_SCHEMA, SERVICE_SCHEMA, catalog_view, node_view, service_view
from raftreg.consul.routes import ConsulRoutes
from raftreg.consul.wire import (
    blocking_content,
    check_scope,
    encode,
    parse_query,
    read_response,
)
from raftreg.http.permissions import BY_COMMAND
from raftreg.models import Instance
from raftreg.node.hosts import host_node
from raftreg.node.reads import CATALOG, service_topic


def nodes_of(instances: list[Instance], datacenter: str) -> dict[str, dict[str, Any]]:
    """The synthetic nodes of ``instances`` by name (indexes: first created, last modified)."""
    nodes: dict[str, dict[str, Any]] = {}
    for inst in instances:
        view = nodes.get(host_node(inst.address).name)
        if view is None:
            nodes[host_node(inst.address).name] = node_view(inst, datacenter)
        else:
            view["CreateIndex"] = min(view["CreateIndex"], inst.create_index)
            view["ModifyIndex"] = max(view["ModifyIndex"], inst.modify_index)
    return nodes


class CatalogApi(ConsulReads):

    async def services(self, request: web.Request) -> web.Response:
        """Service names and their tags. A blocking query wakes only when that changes (a health
        status change moves the catalog's index, not this answer)."""
        keep = compile_filter(request, CATALOG_SCHEMA)
        metas = node_meta(request)
        query = parse_query(request.query, self.dc)

        def build() -> tuple[int, tuple[dict[str, list[str]], bool]]:
            index, instances = all_instances(self.node)
            instances, filtered = readable(self.node, instances)
            out: dict[str, set[str]] = {}
            for inst in instances:
                if metas or (keep is not None and not keep(catalog_view(inst, self.dc))):
                    continue
                out.setdefault(inst.service, set()).update(inst.tags)
            return index, ({name: sorted(tags) for name, tags in out.items()}, filtered)

        index, (services, filtered) = await blocking_content(self.node, query, CATALOG, build)
        return read_response(self.node, index, services, filtered=filtered)

    async def service(self, request: web.Request) -> web.Response:
        name = request.match_info["service"]
        tags = request.query.getall("tag", [])
        keep = compile_filter(request, CATALOG_SCHEMA)
        metas = node_meta(request)
        topic = service_topic(name)
        await self._prepare(request, topic)
        index, instances = self.node.list_instances(name, tags=tags)
        instances, filtered = readable(self.node, instances)
        if metas:
            instances = []
        if keep is None and not filtered:
            key = ("catalog-service", name, tuple(sorted(set(tags))), bool(metas))
            body = self.bodies.get(key, index)
            if body is None:
                body = encode([catalog_view(i, self.dc) for i in instances])
                self.bodies.put(key, index, body)
            return read_response(self.node, index, body)
        views = [v for v in (catalog_view(i, self.dc) for i in instances) if keep is None or keep(v)]
        return read_response(self.node, index, views, filtered=filtered)

    async def nodes(self, request: web.Request) -> web.Response:
        keep = compile_filter(request, NODE_SCHEMA)
        metas = node_meta(request)
        await self._prepare(request, CATALOG)
        index, instances = all_instances(self.node)
        instances, filtered = readable(self.node, instances)
        nodes = [] if metas else sorted(nodes_of(instances, self.dc).values(), key=lambda n: str(n["Node"]))
        return read_response(self.node, index, [n for n in nodes if keep is None or keep(n)], filtered=filtered)

    async def node_services(self, request: web.Request) -> web.Response:
        """``/v1/catalog/node/:node``: the node and its services (``null`` for an unknown node)."""
        keep = compile_filter(request, SERVICE_SCHEMA)
        await self._prepare(request, CATALOG)
        index, instances = all_instances(self.node)
        instances, filtered = readable(self.node, instances)
        name = request.match_info["node"]
        mine = [i for i in instances if host_node(i.address).name == name]
        if not mine:
            return read_response(self.node, index, None, filtered=filtered)
        views = [service_view(i) for i in mine]
        services = {v["ID"]: v for v in views if keep is None or keep(v)}
        return read_response(self.node, index, {"Node": nodes_of(mine, self.dc)[name], "Services": services},
                             filtered=filtered)

    async def datacenters(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.dc)
        return read_response(self.node, self.node.query_index(CATALOG), [self.dc])


def add_catalog_routes(routes: ConsulRoutes) -> None:
    """Reads only, each filtered to the services the token may read."""
    api = CatalogApi(routes.node)
    routes.add("GET", "/v1/catalog/services", api.services, BY_COMMAND)
    routes.add("GET", "/v1/catalog/service/{service}", api.service, BY_COMMAND)
    routes.add("GET", "/v1/catalog/nodes", api.nodes, BY_COMMAND)
    routes.add("GET", "/v1/catalog/node/{node}", api.node_services, BY_COMMAND)
    routes.add("GET", "/v1/catalog/datacenters", api.datacenters, BY_COMMAND)
