"""Live discovery: a local instance list of one service, kept current by blocking queries.

    d = client.discovery("cart")                # shared: one watch per (service, passing) per client
    await d.wait_ready(5)                       # the first list is loaded
    d.instances, d.index, d.version, d.stale    # read at any time; never raises, never blocks

``AsyncDiscovery`` runs as one asyncio task, ``Discovery`` (blocking client) as one daemon thread.
``version`` bumps at every change of ``instances`` (a balancer calls ``update()`` when it moved).

Stale rules (Nacos' push-empty protection, alibaba/nacos#4470), and how a deregistration is told
from a failure:
- **Registry unreachable** (every node failed for ``QUERY_DEADLINE`` seconds, plus the hold of
  the blocking query in flight: at most about 8.3 s in all): the last good list
  is kept, ``stale`` becomes true (one log line, ``stale_events`` + 1). Queries go on, backing off;
  the first answer clears ``stale`` (the first query after a failure is a plain read, so a
  registry that comes back is noticed at once, not after a blocking query's ``wait``).
- **An answer that would empty a non-empty list** is not believed on its own. It is checked with a
  linearizable read of every instance of the service, whatever its health (``consistent``, no
  ``passing`` filter):
  * the instances of the last good list that still exist (in any status) are kept, and ``stale``
    is set: with ``passing=True`` this is "every instance fails its health check at once", most
    often the checker's side of a network problem, and a caller does better to keep trying the
    last good instances (``raftreg.client.balancers`` still prefers non-critical ones when a
    later answer brings them back). The answer of a lagging or freshly wiped node is caught the
    same way, with or without ``passing``;
  * when none of them exists any more, the emptying is honoured: the instances were deregistered,
    or their TTL expired (the server removes an expired instance; mass expiries are held back by
    the server's own self-preservation, DESIGN.md "Leases and health"), so the list empties and
    ``stale`` is cleared;
  * when the check itself fails, the registry counts as unreachable (above) and the check is
    made again at the next attempt.
- A non-empty answer always replaces the list and clears ``stale``.
Any other API error (``PermissionDenied``, ``InvalidArgument``) ends the watch: ``error`` keeps it
and ``wait_ready``/``wait_for`` raise it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from raftreg.client.background import TaskWatch, ThreadedWatch, ViewState
from raftreg.client.policy import WatchCursor
from raftreg.client.results import Instance, Instances
from raftreg.errors import RaftregError, Timeout, Unavailable

if TYPE_CHECKING:
    from raftreg.client.async_client import AsyncRegistryClient
    from raftreg.client.sync_client import RegistryClient

log = logging.getLogger("raftreg.client")

# A blocking query's call may retry for QUERY_DEADLINE plus its hold (about 1.06 x WATCH_WAIT, see
# raftreg.client.core.read_query) before it reports every node failing: the list turns stale within
# about 8.3 s of the registry going away, and a plain read every 3 s then notices its return.
WATCH_WAIT = 5.0  # seconds a blocking query of a discovery is held by the server
QUERY_DEADLINE = 3.0  # every node failing this long (plus a blocking query's hold) makes the list stale
MAX_BACKOFF = 2.0
Predicate = Callable[[tuple[Instance, ...]], bool]


class Query(NamedTuple):
    """The next read of a discovery: a watch (a blocking query from ``at`` when set) or the check of
    an emptying (``confirm``: linearizable, every instance)."""

    confirm: bool
    at: int | None
    params: dict[str, Any]


class DiscoveryCore(ViewState):
    """The stale rules as a state machine, without I/O: ``query()`` says what to read next; the
    shell reports ``answered`` or ``failed``. ``on_change`` is called after every change of an
    observable attribute (list, stale, ready, error). The shells are subclasses: the attributes
    below are their public, read-only view (read them at any time; they never block)."""

    instances: tuple[Instance, ...]  # the current (last good) list, sorted by id; () before the first
    index: int  # the index of the answer the list comes from
    version: int  # bumps at every change of ``instances``
    stale: bool  # the list is kept against what the registry says, or the registry is unreachable
    stale_events: int  # how many times the list became stale
    ready: bool  # the first list is loaded
    error: RaftregError | None  # the API error that ended the watch, if any

    def __init__(self, service: str, passing: bool, on_change: Callable[[], None] | None = None, *,
                 rng: random.Random | None = None) -> None:
        self.service = service
        self.passing = passing
        self.instances = ()
        self.index = 0
        self.version = 0
        self.stale = False
        self.stale_events = 0
        self.ready = False
        self.error = None
        self._on_change = on_change or (lambda: None)
        self._rng = rng or random.Random()
        self._cursor = WatchCursor(0, max_backoff=MAX_BACKOFF)
        self._pending: Instances | None = None  # an emptying answer, waiting for its check
        self._failing = False

    def query(self) -> Query:
        if self._pending is not None:
            return Query(True, None, {"consistent": True, "deadline": QUERY_DEADLINE})
        at = None if self._failing else self._cursor.blocking_index
        wait = WATCH_WAIT if at is not None else None
        return Query(False, at, {"passing": self.passing, "index": at, "wait": wait, "deadline": QUERY_DEADLINE})

    def answered(self, query: Query, result: Instances) -> None:
        """An answer to ``query``."""
        if query.confirm:
            self._confirmed(result)
            return
        recovering, self._failing = self._failing, False
        fresh = self._cursor.answered(result.index)
        if not (fresh or recovering or not self.ready):
            return
        if not result.items and self.instances:
            self._pending = result  # checked by the next query
            return
        self._accept(result.items, result.index, None)

    def failed(self, err: RaftregError) -> float:
        """A query failed (``Unavailable``/``Timeout``: every node failed); returns the pause
        before the next. Any other error ends the watch (``error``), and returns -1."""
        if not isinstance(err, Unavailable | Timeout):
            self.error = err
            log.error("discovery of %s: stopped: %s", self.service, err)
            self._on_change()
            return -1.0
        self._failing = True
        self._enter_stale(f"registry unreachable ({err.message})")
        return self._cursor.failed(self._rng)

    def _confirmed(self, everything: Instances) -> None:
        pending, self._pending = self._pending, None
        assert pending is not None
        existing = {i.id for i in everything.items}
        kept = tuple(i for i in self.instances if i.id in existing)
        if kept:
            self._accept(kept, pending.index, f"an answer would empty the list while {len(kept)} of its "
                                              "instances still exist (failing health?)")
        else:
            self._accept((), pending.index, None)

    def _accept(self, items: tuple[Instance, ...], index: int, stale_reason: str | None) -> None:
        changed = items != self.instances or not self.ready
        self.index = index
        if items != self.instances:
            self.instances = items
            self.version += 1
        self.ready = True
        if stale_reason is not None:
            self._enter_stale(stale_reason)
        elif self.stale:
            self.stale = False
            log.info("discovery of %s: fresh again, %d instances at index %d", self.service, len(items), index)
            changed = True
        if changed:
            self._on_change()

    def __repr__(self) -> str:
        flag = " stale" if self.stale else ""
        return f"<{type(self).__name__} {self.service} {len(self.instances)} instances index={self.index}{flag}>"

    def _enter_stale(self, reason: str) -> None:
        if self.stale:
            return
        self.stale = True
        self.stale_events += 1
        log.warning("discovery of %s: %s; serving the last good list (%d instances) [stale]", self.service, reason,
                    len(self.instances))
        self._on_change()


def _always(instances: tuple[Instance, ...]) -> bool:
    return True


class AsyncDiscovery(DiscoveryCore):
    """The live list of one service on an ``AsyncRegistryClient`` (see the module docstring).
    Create it with ``client.discovery(name)`` inside the running loop."""

    def __init__(self, client: AsyncRegistryClient, service: str, passing: bool = True) -> None:
        self._watch = TaskWatch(self._step, self.satisfied, f"raftreg-discovery-{service}")
        super().__init__(service, passing, self._watch.notify)
        self._client = client
        self._watch.start()

    @property
    def closed(self) -> bool:
        return self._watch.closed

    async def _step(self) -> float:
        query = self.query()
        try:
            result = await self._client.instances(self.service, **query.params)
        except RaftregError as err:
            return self.failed(err)
        self.answered(query, result)
        return 0.0

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Return once the first list is loaded; ``TimeoutError`` after ``timeout`` seconds."""
        await self.wait_for(_always, timeout)

    async def wait_for(self, predicate: Predicate, timeout: float | None = None) -> tuple[Instance, ...]:
        """Return the list once it is loaded and ``predicate(list)`` holds; ``TimeoutError``
        after ``timeout`` seconds."""
        await self._watch.wait_until(lambda: predicate(self.instances), timeout)
        return self.instances

    def close(self) -> None:
        """Stop the watch (for every caller sharing it; the client's ``aclose`` does it). The
        client's next ``discovery()`` of the service starts a new one."""
        self._watch.close()

    async def aclose(self) -> None:
        await self._watch.aclose()


