"""``Proposals``: pysyncobj's tick-thread callbacks turned into asyncio futures.

``submit``-side contract (raftreg.raft.bridge): ``track(callback_target)`` hands out a future and
the callback to give pysyncobj. The callback may run in the Raft tick, or in the caller's thread
when pysyncobj refuses at once (QUEUE_FULL). Results are queued and resolved on the loop, in
batches, with one ``call_soon_threadsafe`` per burst. A failure becomes ``ProposalFailed``.
``applied`` is False when pysyncobj guarantees the command did not apply, and None when its
outcome is unknown. ``fail_all`` (on the loop) fails every future still pending with
``DESTROYED`` and an unknown outcome, when the SyncObj goes away under them.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON

from raftreg.raft.loop_tick import call_soon_any_thread


class ProposalFailed(Exception):
    """pysyncobj reported a failure. ``applied`` is False when the command certainly did not apply,
    None when the outcome is unknown (it may have applied)."""

    def __init__(self, reason: str, applied: bool | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.applied = applied


def failed_proposal(loop: asyncio.AbstractEventLoop, reason: str) -> asyncio.Future[Any]:
    """A future already failed with ``ProposalFailed(reason)``: nothing was applied."""
    fut: asyncio.Future[Any] = loop.create_future()
    fut.set_exception(ProposalFailed(reason, False))
    return fut


_NOT_APPLIED = {FAIL_REASON.QUEUE_FULL, FAIL_REASON.MISSING_LEADER, FAIL_REASON.DISCARDED, FAIL_REASON.NOT_LEADER}
_REASON_NAMES = {v: k for k, v in vars(FAIL_REASON).items() if isinstance(v, int) and not k.startswith("_")}


class Proposals:
    """The futures of proposals in flight and the hand-over of their results to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done: collections.deque[tuple[asyncio.Future[Any], Any, int]] = collections.deque()
        self._drain_pending = False
        self._drain_lock = threading.Lock()
        self._outstanding: set[asyncio.Future[Any]] = set()  # touched on the loop only

    def track(self) -> tuple[asyncio.Future[Any], Callable[[Any, int], None]]:
        """A new pending future and the pysyncobj callback that resolves it. Call on the loop."""
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._outstanding.add(fut)
        fut.add_done_callback(self._outstanding.discard)

        def callback(result: Any, error: int) -> None:  # Raft tick (or the caller's on QUEUE_FULL)
            self._done.append((fut, result, error))
            with self._drain_lock:
                if self._drain_pending:
                    return
                self._drain_pending = True
            call_soon_any_thread(self._loop, self._drain)

        return fut, callback

    def fail_all_threadsafe(self) -> None:
        """Fail every pending future with ``DESTROYED`` (outcome unknown), on the loop."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fail_all)

    def _fail_all(self) -> None:
        for fut in list(self._outstanding):
            if not fut.done():
                fut.set_exception(ProposalFailed("DESTROYED", None))
        self._outstanding.clear()

    def _drain(self) -> None:
        with self._drain_lock:
            self._drain_pending = False
        while self._done:
            fut, result, error = self._done.popleft()
            if fut.done():
                continue
            if error == FAIL_REASON.SUCCESS:
                fut.set_result(result)
            else:
                applied = False if error in _NOT_APPLIED else None
                fut.set_exception(ProposalFailed(_REASON_NAMES.get(error, str(error)), applied))
