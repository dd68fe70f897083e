"""The sans-I/O core of sessions and locks (API.md "Sessions, locks and leader election").

As ``raftreg.client.core``: nothing here opens a socket, reads a clock or sleeps; the shells
(``session_sync``, ``session_async``) send the ``Request`` and hand the ``Response`` to a parser here.

Contracts:
- ``PUT /v1/sessions`` creates a new session at each call, so it is never retried after an unknown
  outcome (``OutcomeUnknown``; a lost session simply expires after its ttl). Renewing is idempotent
  (a lease renewal writes no log entry); destroying is idempotent (a repeat answers 404, which is
  an answer here: ``destroyed=False``).
- ``?acquire=`` / ``?release=`` are NOT idempotent (a repeat after a lost answer may answer
  ``ok=False`` though the first one won): a 504 or a connection lost after sending raises
  ``OutcomeUnknown`` and nothing is sent again. The caller then reads the key and compares its
  ``session`` with its own (``holds``), as the recipes do, instead of guessing.
- ``ok=False`` of an acquire is an answer: the key is held by another session, or in its lock
  delay; of a release: the session does not hold it. An unknown session raises ``NotFound``.
- A key's ``lock_index`` increments at each new holder: it is the fence of that holding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from raftreg.client.core import Request, Response, _decoding, _duration, _index, _path
from raftreg.client.kv_core import put
from raftreg.client.kv_results import KVEntry
from raftreg.models import Session

__all__ = [
    "Session", "SessionCreated", "SessionDestroyed", "SessionList", "SessionRenewed", "acquire", "create", "destroy",
    "get", "holds", "list_sessions", "release", "renew",
]

Behavior = Literal["release", "delete"]
_ABSENT = frozenset({404})


class SessionCreated(msgspec.Struct, frozen=True):
    """A new session: its ``id`` and the index it was committed at."""

    id: str
    index: int


class SessionRenewed(msgspec.Struct, frozen=True):
    """A renewal the leader accepted: the session lives ``ttl`` seconds from now."""

    id: str
    ttl: float


class SessionDestroyed(msgspec.Struct, frozen=True):
    """A destroy: ``destroyed=False`` when there was no such session (already expired or destroyed)."""

    destroyed: bool
    index: int


class SessionList(msgspec.Struct, frozen=True):
    """Every live session, sorted by id, at the read's ``index``."""

    index: int
    sessions: tuple[Session, ...]


def _seconds(value: float | str) -> str:
    return value if isinstance(value, str) else _duration(value)


def create(ttl: float | str = 15.0, *, name: str = "", behavior: Behavior = "release", lock_delay: float | str = 15.0,
           instances: Sequence[tuple[str, str]] = ()) -> Request:
    """A new session (ttl 1s-24h, lock_delay 0-60s; seconds or ``"15s"``). ``instances``:
    ``(service, id)`` pairs it is tied to. Never retried after an unknown outcome."""
    body: dict[str, Any] = {"ttl": _seconds(ttl), "name": name, "behavior": behavior,
                            "lock_delay": _seconds(lock_delay),
                            "instances": [{"service": s, "id": i} for s, i in instances]}
    return Request("PUT", "/v1/sessions", body=msgspec.json.encode(body), idempotent=False)


def renew(session: str) -> Request:
    """Renew the session's lease (idempotent); 404 (``NotFound``) once it is gone."""
    return Request("PUT", _path("sessions", session, "renew"))


def destroy(session: str) -> Request:
    """End the session now (its locks are released under its lock delay); idempotent."""
    return Request("DELETE", _path("sessions", session), answers=_ABSENT)


def get(session: str, *, consistent: bool = False) -> Request:
    query = (("consistent", "true"),) if consistent else ()
    return Request("GET", _path("sessions", session), query, is_read=True, answers=_ABSENT)


def list_sessions(*, consistent: bool = False) -> Request:
    query = (("consistent", "true"),) if consistent else ()
    return Request("GET", "/v1/sessions", query, is_read=True)


def _lock_write(key: str, verb: str, session: str, value: bytes | str) -> Request:
    base = put(key, value)
    return msgspec.structs.replace(base, query=((verb, session),), idempotent=False)


def acquire(key: str, session: str, value: bytes | str = b"") -> Request:
    """Take the lock on ``key`` for ``session`` and write ``value``; not idempotent."""
    return _lock_write(key, "acquire", session, value)


def release(key: str, session: str, value: bytes | str = b"") -> Request:
    """Give the lock on ``key`` up (``value`` is written too); not idempotent."""
    return _lock_write(key, "release", session, value)


def holds(entry: KVEntry | None, session: str) -> bool:
    """Whether ``session`` holds the lock on the key read as ``entry`` (``None``: absent)."""
    return entry is not None and entry.session == session


# ---- answers ------------------------------------------------------------------------------------

class _Created(msgspec.Struct):
    id: str
    index: int | None = None


class _Destroyed(msgspec.Struct):
    destroyed: bool = True
    index: int | None = None


class _List(msgspec.Struct):
    sessions: tuple[Session, ...] = ()
    index: int | None = None


_decode_created = msgspec.json.Decoder(_Created).decode
_decode_renewed = msgspec.json.Decoder(SessionRenewed).decode
_decode_destroyed = msgspec.json.Decoder(_Destroyed).decode
_decode_list = msgspec.json.Decoder(_List).decode
_decode_session = msgspec.json.Decoder(Session).decode


def parse_created(response: Response) -> SessionCreated:
    with _decoding("session creation"):
        body = _decode_created(response.body)
    return SessionCreated(body.id, _index(response, body.index))


def parse_renewed(response: Response) -> SessionRenewed:
    with _decoding("session renewal"):
        return _decode_renewed(response.body)


def parse_destroyed(response: Response) -> SessionDestroyed:
    if response.status == 404:
        return SessionDestroyed(False, _index(response, 0))
    with _decoding("session destroy"):
        body = _decode_destroyed(response.body)
    return SessionDestroyed(body.destroyed, _index(response, body.index))


def parse_session(response: Response) -> Session | None:
    """One session, or ``None`` for a 404 (no such session)."""
    if response.status == 404:
        return None
    with _decoding("session"):
        return _decode_session(response.body)


def parse_list(response: Response) -> SessionList:
    with _decoding("session list"):
        body = _decode_list(response.body)
    return SessionList(_index(response, body.index), body.sessions)
