"""The client's key/value types: what ``kv_*`` and ``txn`` calls return, and the ops of a ``txn``.

Every result carries ``index`` (``X-Raftreg-Index``, as every result of ``raftreg.client.results``):
the index that answers a read, or the one a write was committed at. Values are ``bytes``; on the
wire they travel as base64 strings (API.md "Key/value"), which msgspec encodes and decodes.

Conditional writes (``cas``) report a mismatch as ``ok=False`` in the result, not as an exception,
as python-consul's ``kv.put(..., cas=)`` and python-etcd3's ``replace``/``transaction`` do: losing a
race is an expected answer of a compare-and-set, not an error. Everything else (an invalid key, a
value over 512 KiB, an unreachable cluster, an ``OutcomeUnknown``) raises ``raftreg.errors``.

Transaction ops are built with the functions of ``raftreg.client.txn`` (``txn.put``, ``txn.cas``,
``txn.delete``, ``txn.delete_cas``, ``txn.check_index``, ``txn.get``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from raftreg.models import KVVersion

__all__ = ["KVDeleted", "KVEntry", "KVHistory", "KVKeys", "KVList", "KVVersion", "KVWrite", "TxnOp", "TxnResult"]

TxnVerb = Literal["set", "cas", "delete", "delete_cas", "check_index", "get"]


def _wire(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


class KVEntry(msgspec.Struct, frozen=True):
    """One key as stored: its value and ``flags`` (a caller-owned uint64), the index that created
    the key, the one that last modified it (the ``cas=`` of a conditional write), the lock fields,
    and ``index``: the index of the read that returned it (0 inside a list or a transaction)."""

    key: str
    value: bytes = b""
    flags: int = 0
    create_index: int = 0
    modify_index: int = 0
    lock_index: int = 0
    session: str | None = None
    index: int = 0

    def text(self, encoding: str = "utf-8") -> str:
        """The value as text."""
        return self.value.decode(encoding)

    def to_wire(self) -> dict[str, Any]:
        """API.md's JSON of the entry (base64 value) with the read's ``index``."""
        body: dict[str, Any] = _wire(self)
        return body


class KVWrite(msgspec.Struct, frozen=True):
    """A ``kv_put``: ``ok`` is false only when a ``cas`` did not match (nothing was written; ``index``
    is then the index of that answer, 0 if it had none)."""

    ok: bool
    index: int

    def to_wire(self) -> dict[str, Any]:
        return {"ok": self.ok, "index": self.index}


class KVDeleted(msgspec.Struct, frozen=True):
    """A ``kv_delete``: how many keys it removed (0 when there was none: deleting is idempotent),
    and ``ok=False`` when a ``cas`` did not match (nothing was deleted)."""

    ok: bool
    deleted: int
    index: int

    def to_wire(self) -> dict[str, Any]:
        return {"ok": self.ok, "deleted": self.deleted, "index": self.index}


class KVList(msgspec.Struct, frozen=True):
    """The entries under a prefix, sorted by key (``kv_list``); a ``watch_kv`` of one key yields it
    too, with no entry while the key is absent and one while it exists."""

    index: int
    entries: tuple[KVEntry, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "entries": [e.to_wire() for e in self.entries]}


class KVKeys(msgspec.Struct, frozen=True):
    """The key names under a prefix (``kv_keys``); with a separator, one level (deeper keys are
    folded into their ``prefix/`` up to and including the separator)."""

    index: int
    keys: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "keys": list(self.keys)}


class KVHistory(msgspec.Struct, frozen=True):
    """A key's kept earlier versions, newest first (``kv_history``); the current value is not
    among them (``kv_get`` reads it)."""

    index: int
    key: str
    versions: tuple[KVVersion, ...]

    def version_at(self, modify_index: int) -> KVVersion | None:
        """The version written at ``modify_index``, if it is retained."""
        return next((v for v in self.versions if v.modify_index == modify_index), None)

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "key": self.key, "versions": _wire(self.versions)}


class TxnOp(msgspec.Struct, frozen=True, omit_defaults=True):
    """One op of ``PUT /v1/txn`` (build it with ``raftreg.client.txn``). ``index`` is the expected
    ``modify_index`` of ``cas``, ``delete_cas`` and ``check_index`` (0: the key must be absent)."""

    op: TxnVerb
    key: str
    value: bytes | None = None
    flags: int | None = None
    index: int | None = None


class TxnResult(msgspec.Struct, frozen=True):
    """A transaction: all ops applied at ``index`` (``ok``), or none (``ok=False``: a condition did
    not hold; ``failed`` is the position of the op at fault when the server names it, ``error`` its
    message). ``results`` holds the server's answer per op, in order, as decoded JSON: the entry
    written (``set``, ``cas``) or seen (``get``, ``check_index``; ``None`` when absent), and
    ``{"deleted": n}`` for a delete; ``entries()`` gives them as ``KVEntry``."""

    ok: bool
    index: int
    results: tuple[Any, ...] = ()
    failed: int | None = None
    error: str = ""

    def entries(self) -> tuple[KVEntry | None, ...]:
        """One item per op: its entry (``None`` for a delete or an absent key)."""
        out: list[KVEntry | None] = []
        for item in self.results:
            entry = item.get("entry", item) if isinstance(item, dict) else None
            ok = isinstance(entry, dict) and "key" in entry and "modify_index" in entry
            out.append(msgspec.convert(entry, KVEntry) if ok else None)
        return tuple(out)

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "index": self.index, "results": list(self.results)}
        if self.failed is not None:
            body["failed"] = self.failed
        if self.error:
            body["error"] = self.error
        return body
