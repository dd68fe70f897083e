"""Run-time membership routes (API.md "Cluster and node"), over ``RegistryNode.members``.

- ``POST /v1/cluster/members`` ``{"name", "raft", "http", "role"?, "consul_http"?, "dns"?}``
- ``DELETE /v1/cluster/members/{name}``
- ``POST /v1/cluster/transfer-leader`` ``{"to"?: name}``
- ``GET /v1/cluster/config``: the live membership as a cluster config, TOML (``?format=toml`` or
  ``Accept: application/toml``/``text/*``) or JSON (the default: ``name``, ``nodes`` and the TOML
  text as ``toml``).

Bad input is a 400 naming the field, before anything is asked of the cluster; the changes
themselves answer as ``raftreg.node.member_changes`` says (409 preflight refusals, 503 on a
follower naming the leader: clients retry elsewhere, 504 when the outcome is unknown).
Permissions (``raftreg.http.permissions``): operator write for the changes, operator read for the
config.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from raftreg.config import ConfigError, NodeConfig, dump_config, split_hostport
from raftreg.errors import InvalidArgument
from raftreg.http.validation import decode_json
from raftreg.http.wire import json_response, read_body
from raftreg.node.registry_node import RegistryNode

MEMBERS = "/v1/cluster/members"
MEMBER = MEMBERS + "/{name}"
TRANSFER_LEADER = "/v1/cluster/transfer-leader"
CLUSTER_CONFIG = "/v1/cluster/config"

MEMBER_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z"
MemberName = Annotated[str, msgspec.Meta(pattern=MEMBER_NAME_RE)]
HostPort = Annotated[str, msgspec.Meta(min_length=3, max_length=261)]


class AddMemberBody(msgspec.Struct, forbid_unknown_fields=True):
    name: MemberName
    raft: HostPort
    http: HostPort
    role: Literal["voter", "replica"] = "voter"
    consul_http: HostPort | None = None
    dns: HostPort | None = None


class TransferBody(msgspec.Struct, forbid_unknown_fields=True):
    to: MemberName | None = None


_add_decoder = msgspec.json.Decoder(AddMemberBody)
_transfer_decoder = msgspec.json.Decoder(TransferBody)


def parse_add_member(body: bytes) -> NodeConfig:
    spec = decode_json(body, _add_decoder)
    for field in ("raft", "http", "consul_http", "dns"):
        value = getattr(spec, field)
        if value is not None:
            try:
                split_hostport(value)
            except ConfigError:
                raise InvalidArgument(f"{field} must be host:port, got {value!r}", field=field) from None
    return NodeConfig(name=spec.name, http=spec.http, raft=spec.raft, consul_http=spec.consul_http, dns=spec.dns,
                      role=spec.role)


def _check_name(name: str) -> str:
    if not re.match(MEMBER_NAME_RE, name):
        raise InvalidArgument(f"not a member name: {name!r}", field="name")
    return name


def _wants_toml(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in ("toml", "json"):
            raise InvalidArgument("format must be toml or json", field="format")
        return fmt == "toml"
    accept = request.headers.get("Accept", "")
    return "toml" in accept or accept.startswith("text/")


class MembersApi:
    def __init__(self, node: RegistryNode) -> None:
        self.node = node

    async def add(self, request: web.Request) -> web.Response:
        new = parse_add_member(await read_body(request))
        index = await self.node.members.add(new)
        return json_response({"added": new.name, "role": new.role, "index": index},
                             headers={"X-Raftreg-Index": str(index)})

    async def remove(self, request: web.Request) -> web.Response:
        name = _check_name(request.match_info["name"])
        index = await self.node.members.remove(name)
        return json_response({"removed": name, "index": index}, headers={"X-Raftreg-Index": str(index)})

    async def transfer(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        to = decode_json(body, _transfer_decoder).to if body.strip() else None
        leader = await self.node.members.transfer(to)
        return json_response({"leader": leader})

    async def config(self, request: web.Request) -> web.Response:
        config = self.node.config
        if _wants_toml(request):
            return web.Response(text=dump_config(config), content_type="application/toml")
        return json_response({"name": config.name, "nodes": [msgspec.to_builtins(n) for n in config.nodes],
                              "toml": dump_config(config)})


def add_member_routes(app: web.Application, node: RegistryNode) -> None:
    api = MembersApi(node)
    app.router.add_post(MEMBERS, api.add)
    app.router.add_delete(MEMBER, api.remove)
    app.router.add_post(TRANSFER_LEADER, api.transfer)
    app.router.add_get(CLUSTER_CONFIG, api.config, allow_head=False)
