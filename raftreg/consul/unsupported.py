"""Consul features raftreg does not serve, answered with a clear 400 instead of a silent 404
(py-consul turns many 404s into ``None``): prepared queries, Connect, namespaces, admin
partitions, events, config entries, peering, intentions, coordinates, snapshots through the
Consul API, the ACL routes other than ``/v1/acl/token/self``, standalone checks, catalog writes
and membership changes (README "Using Consul tools with raftreg" has the table)."""

from __future__ import annotations

from aiohttp import web

from raftreg.consul.routes import ConsulRoutes
from raftreg.consul.wire import ConsulError
from raftreg.http.permissions import OPEN
from raftreg.http.wire import Handler

# Path prefix -> the feature's name, as the error message says it.
UNSUPPORTED: dict[str, str] = {
    "/v1/query": "prepared queries",
    "/v1/connect": "Connect (service mesh)",
    "/v1/agent/connect": "Connect (service mesh)",
    "/v1/health/connect": "Connect (service mesh)",
    "/v1/health/ingress": "Connect ingress gateways",
    "/v1/catalog/connect": "Connect (service mesh)",
    "/v1/catalog/gateway-services": "Connect gateways",
    "/v1/namespace": "namespaces (Consul Enterprise)",
    "/v1/namespaces": "namespaces (Consul Enterprise)",
    "/v1/partition": "admin partitions (Consul Enterprise)",
    "/v1/partitions": "admin partitions (Consul Enterprise)",
    "/v1/event": "events",
    "/v1/config": "config entries",
    "/v1/peering": "cluster peering",
    "/v1/peerings": "cluster peering",
    "/v1/coordinate": "network coordinates",
    "/v1/snapshot": "snapshots through the Consul API (use raftreg's GET /v1/snapshot)",
    "/v1/acl": "ACL management through the Consul API (use raftreg's /v1/acl routes)",
    "/v1/agent/check/register": "checks registered apart from a service (register them with the service)",
    "/v1/agent/check/deregister": "checks registered apart from a service (register them with the service)",
    "/v1/catalog/register": "catalog writes (register through /v1/agent/service/register)",
    "/v1/catalog/deregister": "catalog writes (deregister through /v1/agent/service/deregister)",
    "/v1/agent/join": "gossip membership (raftreg members change through raftreg's /v1/cluster/members)",
    "/v1/agent/leave": "gossip membership (raftreg members change through raftreg's /v1/cluster/members)",
    "/v1/agent/force-leave": "gossip membership (raftreg members change through raftreg's /v1/cluster/members)",
    "/v1/operator/raft/peer": "Raft membership changes through the Consul API (use raftreg's /v1/cluster/members)",
    "/v1/operator/raft/transfer-leader": "leader transfer through the Consul API "
                                         "(use raftreg's /v1/cluster/transfer-leader)",
}


def _handler(feature: str) -> Handler:
    async def unsupported(request: web.Request) -> web.StreamResponse:
        raise ConsulError(400, f"Unsupported: raftreg's Consul API does not serve {feature} "
                               f"({request.method} {request.path}; README: Using Consul tools with raftreg)")

    return unsupported


def add_unsupported_routes(routes: ConsulRoutes) -> None:
    """A catch-all per unsupported feature (any method); added last, so the supported routes
    under the same prefixes (``/v1/acl/token/self``) match first."""
    for prefix, feature in UNSUPPORTED.items():
        handler = _handler(feature)
        for path in (prefix, prefix + "/{tail:.*}"):
            for method in ("GET", "PUT", "POST", "DELETE"):
                routes.add(method, path, handler, OPEN)
