"""The sans-I/O core of the key/value calls: requests (API.md "Key/value") and their answers.

As ``raftreg.client.core``: nothing here opens a socket, reads a clock or sleeps; the shells
(``kv_sync``, ``kv_async``) send the ``Request`` under the failover policy and hand the
``Response`` to a parser here.

Contracts:
- A key is URL-quoted with its ``/`` kept (``/v1/kv/app/db%20url``); the server validates it (1-512
  bytes of UTF-8, no NUL, no leading ``/``, no ``..`` segment). A prefix may be empty (the whole
  store) and may end with ``/``.
- Idempotency (API.md "Key/value", DESIGN.md "Writes"): a plain put or delete may be retried after
  an unknown outcome; a put or delete with ``cas``, and every transaction, may not: a 504 or a
  connection lost after sending raises ``OutcomeUnknown`` and nothing is sent again.
- Answers that are results, not errors: a 404 of a key read (the key is absent, at the index of
  the answer), a 404 of a delete (nothing to delete), a 409 of a ``cas`` put/delete or of a
  transaction (``ok=False``). They reach the parsers through ``Request.answers``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import msgspec

from raftreg.client.core import Malformed, Query, Request, Response, _decoding, _index, read_query
from raftreg.client.kv_results import (
    KVDeleted,
    KVEntry,
    KVHistory,
    KVKeys,
    KVList,
    KVWrite,
    TxnOp,
    TxnResult,
)
from raftreg.errors import NotFound, error_from_body

MAX_TXN_OPS = 64
_ABSENT = frozenset({404})
_CONFLICT = frozenset({409})


def kv_path(key: str) -> str:
    """``/v1/kv/{key}`` with the key quoted, its ``/`` kept."""
    return "/v1/kv/" + quote(key, safe="/")


def _read(key: str, extra: Query, *, consistent: bool, min_index: int | None, index: int | None,
          wait: float | None, answers: frozenset[int] = frozenset()) -> Request:
    query, hold = read_query(consistent=consistent, min_index=min_index, index=index, wait=wait)
    return Request("GET", kv_path(key), (*extra, *query), idempotent=True, is_read=True, hold=hold, answers=answers)


def get(key: str, *, consistent: bool = False, min_index: int | None = None, index: int | None = None,
        wait: float | None = None) -> Request:
    """One key; a 404 is an answer (absent). ``index``/``wait``: a blocking query on the key."""
    return _read(key, (), consistent=consistent, min_index=min_index, index=index, wait=wait, answers=_ABSENT)


def list_prefix(prefix: str, *, consistent: bool = False, min_index: int | None = None, index: int | None = None,
                wait: float | None = None) -> Request:
    """Every entry under ``prefix`` (``?recurse``); a blocking query wakes only for changes under it."""
    return _read(prefix, (("recurse", "true"),), consistent=consistent, min_index=min_index, index=index,
                 wait=wait, answers=_ABSENT)


def keys(prefix: str, separator: str | None = None, *, consistent: bool = False, min_index: int | None = None,
         index: int | None = None, wait: float | None = None) -> Request:
    """The key names under ``prefix`` (``?keys``), one level of them with a ``separator``."""
    extra: Query = (("keys", "true"),) + ((("separator", separator),) if separator is not None else ())
    return _read(prefix, extra, consistent=consistent, min_index=min_index, index=index, wait=wait,
                 answers=_ABSENT)


def watch(key_or_prefix: str, recurse: bool, at: int | None, wait: float) -> Request:
    """One query of ``watch_kv``: a plain read from ``at=None``, else a blocking query from ``at``."""
    fn = list_prefix if recurse else get
    return fn(key_or_prefix, index=at, wait=wait if at is not None else None)


def history(key: str, *, consistent: bool = False) -> Request:
    """The key's kept earlier versions, newest first (``?history``; empty when it has none)."""
    return _read(key, (("history", "true"),), consistent=consistent, min_index=None, index=None, wait=None)


