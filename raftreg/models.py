"""Wire and log types shared by every layer.

Stored objects are frozen ``msgspec.Struct``s: the state machine replaces them instead of
mutating them, so a reader on another thread may encode one without a lock.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

ServiceName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")]
InstanceId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
MetaKey = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+\Z")]
MetaValue = Annotated[str, msgspec.Meta(max_length=512)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Weight = Annotated[int, msgspec.Meta(ge=0, le=10000)]
Status = Literal["passing", "warning", "critical"]

MAX_TAGS = 64
MAX_META = 64


class Check(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """An active health check run by the cluster (``raftreg.node.checks``).

    Exactly one of ``http`` (a URL; 2xx passes) and ``tcp`` (``host:port``; a connect passes).
    Durations are seconds.
    """

    http: str | None = None
    tcp: str | None = None
    interval: float = 10.0
    timeout: float = 2.0
    failures_before_critical: int = 1
    successes_before_passing: int = 1
    deregister_critical_after: float | None = None


class Instance(msgspec.Struct, frozen=True, gc=False):
    """One registered instance of a service, as stored and as returned by the API."""

    service: str
    id: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = {}
    weight: int = 100
    ttl: float | None = None
    check: Check | None = None
    status: Status = "passing"
    check_status: Status | None = None
    manual_status: Status | None = None
    status_note: str = ""
    create_index: int = 0
    modify_index: int = 0

    def same_definition(self, other: Instance) -> bool:
        """True when ``other`` describes the same registration and status (indexes aside)."""
        return (
            self.address == other.address
            and self.port == other.port
            and self.tags == other.tags
            and self.meta == other.meta
            and self.weight == other.weight
            and self.ttl == other.ttl
            and self.check == other.check
            and self.status == other.status
            and self.check_status == other.check_status
            and self.manual_status == other.manual_status
            and self.status_note == other.status_note
        )


def effective_status(manual_status: Status | None, check_status: Status | None) -> Status:
    """The status an instance reports: a status set by hand wins over its check's result; an
    instance with neither is passing (see README "Health: TTLs, checks and status by hand")."""
    if manual_status is not None:
        return manual_status
    if check_status is not None:
        return check_status
    return "passing"


class ServiceSummary(msgspec.Struct, frozen=True):
    """One row of ``GET /v1/services``: instance count, count per status, and the union of the
    instances' tags (sorted)."""

    name: str
    instances: int
    passing: int
    warning: int = 0
    critical: int = 0
    tags: tuple[str, ...] = ()


MAX_KV_KEY_BYTES = 512
MAX_KV_VALUE_BYTES = 512 * 1024
MAX_TXN_OPS = 64
MAX_FLAGS = 2**64 - 1
TxnVerb = Literal["set", "cas", "delete", "delete_cas", "check_index", "get"]


class KVEntry(msgspec.Struct, frozen=True, gc=False):
    """One key as stored and returned by ``GET /v1/kv/{key}`` (``value`` is base64 in JSON).

    ``flags`` belong to the caller; ``lock_index`` counts the acquisitions of the key's lock
    (the fence); ``session`` is the lock holder's session id, or None."""

    key: str
    value: bytes
    flags: int = 0
    create_index: int = 0
    modify_index: int = 0
    lock_index: int = 0
    session: str | None = None


class KVVersion(msgspec.Struct, frozen=True, gc=False):
    """An earlier version of a key, kept for ``GET /v1/kv/{key}?history`` (newest first)."""

    value: bytes
    flags: int
    create_index: int
    modify_index: int
    session: str | None = None


class TxnOp(msgspec.Struct, frozen=True, array_like=True):
    """One operation of ``PUT /v1/txn``, as validated and carried in the log.

    ``set`` writes; ``cas`` writes only if the key's ``modify_index`` is ``index`` (0: absent);
    ``delete`` removes the key (absent is fine); ``delete_cas`` removes it only at ``index``;
    ``check_index`` fails unless the key's ``modify_index`` is ``index`` (0: absent); ``get``
    reads the key as the transaction sees it."""

    op: TxnVerb
    key: str
    value: bytes = b""
    flags: int = 0
    index: int = 0


SESSION_LEASE = ""  # the "service" of a session's lease key (no service has an empty name)
SessionBehavior = Literal["release", "delete"]


class SessionInstance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An instance a session is tied to: the session ends when it goes away or turns critical."""

    service: str
    id: str


class Session(msgspec.Struct, frozen=True, gc=False):
    """A session (``/v1/sessions``): a lease that holds locks on keys. ``ttl`` and ``lock_delay``
    are seconds."""

    id: str
    name: str = ""
    ttl: float = 15.0
    behavior: SessionBehavior = "release"
    lock_delay: float = 15.0
    instances: tuple[SessionInstance, ...] = ()
    create_index: int = 0
    modify_index: int = 0
