"""Decoding and validating request input. Every failure is an ``InvalidArgument`` naming the field.

Nothing here touches the cluster: a request that fails validation changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, TypeVar

import msgspec

from raftreg.durations import parse_duration
from raftreg.errors import InvalidArgument
from raftreg.http.strict_json import check_unique_keys
from raftreg.models import (
    MAX_META,
    MAX_TAGS,
    Check,
    Instance,
    InstanceId,
    MetaKey,
    MetaValue,
    Port,
    ServiceName,
    Status,
    Tag,
    Weight,
)
from raftreg.node.reads import MAX_BLOCKING_WAIT, ReadOptions

# ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
SERVICE_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")  # exactly the dotted quads ipaddress accepts
MIN_TTL = 1.0
MAX_TTL = 86400.0
MAX_CHECK_INTERVAL = 86400.0
MAX_NOTE = 512
MAX_FORWARDED = 10000

Duration = float | str
T = TypeVar("T")


class CheckBody(msgspec.Struct, forbid_unknown_fields=True):
    http: str | None = None
    tcp: str | None = None
    interval: Duration = 10.0
    timeout: Duration = 2.0
    failures_before_critical: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    successes_before_passing: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    deregister_critical_after: Duration | None = None


class RegisterBody(msgspec.Struct, forbid_unknown_fields=True):
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    port: Port
    tags: Annotated[list[Tag], msgspec.Meta(max_length=MAX_TAGS)] = []
    meta: Annotated[dict[MetaKey, MetaValue], msgspec.Meta(max_length=MAX_META)] = {}
    weight: Weight = 100
    ttl: Duration | None = None
    check: CheckBody | None = None
    # Accepted so a client may send back what it read; must match the URL when present.
    service: ServiceName | None = None
    id: InstanceId | None = None


_register_decoder = msgspec.json.Decoder(RegisterBody)
_FIELD_AT = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
_FIELD_IN = re.compile(r"at `key` in `\$\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
_FIELD_NAMED = re.compile(r"field `([^`]+)`")


def check_service_name(name: str) -> str:
    if not SERVICE_RE.match(name):
        raise InvalidArgument(
            "service name must be a DNS label: 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit",
            field="service",
        )
    return name


def check_instance_id(instance_id: str) -> str:
    if not INSTANCE_RE.match(instance_id):
        raise InvalidArgument(
            "instance id must be 1-128 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit",
            field="id",
        )
    return instance_id


def check_address(address: str) -> str:
    """An IP address or a DNS host name."""
    if _IPV4.fullmatch(address):  # the common case, without ipaddress's object (1.9 µs -> 0.3)
        return address
    try:
        ipaddress.ip_address(address)
        return address
    except ValueError:
        pass
    host = address[:-1] if address.endswith(".") else address
    if host and len(host) <= 253 and all(_HOST_LABEL.match(label) for label in host.split(".")):
        return address
    raise InvalidArgument("address must be an IP address or a DNS host name", field="address")


def duration_field(value: object, field: str, *, low: float, high: float) -> float:
    """A duration (seconds or a Go-style string) within [low, high]; 400 naming ``field``."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise InvalidArgument(str(exc), field=field) from None
    if not low <= seconds <= high:
        raise InvalidArgument(f"{field} must be between {low:g}s and {high:g}s", field=field)
    return seconds


