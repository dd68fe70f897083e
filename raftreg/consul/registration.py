"""``PUT /v1/agent/service/register``'s body, translated into raftreg's register request and
validated by the native API's own validation (``raftreg.http.validation.parse_register``), so
both APIs accept exactly the same instances.

Contract:
- Keys match case-insensitively, and ``snake_case`` is accepted (``tagged_addresses``):
  py-consul sends lower-case keys, Go clients PascalCase. A key given twice (``Name`` and
  ``name``) or unknown is a 400 naming it.
- ``Name`` must be a raftreg service name (a DNS label), ``ID`` (default ``Name``) an instance id;
  an empty ``Address`` is the address the request came from; ``Port`` 1-65535 is required.
- ``Weights.Passing`` is the weight (Consul's default: 1); ``Warning``, ``TaggedAddresses``,
  ``EnableTagOverride`` and check names go into the reserved ``consul-`` meta keys
  (``raftreg.consul.model``); a user ``Meta`` key starting with ``consul-`` is refused, as Consul does.
- ``Check`` and ``Checks``: at most one HTTP or TCP check (raftreg's active check) and one TTL
  check (raftreg's TTL lease). Script, gRPC, Docker, H2PING, UDP, alias and OS-service checks,
  HTTP methods other than GET, headers, bodies and TLS options, a ``CheckID`` other than the
  generated one, an initial ``Status`` on an HTTP/TCP check (they start critical until they
  pass), and Connect/proxy/namespace/partition/locality fields are refused with a 400 naming
  the field: never silently dropped.
- A TTL check starts passing unless its ``Status`` says ``warning`` or ``critical``
  (``Registration.status``, set by a second write right after the registration).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

from raftreg.consul.model import META_CHECKS, META_TAG_OVERRIDE, META_TAGGED, META_WEIGHT_WARNING, RESERVED_META
from raftreg.consul.wire import bad_request
from raftreg.errors import InvalidArgument
from raftreg.http.validation import check_instance_id, check_service_name, parse_register
from raftreg.models import Instance, Status

_TOP = {"id", "name", "address", "port", "tags", "meta", "weights", "taggedaddresses", "check", "checks",
        "enabletagoverride", "kind", "proxy", "connect", "socketpath", "locality", "namespace", "partition",
        "token"}
_UNSUPPORTED_TOP = {"kind": "Kind", "proxy": "Proxy", "connect": "Connect", "socketpath": "SocketPath",
                    "locality": "Locality", "namespace": "Namespace", "partition": "Partition"}
_CHECK_KEYS = {"checkid", "id", "name", "notes", "status", "http", "tcp", "ttl", "interval", "timeout",
               "deregistercriticalserviceafter", "successbeforepassing", "failuresbeforecritical",
               "failuresbeforewarning", "method", "header", "body", "tlsskipverify", "tlsservername",
               "disableredirects", "serviceid", "outputmaxsize", "args", "script", "grpc", "grpcusetls",
               "dockercontainerid", "shell", "h2ping", "h2pingusetls", "udp", "aliasnode", "aliasservice",
               "osservice", "type"}
_UNSUPPORTED_CHECK = {"args": "Args", "script": "Script", "grpc": "GRPC", "dockercontainerid": "DockerContainerID",
                      "h2ping": "H2PING", "udp": "UDP", "aliasnode": "AliasNode", "aliasservice": "AliasService",
                      "osservice": "OSService", "header": "Header", "body": "Body", "tlsskipverify": "TLSSkipVerify",
                      "tlsservername": "TLSServerName", "notes": "Notes", "shell": "Shell",
                      "grpcusetls": "GRPCUseTLS", "h2pingusetls": "H2PingUseTLS"}
# Native field names (in InvalidArgument.field) -> the Consul field the user sent.
_NATIVE_FIELDS = {"address": "Address", "port": "Port", "tags": "Tags", "meta": "Meta", "weight": "Weights.Passing",
                  "ttl": "Check.TTL", "check": "Check", "check.http": "Check.HTTP", "check.tcp": "Check.TCP",
                  "check.interval": "Check.Interval", "check.timeout": "Check.Timeout",
                  "check.deregister_critical_after": "Check.DeregisterCriticalServiceAfter",
                  "check.failures_before_critical": "Check.FailuresBeforeCritical",
                  "check.successes_before_passing": "Check.SuccessBeforePassing"}
MAX_CHECKS = 2


@dataclass(frozen=True)
class Registration:
    instance: Instance
    status: Status | None = None  # an initial TTL check status other than passing


def _empty(value: Any) -> bool:
    return value is None or value in ("", False, 0) or (isinstance(value, dict | list) and not value)


def normalize(obj: Any, where: str) -> dict[str, Any]:
    """``obj``'s keys lower-cased without ``_``/``-`` (``TaggedAddresses``, ``tagged_addresses``)."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise bad_request(where, "must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        norm = key.lower().replace("_", "").replace("-", "")
        if norm in out:
            raise bad_request(f"{where}.{key}" if where != "body" else key, "given twice (keys match "
                              "case-insensitively)")
        out[norm] = value
    return out