def _value(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def put(key: str, value: bytes | str, *, flags: int = 0, cas: int | None = None) -> Request:
    """Write ``value`` (``str`` is UTF-8 encoded). ``cas=M``: only if the key's ``modify_index`` is
    M (0: only if absent), a mismatch is an answer (``ok=False``). Never sent again after an
    unknown outcome (``OutcomeUnknown``): a repeated set could undo another client's later change."""
    query: list[tuple[str, str]] = []
    if flags:
        query.append(("flags", str(flags)))
    if cas is not None:
        query.append(("cas", str(cas)))
    return Request("PUT", kv_path(key), tuple(query), _value(value), idempotent=False,
                   answers=_CONFLICT if cas is not None else frozenset(), content_type="application/octet-stream")


def delete(key: str, *, recurse: bool = False, cas: int | None = None) -> Request:
    """Delete the key (``recurse``: every key under the prefix). ``cas=M``: only if its
    ``modify_index`` is M (a mismatch is ``ok=False``). A 404 deletes nothing. Never sent again
    after an unknown outcome, like ``put``."""
    query: list[tuple[str, str]] = []
    if recurse:
        query.append(("recurse", "true"))
    if cas is not None:
        query.append(("cas", str(cas)))
    answers = _ABSENT | _CONFLICT if cas is not None else _ABSENT
    return Request("DELETE", kv_path(key), tuple(query), idempotent=False, answers=answers)


def txn(ops: Sequence[TxnOp]) -> Request:
    """``PUT /v1/txn``: at most 64 ops, applied together or not at all. Never idempotent (a repeat
    of applied compare ops would fail); a failed condition (409) is an answer (``ok=False``)."""
    if not ops:
        raise ValueError("a transaction needs at least one op")
    if len(ops) > MAX_TXN_OPS:
        raise ValueError(f"a transaction holds at most {MAX_TXN_OPS} ops, not {len(ops)}")
    body = msgspec.json.encode({"ops": list(ops)})
    return Request("PUT", "/v1/txn", body=body, idempotent=False, answers=_CONFLICT)


# ---- answers ------------------------------------------------------------------------------------

class _Entries(msgspec.Struct):
    entries: tuple[KVEntry, ...] = ()
    index: int | None = None


class _Keys(msgspec.Struct):
    keys: tuple[str, ...] = ()
    index: int | None = None


class _Write(msgspec.Struct):
    ok: bool = True
    index: int | None = None


class _Deleted(msgspec.Struct):
    deleted: int | bool = 0
    index: int | None = None


class _Txn(msgspec.Struct):
    results: tuple[Any, ...] = ()
    index: int | None = None


_decode_entry = msgspec.json.Decoder(KVEntry).decode
_decode_entries = msgspec.json.Decoder(_Entries).decode
_decode_keys = msgspec.json.Decoder(_Keys).decode
_decode_history = msgspec.json.Decoder(KVHistory).decode
_decode_write = msgspec.json.Decoder(_Write).decode
_decode_deleted = msgspec.json.Decoder(_Deleted).decode
_decode_txn = msgspec.json.Decoder(_Txn).decode
_decode_any = msgspec.json.Decoder().decode


def _index_or_zero(response: Response) -> int:
    try:
        return _index(response, None)
    except Malformed:
        return 0


def parse_entry(response: Response) -> KVEntry | None:
    """A key read: the entry with the read's index, or ``None`` for a 404 (absent)."""
    if response.status == 404:
        return None
    with _decoding("key/value entry"):
        entry = _decode_entry(response.body)
        return msgspec.structs.replace(entry, index=_index(response, entry.index or None))


def parse_key_as_list(response: Response) -> KVList:
    """A key read as a list of 0 or 1 entries (what ``watch_kv`` of one key yields), with the
    answer's index even when the key is absent."""
    if response.status == 404:
        return KVList(_index(response, None), ())
    entry = parse_entry(response)
    assert entry is not None
    return KVList(entry.index, (entry,))


def watch_parser(recurse: bool) -> Callable[[Response], KVList]:
    """The parser of ``watch``'s answers: a prefix's entries, or the key as 0 or 1 entries."""
    return parse_list if recurse else parse_key_as_list


def parse_list(response: Response) -> KVList:
    """A ``?recurse`` read: the entries under the prefix (none for a 404), sorted by key."""
    if response.status == 404:
        return KVList(_index(response, None), ())
    with _decoding("key/value list"):
        body = _decode_entries(response.body)
    return KVList(_index(response, body.index), tuple(sorted(body.entries, key=lambda e: e.key)))


def parse_keys(response: Response) -> KVKeys:
    if response.status == 404:
        return KVKeys(_index(response, None), ())
    with _decoding("key list"):
        body = _decode_keys(response.body)
    return KVKeys(_index(response, body.index), body.keys)


def parse_history(response: Response) -> KVHistory:
    with _decoding("key history"):
        body = _decode_history(response.body)
    return msgspec.structs.replace(body, index=_index(response, body.index))


def parse_write(response: Response) -> KVWrite:
    """A put: ``ok`` with the commit index; a 409 (``cas`` mismatch) is ``ok=False``."""
    if response.status == 409:
        return KVWrite(False, _index_or_zero(response))
    with _decoding("key/value write"):
        body = _decode_write(response.body)
    return KVWrite(body.ok, _index(response, body.index))


def parse_deleted(response: Response) -> KVDeleted:
    """A delete: the count of keys removed; a 404 removed nothing, a 409 is ``ok=False``."""
    if response.status in (404, 409):
        return KVDeleted(response.status == 404, 0, _index_or_zero(response))
    with _decoding("key/value delete"):
        body = _decode_deleted(response.body)
    return KVDeleted(True, int(body.deleted), _index(response, body.index))


def _failed_op(field: Any) -> int | None:
    """The op position of a 409's ``field`` (``"ops[3]"`` or ``"ops[3].index"``)."""
    if isinstance(field, str) and field.startswith("ops[") and "]" in field:
        inner = field[4:field.index("]")]
        return int(inner) if inner.isdigit() else None
    return None


def parse_txn(response: Response) -> TxnResult:
    """A transaction: its results, or on 409 ``ok=False`` with the failing op's position."""
    if response.status == 409:
        with _decoding("transaction conflict"):
            raw = _decode_any(response.body) if response.body else None
        err = error_from_body(409, raw)
        return TxnResult(False, _index_or_zero(response), (), _failed_op(err.field), err.message)
    with _decoding("transaction result"):
        body = _decode_txn(response.body)
    return TxnResult(True, _index(response, body.index), body.results)


def rollback_write(key: str, history_: KVHistory, current: KVEntry | None, to_index: int) -> Request:
    """The conditional put of ``kv_rollback``: the value and flags of the version written at
    ``to_index``, with ``cas`` = the current ``modify_index`` (0 when the key is absent now), so a
    write that lands in between wins and the rollback answers ``ok=False``. ``NotFound`` if that
    version is not retained (any more) and is not the current one either."""
    version = history_.version_at(to_index)
    if version is not None:
        value, flags = version.value, version.flags
    elif current is not None and current.modify_index == to_index:
        value, flags = current.value, current.flags
    else:
        raise NotFound(f"key {key!r} has no retained version written at index {to_index}")
    return put(key, value, flags=flags, cas=current.modify_index if current is not None else 0)
