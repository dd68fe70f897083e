"""``/v1/agent/...``: registration, TTL check updates, maintenance and the agent's own views.

raftreg has no per-host agent: the cluster is the agent. Every node answers the agent routes
for the whole cluster (``/v1/agent/services`` lists every instance), and a service ID names one
instance across the cluster, as it names one service on a Consul agent: registering an ID
that another service already uses is refused (400 naming ``ID``).

TTL checks are raftreg's TTL leases (``raftreg.consul.model``): ``check/pass|warn|fail`` and
``check/update`` renew the lease (a heartbeat, not a log entry) and write the status only when it
changes. An instance whose TTL runs out is removed (Consul would mark it critical and keep it
until ``DeregisterCriticalServiceAfter``). While a service is in maintenance, TTL updates renew
its lease and leave its status alone.
"""

from __future__ import annotations

import uuid

import msgspec
from aiohttp import web

from raftreg.consul.acl import decider, require
from raftreg.consul.listing import all_instances, compile_filter, find_instance, readable
from raftreg.consul.model import (
    CHECK_SCHEMA,
    MAINTENANCE,
    SERVICE_SCHEMA,
    check_ids,
    check_kinds,
    checks_view,
    in_maintenance,
    service_view,
)
from raftreg.consul.registration import normalize, parse_agent_register
from raftreg.consul.routes import ConsulRoutes
from raftreg.consul.wire import ConsulError, bad_request, check_scope, parse_flag, read_response
from raftreg.http.permissions import BY_COMMAND
from raftreg.http.wire import MAX_BODY, read_raw_body
from raftreg.models import Instance, Status
from raftreg.node.reads import CATALOG
from raftreg.node.registry_node import RegistryNode

MAX_NOTE = 512
_STATUS_BY_VERB: dict[str, Status] = {"pass": "passing", "warn": "warning", "fail": "critical"}
CONSUL_VERSION = "1.21.0"  # the Consul version whose API this subset follows (agent/self Config.Version)


