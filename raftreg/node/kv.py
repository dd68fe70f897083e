"""``KeyValue``: the key/value store of one node: its writes (through ``Writer``) and its reads
(from the local applied state; ``Reader.prepare`` applies the consistency rules first).

Contract:
- Writes answer ``(index, ...)`` once applied on this node. A compare-and-set mismatch is
  ``Conflict`` (409) naming the field at fault (``cas``, or ``ops[i]`` of a transaction).
- At most once: every write (a set, a compare-and-set, a delete, a lock acquisition or release, a
  transaction) that is re-submitted after an unknown outcome applies at most once
  (``raftreg.node.proposer``), so a retry never reports a conflict its own first attempt caused
  and a blind set never lands twice; when the first attempt had applied, the answer is
  ``OutcomeUnknown`` (504).
- Locks: ``set(..., lock="acquire"|"release", session=id)`` answers ``(index, False)`` when the
  lock is held by another session, still in its lock delay, or (release) not held by this
  session; ``NotFound`` when the session does not exist. Acquisition carries this node's
  wall-clock time, compared with the key's lock delay.
- Every write carries the cluster config's ``kv.history`` (earlier versions kept per key).
- Reads hold the state lock only while they copy what they return.
"""

from __future__ import annotations

import time
from typing import Literal

from raftreg.errors import Conflict, NotFound
from raftreg.models import KVEntry, KVVersion, TxnOp
from raftreg.node.writes import Writer, unexpected
from raftreg.raft import RaftNode
from raftreg.state.commands import KVDelete, KVSet, KVTxn
from raftreg.state.kv import KVDeleted, KVTxnDone, KVWritten

TxnResult = KVEntry | int | None


class KeyValue:
    def __init__(self, raft: RaftNode, writer: Writer, history: int) -> None:
        self._raft = raft
        self._writer = writer
        self._history = history

    # ---- writes -------------------------------------------------------------------------
    async def set(self, key: str, value: bytes, flags: int = 0, cas: int | None = None, *,
                  lock: Literal["", "acquire", "release"] = "", session: str = "") -> tuple[int, bool]:
        """Write ``key``; with ``cas``, only if its modify_index is ``cas`` (0: only if absent);
        with ``lock``, acquire or release its lock for ``session`` (module docstring). Returns the
        index and whether the write applied (always True without ``lock``)."""
        cmd = KVSet(key, value, flags, cas, self._history, lock, session, time.time() if lock else 0.0)
        committed = await self._writer.commit(cmd)
        result = committed.result
        if not isinstance(result, KVWritten):
            raise unexpected("the key write", result)
        if result.ok:
            return committed.index, True
        if result.reason == "cas":
            raise Conflict(f"cas={cas} does not match key {key!r}: {_state_of(result.entry)}", field="cas")
        if result.reason == "no_session":
            raise NotFound(f"no session {session!r} (expired, destroyed or never created)", field=lock)
        return committed.index, False

    async def delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> tuple[int, int]:
        """Delete ``key`` (``recurse``: every key under it); returns the index and the number of
        keys removed. With ``cas``, only if the key's modify_index is ``cas``."""
        committed = await self._writer.commit(KVDelete(key, recurse, cas))
        result = committed.result
        if not isinstance(result, KVDeleted):
            raise unexpected("the key deletion", result)
        if not result.ok:
            state = "is absent" if not result.current else f"has modify_index {result.current}"
            raise Conflict(f"cas={cas} does not match key {key!r}: it {state}", field="cas")
        return committed.index, len(result.keys)

    async def txn(self, ops: list[TxnOp]) -> tuple[int, list[TxnResult]]:
        """Apply ``ops`` at one index, all or none; ``Conflict`` naming ``ops[i]`` when op i's
        condition does not hold (then nothing changed)."""
        committed = await self._writer.commit(KVTxn(ops, self._history))
        result = committed.result
        if not isinstance(result, KVTxnDone):
            raise unexpected("the transaction", result)
        if not result.ok:
            raise Conflict(f"ops[{result.failed}] failed, nothing was applied: {result.reason}",
                           field=f"ops[{result.failed}]")
        return committed.index, result.results

    # ---- reads (local applied state) ----------------------------------------------------
    def get(self, key: str) -> tuple[int, KVEntry | None]:
        with self._raft.lock:
            kv = self._raft.kv
            return kv.key_index(key), kv.get(key)

    def list_prefix(self, prefix: str) -> tuple[int, list[KVEntry]]:
        with self._raft.lock:
            kv = self._raft.kv
            return kv.prefix_index(prefix), kv.list_prefix(prefix)

    def keys(self, prefix: str, separator: str = "") -> tuple[int, list[str]]:
        with self._raft.lock:
            kv = self._raft.kv
            return kv.prefix_index(prefix), kv.keys(prefix, separator)

    def history(self, key: str) -> tuple[int, list[KVVersion]]:
        with self._raft.lock:
            kv = self._raft.kv
            return kv.key_index(key), kv.history(key)

    def stats(self) -> dict[str, int]:
        with self._raft.lock:
            return {**self._raft.kv.stats(), "history_kept": self._history}


def _state_of(entry: KVEntry | None) -> str:
    return "it is absent" if entry is None else f"its modify_index is {entry.modify_index}"
