"""How a raftreg ``Instance`` looks through Consul's eyes: the service, its synthetic node, its
checks, and the filter schemas of those shapes (pure: no I/O, no node).

Mapping (README "Using Consul tools with raftreg" documents it for users):
- Service name = raftreg service, Service ID = instance id, Address/Port/Tags as stored,
  ``Weights.Passing`` = weight.
- The node is the synthetic node of the instance's address (``raftreg.node.hosts.host_node``):
  every registering host is one catalog node, and nothing about a raftreg server touches it
  (no ``serfHealth``).
- Fields raftreg has no place for are kept in the instance's meta under the reserved ``consul-``
  prefix (Consul itself reserves that prefix, so no Consul user sends such keys):
  ``consul-tagged-addresses`` (JSON), ``consul-weight-warning``, ``consul-enable-tag-override``,
  ``consul-checks`` (JSON list of ``[type, name]`` in registration order). They are hidden from
  ``Meta`` in Consul answers and visible in native answers.
- Checks: an HTTP/TCP check is raftreg's active ``check`` (status: its verdict); a TTL check is
  raftreg's TTL lease, whose status is the status set by hand (``passing`` when none). A
  single check is ``service:<id>``; two are ``service:<id>:1`` and ``:2`` in registration
  order. Maintenance is a manual ``critical`` whose note starts with ``MAINTENANCE``, shown as
  Consul's ``_service_maintenance:<id>`` check. A status set by hand on an instance without a TTL
  check shows as a check ``raftreg:status:<id>``.
"""

from __future__ import annotations

import json
from typing import Any

from raftreg.models import Instance, Status
from raftreg.node.hosts import host_node

RESERVED_META = "consul-"
META_TAGGED = "consul-tagged-addresses"
META_WEIGHT_WARNING = "consul-weight-warning"
META_TAG_OVERRIDE = "consul-enable-tag-override"
META_CHECKS = "consul-checks"
MAINTENANCE = "consul-maintenance: "
MAINTENANCE_CHECK = "_service_maintenance:"
STATUS_CHECK = "raftreg:status:"

CheckKind = str  # "http", "tcp" or "ttl"


def user_meta(inst: Instance) -> dict[str, str]:
    """The instance's meta without the reserved ``consul-`` keys."""
    if not any(k.startswith(RESERVED_META) for k in inst.meta):
        return inst.meta
    return {k: v for k, v in inst.meta.items() if not k.startswith(RESERVED_META)}


def _json_meta(inst: Instance, key: str, default: Any) -> Any:
    raw = inst.meta.get(key)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def weights(inst: Instance) -> dict[str, int]:
    warning = inst.meta.get(META_WEIGHT_WARNING, "1")
    return {"Passing": inst.weight, "Warning": int(warning) if warning.isdigit() else 1}


def in_maintenance(inst: Instance) -> bool:
    return inst.manual_status is not None and inst.status_note.startswith(MAINTENANCE)


def check_kinds(inst: Instance) -> list[tuple[CheckKind, str]]:
    """``(type, name)`` of the instance's Consul checks, in registration order."""
    stored = _json_meta(inst, META_CHECKS, None)
    if isinstance(stored, list) and all(isinstance(i, list) and len(i) == 2 for i in stored):
        return [(str(kind), str(name)) for kind, name in stored]
    out: list[tuple[CheckKind, str]] = []
    if inst.check is not None:
        out.append(("http" if inst.check.http else "tcp", ""))
    if inst.ttl is not None:
        out.append(("ttl", ""))
    return out


def check_ids(service_id: str, count: int) -> list[str]:
    """Consul's generated check IDs: ``service:<id>`` for one, ``service:<id>:<n>`` for more."""
    if count == 1:
        return [f"service:{service_id}"]
    return [f"service:{service_id}:{n}" for n in range(1, count + 1)]


def service_view(inst: Instance) -> dict[str, Any]:
    """``Service`` of a health entry (and of ``/v1/agent/services`` with ``Datacenter`` added)."""
    return {
        "ID": inst.id, "Service": inst.service, "Tags": list(inst.tags), "Address": inst.address,
        "Port": inst.port, "Meta": user_meta(inst), "Weights": weights(inst),
        "TaggedAddresses": _json_meta(inst, META_TAGGED, {}),
        "EnableTagOverride": inst.meta.get(META_TAG_OVERRIDE) == "true",
        "CreateIndex": inst.create_index, "ModifyIndex": inst.modify_index,
    }


def node_view(inst: Instance, datacenter: str) -> dict[str, Any]:
    """The synthetic node of the instance's host."""
    host = host_node(inst.address)
    return {"ID": host.id, "Node": host.name, "Address": inst.address, "Datacenter": datacenter,
            "TaggedAddresses": {"lan": inst.address, "wan": inst.address}, "Meta": {},
            "CreateIndex": inst.create_index, "ModifyIndex": inst.modify_index}