def decode_json(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode ``body``; malformed JSON and schema errors become ``InvalidArgument``."""
    try:
        result = decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _FIELD_IN.search(text) or _FIELD_AT.search(text) or _FIELD_NAMED.search(text)
        raise InvalidArgument(text, field=match.group(1) if match else None) from None
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"malformed JSON: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidArgument("request body is not valid UTF-8") from None
    check_unique_keys(body)
    return result


def _check(body: CheckBody) -> Check:
    if (body.http is None) == (body.tcp is None):
        raise InvalidArgument("a check needs exactly one of 'http' and 'tcp'", field="check")
    if body.http is not None and not re.match(r"^https?://[^\s/]+", body.http):
        raise InvalidArgument("check.http must be an http:// or https:// URL", field="check.http")
    if body.tcp is not None:
        host, sep, port = body.tcp.rpartition(":")
        digits = port.isascii() and port.isdigit() and len(port) <= 5
        if not sep or not host or not digits or not 0 < int(port) < 65536:
            raise InvalidArgument("check.tcp must be host:port", field="check.tcp")
    interval = duration_field(body.interval, "check.interval", low=0.1, high=MAX_CHECK_INTERVAL)
    timeout = duration_field(body.timeout, "check.timeout", low=0.01, high=MAX_CHECK_INTERVAL)
    dca = None
    if body.deregister_critical_after is not None:
        dca = duration_field(body.deregister_critical_after, "check.deregister_critical_after", low=1, high=30 * 86400)
    return Check(
        http=body.http,
        tcp=body.tcp,
        interval=interval,
        timeout=timeout,
        failures_before_critical=body.failures_before_critical,
        successes_before_passing=body.successes_before_passing,
        deregister_critical_after=dca,
    )


def parse_register(service: str, instance_id: str, body: bytes) -> Instance:
    """Validate a ``PUT .../instances/{id}`` request into the Instance to store."""
    check_service_name(service)
    check_instance_id(instance_id)
    req = decode_json(body, _register_decoder)
    if req.service is not None and req.service != service:
        raise InvalidArgument("body 'service' differs from the service in the URL", field="service")
    if req.id is not None and req.id != instance_id:
        raise InvalidArgument("body 'id' differs from the instance id in the URL", field="id")
    check_address(req.address)
    ttl = None if req.ttl is None else duration_field(req.ttl, "ttl", low=MIN_TTL, high=MAX_TTL)
    check = None if req.check is None else _check(req.check)
    return Instance(
        service=service,
        id=instance_id,
        address=req.address,
        port=req.port,
        tags=tuple(req.tags),
        meta=req.meta,
        weight=req.weight,
        ttl=ttl,
        check=check,
        status="critical" if check is not None else "passing",
    )


class StatusBody(msgspec.Struct, forbid_unknown_fields=True):
    status: Status
    note: Annotated[str, msgspec.Meta(max_length=MAX_NOTE)] = ""


_status_decoder = msgspec.json.Decoder(StatusBody)


def parse_status(body: bytes) -> StatusBody:
    """``PUT .../status``: ``{"status": "passing"|"warning"|"critical", "note": "..."}``."""
    return decode_json(body, _status_decoder)


# A lease's "service": a service name, or "" (SESSION_LEASE) for a session.
LeaseService = Annotated[str, msgspec.Meta(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?\Z")]


class ForwardedHeartbeats(msgspec.Struct, forbid_unknown_fields=True):
    instances: Annotated[list[tuple[LeaseService, InstanceId]], msgspec.Meta(max_length=MAX_FORWARDED)]


_forwarded_decoder = msgspec.json.Decoder(ForwardedHeartbeats)


def parse_forwarded_heartbeats(body: bytes) -> list[tuple[str, str]]:
    """``POST /v1/internal/heartbeats`` (a follower's batch): ``{"instances": [[service, id], ...]}``
    (service "" for a session)."""
    return [(service, instance_id) for service, instance_id in decode_json(body, _forwarded_decoder).instances]


def parse_meta_filters(values: list[str]) -> list[tuple[str, str]]:
    """``?meta=key:value`` filters."""
    out = []
    for value in values:
        key, sep, val = value.partition(":")
        if not sep or not key:
            raise InvalidArgument("meta filter must be key:value", field="meta")
        out.append((key, val))
    return out


def parse_flag(value: str | None, field: str) -> bool:
    """A boolean query flag: present with no value, or true/false/1/0."""
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("", "1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise InvalidArgument(f"{field} must be a flag (true/false)", field=field)


def _index_param(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise InvalidArgument(f"{field} must be a non-negative integer", field=field)
    return int(value)


def parse_read_options(query: Mapping[str, str]) -> ReadOptions:
    """``?consistent``, ``?index``, ``?min_index`` and ``?wait`` of a read request."""
    wait = None
    if (raw_wait := query.get("wait")) is not None:
        try:
            wait = parse_duration(raw_wait)
        except ValueError as exc:
            raise InvalidArgument(str(exc), field="wait") from None
        if wait < 0:
            raise InvalidArgument("wait must not be negative", field="wait")
        wait = min(wait, MAX_BLOCKING_WAIT)  # clamped, as Consul does
    return ReadOptions(
        consistent=parse_flag(query.get("consistent"), "consistent"),
        index=_index_param(query.get("index"), "index"),
        min_index=_index_param(query.get("min_index"), "min_index"),
        wait=wait,
    )
