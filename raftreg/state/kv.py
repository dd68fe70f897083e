"""The key/value store: the KV part of the replicated state machine.

Contract (the same as ``raftreg.state.registry``):
- ``apply(index, cmd)`` is deterministic and never raises; a command that changes nothing (a CAS
  mismatch, the delete of an absent key) leaves the state and its indexes untouched.
- ``restore(snapshot_struct())``'s encoding rebuilds exactly the same state, so replicas that
  applied the same commands encode byte-identical snapshots.

Entries carry ``create_index`` / ``modify_index`` / ``lock_index`` (Consul's KV semantics). Every
successful write moves ``modify_index``, even one that stores the same bytes. A key keeps its last
``history`` earlier versions (newest first; the number is carried in the command, not read from a
config); a deleted key drops its history.

Locks (``KVSet`` with ``lock``): a key is held by at most one session; every acquisition by a
new holder moves ``lock_index`` (the fence). When a session ends (``end_locks``), its keys are
released or deleted and stay unacquirable until a time carried in the ending command (the lock
delay, kept per key until the key's next acquisition).

Indexes of queries (``key_index``, ``prefix_index``): the highest ``modify_index`` under the key
or prefix, or the index of the last deletion under it. Deletions are remembered as tombstones
(key -> index), at most ``MAX_TOMBSTONES`` of them: the oldest is dropped first and its index
raises ``floor``, which every prefix and every key then reports at least (an online restore
raises it to the restore's index). An index may
thus move for a change elsewhere (a spurious wake-up) but never stays put when something under
the key or prefix changed, and once anything was written there it is never 0.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import msgspec

from raftreg.models import KVEntry, KVVersion, TxnOp
from raftreg.state.commands import KVDelete, KVSet, KVTxn

MAX_TOMBSTONES = 10_000
KV_SNAPSHOT_VERSION = 1


class KVWritten(msgspec.Struct, frozen=True):
    """Result of KVSet: ``ok`` and the stored entry, or not ``ok`` and the entry as it is (None
    when absent) with the ``reason``: ``cas`` (mismatch), ``held`` (locked by another session),
    ``lock_delay`` (released too recently), ``not_holder`` (release by a session that does not
    hold the lock), ``no_session`` (acquire or release for a session that does not exist)."""

    ok: bool
    entry: KVEntry | None
    reason: str = ""


class KVDeleted(msgspec.Struct, frozen=True):
    """Result of KVDelete: ``ok`` False on a CAS mismatch (``current`` then holds the key's
    ``modify_index``, 0 when absent); ``keys`` the keys removed."""

    ok: bool
    keys: tuple[str, ...] = ()
    current: int = 0


class KVTxnDone(msgspec.Struct, frozen=True):
    """Result of KVTxn. ``ok``: every op applied; ``results`` one per op (the entry for set, cas,
    get and check_index (None when absent), the number of keys removed for delete and
    delete_cas). Not ``ok``: op ``failed`` did not hold (``reason``) and nothing changed.
    ``keys``: the keys the transaction changed."""

    ok: bool
    results: list[KVEntry | int | None] = []
    failed: int = -1
    reason: str = ""
    keys: tuple[str, ...] = ()


KVResult = KVWritten | KVDeleted | KVTxnDone
KVCommand = KVSet | KVDelete | KVTxn


class _KVSnap(msgspec.Struct, array_like=True):
    v: int
    index: int
    floor: int
    entries: list[KVEntry]
    history: list[tuple[str, list[KVVersion]]]
    tombstones: list[tuple[str, int]]
    lock_delays: list[tuple[str, float]] = []  # absent in snapshots written before locks


class _KVSnapRaw(msgspec.Struct, array_like=True):
    """``_KVSnap`` as read back: entries and histories still encoded (decoded one at a time)."""

    v: int
    index: int
    floor: int
    entries: list[msgspec.Raw]
    history: list[msgspec.Raw]
    tombstones: list[tuple[str, int]]
    lock_delays: list[tuple[str, float]] = []


_snap_decoder = msgspec.msgpack.Decoder(_KVSnapRaw)
_entry_decoder = msgspec.msgpack.Decoder(KVEntry)
_history_decoder = msgspec.msgpack.Decoder(tuple[str, list[KVVersion]])


def _modify_index(entry: KVEntry | None) -> int:
    return entry.modify_index if entry is not None else 0


class KVStore:
    """Keys, their earlier versions, and the tombstones of deleted keys (module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[str, KVEntry] = {}
        self._keys: list[str] = []  # sorted, for prefix scans
        self._history: dict[str, tuple[KVVersion, ...]] = {}
        self._tombstones: dict[str, int] = {}  # oldest deletion first
        self._tomb_keys: list[str] = []  # sorted
        self._floor = 0
        self._index = 0
        self._history_versions = 0
        self._locked: dict[str, set[str]] = {}  # session -> keys it holds (derived)
        self._lock_delay: dict[str, float] = {}  # key -> no acquisition before this time

    # ---- writes -------------------------------------------------------------------------
    def apply(self, index: int, cmd: KVCommand) -> KVResult:
        """Apply a KV command committed at ``index``. Never raises (the caller guards too)."""
        if isinstance(cmd, KVSet):
            return self._set(index, cmd)
        if isinstance(cmd, KVDelete):
            return self._delete(index, cmd)
        return self._txn(index, cmd)

    def _set(self, index: int, cmd: KVSet) -> KVWritten:
        """A write; with ``cmd.lock``, a lock acquisition or release (the caller checked that the
        session exists). Re-acquiring a lock one holds writes without moving ``lock_index``."""
        old = self._entries.get(cmd.key)
        if cmd.cas is not None and _modify_index(old) != cmd.cas:
            return KVWritten(ok=False, entry=old, reason="cas")
        new = _next_version(old, cmd.key, cmd.value, cmd.flags, index)
        holder = old.session if old is not None else None
        if cmd.lock == "acquire":
            if holder is not None and holder != cmd.session:
                return KVWritten(ok=False, entry=old, reason="held")
            if holder is None:
                if self._lock_delay.get(cmd.key, 0.0) > cmd.at:
                    return KVWritten(ok=False, entry=old, reason="lock_delay")
                self._lock_delay.pop(cmd.key, None)
                new = msgspec.structs.replace(new, lock_index=new.lock_index + 1, session=cmd.session)
        elif cmd.lock == "release":
            if holder is None or holder != cmd.session:
                return KVWritten(ok=False, entry=old, reason="not_holder")
            new = msgspec.structs.replace(new, session=None)
        self._store(new, cmd.history)
        self._index = index
        return KVWritten(ok=True, entry=new)

    def end_locks(self, index: int, session: str, *, delete: bool, until: float) -> tuple[str, ...]:
        """A session ended: release (or ``delete``) every key it holds; none of them can be
        acquired again before ``until``. Returns the keys, sorted."""
        keys = tuple(sorted(self._locked.get(session, ())))
        for key in keys:
            if delete:
                self._remove(key, index)
            else:
                old = self._entries[key]
                self._store(msgspec.structs.replace(old, session=None, modify_index=index), keep=-1)
            self._lock_delay[key] = until
        if keys:
            self._index = index
        return keys

    def locked_keys(self, session: str) -> list[str]:
        return sorted(self._locked.get(session, ()))

    def _delete(self, index: int, cmd: KVDelete) -> KVDeleted:
        if cmd.recurse:
            keys = tuple(self._range(self._keys, cmd.key))
        else:
            current = _modify_index(self._entries.get(cmd.key))
            if cmd.cas is not None and current != cmd.cas:
                return KVDeleted(ok=False, current=current)
            keys = (cmd.key,) if current else ()
        for key in keys:
            self._remove(key, index)
        if keys:
            self._index = index
        return KVDeleted(ok=True, keys=keys)

    def _txn(self, index: int, cmd: KVTxn) -> KVTxnDone:
        """Run the ops against an overlay of the state; commit the overlay only if all held."""
        view: dict[str, KVEntry | None] = {}
        results: list[KVEntry | int | None] = []
        for i, op in enumerate(cmd.ops):
            entry = view[op.key] if op.key in view else self._entries.get(op.key)
            problem = _txn_check(op, entry)
            if problem:
                return KVTxnDone(ok=False, failed=i, reason=problem)
            if op.op in ("set", "cas"):
                entry = view[op.key] = _next_version(entry, op.key, op.value, op.flags, index)
                results.append(entry)
            elif op.op in ("delete", "delete_cas"):
                view[op.key] = None
                results.append(0 if entry is None else 1)
            else:
                results.append(entry)
        changed = []
        for key, new in view.items():
            if new is not None:
                self._store(new, cmd.history)
                changed.append(key)
            elif key in self._entries:
                self._remove(key, index)
                changed.append(key)
        if changed:
            self._index = index
        return KVTxnDone(ok=True, results=results, keys=tuple(changed))

    def _store(self, new: KVEntry, keep: int) -> None:
        """Store ``new``; the replaced version joins the key's history (``keep`` versions at
        most; -1 leaves the history as it is)."""
        key = new.key
        old = self._entries.get(key)
        if old is None:
            bisect.insort(self._keys, key)
            if self._tombstones.pop(key, None) is not None:
                del self._tomb_keys[bisect.bisect_left(self._tomb_keys, key)]
        self._entries[key] = new
        holder = old.session if old is not None else None
        if holder != new.session:
            if holder is not None:
                self._unlocked(holder, key)
            if new.session is not None:
                self._locked.setdefault(new.session, set()).add(key)
        if keep < 0:
            return
        before = self._history.pop(key, ())
        kept: tuple[KVVersion, ...] = ()
        if old is not None and keep > 0:
            kept = (KVVersion(old.value, old.flags, old.create_index, old.modify_index, old.session),
                    *before[: keep - 1])
            self._history[key] = kept
        self._history_versions += len(kept) - len(before)

    def _unlocked(self, session: str, key: str) -> None:
        keys = self._locked[session]
        keys.discard(key)
        if not keys:
            del self._locked[session]

    def _remove(self, key: str, index: int) -> None:
        holder = self._entries.pop(key).session
        if holder is not None:
            self._unlocked(holder, key)
        del self._keys[bisect.bisect_left(self._keys, key)]
        self._history_versions -= len(self._history.pop(key, ()))
        if key in self._tombstones:
            del self._tombstones[key]  # re-inserted below as the newest
        else:
            bisect.insort(self._tomb_keys, key)
        self._tombstones[key] = index
        if len(self._tombstones) > MAX_TOMBSTONES:
            oldest = next(iter(self._tombstones))
            self._floor = max(self._floor, self._tombstones.pop(oldest))
            del self._tomb_keys[bisect.bisect_left(self._tomb_keys, oldest)]

    # ---- reads --------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """Raft index of the last command that changed the store (0 when untouched)."""
        return self._index

    def get(self, key: str) -> KVEntry | None:
        return self._entries.get(key)

    def key_index(self, key: str) -> int:
        """The index answering a query on ``key`` (see the module docstring)."""
        entry = self._entries.get(key)
        if entry is not None:
            return max(entry.modify_index, self._floor)
        return max(self._tombstones.get(key, 0), self._floor)

    def place_at(self, index: int) -> None:
        """A restore committed at ``index``: ``floor`` (so every key and prefix index) rises to it."""
        self._index = self._floor = max(self._floor, index)

    def prefix_index(self, prefix: str) -> int:
        """The index answering a query on every key starting with ``prefix``."""
        index = self._floor
        for key in self._range(self._keys, prefix):
            index = max(index, self._entries[key].modify_index)
        for key in self._range(self._tomb_keys, prefix):
            index = max(index, self._tombstones[key])
        return index

    def list_prefix(self, prefix: str) -> list[KVEntry]:
        """Every entry whose key starts with ``prefix``, sorted by key."""
        return [self._entries[key] for key in self._range(self._keys, prefix)]

    def keys(self, prefix: str, separator: str = "") -> list[str]:
        """The keys starting with ``prefix``, sorted. With a ``separator``, each key is cut after
        the first separator that follows the prefix and duplicates are dropped (one level)."""
        out: list[str] = []
        start = len(prefix)
        for key in self._range(self._keys, prefix):
            cut = key.find(separator, start) if separator else -1
            name = key[: cut + len(separator)] if cut >= 0 else key
            if not out or out[-1] != name:  # equal names are adjacent: they share a sorted prefix
                out.append(name)
        return out

    def history(self, key: str) -> list[KVVersion]:
        """The earlier versions of ``key`` kept, newest first."""
        return list(self._history.get(key, ()))

    def stats(self) -> dict[str, int]:
        return {"keys": len(self._entries), "history_versions": self._history_versions,
                "tombstones": len(self._tombstones)}

    def key_count(self) -> int:
        return len(self._entries)

    def item_count(self) -> int:
        """Stored objects (keys and kept versions), for the log-compaction budget."""
        return len(self._entries) + self._history_versions

    @staticmethod
    def _range(keys: list[str], prefix: str) -> Iterator[str]:
        for i in range(bisect.bisect_left(keys, prefix), len(keys)):
            key = keys[i]
            if not key.startswith(prefix):
                return
            yield key

    # ---- snapshots ----------------------------------------------------------------------
    def snapshot_struct(self) -> _KVSnap:
        """The whole store as a deterministic structure (encoded by ``raftreg.state.machine``)."""
        return _KVSnap(
            KV_SNAPSHOT_VERSION, self._index, self._floor,
            [self._entries[key] for key in self._keys],
            [(key, list(self._history[key])) for key in sorted(self._history)],
            list(self._tombstones.items()),
            sorted(self._lock_delay.items()),
        )

    def restore(self, data: bytes | memoryview) -> None:
        """Replace the store with the one ``data`` (an encoded ``snapshot_struct()``) describes.
        Entries and histories are decoded one at a time, each encoding dropped once stored."""
        snap = _snap_decoder.decode(data)
        if snap.v != KV_SNAPSHOT_VERSION:
            raise ValueError(f"KV snapshot version {snap.v}, this build knows {KV_SNAPSHOT_VERSION}")
        entries: dict[str, KVEntry] = {}
        for raw in snap.entries:
            entry = _entry_decoder.decode(raw)
            entries[entry.key] = entry
        snap.entries = []
        history: dict[str, tuple[KVVersion, ...]] = {}
        for raw in snap.history:
            key, versions = _history_decoder.decode(raw)
            history[key] = tuple(versions)
        snap.history = []
        self._entries, self._keys = entries, sorted(entries)
        self._history = history
        self._history_versions = sum(len(v) for v in history.values())
        self._tombstones = dict(snap.tombstones)
        self._tomb_keys = sorted(self._tombstones)
        self._index, self._floor = snap.index, snap.floor
        self._lock_delay = dict(snap.lock_delays)
        self._locked = {}
        for entry in entries.values():
            if entry.session is not None:
                self._locked.setdefault(entry.session, set()).add(entry.key)


def _next_version(old: KVEntry | None, key: str, value: bytes, flags: int, index: int) -> KVEntry:
    """The entry written at ``index`` over ``old`` (keeps its create index and lock fields)."""
    if old is None:
        return KVEntry(key, value, flags, create_index=index, modify_index=index)
    return KVEntry(key, value, flags, old.create_index, index, old.lock_index, old.session)


def _txn_check(op: TxnOp, entry: KVEntry | None) -> str:
    """Why ``op`` cannot apply to ``entry`` ('' when it can)."""
    if op.op not in ("cas", "delete_cas", "check_index"):
        return ""
    current = _modify_index(entry)
    if current == op.index:
        return ""
    now = "is absent" if entry is None else f"has modify_index {current}"
    wanted = "absent" if op.index == 0 else f"at modify_index {op.index}"
    return f"{op.op} on key {op.key!r}: the key {now}, expected {wanted}"