class AgentApi:
    def __init__(self, node: RegistryNode) -> None:
        self.node = node
        self.dc = node.config.datacenter

    async def register(self, request: web.Request) -> web.Response:
        self.node.check_write_capacity()
        parse_flag(request.query, "replace-existing-checks")  # raftreg always replaces the definition
        reg = parse_agent_register(await read_raw_body(request, MAX_BODY), request.remote)
        inst = reg.instance
        other = find_instance(self.node, inst.id)
        if other is not None and other.service != inst.service:
            raise bad_request("ID", f"{inst.id!r} is already the ID of an instance of service {other.service!r}; "
                              "service IDs are unique in a raftreg cluster, as on one Consul agent")
        new = other is None
        await self.node.register(inst)
        if reg.status is not None and new:
            await self.node.set_manual_status(inst.service, inst.id, reg.status, "initial status of the TTL check")
        return web.Response(status=200)

    def _instance(self, service_id: str) -> Instance:
        inst = find_instance(self.node, service_id)
        if inst is None:
            raise ConsulError(404, f'Unknown service ID "{service_id}". Ensure that the service ID is passed, '
                                   "not the service name.")
        return inst

    async def deregister(self, request: web.Request) -> web.Response:
        self.node.check_write_capacity()
        inst = self._instance(request.match_info["service_id"])
        await self.node.deregister(inst.service, inst.id)
        return web.Response(status=200)

    def _ttl_instance(self, check_id: str) -> Instance:
        """The instance whose TTL check is ``check_id`` (``service:<id>`` or ``service:<id>:<n>``)."""
        rest = check_id.removeprefix("service:")
        head, sep, tail = rest.rpartition(":")
        candidates = [rest, head] if sep and tail.isdigit() else [rest]  # instance ids may contain ':'
        for service_id in candidates if check_id.startswith("service:") else []:
            inst = find_instance(self.node, service_id) if service_id else None
            if inst is None:
                continue
            kinds = check_kinds(inst)
            ids = check_ids(inst.id, len(kinds))
            if check_id in ids:
                if kinds[ids.index(check_id)][0] != "ttl":
                    raise bad_request("check_id", f"check {check_id!r} is not a TTL check (only TTL checks are "
                                      "updated by clients)")
                return inst
        raise ConsulError(404, f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check '
                               "name.")

    async def _update_ttl(self, check_id: str, status: Status, note: str) -> web.Response:
        if len(note) > MAX_NOTE:
            raise bad_request("note", f"at most {MAX_NOTE} characters")
        inst = self._ttl_instance(check_id)
        require(self.node, "service", inst.service, "write")
        await self.node.heartbeat(inst.service, inst.id)
        current = inst.manual_status or "passing"
        if not in_maintenance(inst) and (current != status or (status != "passing" and inst.status_note != note)):
            await self.node.set_manual_status(inst.service, inst.id, status, note)
        return web.Response(status=200)

    async def check_verb(self, request: web.Request) -> web.Response:
        status = _STATUS_BY_VERB[request.match_info["verb"]]
        return await self._update_ttl(request.match_info["check_id"], status, request.query.get("note", ""))

    async def check_update(self, request: web.Request) -> web.Response:
        raw = await read_raw_body(request, 64 * 1024)
        try:
            body = normalize(msgspec.json.decode(raw) if raw.strip() else {}, "body")
        except msgspec.DecodeError as exc:
            raise ConsulError(400, f"Request decode failed: {exc}") from None
        status = body.get("status", "")
        if status not in ("passing", "warning", "critical"):
            raise bad_request("Status", "must be passing, warning or critical")
        output = body.get("output") or ""
        if not isinstance(output, str):
            raise bad_request("Output", "must be a string")
        return await self._update_ttl(request.match_info["check_id"], status, output)

    async def maintenance(self, request: web.Request) -> web.Response:
        self.node.check_write_capacity()
        if "enable" not in request.query:
            raise bad_request("enable", "missing value for enable")
        enable = parse_flag(request.query, "enable")
        reason = request.query.get("reason", "") or "Maintenance mode is enabled for this service"
        if len(reason) > MAX_NOTE - len(MAINTENANCE):
            raise bad_request("reason", f"at most {MAX_NOTE - len(MAINTENANCE)} characters")
        inst = self._instance(request.match_info["service_id"])
        if enable:
            await self.node.set_manual_status(inst.service, inst.id, "critical", MAINTENANCE + reason)
        elif in_maintenance(inst):
            await self.node.set_manual_status(inst.service, inst.id, "passing", "")
        return web.Response(status=200)

    async def services(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.dc)
        keep = compile_filter(request, SERVICE_SCHEMA)
        index, instances = all_instances(self.node)
        instances, filtered = readable(self.node, instances)
        out = {}
        for inst in instances:
            view = service_view(inst)
            view["Datacenter"] = self.dc
            if keep is None or keep(view):
                out[inst.id] = view
        return read_response(self.node, index, out, filtered=filtered)

    async def service(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.dc)
        inst = find_instance(self.node, request.match_info["service_id"])
        if inst is None or not decider(self.node)("service", inst.service, "read"):
            raise ConsulError(404, f"unknown service ID: {request.match_info['service_id']}")
        view = service_view(inst)
        view["Datacenter"] = self.dc
        return read_response(self.node, inst.modify_index, view)

    async def checks(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.dc)
        keep = compile_filter(request, CHECK_SCHEMA)
        index, instances = all_instances(self.node)
        instances, filtered = readable(self.node, instances)
        out = {c["CheckID"]: c for inst in instances for c in checks_view(inst)
               if keep is None or keep(c)}
        return read_response(self.node, index, out, filtered=filtered)

    async def self_(self, request: web.Request) -> web.Response:
        node_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"raftreg:{self.node.config.name}:{self.node.name}"))
        host, _, port = (self.node.me.consul_http or self.node.me.http).rpartition(":")
        config = {"Datacenter": self.dc, "PrimaryDatacenter": self.dc, "NodeName": self.node.name,
                  "NodeID": node_id, "Server": True, "Revision": "raftreg", "Version": CONSUL_VERSION}
        member = {"Name": self.node.name, "Addr": host, "Port": int(port), "Status": 1,
                  "Tags": {"role": "consul", "dc": self.dc, "id": node_id, "vsn": "2"}}
        return read_response(self.node, self.node.query_index(CATALOG),
                             {"Config": config, "Member": member, "Meta": {}, "DebugConfig": {}})


    async def members(self, request: web.Request) -> web.Response:
        """The raftreg members as Consul's LAN members (``Status`` 1 = alive, 4 = failed: this node
        has no connection to it); ``Addr``/``Port`` are the member's Raft address."""
        check_scope(request.query, self.dc)
        out = []
        for member in self.node.cluster_info()["members"]:
            host, _, port = str(member["raft"]).rpartition(":")
            out.append({"Name": member["name"], "Addr": host, "Port": int(port), "Status":
                        4 if member["status"] == "unreachable" else 1,
                        "Tags": {"role": "consul", "dc": self.dc, "raftreg_http": member["http"]}})
        return read_response(self.node, self.node.query_index(CATALOG), out)


def add_agent_routes(routes: ConsulRoutes) -> None:
    """Writes are checked by the write path (a registration by its command; TTL updates by
    ``require``); reads are filtered to what the token may read."""
    api = AgentApi(routes.node)
    routes.add("PUT", "/v1/agent/service/register", api.register, BY_COMMAND)
    routes.add("PUT", "/v1/agent/service/deregister/{service_id}", api.deregister, BY_COMMAND)
    routes.add("PUT", "/v1/agent/service/maintenance/{service_id}", api.maintenance, BY_COMMAND)
    routes.add("PUT", "/v1/agent/check/{verb:pass|warn|fail}/{check_id}", api.check_verb, BY_COMMAND)
    routes.add("PUT", "/v1/agent/check/update/{check_id}", api.check_update, BY_COMMAND)
    routes.add("GET", "/v1/agent/services", api.services, BY_COMMAND)
    routes.add("GET", "/v1/agent/service/{service_id}", api.service, BY_COMMAND)
    routes.add("GET", "/v1/agent/checks", api.checks, BY_COMMAND)
    routes.add("GET", "/v1/agent/self", api.self_, BY_COMMAND)
    routes.add("GET", "/v1/agent/members", api.members, BY_COMMAND)