class Discovery(DiscoveryCore):
    """The live list of one service on a blocking ``RegistryClient``, kept by a daemon thread."""

    def __init__(self, client: RegistryClient, service: str, passing: bool = True) -> None:
        self._watch = ThreadedWatch(self._step, self.satisfied, f"raftreg-discovery-{service}")
        super().__init__(service, passing, self._watch.notify)
        self._client = client
        self._watch.start()

    @property
    def closed(self) -> bool:
        return self._watch.closed.is_set()

    def _step(self) -> float:
        query = self.query()
        try:
            result = self._client.instances(self.service, **query.params)
        except RaftregError as err:
            return self.failed(err)
        self.answered(query, result)
        return 0.0

    def wait_ready(self, timeout: float | None = None) -> None:
        """Return once the first list is loaded; ``TimeoutError`` after ``timeout`` seconds."""
        self.wait_for(_always, timeout)

    def wait_for(self, predicate: Predicate, timeout: float | None = None) -> tuple[Instance, ...]:
        """Return the list once it is loaded and ``predicate(list)`` holds; ``TimeoutError``
        after ``timeout`` seconds."""
        self._watch.wait_until(lambda: predicate(self.instances), timeout, f"discovery of {self.service}")
        return self.instances

    def close(self) -> None:
        """Stop the watch (for every caller sharing it; the client's ``close`` does it). The
        thread ends when its query in flight returns; the client's next ``discovery()`` of the
        service starts a new one."""
        self._watch.close()