def catalog_view(inst: Instance, datacenter: str) -> dict[str, Any]:
    """One entry of ``/v1/catalog/service/:name``."""
    host = host_node(inst.address)
    return {
        "ID": host.id, "Node": host.name, "Address": inst.address, "Datacenter": datacenter,
        "TaggedAddresses": {"lan": inst.address, "wan": inst.address}, "NodeMeta": {},
        "ServiceKind": "", "ServiceID": inst.id, "ServiceName": inst.service, "ServiceTags": list(inst.tags),
        "ServiceAddress": inst.address, "ServicePort": inst.port, "ServiceMeta": user_meta(inst),
        "ServiceWeights": weights(inst), "ServiceTaggedAddresses": _json_meta(inst, META_TAGGED, {}),
        "ServiceEnableTagOverride": inst.meta.get(META_TAG_OVERRIDE) == "true", "ServiceProxy": {},
        "ServiceConnect": {}, "CreateIndex": inst.create_index, "ModifyIndex": inst.modify_index,
    }


def _check(inst: Instance, node: str, check_id: str, name: str, status: Status, kind: str, notes: str = "",
           output: str = "") -> dict[str, Any]:
    return {"Node": node, "CheckID": check_id, "Name": name, "Status": status, "Notes": notes, "Output": output,
            "ServiceID": inst.id, "ServiceName": inst.service, "ServiceTags": list(inst.tags), "Type": kind,
            "CreateIndex": inst.create_index, "ModifyIndex": inst.modify_index}


def checks_view(inst: Instance) -> list[dict[str, Any]]:
    """The instance's checks as Consul's ``HealthCheck`` objects (see the module docstring)."""
    node = host_node(inst.address).name
    kinds = check_kinds(inst)
    maintenance = in_maintenance(inst)
    out = []
    for check_id, (kind, name) in zip(check_ids(inst.id, len(kinds)), kinds, strict=True):
        label = name or f"Service '{inst.service}' check"
        if kind == "ttl":
            status: Status = "passing" if maintenance or inst.manual_status is None else inst.manual_status
            note = "" if maintenance else inst.status_note
            out.append(_check(inst, node, check_id, label, status, "ttl", output=note))
        else:
            status = inst.check_status or "critical"
            note = inst.status_note if inst.manual_status is None else ""
            out.append(_check(inst, node, check_id, label, status, kind, output=note))
    if maintenance:
        out.append(_check(inst, node, MAINTENANCE_CHECK + inst.id, "Service Maintenance Mode", "critical",
                          "maintenance", notes=inst.status_note[len(MAINTENANCE):]))
    elif inst.manual_status is not None and not any(kind == "ttl" for kind, _ in kinds):
        out.append(_check(inst, node, STATUS_CHECK + inst.id, "Status set by hand", inst.manual_status, "manual",
                          output=inst.status_note))
    return out


def health_view(inst: Instance, datacenter: str) -> dict[str, Any]:
    """One entry of ``/v1/health/service/:name``."""
    return {"Node": node_view(inst, datacenter), "Service": service_view(inst), "Checks": checks_view(inst)}


# ---- filter schemas (raftreg.consul.filter) ----------------------------------------------
NODE_SCHEMA: dict[str, Any] = {"ID": str, "Node": str, "Address": str, "Datacenter": str, "TaggedAddresses": dict,
                               "Meta": dict, "CreateIndex": int, "ModifyIndex": int}
SERVICE_SCHEMA: dict[str, Any] = {"ID": str, "Service": str, "Tags": list, "Address": str, "Port": int,
                                  "Meta": dict, "Weights": {"Passing": int, "Warning": int},
                                  "TaggedAddresses": dict, "EnableTagOverride": bool, "Datacenter": str,
                                  "CreateIndex": int, "ModifyIndex": int}
CHECK_SCHEMA: dict[str, Any] = {"Node": str, "CheckID": str, "Name": str, "Status": str, "Notes": str,
                                "Output": str, "ServiceID": str, "ServiceName": str, "ServiceTags": list,
                                "Type": str, "CreateIndex": int, "ModifyIndex": int}
HEALTH_SCHEMA: dict[str, Any] = {"Node": NODE_SCHEMA, "Service": SERVICE_SCHEMA, "Checks": [CHECK_SCHEMA]}
CATALOG_SCHEMA: dict[str, Any] = {
    "ID": str, "Node": str, "Address": str, "Datacenter": str, "TaggedAddresses": dict, "NodeMeta": dict,
    "ServiceKind": str, "ServiceID": str, "ServiceName": str, "ServiceTags": list, "ServiceAddress": str,
    "ServicePort": int, "ServiceMeta": dict, "ServiceWeights": {"Passing": int, "Warning": int},
    "ServiceTaggedAddresses": dict, "ServiceEnableTagOverride": bool, "CreateIndex": int, "ModifyIndex": int,
}
