"""``ClusterWatch``: blocking queries on ``GET /v1/cluster`` (``?index=N&wait=W``).

The cluster view is not an object of the replicated state, so no command wakes its watchers.
Instead ``ClusterWatch`` listens to the status sampler (``ClusterView``, every ``STATUS_PERIOD``)
and wakes the parked queries when:
- this node's applied index exceeds the ``N`` a query named (a new leader's first entry is
  applied too, so an election moves it), or
- the *shape* of the cluster as this node sees it changed since the query parked: its own role,
  the leader it believes in and whether that leader is usable (``ClusterView.usable_leader``),
  the term, which peers are connected, or the value of ``also`` (the node passes the mass-expiry
  guard's state, which no entry or Raft status reflects).

Contract: ``wait(after, timeout)`` returns True when woken for one of these reasons, False when
``timeout`` passed first (the caller answers as a normal read either way). Waiters live on the
event loop the sampler runs on; ``on_status`` must be called there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

from raftreg.raft import RaftStatus

Shape = tuple[str, str | None, bool, int, frozenset[str], Hashable]


class ClusterWatch:
    def __init__(self, also: Callable[[], Hashable] = lambda: None) -> None:
        self._also = also
        self._applied = 0
        self._shape: Shape | None = None
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def on_status(self, status: RaftStatus, usable: bool = True) -> None:
        """A status sample and whether its leader is usable (a ``ClusterView`` listener): wake
        whoever it concerns."""
        self._applied = status.applied_index
        shape = status.state, status.leader, usable, status.term, status.connected, self._also()
        changed = shape != self._shape
        self._shape = shape
        if not self._waiters:
            return
        keep = []
        for after, fut in self._waiters:
            if fut.done():
                continue
            if changed or status.applied_index > after:
                fut.set_result(True)
            else:
                keep.append((after, fut))
        self._waiters = keep

    def release_all(self) -> None:
        """Shutting down: every parked query answers now (as on a timeout)."""
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_result(False)
        self._waiters = []

    async def wait(self, after: int, timeout: float) -> bool:
        """True once the applied index exceeds ``after`` or the shape changes; False after ``timeout``."""
        if self._applied > after:
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append((after, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            if not fut.done():
                fut.cancel()
            self._waiters = [(a, f) for a, f in self._waiters if f is not fut]
