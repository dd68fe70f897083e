"""The client's sans-I/O core: builds requests and reads answers; both shells share it.

Nothing here opens a socket, reads a clock or sleeps. A builder turns a call into a ``Request``
(method, path, query, body bytes, and two facts the failover policy needs: ``is_read`` and
``idempotent``); a parser turns a transport's ``Response`` into a typed result
(``raftreg.client.results``); ``error_of`` turns an error answer into the class of API.md's table
(``raftreg.errors``). The shells (``sync_client``, ``async_client``) only move bytes and drive
``raftreg.client.policy``.

Contracts:
- Paths quote every segment, so a name can never change the route; the server validates names.
- ``Request.hold`` is how long the server may legitimately hold the answer (blocking queries,
  ``min_index`` waits): shells add it to their per-attempt timeout and to the call's deadline.
- The index of a result comes from ``X-Raftreg-Index``; a body's ``index`` is the fallback. A
  2xx answer that does not parse raises ``Malformed`` (the policy treats it as a lost answer).
- Idempotency (API.md, DESIGN.md "Writes"): registering (a full replacement), deregistering,
  heartbeats and setting a status are idempotent; for other paths ``infer_idempotent`` decides.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import msgspec

from raftreg.client.results import (
    ClusterStatus,
    InstanceResult,
    Instances,
    Lease,
    Registration,
    Services,
    WriteResult,
)
from raftreg.errors import RaftregError, error_from_body
from raftreg.models import Instance, ServiceSummary

INDEX_HEADER = "X-Raftreg-Index"
LEADER_HEADER = "X-Raftreg-Leader"
READ_METHODS = frozenset({"GET", "HEAD"})
DEFAULT_BLOCKING_WAIT = 300.0  # API.md: a blocking query without ``wait`` is held up to 5 minutes
MAX_BLOCKING_WAIT = 600.0
DEFAULT_MIN_INDEX_WAIT = 5.0
HOLD_JITTER = 17 / 16  # the server adds up to wait/16 of jitter to a blocking query

# Writes whose retry after an unknown outcome would do something else than the first attempt:
# creating a new id each time, or a transaction of compare operations.
_CREATING_PATHS = frozenset({"/v1/sessions", "/v1/txn", "/v1/acl/bootstrap", "/v1/acl/tokens", "/v1/acl/policies"})

# Key/value writes are never sent again after an unknown outcome: a put landing twice could undo
# another client's change of the key in between (``infer_idempotent``).
KV_WRITE_PREFIX = "/v1/kv/"

Query = tuple[tuple[str, str], ...]
Params = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


class Malformed(Exception):
    """A 2xx answer whose body or index does not parse (a proxy, a bug, a truncated body)."""


class NotSent(Exception):
    """Raised by a transport: the request reached no node (connection refused, unresolvable
    host, connect or TLS handshake failed or timed out). Nothing can have been applied."""


class LostAfterSend(Exception):
    """Raised by a transport: the connection broke or timed out after the request was (maybe)
    sent. A write's outcome is unknown."""


