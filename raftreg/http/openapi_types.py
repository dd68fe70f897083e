"""The response types of the native API's OpenAPI document (``raftreg.http.openapi``).

Documentation only: the handlers build the same shapes as dicts; these msgspec Structs give the
document its JSON Schemas (``msgspec.json.schema_components``), so a field changed here changes the
document, and ``tests/unit/test_openapi_sync.py`` with the fuzz tests keeps handlers and document
alike.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from raftreg.backup.archive import Manifest
from raftreg.models import Instance, KVEntry, KVVersion, ServiceSummary, Session

REF = "#/components/schemas/{name}"



class StoredInstance(Instance, frozen=True):
    """A registered instance as a write returns it, with the write's ``index``."""

    index: int = 0


class Deleted(msgspec.Struct):
    deleted: bool
    index: int


class Ttl(msgspec.Struct):
    ttl: float


class ServiceInstances(msgspec.Struct):
    index: int
    service: str
    instances: list[Instance]


class ServiceLeases(msgspec.Struct):  # seconds left per instance; exact on the leases' holder
    index: int
    service: str
    node: str
    exact: bool
    leases: dict[str, float]


class ServiceList(msgspec.Struct):
    index: int
    services: list[ServiceSummary]


class Health(msgspec.Struct):
    status: Literal["ok"]
    node: str


class Ready(msgspec.Struct):
    ready: bool
    node: str


class ClusterInfo(msgspec.Struct):
    """``GET /v1/cluster``: the node's Raft view; further counters may be added at any time."""

    name: str
    node: str
    state: str
    leader: str
    term: int
    commit_index: int
    applied_index: int
    members: list[dict[str, Any]]
    identities: dict[str, str]  # each member's recorded incarnation (README "Node identity")
    boot_id: str  # this process's random id, new at every start


class KVWritten(msgspec.Struct):
    ok: bool
    index: int


class KVDeleted(msgspec.Struct):
    deleted: int
    index: int


class KVEntries(msgspec.Struct):
    index: int
    entries: list[KVEntry]


class KVKeys(msgspec.Struct):
    index: int
    keys: list[str]


class KVHistory(msgspec.Struct):
    index: int
    key: str
    versions: list[KVVersion]


_TXN_RESULT = {"anyOf": [{"$ref": REF.format(name="KVEntry")}, {"type": "null"},
                         {"type": "object", "properties": {"deleted": {"type": "integer", "minimum": 0}},
                          "required": ["deleted"], "additionalProperties": False}]}


class TxnResults(msgspec.Struct):
    """One result per op: the entry (``get`` of a present key, writes), ``{"deleted": n}``, or null."""

    index: int
    results: Annotated[list[Any], msgspec.Meta(extra_json_schema={"items": _TXN_RESULT})]


class SessionCreated(msgspec.Struct):
    id: str
    index: int


class SessionRenewed(msgspec.Struct):
    id: str
    ttl: float


class SessionDestroyed(msgspec.Struct):
    destroyed: bool
    index: int


class SessionList(msgspec.Struct):
    index: int
    sessions: list[Session]


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    field: str | msgspec.UnsetType = msgspec.UNSET


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class SnapshotRestored(msgspec.Struct):
    """``PUT /v1/snapshot``: the index the restore was committed at, and the file's manifest."""

    restored: bool
    index: int
    manifest: Manifest
