"""``/v1/health/...``: instances with their checks, the checks of a service or a node, and every
check in a state.

``service/:name`` is the lookup Prometheus, Traefik and consul-template run (blocking, on the
service's topic only). ``passing`` keeps the instances whose every check passes (raftreg's
``passing`` status); ``tag`` repeats and all must match. Its encoded answer is reused while the
service's index has not moved (``raftreg.http.body_cache``), as the native lookup does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from raftreg.consul.listing import ConsulReads, all_instances, compile_filter, node_meta, readable
from raftreg.consul.model import CHECK_SCHEMA, HEALTH_SCHEMA, checks_view, health_view
from raftreg.consul.routes import ConsulRoutes
from raftreg.consul.wire import (
    bad_request,
    blocking_content,
    encode,
    parse_flag,
    parse_query,
    read_response,
)
from raftreg.http.permissions import BY_COMMAND
from raftreg.node.hosts import host_node
from raftreg.node.reads import CATALOG, service_topic

STATES = ("any", "passing", "warning", "critical")


class HealthApi(ConsulReads):

    async def service(self, request: web.Request) -> web.Response:
        name = request.match_info["service"]
        passing = parse_flag(request.query, "passing")
        tags = request.query.getall("tag", [])
        keep = compile_filter(request, HEALTH_SCHEMA)
        metas = node_meta(request)
        await self._prepare(request, service_topic(name))
        if keep is None and not metas and not self.node.acl.enabled:
            key = (name, passing, tuple(sorted(set(tags))))
            index = self.node.query_index(service_topic(name))
            body = self.bodies.get(key, index)
            if body is None:
                index, instances = self.node.list_instances(name, passing_only=passing, tags=tags)
                body = encode([health_view(i, self.dc) for i in instances])
                self.bodies.put(key, index, body)
            return read_response(self.node, index, body)
        index, instances = self.node.list_instances(name, passing_only=passing, tags=tags)
        instances, filtered = readable(self.node, instances)
        views = [] if metas else [health_view(i, self.dc) for i in instances]
        return read_response(self.node, index, [v for v in views if keep is None or keep(v)], filtered=filtered)

    async def service_checks(self, request: web.Request) -> web.Response:
        name = request.match_info["service"]
        keep = compile_filter(request, CHECK_SCHEMA)
        await self._prepare(request, service_topic(name))
        index, instances = self.node.list_instances(name)
        instances, filtered = readable(self.node, instances)
        checks = [c for i in instances for c in checks_view(i) if keep is None or keep(c)]
        return read_response(self.node, index, checks, filtered=filtered)

    async def node_checks(self, request: web.Request) -> web.Response:
        keep = compile_filter(request, CHECK_SCHEMA)
        await self._prepare(request, CATALOG)
        index, instances = all_instances(self.node)
        instances, filtered = readable(self.node, instances)
        name = request.match_info["node"]
        checks = [c for i in instances if host_node(i.address).name == name for c in checks_view(i)
                  if keep is None or keep(c)]
        return read_response(self.node, index, checks, filtered=filtered)

    async def state(self, request: web.Request) -> web.Response:
        """Every check in a state. A blocking query wakes only when that list changes."""
        state = request.match_info["state"]
        if state not in STATES:
            raise bad_request("state", f"must be one of {', '.join(STATES)}")
        keep = compile_filter(request, CHECK_SCHEMA)
        metas = node_meta(request)
        query = parse_query(request.query, self.dc)

        def build() -> tuple[int, tuple[list[dict[str, Any]], bool]]:
            index, instances = all_instances(self.node)
            instances, filtered = readable(self.node, instances)
            checks = [c for i in instances for c in checks_view(i)
                      if (state == "any" or c["Status"] == state) and (keep is None or keep(c))]
            return index, ([] if metas else checks, filtered)

        index, (checks, filtered) = await blocking_content(self.node, query, CATALOG, build)
        return read_response(self.node, index, checks, filtered=filtered)


def add_health_routes(routes: ConsulRoutes) -> None:
    """Reads only, each filtered to the services the token may read."""
    api = HealthApi(routes.node)
    routes.add("GET", "/v1/health/service/{service}", api.service, BY_COMMAND)
    routes.add("GET", "/v1/health/checks/{service}", api.service_checks, BY_COMMAND)
    routes.add("GET", "/v1/health/node/{node}", api.node_checks, BY_COMMAND)
    routes.add("GET", "/v1/health/state/{state}", api.state, BY_COMMAND)
