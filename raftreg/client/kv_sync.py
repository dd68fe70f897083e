"""The key/value calls of the blocking ``RegistryClient`` (a mixin over its ``_call``/``_watch``).

Contracts (requests and answers: ``raftreg.client.kv_core``; types: ``raftreg.client.kv_results``):
- ``kv_get`` returns ``None`` for an absent key; every other result carries the index.
- ``kv_put``/``kv_delete`` with ``cas``, and ``txn``, report a failed condition as ``ok=False``
  (python-consul's and python-etcd3's convention); they are never retried after an unknown
  outcome (``OutcomeUnknown``). Plain puts and deletes are retried under the deadline.
- ``watch_kv`` yields the key (0 or 1 entries) or the prefix now, then at every change under it,
  over blocking queries with the index rules of ``raftreg.client.policy.WatchCursor``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from raftreg.client import kv_core
from raftreg.client.core import Request, Response
from raftreg.client.kv_results import KVDeleted, KVEntry, KVHistory, KVKeys, KVList, KVWrite, TxnOp, TxnResult

if TYPE_CHECKING:
    from raftreg.client.recipes.config import ConfigView

T = TypeVar("T")


class KVCalls:
    """Key/value methods of ``RegistryClient``."""

    if TYPE_CHECKING:
        def _call(self, request: Request, parse: Callable[[Response], T], *, timeout: float | None = None,
                  deadline: float | None = None) -> T: ...

        def _watch(self, build: Callable[[int | None], Request], parse: Callable[[Response], T],
                   index_of: Callable[[T], int], index: int, max_backoff: float) -> Iterator[T]: ...

    def kv_get(self, key: str, *, consistent: bool = False, min_index: int | None = None,
               deadline: float | None = None) -> KVEntry | None:
        """The key's entry (``value`` bytes, ``flags``, indexes), or ``None`` if absent.
        ``consistent``: linearizable; ``min_index``: from a node that applied at least that."""
        return self._call(kv_core.get(key, consistent=consistent, min_index=min_index), kv_core.parse_entry,
                          deadline=deadline)

    def kv_put(self, key: str, value: bytes | str, *, flags: int = 0, cas: int | None = None,
               deadline: float | None = None) -> KVWrite:
        """Write the key. ``cas=M``: only if its ``modify_index`` is M (0: only if absent);
        a mismatch returns ``ok=False`` and writes nothing."""
        return self._call(kv_core.put(key, value, flags=flags, cas=cas), kv_core.parse_write, deadline=deadline)

    def kv_delete(self, key: str, *, recurse: bool = False, cas: int | None = None,
                  deadline: float | None = None) -> KVDeleted:
        """Delete the key (``recurse``: every key under the prefix); ``deleted`` counts them."""
        return self._call(kv_core.delete(key, recurse=recurse, cas=cas), kv_core.parse_deleted, deadline=deadline)

    def kv_list(self, prefix: str = "", *, consistent: bool = False, min_index: int | None = None,
                index: int | None = None, wait: float | None = None,
                deadline: float | None = None) -> KVList:
        """Every entry under ``prefix``, sorted by key. ``index``/``wait``: a blocking query that
        answers once something under the prefix changed after ``index`` (or after ``wait``)."""
        return self._call(kv_core.list_prefix(prefix, consistent=consistent, min_index=min_index, index=index,
                                                    wait=wait),
                          kv_core.parse_list, deadline=deadline)

    def kv_keys(self, prefix: str = "", separator: str | None = None, *, consistent: bool = False,
                deadline: float | None = None) -> KVKeys:
        """The key names under ``prefix`` (one level of them with a ``separator``)."""
        return self._call(kv_core.keys(prefix, separator, consistent=consistent), kv_core.parse_keys,
                          deadline=deadline)

    def kv_history(self, key: str, *, consistent: bool = False, deadline: float | None = None) -> KVHistory:
        """The key's kept earlier versions (not the current one), newest first; empty when it has
        none (never written, or ``[kv] history = 0``)."""
        return self._call(kv_core.history(key, consistent=consistent), kv_core.parse_history, deadline=deadline)

    def kv_rollback(self, key: str, to_index: int, *, deadline: float | None = None) -> KVWrite:
        """Write back the value and flags the key had at ``to_index`` (a version of its history),
        conditionally on the current ``modify_index`` (read linearizably): ``ok=False`` if the key
        changed in between; ``NotFound`` if that version is not retained."""
        found = self.kv_history(key, consistent=True, deadline=deadline)
        current = self.kv_get(key, consistent=True, deadline=deadline)
        return self._call(kv_core.rollback_write(key, found, current, to_index), kv_core.parse_write,
                          deadline=deadline)

    def txn(self, ops: Sequence[TxnOp], *, deadline: float | None = None) -> TxnResult:
        """Apply ``ops`` (``raftreg.client.txn`` builders, at most 64) at one index, or none of
        them (``ok=False``, ``failed`` = the op at fault)."""
        return self._call(kv_core.txn(ops), kv_core.parse_txn, deadline=deadline)

    def watch_kv(self, key_or_prefix: str, *, recurse: bool = False, index: int = 0, wait: float = 60.0,
                 max_backoff: float = 5.0) -> Iterator[KVList]:
        """Yield the key (a ``KVList`` of 0 or 1 entries) or, with ``recurse``, every entry under the
        prefix, now and then at every change under it. Failures back off up to ``max_backoff``
        and keep the index; an index that goes backwards starts over from 0 (a rebuilt cluster)."""
        return self._watch(lambda at: kv_core.watch(key_or_prefix, recurse, at, wait), kv_core.watch_parser(recurse),
                           lambda r: r.index, index, max_backoff)

    def config(self, prefix: str, decoder: Callable[[bytes], Any] = json.loads) -> ConfigView:
        """A live view of the keys under ``prefix``, decoded (``raftreg.client.recipes.config``),
        kept by one daemon thread; ``close()`` it (or use it in a ``with`` block)."""
        from raftreg.client.recipes.config import ConfigView

        return ConfigView(self, prefix, decoder)