class Headers(Mapping[str, str]):
    """Response headers, looked up without regard to case (``headers["x-raftreg-index"]``)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self._items.setdefault(name.lower(), (name, value))

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Request(msgspec.Struct, frozen=True):
    """One HTTP request, before any node was chosen."""

    method: str
    path: str
    query: Query = ()
    body: bytes | None = None
    idempotent: bool = True
    is_read: bool = False
    hold: float = 0.0
    sticky: bool = False  # a read of a stream (a watch): not spread, like a blocking query
    answers: frozenset[int] = frozenset()  # non-2xx statuses that are answers, parsed like a 2xx (a KV 404)
    content_type: str = "application/json"  # of the body (a KV value is raw bytes)

    @property
    def target(self) -> str:
        """The request target: path plus query string."""
        return f"{self.path}?{urlencode(self.query)}" if self.query else self.path

    @property
    def blocking(self) -> bool:
        """A blocking query (``?index=``): it stays with the node that answered last."""
        return any(name == "index" for name, _ in self.query)

    @property
    def spread(self) -> bool:
        """A plain read, which the policy spreads over the nodes."""
        return self.is_read and not self.blocking and not self.sticky


class Response(msgspec.Struct, frozen=True):
    """One answer, as any transport hands it over."""

    status: int
    headers: Headers
    body: bytes

    @property
    def retry_after(self) -> float:
        """``Retry-After`` in seconds (API.md sets it on 429 and 503); 1 s when absent or unreadable."""
        try:
            return min(3600.0, max(0.0, float(self.headers.get("Retry-After", "1"))))
        except ValueError:
            return 1.0


# ---- building requests --------------------------------------------------------------------------

def _path(*segments: str) -> str:
    return "/v1/" + "/".join(quote(s, safe="") for s in segments)


def _duration(seconds: float) -> str:
    return f"{max(0.0, seconds):.3f}".rstrip("0").rstrip(".") + "s"


def read_query(*, consistent: bool = False, min_index: int | None = None, index: int | None = None,
               wait: float | None = None) -> tuple[Query, float]:
    """The query of a read's consistency options (API.md), and how long the server may hold it.

    ``index`` makes it a blocking query (answered once the index exceeds it, or after ``wait``);
    ``min_index`` waits until the node applied that index (up to ``wait``, default 5 s, then 504)."""
    query: list[tuple[str, str]] = []
    if consistent:
        query.append(("consistent", "true"))
    if min_index is not None:
        query.append(("min_index", str(min_index)))
    if index is not None:
        query.append(("index", str(index)))
    if wait is not None:
        query.append(("wait", _duration(wait)))
    hold = 0.0
    if min_index is not None:
        hold += min(MAX_BLOCKING_WAIT, DEFAULT_MIN_INDEX_WAIT if wait is None else max(0.0, wait))
    if index is not None:
        hold += min(MAX_BLOCKING_WAIT, DEFAULT_BLOCKING_WAIT if wait is None else max(0.0, wait)) * HOLD_JITTER
    return tuple(query), hold


def _read(path: str, query: Query, hold: float) -> Request:
    return Request("GET", path, query, idempotent=True, is_read=True, hold=hold)


def put_instance(service: str, instance_id: str, spec: Registration | Mapping[str, Any]) -> Request:
    """Register or replace an instance: idempotent (a full replacement)."""
    return Request("PUT", _path("services", service, "instances", instance_id), body=msgspec.json.encode(spec))


def delete_instance(service: str, instance_id: str) -> Request:
    """Deregister: idempotent (a repeat finds nothing and answers 404)."""
    return Request("DELETE", _path("services", service, "instances", instance_id))


def heartbeat(service: str, instance_id: str) -> Request:
    """Renew a TTL lease: idempotent."""
    return Request("PUT", _path("services", service, "instances", instance_id, "heartbeat"))


def set_status(service: str, instance_id: str, status: str, note: str = "") -> Request:
    """Set the status by hand (``warning``/``critical``) or clear it (``passing``): idempotent."""
    body = msgspec.json.encode({"status": status, "note": note})
    return Request("PUT", _path("services", service, "instances", instance_id, "status"), body=body)


def get_instance(service: str, instance_id: str, *, consistent: bool = False, min_index: int | None = None,
                 index: int | None = None, wait: float | None = None) -> Request:
    query, hold = read_query(consistent=consistent, min_index=min_index, index=index, wait=wait)
    return _read(_path("services", service, "instances", instance_id), query, hold)


def list_instances(service: str, *, passing: bool = False, tags: Iterable[str] = (),
                   meta: Mapping[str, str] | Iterable[tuple[str, str]] = (), consistent: bool = False,
                   min_index: int | None = None, index: int | None = None, wait: float | None = None) -> Request:
    """A service's instances; ``tags`` and ``meta`` pairs must all match, ``passing`` keeps only
    passing ones. An unknown service answers an empty list (so it can be watched before it exists)."""
    filters: list[tuple[str, str]] = [("tag", t) for t in tags]
    pairs = meta.items() if isinstance(meta, Mapping) else meta
    filters += [("meta", f"{key}:{value}") for key, value in pairs]
    if passing:
        filters.append(("passing", "true"))
    query, hold = read_query(consistent=consistent, min_index=min_index, index=index, wait=wait)
    return _read(_path("services", service), (*filters, *query), hold)


def list_services(*, consistent: bool = False, min_index: int | None = None, index: int | None = None,
                  wait: float | None = None) -> Request:
    query, hold = read_query(consistent=consistent, min_index=min_index, index=index, wait=wait)
    return _read("/v1/services", query, hold)


def cluster_status() -> Request:
    return _read("/v1/cluster", (), 0.0)


def infer_idempotent(method: str, path: str, query: Query = ()) -> bool:
    """Whether a request may be sent again after its first attempt's outcome became unknown.

    Reads are; PUT and DELETE are (API.md: every write is an idempotent upsert or delete) except
    compare-and-set writes (``?cas=``; a repeat would fail with 409), the paths that create a
    new object at each call, and key/value writes (a set sent again could land after another
    client's change of the key and undo it, as etcd's client never re-sends a put); POST and
    anything else is not."""
    method = method.upper()
    if method in READ_METHODS:
        return True
    if method not in ("PUT", "DELETE") or path.startswith(KV_WRITE_PREFIX):
        return False
    return path.rstrip("/") not in _CREATING_PATHS and not any(name == "cas" for name, _ in query)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?\Z")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(text: str) -> float | None:
    """A ``wait`` value in seconds (``10``, ``0.5``, ``500ms``, ``2m``); ``None`` if unreadable
    (the server then answers 400 and no hold is needed)."""
    match = _DURATION.match(text.strip())
    return float(match.group(1)) * _UNIT[match.group(2) or "s"] if match else None


def custom(method: str, path: str, *, json: Any = None, params: Params = None, idempotent: bool | None = None,
           hold: float | None = None, sticky: bool = False) -> Request:
    """Any request of the API (the low-level ``request`` of the shells). ``idempotent=None`` uses
    ``infer_idempotent``; a blocking query's hold is derived from its ``index``/``wait`` params;
    ``sticky`` sends a read to the node that answered last instead of spreading it."""
    method = method.upper()
    items = params.items() if isinstance(params, Mapping) else (params or ())
    query: Query = tuple((str(k), _query_value(v)) for k, v in items)
    if hold is None:
        given = dict(query)
        hold = read_query(min_index=0 if "min_index" in given else None, index=0 if "index" in given else None,
                          wait=_seconds(given["wait"]) if "wait" in given else None)[1]
    body = msgspec.json.encode(json) if json is not None else None
    is_read = method in READ_METHODS
    if idempotent is None:
        idempotent = infer_idempotent(method, path, query)
    return Request(method, path, query, body, idempotent=idempotent or is_read, is_read=is_read, hold=hold,
                   sticky=sticky)


# ---- reading answers ----------------------------------------------------------------------------

def auth_headers(token: str | None) -> dict[str, str]:
    """The header that carries an ACL token (``Authorization: Bearer``); none without a token.
    A token never goes into a URL."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def error_of(request: Request, response: Response) -> RaftregError:
    """The exception of an error answer (API.md's table). A 504 answering a write is an
    ``OutcomeUnknown``; a 503 carries its ``Retry-After``."""
    try:
        body = msgspec.json.decode(response.body) if response.body else None
    except msgspec.DecodeError:
        body = None
    return error_from_body(response.status, body, write=not request.is_read, retry_after=response.retry_after)


