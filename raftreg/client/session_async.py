"""The session and lock calls of ``AsyncRegistryClient``: ``session_sync.SessionCalls``'s methods,
awaited (same contracts), over the async shell's ``_call``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from raftreg.client import kv_core, session_core
from raftreg.client.core import Request, Response
from raftreg.client.kv_results import KVList, KVWrite
from raftreg.client.session_core import Behavior, Session, SessionCreated, SessionDestroyed, SessionList, SessionRenewed

if TYPE_CHECKING:
    from raftreg.client.async_client import AsyncRegistryClient
    from raftreg.client.recipes.election import AsyncElection
    from raftreg.client.recipes.lock import AsyncLock

T = TypeVar("T")


class AsyncSessionCalls:
    """Session and lock methods of ``AsyncRegistryClient`` (see ``raftreg.client.session_sync.SessionCalls``)."""

    if TYPE_CHECKING:
        def _call(self, request: Request, parse: Callable[[Response], T], *, timeout: float | None = None,
                  deadline: float | None = None) -> Awaitable[T]: ...

    async def session_create(self, ttl: float | str = 15.0, *, name: str = "", behavior: Behavior = "release",
                       lock_delay: float | str = 15.0, instances: Sequence[tuple[str, str]] = (),
                       deadline: float | None = None) -> SessionCreated:
        """A new session (ttl 1s-24h, lock delay 0-60s) tied to ``instances`` (``(service, id)``)."""
        request = session_core.create(ttl, name=name, behavior=behavior, lock_delay=lock_delay, instances=instances)
        return await self._call(request, session_core.parse_created, deadline=deadline)

    async def session_renew(self, session: str, *, deadline: float | None = None) -> SessionRenewed:
        """Renew the session's lease; ``NotFound`` once it is gone."""
        return await self._call(session_core.renew(session), session_core.parse_renewed, deadline=deadline)

    async def session_destroy(self, session: str, *, deadline: float | None = None) -> SessionDestroyed:
        """End the session now; ``destroyed=False`` if it was already gone."""
        return await self._call(session_core.destroy(session), session_core.parse_destroyed, deadline=deadline)

    async def session_get(self, session: str, *, consistent: bool = False,
                          deadline: float | None = None) -> Session | None:
        return await self._call(session_core.get(session, consistent=consistent), session_core.parse_session,
                          deadline=deadline)

    async def session_list(self, *, consistent: bool = False, deadline: float | None = None) -> SessionList:
        return await self._call(session_core.list_sessions(consistent=consistent), session_core.parse_list,
                          deadline=deadline)

    async def kv_acquire(self, key: str, session: str, value: bytes | str = b"", *,
                   deadline: float | None = None) -> KVWrite:
        """Take the lock on ``key`` for ``session`` (writing ``value``): ``ok=False`` if another holds it."""
        return await self._call(session_core.acquire(key, session, value), kv_core.parse_write, deadline=deadline)

    async def kv_release(self, key: str, session: str, value: bytes | str = b"", *,
                   deadline: float | None = None) -> KVWrite:
        """Give up the lock on ``key``: ``ok=False`` if ``session`` did not hold it."""
        return await self._call(session_core.release(key, session, value), kv_core.parse_write, deadline=deadline)

    async def kv_key(self, key: str, *, consistent: bool = False, index: int | None = None, wait: float | None = None,
              deadline: float | None = None) -> KVList:
        """The key as 0 or 1 entries with the read's index (kept when the key is absent);
        ``index``/``wait``: a blocking query, answered once the key changed after ``index``."""
        return await self._call(kv_core.get(key, consistent=consistent, index=index, wait=wait),
                          kv_core.parse_key_as_list, deadline=deadline)

    def lock(self, name: str, *, ttl: float = 15.0, timeout: float | None = None, lock_delay: float = 15.0,
             value: bytes | str = b"", prefix: str = "locks/") -> AsyncLock:
        """A distributed lock on the key ``prefix + name``
        (``raftreg.client.recipes.lock.AsyncLock``), used with ``async with``."""
        from raftreg.client.recipes.lock import AsyncLock

        return AsyncLock(cast("AsyncRegistryClient", self), prefix + name, ttl=ttl, timeout=timeout,
                         lock_delay=lock_delay, value=value)

    def election(self, name: str, identity: str, *, ttl: float = 15.0, lock_delay: float = 15.0,
                 prefix: str = "election/") -> AsyncElection:
        """A leader election on the key ``prefix + name`` (``raftreg.client.recipes.election``)."""
        from raftreg.client.recipes.election import AsyncElection

        return AsyncElection(cast("AsyncRegistryClient", self), prefix + name, identity, ttl=ttl, lock_delay=lock_delay)
