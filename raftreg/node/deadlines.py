"""``Deadlines``: futures failed with ``TimeoutError`` once their deadlines pass, under one timer
of the loop instead of one each.

Why: every write waits for its commit under a deadline (``raft.commit_timeout``). Through
``asyncio.timeout_at`` each wait cost a ``Timeout`` object, a ``TimerHandle`` pushed on the
loop's heap (Python-level comparisons on every push and pop) and cancelled again, and the
rescheduling around them, on the node whose loop limits the write rate. Here a write's wait
costs a deque append, and the one timer fires at the earliest deadline still pending: 13.2 against
7.0 µs of the loop per write with 64 writers (``benchmarks/commit_wait_micro.py``;
benchmarks/README.md, "2026-12-07, night: one timer for the commit deadlines").

Contract (call on the loop): ``add(fut, deadline, loop)``: unless ``fut`` is done by then, it
fails with ``TimeoutError`` at the first timer run at or after ``deadline`` (loop time), at most
``SLACK`` late when many deadlines fall close together; nothing else touches it. A future done
earlier keeps its slot only until the futures added before it are done too (writes complete
roughly in the order they arrive), or until the timer's next run.
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Any

SLACK = 0.01  # seconds: the shortest gap between two runs of the timer
EARLY = 0.001  # seconds: a deadline this close is due (the loop may run a timer that much early)


class Deadlines:
    """The pending deadlines of one loop's futures (module docstring)."""

    def __init__(self) -> None:
        self._entries: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf  # when the timer runs (inf: not armed)
        self.expired = 0  # futures failed here

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, fut: asyncio.Future[Any], deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        """Fail ``fut`` with ``TimeoutError`` at ``deadline`` unless it is done by then."""
        self._loop = loop
        entries = self._entries
        while entries and entries[0][1].done():
            entries.popleft()
        entries.append((deadline, fut))
        if deadline < self._due:
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._due = when
        self._timer = self._loop.call_at(when, self._expire)

    def _expire(self) -> None:
        assert self._loop is not None
        self._timer, self._due = None, math.inf
        now = self._loop.time()
        kept: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()
        earliest = math.inf
        for deadline, fut in self._entries:
            if fut.done():
                continue
            if deadline <= now + EARLY:
                self.expired += 1
                fut.set_exception(TimeoutError())
                continue
            kept.append((deadline, fut))
            earliest = min(earliest, deadline)
        self._entries = kept
        if kept:
            self._arm(max(earliest, now + SLACK))