class _IndexBody(msgspec.Struct):
    index: int | None = None


class _ServiceBody(msgspec.Struct):
    service: str
    instances: tuple[Instance, ...]
    index: int | None = None


class _ServicesBody(msgspec.Struct):
    services: tuple[ServiceSummary, ...]
    index: int | None = None


_decode_instance = msgspec.json.Decoder(Instance).decode
_decode_index = msgspec.json.Decoder(_IndexBody).decode
_decode_service = msgspec.json.Decoder(_ServiceBody).decode
_decode_services = msgspec.json.Decoder(_ServicesBody).decode
_decode_lease = msgspec.json.Decoder(Lease).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def _index(response: Response, fallback: int | None) -> int:
    raw = response.headers.get(INDEX_HEADER)
    if raw is not None and raw.isascii() and raw.isdigit():
        return int(raw)
    if fallback is not None:
        return fallback
    raise Malformed(f"the answer carries no {INDEX_HEADER}")


@contextlib.contextmanager
def _decoding(what: str) -> Iterator[None]:
    """msgspec's decode and validation errors inside become ``Malformed`` naming ``what``."""
    try:
        yield
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Malformed(f"unreadable {what}: {exc}") from exc


def parse_instance(response: Response) -> InstanceResult:
    """A stored instance (``register``, ``set_status``, ``instance``)."""
    with _decoding("instance"):
        instance = _decode_instance(response.body)
        return InstanceResult(_index(response, _decode_index(response.body).index), instance)


def parse_instances(response: Response) -> Instances:
    with _decoding("instance list"):
        body = _decode_service(response.body)
    return Instances(_index(response, body.index), body.service, body.instances)


def parse_services(response: Response) -> Services:
    with _decoding("service list"):
        body = _decode_services(response.body)
    return Services(_index(response, body.index), body.services)


def parse_write(response: Response) -> WriteResult:
    with _decoding("write result"):
        return WriteResult(_index(response, _decode_index(response.body).index))


def parse_lease(response: Response) -> Lease:
    with _decoding("heartbeat answer"):
        return _decode_lease(response.body)


def parse_cluster_status(response: Response) -> ClusterStatus:
    with _decoding("cluster status"):
        raw = _decode_object(response.body)
        index = _index(response, raw.get("applied_index") if isinstance(raw.get("applied_index"), int) else None)
        return msgspec.convert({**raw, "index": index, "raw": raw}, ClusterStatus)


def parse_json(response: Response) -> Any:
    """Any JSON answer, decoded to Python values (``None`` for an empty body)."""
    with _decoding("JSON answer"):
        return msgspec.json.decode(response.body) if response.body else None


class Reply(msgspec.Struct, frozen=True):
    """A low-level answer: the decoded JSON body, the headers and ``X-Raftreg-Index`` (0 when
    the answer has none)."""

    body: Any
    headers: Headers
    index: int


def parse_reply(response: Response) -> Reply:
    raw = response.headers.get(INDEX_HEADER, "")
    return Reply(parse_json(response), response.headers, int(raw) if raw.isascii() and raw.isdigit() else 0)