def _str(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request(field, "must be a string")
    return value


def _check(raw: Any, where: str) -> tuple[str, dict[str, Any], Status | None, str]:
    """One check: (kind, native fields, initial status, name)."""
    chk = normalize(raw, where)
    for key, value in chk.items():
        if key not in _CHECK_KEYS:
            raise bad_request(where, f"unknown field {key!r}")
        if key in _UNSUPPORTED_CHECK and not _empty(value):
            raise bad_request(f"{where}.{_UNSUPPORTED_CHECK[key]}", "not supported by raftreg (HTTP, TCP and TTL "
                              "checks only; HTTP checks are GET without headers or body)")
    method = _str(chk.get("method"), f"{where}.Method").upper()
    if method not in ("", "GET"):
        raise bad_request(f"{where}.Method", "raftreg's HTTP checks use GET only")
    kinds = [k for k in ("http", "tcp", "ttl") if not _empty(chk.get(k))]
    if len(kinds) != 1:
        raise bad_request(where, "a check needs exactly one of HTTP, TCP and TTL")
    kind = kinds[0]
    status_text = _str(chk.get("status"), f"{where}.Status").lower()
    if status_text not in ("", "passing", "warning", "critical"):
        raise bad_request(f"{where}.Status", "must be passing, warning or critical")
    status: Status | None = status_text or None  # type: ignore[assignment]
    native: dict[str, Any] = {}
    if kind == "ttl":
        native["ttl"] = chk["ttl"]
        return kind, native, status if status != "passing" else None, _str(chk.get("name"), f"{where}.Name")
    if status not in (None, "critical"):
        raise bad_request(f"{where}.Status", "raftreg's HTTP and TCP checks start critical until they pass")
    if _empty(chk.get("interval")):
        raise bad_request(f"{where}.Interval", "required for HTTP and TCP checks")
    native[kind] = chk[kind]
    native["interval"] = chk["interval"]
    for src, dst in (("timeout", "timeout"), ("deregistercriticalserviceafter", "deregister_critical_after")):
        if not _empty(chk.get(src)):
            native[dst] = chk[src]
    for src, dst in (("successbeforepassing", "successes_before_passing"),
                     ("failuresbeforecritical", "failures_before_critical")):
        if not _empty(chk.get(src)):
            native[dst] = chk[src]
    return kind, native, None, _str(chk.get("name"), f"{where}.Name")


def _checks(top: dict[str, Any], service_id: str) -> tuple[dict[str, Any], Status | None, list[list[str]]]:
    raw: list[tuple[Any, str]] = []
    if not _empty(top.get("check")):
        raw.append((top["check"], "Check"))
    extra = top.get("checks")
    if extra is not None and not isinstance(extra, list):
        raise bad_request("Checks", "must be a list")
    raw.extend((c, f"Checks[{i}]") for i, c in enumerate(extra or []))
    if len(raw) > MAX_CHECKS:
        raise bad_request("Checks", "raftreg holds at most one HTTP or TCP check and one TTL check per service")
    native: dict[str, Any] = {}
    status: Status | None = None
    order: list[list[str]] = []
    ids = [f"service:{service_id}"] if len(raw) == 1 else [f"service:{service_id}:{n}" for n in (1, 2)]
    for (item, where), check_id in zip(raw, ids, strict=False):
        kind, fields, initial, name = _check(item, where)
        given_id = normalize(item, where).get("checkid") or normalize(item, where).get("id")
        if given_id not in (None, "", check_id):
            raise bad_request(f"{where}.CheckID", f"raftreg names this check {check_id!r} (custom check IDs are not "
                              "supported)")
        if ("ttl" if kind == "ttl" else "check") in native:
            raise bad_request("Checks", "raftreg holds at most one HTTP or TCP check and one TTL check per service")
        if kind == "ttl":
            native["ttl"] = fields["ttl"]
            status = initial
        else:
            native["check"] = fields
        order.append([kind, name])
    return native, status, order


def _tagged(value: Any) -> str | None:
    tagged = normalize(value, "TaggedAddresses")
    if not tagged:
        return None
    out = {}
    for name, addr in value.items():
        entry = normalize(addr, f"TaggedAddresses.{name}")
        port = entry.get("port", 0)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise bad_request(f"TaggedAddresses.{name}.Port", "must be 0-65535")
        out[name] = {"Address": _str(entry.get("address"), f"TaggedAddresses.{name}.Address"), "Port": port}
    text = json.dumps(out, separators=(",", ":"), sort_keys=True)
    if len(text) > 512:
        raise bad_request("TaggedAddresses", "too large for raftreg (at most 512 bytes as JSON)")
    return text


def parse_agent_register(body: bytes, remote: str | None) -> Registration:
    """Validate a Consul registration body into the instance to register (module docstring)."""
    try:
        doc = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError as exc:
        raise ConsulBodyError(f"Request decode failed: {exc}") from None
    top = normalize(doc, "body")
    for key, value in top.items():
        if key not in _TOP:
            raise bad_request(key, "unknown field")
        if key in _UNSUPPORTED_TOP and not _empty(value):
            raise bad_request(_UNSUPPORTED_TOP[key], "not supported by raftreg (no Connect, namespaces, "
                              "partitions or locality)")
    try:
        name = check_service_name(_str(top.get("name"), "Name"))
    except InvalidArgument as err:
        raise bad_request("Name", err.message) from None
    try:
        service_id = check_instance_id(_str(top.get("id"), "ID") or name)
    except InvalidArgument as err:
        raise bad_request("ID", err.message) from None
    meta = top.get("meta") or {}
    if not isinstance(meta, dict):
        raise bad_request("Meta", "must be a JSON object")
    reserved = [k for k in meta if isinstance(k, str) and k.startswith(RESERVED_META)]
    if reserved:
        raise bad_request("Meta", f"keys starting with {RESERVED_META!r} are reserved ({reserved[0]!r})")
    meta = dict(meta)
    weights = normalize(top.get("weights"), "Weights")
    weight = weights.get("passing", 1)
    warning = weights.get("warning", 1)
    if not isinstance(warning, int) or isinstance(warning, bool) or not 0 <= warning <= 10000:
        raise bad_request("Weights.Warning", "must be an integer 0-10000")
    if warning != 1:
        meta[META_WEIGHT_WARNING] = str(warning)
    if (tagged := _tagged(top.get("taggedaddresses"))) is not None:
        meta[META_TAGGED] = tagged
    if top.get("enabletagoverride") is True:
        meta[META_TAG_OVERRIDE] = "true"
    checks, status, order = _checks(top, service_id)
    if any(name for _, name in order) or [k for k, _ in order] == ["ttl", "http"] or \
            [k for k, _ in order] == ["ttl", "tcp"]:
        meta[META_CHECKS] = json.dumps(order, separators=(",", ":"))
    address = _str(top.get("address"), "Address") or (remote or "")
    native = {"address": address, "port": top.get("port"), "tags": top.get("tags") or [], "meta": meta,
              "weight": weight, **checks}
    if native["port"] is None:
        raise bad_request("Port", "required: raftreg instances have a port 1-65535")
    try:
        instance = parse_register(name, service_id, msgspec.json.encode(native))
    except InvalidArgument as err:
        field = _NATIVE_FIELDS.get(err.field or "", err.field or "body")
        if field.startswith("meta."):
            field = "Meta"
        raise bad_request(field, err.message) from None
    return Registration(instance, status)


class ConsulBodyError(InvalidArgument):
    """A body that is not JSON at all (Consul: ``Request decode failed``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
