"""The client's typed values: what it sends (``Registration``) and what every call returns.

Every result of a registry read or write carries ``index``: the ``X-Raftreg-Index`` of the answer
(API.md "Indexes and headers"), i.e. the Raft index that answers a read or at which a write was
committed. Pass it as ``min_index=`` to read your own write on another node, or as ``index=`` to
start a blocking query from it. The one exception is ``Lease``: a heartbeat is not a log entry
(DESIGN.md "Leases and health"), so no index answers it.

``to_wire()`` gives the JSON document of API.md that the result was decoded from, for callers
that print or forward it (the CLI's ``-o json``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from raftreg.models import Check, Instance, ServiceSummary

__all__ = [
    "Check",
    "ClusterStatus",
    "Instance",
    "InstanceResult",
    "Instances",
    "Lease",
    "Member",
    "Registration",
    "ServiceSummary",
    "Services",
    "WriteResult",
]


def _wire(value: Any) -> Any:
    """``value`` as the JSON the server sends (lists, not tuples)."""
    return msgspec.json.decode(msgspec.json.encode(value))


class Registration(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """The body of ``PUT /v1/services/{service}/instances/{id}``: what to register.

    Durations are seconds. Omitted fields take the server's defaults (no tags, no meta, weight
    100, no ttl, no check). The server validates every field (an ``InvalidArgument`` names the
    one at fault); nothing is checked here, so the one set of rules lives on the server."""

    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = {}
    weight: int = 100
    ttl: float | None = None
    check: Check | None = None


class WriteResult(msgspec.Struct, frozen=True):
    """A write that changed the registry (``deregister``): the index it was committed at."""

    index: int

    def to_wire(self) -> dict[str, Any]:
        return {"deleted": True, "index": self.index}


class InstanceResult(msgspec.Struct, frozen=True):
    """One instance: as stored by a write (``register``, ``set_status``; ``index`` is the commit
    index) or as read (``instance``; ``index`` is the read's index)."""

    index: int
    instance: Instance

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = _wire(self.instance)
        body["index"] = self.index
        return body


class Instances(msgspec.Struct, frozen=True):
    """``GET /v1/services/{service}``: the (filtered) instances of one service, sorted by id."""

    index: int
    service: str
    items: tuple[Instance, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "service": self.service, "instances": _wire(self.items)}


class Services(msgspec.Struct, frozen=True):
    """``GET /v1/services``: every service with its instance counts, sorted by name."""

    index: int
    items: tuple[ServiceSummary, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "services": _wire(self.items)}


class Lease(msgspec.Struct, frozen=True):
    """A renewed TTL lease (``heartbeat``): renew again within ``ttl`` seconds. No index: a
    heartbeat is held by the leader in memory, never written to the log."""

    ttl: float

    def to_wire(self) -> dict[str, Any]:
        return {"ttl": self.ttl}


class Member(msgspec.Struct, frozen=True):
    """One member of the cluster as the answering node sees it. ``match_index`` is known only
    on the leader (``None`` elsewhere), except for a read replica (``role == "replica"``): its
    applied index and ``lag`` as it last reported them (``None`` when unknown)."""

    name: str
    raft: str
    http: str
    status: str
    match_index: int | None = None
    role: str = "voter"  # "voter" | "replica"
    lag: int | None = None


class ClusterStatus(msgspec.Struct, frozen=True):
    """``GET /v1/cluster``: the answering node's Raft view.

    The typed fields are the stable contract of API.md; ``raw`` is the whole decoded answer,
    including diagnostic counters (group commit, watchdog, leases, ...) that may change between
    versions. ``index`` is the node's applied index."""

    index: int
    name: str
    node: str
    state: str  # "leader" | "follower" | "candidate"
    leader: str
    term: int
    commit_index: int
    applied_index: int
    last_contact_ms: int = 0
    members: tuple[Member, ...] = ()
    role: str = "voter"  # "replica": a read replica (it never leads)
    raw: dict[str, Any] = {}

    def to_wire(self) -> dict[str, Any]:
        return dict(self.raw)
