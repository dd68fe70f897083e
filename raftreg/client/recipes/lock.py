"""A distributed lock over a session and a key (Consul's lock recipe, kazoo's ``Lock`` in size).

    async with client.lock("db-migration", ttl=10, timeout=30) as held:   # AsyncRegistryClient
        await migrate(fence=held.fence)          # stop using the fence once held.lost is set
    with sync_client.lock("db-migration", ttl=10) as held: ...            # RegistryClient

Contract:
- ``acquire`` creates a session (``ttl``, ``lock_delay``, behavior ``release``), keeps it renewed
  every ``ttl / 3`` in the background (a task, or a daemon thread for the blocking client), and
  takes the key (``locks/<name>`` by default) with ``?acquire=``, writing ``value``.
- The truth is the key, never a guess: after every attempt, answered or ``OutcomeUnknown``, the key
  is read linearizably (``consistent``) and the lock is held iff its ``session`` is ours; its
  ``lock_index`` then is the ``fence`` (it increases at each new holder of the key).
- Waiting is blocking queries on the key, no polling: while another session holds it, one query
  answers when the key changes (the holder released it or its session ended). A free key that
  still refuses us is in the lock delay of the session that held it: then each blocking query
  is bounded by ``retry`` seconds (Consul's lock-retry), as the end of a lock delay changes nothing.
- ``timeout`` (seconds, ``None``: forever) bounds the wait: ``LockTimeout`` (a ``Timeout``), and the
  session is destroyed. A session lost while still waiting is replaced by a new one.
- ``lost`` is set when the renewer learns the session is gone (``NotFound``), or when no renewal
  (retried every ttl/10 after any other error) succeeded for ``ttl`` seconds since the last
  accepted one was sent (the session may have expired and the lock be released). From then on
  THE HOLDER MUST STOP USING THE FENCE: another holder may have the lock, with a larger fence.
  Nothing else interrupts the holder's code.
- ``release`` (and leaving the ``with`` block) stops the renewer, releases the key (unless lost)
  and destroys the session; errors there are swallowed: an unreleased lock still ends with the
  session's ttl.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import TYPE_CHECKING

from raftreg.client.keepalive import _periods
from raftreg.client.kv_results import KVList
from raftreg.errors import NotFound, OutcomeUnknown, RaftregError, Timeout

if TYPE_CHECKING:
    from raftreg.client.async_client import AsyncRegistryClient
    from raftreg.client.sync_client import RegistryClient

MAX_WAIT = 60.0  # the longest single blocking query of a wait
LOCK_DELAY_RETRY = 0.5


class LockTimeout(Timeout):
    """The lock (or the leadership) was not acquired within its ``timeout``."""


def held_fence(read: KVList, session: str) -> int | None:
    """The fence (``lock_index``) when ``session`` holds the key read as ``read``, else ``None``."""
    entry = read.entries[0] if read.entries else None
    return entry.lock_index if entry is not None and entry.session == session else None


def taken(read: KVList) -> bool:
    """Whether some session holds the key read as ``read``."""
    return bool(read.entries) and read.entries[0].session is not None


def next_wait(read: KVList, remaining: float | None, retry: float) -> float:
    """How long the next blocking query on the key may last: up to ``MAX_WAIT`` while a session
    holds it (its release wakes the query), ``retry`` while it is free (a lock delay)."""
    wait = MAX_WAIT if taken(read) else retry
    return max(0.0, min(wait, remaining)) if remaining is not None else wait


class _Base:
    """What both shells share: the settings, the state, and the renewal bookkeeping."""

    def __init__(self, key: str, ttl: float, timeout: float | None, lock_delay: float, value: bytes | str,
                 retry: float) -> None:
        self.key = key
        self.ttl = ttl
        self.timeout = timeout
        self.lock_delay = lock_delay
        self.value = value
        self.retry = retry
        self.session: str | None = None
        self.fence: int | None = None  # the key's lock_index at acquisition; None while not held
        self._renewed_sent = 0.0  # monotonic time the last accepted renewal (or the creation) was sent
        self._pause_s = 0.0

    @property
    def held(self) -> bool:
        return self.fence is not None

    def _expired(self, now: float) -> bool:
        return now - self._renewed_sent > self.ttl

    def _started(self) -> None:
        """A session is being created: its lease runs from now at the earliest."""
        self._renewed_sent, self._pause_s = time.monotonic(), _periods(self.ttl)[0]

    def _pause(self) -> float:
        """Seconds until the next renewal: the period (the pause after a failure), never past the
        lease's possible end, where ``_expired`` decides."""
        return min(self._pause_s, max(0.0, self._renewed_sent + self.ttl - time.monotonic()))

    def _renewed(self, sent: float | None) -> None:
        """A renewal sent at ``sent`` was accepted, or (``None``) failed and is retried sooner."""
        period, retry, _ = _periods(self.ttl)
        if sent is None:
            self._pause_s = retry
        else:
            self._renewed_sent, self._pause_s = sent, period

    def _remaining(self, until: float | None) -> float | None:
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            raise LockTimeout(f"lock {self.key!r} not acquired within {self.timeout}s")
        return left


