"""``/v1/status/leader``, ``/v1/status/peers``, ``/v1/operator/raft/configuration`` and
``/v1/acl/token/self``: the cluster as Consul clients see it.

Consul answers with its servers' RPC addresses (``"10.0.0.1:8300"``), the addresses of its Raft
members. raftreg's equivalent is each member's ``raft`` address (``host:port`` from the cluster
config), so ``status/leader`` names the leader's raft address (``""`` while no leader is known),
``status/peers`` every member's, and ``operator/raft/configuration`` lists the members with
``ID`` = ``Node`` = the member's name.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from raftreg.consul.acl import ACL_NOT_FOUND
from raftreg.consul.routes import ConsulRoutes
from raftreg.consul.wire import ConsulError, check_scope, json_response, read_headers, read_response
from raftreg.http.permissions import OPEN, TOKEN, Need
from raftreg.node.authority import current_authority
from raftreg.node.registry_node import RegistryNode

OPERATOR_READ = Need("resource", "operator", "read")


class StatusApi:
    def __init__(self, node: RegistryNode) -> None:
        self.node = node

    def _info(self, request: web.Request) -> tuple[dict[str, Any], str]:
        """The node's cluster view and the leader's raft address (``""`` when none is known)."""
        check_scope(request.query, self.node.config.datacenter)
        info = self.node.cluster_info()
        leader = next((m["raft"] for m in info["members"] if m["name"] == info["leader"]), "")
        return info, str(leader)

    async def leader(self, request: web.Request) -> web.Response:
        info, leader = self._info(request)
        return read_response(self.node, int(info["commit_index"]), leader)

    async def peers(self, request: web.Request) -> web.Response:
        info, _ = self._info(request)
        return read_response(self.node, int(info["commit_index"]), [m["raft"] for m in info["members"]])

    async def raft_configuration(self, request: web.Request) -> web.Response:
        info, leader = self._info(request)
        servers = [{"ID": m["name"], "Node": m["name"], "Address": m["raft"], "Leader": m["raft"] == leader,
                    "Voter": m.get("role") != "replica", "ProtocolVersion": "3"} for m in info["members"]]
        index = int(info["commit_index"])
        return read_response(self.node, index, {"Servers": servers, "Index": index})

    async def token_self(self, request: web.Request) -> web.Response:
        """The request's token in Consul's shape (its secret is never echoed)."""
        authority = current_authority.get()
        if not self.node.acl.enabled:
            raise ConsulError(400, "ACL support disabled")
        if authority is None or authority.token is None:
            raise ConsulError(403, ACL_NOT_FOUND)
        token = authority.token
        body = {"AccessorID": token.accessor_id, "SecretID": "", "Description": token.description,
                "Policies": [{"ID": name, "Name": name} for name in token.policies],
                "Rules": [str(rule) for rule in token.rules], "Local": False,
                "CreateIndex": token.create_index, "ModifyIndex": token.modify_index}
        return json_response(body, headers=read_headers(self.node, token.modify_index))


def add_status_routes(routes: ConsulRoutes) -> None:
    api = StatusApi(routes.node)
    routes.add("GET", "/v1/status/leader", api.leader, OPEN)
    routes.add("GET", "/v1/status/peers", api.peers, OPEN)
    routes.add("GET", "/v1/operator/raft/configuration", api.raft_configuration, OPERATOR_READ)
    routes.add("GET", "/v1/acl/token/self", api.token_self, TOKEN)
