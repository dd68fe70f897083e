"""The key/value calls of ``AsyncRegistryClient``: ``kv_sync.KVCalls``'s methods, awaited (same
contracts), over the async shell's ``_call``/``_watch``."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from raftreg.client import kv_core
from raftreg.client.core import Request, Response
from raftreg.client.kv_results import KVDeleted, KVEntry, KVHistory, KVKeys, KVList, KVWrite, TxnOp, TxnResult

if TYPE_CHECKING:
    from raftreg.client.recipes.config import AsyncConfigView

T = TypeVar("T")


class AsyncKVCalls:
    """Key/value methods of ``AsyncRegistryClient`` (see ``raftreg.client.kv_sync.KVCalls``)."""

    if TYPE_CHECKING:
        def _call(self, request: Request, parse: Callable[[Response], T], *, timeout: float | None = None,
                  deadline: float | None = None) -> Awaitable[T]: ...

        def _watch(self, build: Callable[[int | None], Request], parse: Callable[[Response], T],
                   index_of: Callable[[T], int], index: int, max_backoff: float) -> AsyncGenerator[T, None]: ...

    async def kv_get(self, key: str, *, consistent: bool = False, min_index: int | None = None,
                     deadline: float | None = None) -> KVEntry | None:
        return await self._call(kv_core.get(key, consistent=consistent, min_index=min_index),
                                kv_core.parse_entry, deadline=deadline)

    async def kv_put(self, key: str, value: bytes | str, *, flags: int = 0, cas: int | None = None,
                     deadline: float | None = None) -> KVWrite:
        return await self._call(kv_core.put(key, value, flags=flags, cas=cas), kv_core.parse_write,
                                deadline=deadline)

    async def kv_delete(self, key: str, *, recurse: bool = False, cas: int | None = None,
                        deadline: float | None = None) -> KVDeleted:
        return await self._call(kv_core.delete(key, recurse=recurse, cas=cas), kv_core.parse_deleted,
                                deadline=deadline)

    async def kv_list(self, prefix: str = "", *, consistent: bool = False, min_index: int | None = None,
                      index: int | None = None, wait: float | None = None,
                      deadline: float | None = None) -> KVList:
        return await self._call(kv_core.list_prefix(prefix, consistent=consistent, min_index=min_index, index=index,
                                                    wait=wait),
                                kv_core.parse_list, deadline=deadline)

    async def kv_keys(self, prefix: str = "", separator: str | None = None, *, consistent: bool = False,
                      deadline: float | None = None) -> KVKeys:
        return await self._call(kv_core.keys(prefix, separator, consistent=consistent), kv_core.parse_keys,
                                deadline=deadline)

    async def kv_history(self, key: str, *, consistent: bool = False, deadline: float | None = None) -> KVHistory:
        return await self._call(kv_core.history(key, consistent=consistent), kv_core.parse_history,
                                deadline=deadline)

    async def kv_rollback(self, key: str, to_index: int, *, deadline: float | None = None) -> KVWrite:
        found = await self.kv_history(key, consistent=True, deadline=deadline)
        current = await self.kv_get(key, consistent=True, deadline=deadline)
        return await self._call(kv_core.rollback_write(key, found, current, to_index), kv_core.parse_write,
                                deadline=deadline)

    async def txn(self, ops: Sequence[TxnOp], *, deadline: float | None = None) -> TxnResult:
        return await self._call(kv_core.txn(ops), kv_core.parse_txn, deadline=deadline)

    def watch_kv(self, key_or_prefix: str, *, recurse: bool = False, index: int = 0, wait: float = 60.0,
                 max_backoff: float = 5.0) -> AsyncGenerator[KVList, None]:
        """As ``RegistryClient.watch_kv``, as an async generator (``aclose()`` ends it)."""
        return self._watch(lambda at: kv_core.watch(key_or_prefix, recurse, at, wait), kv_core.watch_parser(recurse),
                           lambda r: r.index, index, max_backoff)

    def config(self, prefix: str, decoder: Callable[[bytes], Any] = json.loads) -> AsyncConfigView:
        """A live view of the keys under ``prefix``, decoded (``raftreg.client.recipes.config``),
        kept by one task; call it inside the running loop and ``await view.aclose()`` at the end."""
        from raftreg.client.recipes.config import AsyncConfigView

        return AsyncConfigView(self, prefix, decoder)
