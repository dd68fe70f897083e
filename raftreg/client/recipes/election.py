"""Leader election over a lock (API.md: the holder of the election key is the leader; kazoo's
``Election`` in size).

    election = client.election("scheduler", identity="host-a:8080")      # AsyncRegistryClient
    await election.campaign()          # returns once leader; election.lost set = no longer leader
    ...
    await election.resign()
    async for leader in election.observe(): ...   # identities (None: no leader), in order

Contract:
- ``campaign(timeout=None)`` holds the key ``election/<name>`` with a session of its own, its value
  being ``identity`` (``raftreg.client.recipes.lock``: renewal every ttl/3, blocking-query waits,
  the key read after an unknown outcome). It returns the fence: the key's ``lock_index``, larger
  for every new term of leadership. ``lost`` is set when the session is gone: from then on this
  candidate is not the leader and must act like it (``campaign`` again to run once more).
- ``resign()`` gives the leadership up (release + destroy the session); idempotent.
- ``leader()`` is the identity of the current holder, ``None`` while nobody holds the key (read
  linearizably unless ``consistent=False``).
- ``observe()`` yields the current leader's identity (or ``None``), then each change of it, in
  the order the registry committed them, each once: it is driven by blocking queries on the key
  and yields only when the identity differs from the last one yielded. Changes that come and go
  between two answers (a leader that held the key for a few milliseconds) may be skipped; the
  yielded sequence is always a subsequence of the committed one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Generic, TypeVar

from raftreg.client.kv_results import KVList
from raftreg.client.recipes.lock import LOCK_DELAY_RETRY, AsyncLock, Lock

if TYPE_CHECKING:
    import asyncio
    import threading

    from raftreg.client.async_client import AsyncRegistryClient
    from raftreg.client.sync_client import RegistryClient


L = TypeVar("L", AsyncLock, Lock)


def leader_of(read: KVList) -> str | None:
    """The identity the election key holds, ``None`` when no session holds it."""
    entry = read.entries[0] if read.entries else None
    return entry.value.decode("utf-8", "replace") if entry is not None and entry.session is not None else None


class _ElectionBase(Generic[L]):
    """What both shells share: the key, the identity, the lock that carries the leadership."""

    def __init__(self, key: str, identity: str, lock: L) -> None:
        self.key = key
        self.identity = identity
        self._lock: L = lock

    @property
    def is_leader(self) -> bool:
        return self._lock.held and not self._lock.lost.is_set()

    @property
    def fence(self) -> int | None:
        """The fence of the current leadership (the election key's lock_index), ``None`` if none."""
        return self._lock.fence

    def _prepare(self, timeout: float | None) -> int | None:
        """The fence when already leader (nothing to send), else ``None`` (campaign)."""
        self._lock.timeout = timeout
        return self._lock.fence if self.is_leader else None

    @staticmethod
    def _changes(last: tuple[str | None] | None, read: KVList) -> tuple[str | None] | None:
        """The leader to yield (in a 1-tuple) when ``read`` shows another one than ``last``."""
        current = leader_of(read)
        return (current,) if last is None or last[0] != current else None


class AsyncElection(_ElectionBase[AsyncLock]):
    """An election for ``AsyncRegistryClient`` (``client.election(name, identity)``)."""

    def __init__(self, client: AsyncRegistryClient, key: str, identity: str, *, ttl: float = 15.0,
                 lock_delay: float = 15.0, retry: float = LOCK_DELAY_RETRY) -> None:
        super().__init__(key, identity, AsyncLock(client, key, ttl=ttl, lock_delay=lock_delay, value=identity,
                                                  retry=retry))
        self._client = client

    @property
    def lost(self) -> asyncio.Event:
        """Set when the session of the current leadership is gone (not the leader any more)."""
        return self._lock.lost

    async def campaign(self, timeout: float | None = None) -> int:
        """Wait until leader (``LockTimeout`` after ``timeout``); returns the fence."""
        if (fence := self._prepare(timeout)) is not None:
            return fence
        await self._lock.release()
        return await self._lock.acquire()

    async def resign(self) -> None:
        await self._lock.release()

    async def leader(self, *, consistent: bool = True) -> str | None:
        return leader_of(await self._client.kv_key(self.key, consistent=consistent))

    async def observe(self, wait: float = 60.0) -> AsyncGenerator[str | None, None]:
        last: tuple[str | None] | None = None
        watch = self._client.watch_kv(self.key, wait=wait)
        try:
            async for read in watch:
                if (change := self._changes(last, read)) is not None:
                    last = change
                    yield change[0]
        finally:
            await watch.aclose()


class Election(_ElectionBase[Lock]):
    """An election for the blocking ``RegistryClient`` (``client.election(name, identity)``)."""

    def __init__(self, client: RegistryClient, key: str, identity: str, *, ttl: float = 15.0,
                 lock_delay: float = 15.0, retry: float = LOCK_DELAY_RETRY) -> None:
        super().__init__(key, identity, Lock(client, key, ttl=ttl, lock_delay=lock_delay, value=identity,
                                             retry=retry))
        self._client = client

    @property
    def lost(self) -> threading.Event:
        """Set when the session of the current leadership is gone (not the leader any more)."""
        return self._lock.lost

    def campaign(self, timeout: float | None = None) -> int:
        """Wait until leader (``LockTimeout`` after ``timeout``); returns the fence."""
        if (fence := self._prepare(timeout)) is not None:
            return fence
        self._lock.release()
        return self._lock.acquire()

    def resign(self) -> None:
        self._lock.release()

    def leader(self, *, consistent: bool = True) -> str | None:
        return leader_of(self._client.kv_key(self.key, consistent=consistent))

    def observe(self, wait: float = 60.0) -> Generator[str | None, None, None]:
        last: tuple[str | None] | None = None
        for read in self._client.watch_kv(self.key, wait=wait):
            if (change := self._changes(last, read)) is not None:
                last = change
                yield change[0]