class AsyncDiscoveries:
    """An ``AsyncRegistryClient``'s shared discoveries: one per (service, passing)."""

    def __init__(self, client: AsyncRegistryClient) -> None:
        self._client = client
        self._all: dict[tuple[str, bool], AsyncDiscovery] = {}

    def get(self, service: str, passing: bool) -> AsyncDiscovery:
        found = self._all.get((service, passing))
        if found is None or found.closed:
            found = self._all[(service, passing)] = AsyncDiscovery(self._client, service, passing)
        return found

    async def aclose(self) -> None:
        found, self._all = list(self._all.values()), {}
        for discovery in found:
            await discovery.aclose()


class Discoveries:
    """A ``RegistryClient``'s shared discoveries (thread-safe): one per (service, passing)."""

    def __init__(self, client: RegistryClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._all: dict[tuple[str, bool], Discovery] = {}

    def get(self, service: str, passing: bool) -> Discovery:
        with self._lock:
            found = self._all.get((service, passing))
            if found is None or found.closed:
                found = self._all[(service, passing)] = Discovery(self._client, service, passing)
            return found

    def close(self) -> None:
        with self._lock:
            found, self._all = list(self._all.values()), {}
        for discovery in found:
            discovery.close()


def changes(lists: Iterator[Instances]) -> Iterator[Instances]:
    """The lists of a watch whose instances differ from the previous one (the first always)."""
    last: tuple[Instance, ...] | None = None
    for found in lists:
        if found.items != last:
            last = found.items
            yield found


async def achanges(lists: AsyncIterator[Instances]) -> AsyncIterator[Instances]:
    """``changes`` of an async watch."""
    last: tuple[Instance, ...] | None = None
    async for found in lists:
        if found.items != last:
            last = found.items
            yield found