class AsyncLock(_Base):
    """The lock for ``AsyncRegistryClient`` (``client.lock(name)``); ``lost`` is an ``asyncio.Event``."""

    def __init__(self, client: AsyncRegistryClient, key: str, *, ttl: float = 15.0, timeout: float | None = None,
                 lock_delay: float = 15.0, value: bytes | str = b"", retry: float = LOCK_DELAY_RETRY) -> None:
        super().__init__(key, ttl, timeout, lock_delay, value, retry)
        self._client = client
        self.lost = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncLock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    async def acquire(self) -> int:
        """Wait until the lock is held (see the module's contract); returns the fence."""
        until = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            while True:
                if self.session is None or self.lost.is_set():
                    await self._new_session()
                assert self.session is not None
                with contextlib.suppress(OutcomeUnknown):
                    await self._client.kv_acquire(self.key, self.session, self.value)
                read = await self._client.kv_key(self.key, consistent=True)
                fence = held_fence(read, self.session)
                if fence is not None and not self.lost.is_set():
                    self.fence = fence
                    return fence
                await self._wait(read, until)
        except BaseException:
            await self.release()
            raise

    async def _wait(self, read: KVList, until: float | None) -> None:
        """Blocking reads of the key until no session holds it; each bounded by ``retry`` while
        it is free yet refused us (a lock delay), else by ``MAX_WAIT`` (the release wakes it)."""
        while True:
            wait = next_wait(read, self._remaining(until), self.retry)
            read = await self._client.kv_key(self.key, index=read.index, wait=wait)
            if not taken(read) or self.lost.is_set():
                return

    async def release(self) -> None:
        """Release the key (when held and not lost) and destroy the session; idempotent."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        session, held, self.session, self.fence = self.session, self.fence is not None, None, None
        if session is None:
            return
        with contextlib.suppress(RaftregError):
            if held and not self.lost.is_set():
                await self._client.kv_release(self.key, session)
        with contextlib.suppress(RaftregError):
            await self._client.session_destroy(session)

    async def _new_session(self) -> None:
        await self.release()
        self.lost = asyncio.Event()
        self._started()
        created = await self._client.session_create(self.ttl, name=self.key, lock_delay=self.lock_delay)
        self.session = created.id
        self._renewer = asyncio.create_task(self._renew(created.id, self.lost))

    async def _renew(self, session: str, lost: asyncio.Event) -> None:
        deadline = _periods(self.ttl)[2]
        while True:
            await asyncio.sleep(self._pause())
            if self._expired(time.monotonic()):
                return lost.set()
            sent: float | None = time.monotonic()
            try:
                await self._client.session_renew(session, deadline=deadline)
            except NotFound:
                return lost.set()
            except RaftregError:  # no leader, unreachable, refused: retried until the lease may be over
                sent = None
            self._renewed(sent)


class Lock(_Base):
    """The lock for the blocking ``RegistryClient`` (``client.lock(name)``); ``lost`` is a
    ``threading.Event``; the session is renewed by a daemon thread."""

    def __init__(self, client: RegistryClient, key: str, *, ttl: float = 15.0, timeout: float | None = None,
                 lock_delay: float = 15.0, value: bytes | str = b"", retry: float = LOCK_DELAY_RETRY) -> None:
        super().__init__(key, ttl, timeout, lock_delay, value, retry)
        self._client = client
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> int:
        """Wait until the lock is held (see the module's contract); returns the fence."""
        until = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            while True:
                if self.session is None or self.lost.is_set():
                    self._new_session()
                assert self.session is not None
                with contextlib.suppress(OutcomeUnknown):
                    self._client.kv_acquire(self.key, self.session, self.value)
                read = self._client.kv_key(self.key, consistent=True)
                fence = held_fence(read, self.session)
                if fence is not None and not self.lost.is_set():
                    self.fence = fence
                    return fence
                self._wait(read, until)
        except BaseException:
            self.release()
            raise

    def _wait(self, read: KVList, until: float | None) -> None:
        """Blocking reads of the key until no session holds it; each bounded by ``retry`` while
        it is free yet refused us (a lock delay), else by ``MAX_WAIT`` (the release wakes it)."""
        while True:
            wait = next_wait(read, self._remaining(until), self.retry)
            read = self._client.kv_key(self.key, index=read.index, wait=wait)
            if not taken(read) or self.lost.is_set():
                return

    def release(self) -> None:
        """Release the key (when held and not lost) and destroy the session; idempotent."""
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()
        self._renewer = None
        session, held, self.session, self.fence = self.session, self.fence is not None, None, None
        if session is None:
            return
        with contextlib.suppress(RaftregError):
            if held and not self.lost.is_set():
                self._client.kv_release(self.key, session)
        with contextlib.suppress(RaftregError):
            self._client.session_destroy(session)

    def _new_session(self) -> None:
        self.release()
        self.lost, self._stop = threading.Event(), threading.Event()
        self._started()
        created = self._client.session_create(self.ttl, name=self.key, lock_delay=self.lock_delay)
        self.session = created.id
        self._renewer = threading.Thread(target=self._renew, args=(created.id, self.lost, self._stop),
                                         name=f"raftreg-lock-{self.key}", daemon=True)
        self._renewer.start()

    def _renew(self, session: str, lost: threading.Event, stop: threading.Event) -> None:
        deadline = _periods(self.ttl)[2]
        while not stop.wait(self._pause()):
            if self._expired(time.monotonic()):
                return lost.set()
            sent: float | None = time.monotonic()
            try:
                self._client.session_renew(session, deadline=deadline)
            except NotFound:
                return lost.set()
            except RaftregError:  # no leader, unreachable, refused: retried until the lease may be over
                sent = None
            self._renewed(sent)
