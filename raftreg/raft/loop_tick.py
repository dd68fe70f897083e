"""pysyncobj driven by the node's asyncio loop: one thread for HTTP, Raft and apply.

pysyncobj normally runs its own tick thread (``autoTick=True``): a loop of "tick, then poll the
Raft sockets". Beside the asyncio thread that serves HTTP, that thread costs a GIL hand-over and a
cross-thread wake-up (pipe write, ``call_soon_threadsafe``) for every burst of work: on one thread
the leader spent about a sixth less CPU per registration on this 2-core machine, measured
interleaved (benchmarks/README.md, "Raft on the event loop").

With ``RaftTuning.tick_on_loop`` raftreg creates the SyncObj with ``autoTick=False`` and drives it
from the loop instead:

- ``EpollPoller`` implements pysyncobj's ``Poller`` interface (``subscribe``, ``unsubscribe``,
  ``poll``) on an ``epoll`` object of its own. pysyncobj's sockets and pipe notifier register
  there, with pysyncobj's own level-triggered semantics (an fd closed and reused is registered
  afresh), and the loop watches one descriptor: the epoll's. Its ``poll`` is a no-op (pysyncobj
  calls it at the end of every tick): events are dispatched by the ticker, before the tick.
- ``LoopTicker`` runs "dispatch the ready events, then ``_onTick(0)``" whenever the epoll
  descriptor is readable, and at least every ``period`` seconds (elections, heartbeats,
  reconnects, and pysyncobj's own timers). Commands proposed from the loop wake it with a plain
  ``call_soon`` (the ticker takes the place of pysyncobj's pipe notifier).
- A backstop thread ticks when the loop has not for ``LATE_AFTER`` (0.1 s): a long callback (a
  huge listing, a snapshot decode) or a loop saturated by requests must not starve heartbeats and
  votes into a false election. One tick runs at a time (a lock); the loop's tick is then retried.
  While a backstop tick runs, the loop blocks at its next callback until the tick is done, so
  the tick has the GIL to itself instead of sharing it with the saturated loop.
  Everything a tick calls back is therefore safe from another thread as well, as it was with
  pysyncobj's own tick thread (``call_soon_any_thread``, the locks of the hand-overs).

Contract: ticks run on the loop, or on the backstop thread while the loop is late, never two at
once; ``detach`` (on the loop) returns once no tick runs and none will (``RaftNode`` hands it
over). A tick that raises is logged and the next one runs as usual (pysyncobj's own thread does
the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("raftreg.raft")

# pysyncobj.poller.POLL_EVENT_TYPE
READ, WRITE, ERROR = 1, 2, 4
_MAX_EVENTS = 256
LATE_AFTER = 0.1  # seconds without a tick on the loop before the backstop thread ticks


def _epoll_mask(event_mask: int) -> int:
    mask = 0
    if event_mask & READ:
        mask |= select.EPOLLIN
    if event_mask & WRITE:
        mask |= select.EPOLLOUT
    if event_mask & ERROR:
        mask |= select.EPOLLERR
    return mask


def _pysyncobj_mask(events: int) -> int:
    mask = 0
    if events & select.EPOLLIN:
        mask |= READ
    if events & select.EPOLLOUT:
        mask |= WRITE
    if events & (select.EPOLLERR | select.EPOLLHUP):
        mask |= ERROR
    return mask


def call_soon_any_thread(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> None:
    """``loop.call_soon`` on the loop's own thread (no self-pipe write, no extra wake-up), else
    ``call_soon_threadsafe``. With ``tick_on_loop`` the Raft callbacks run on the loop."""
    if asyncio._get_running_loop() is loop:
        loop.call_soon(callback, *args)
    else:
        loop.call_soon_threadsafe(callback, *args)


class EpollPoller:
    """pysyncobj's poller interface over one epoll object; ``dispatch`` delivers what is ready."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[int, int], None]] = {}

    def fileno(self) -> int:
        return self._epoll.fileno()

    def subscribe(self, descr: int, callback: Callable[[int, int], None], eventMask: int) -> None:
        self._callbacks[descr] = callback
        mask = _epoll_mask(eventMask)
        try:
            self._epoll.modify(descr, mask)
        except FileNotFoundError:  # not registered (or closed since, and the number reused)
            self._epoll.register(descr, mask)

    def unsubscribe(self, descr: int) -> None:
        self._callbacks.pop(descr, None)
        # closed already: the kernel dropped it with its last reference
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(descr)

    def poll(self, timeout: float) -> None:
        """Called by pysyncobj at the end of a tick: nothing to do, the ticker dispatches."""

    def dispatch(self) -> None:
        """Deliver every event ready now to its subscriber (pysyncobj's ``(descr, mask)`` call)."""
        for descr, events in self._epoll.poll(0, _MAX_EVENTS):
            callback = self._callbacks.get(descr)
            if callback is None:  # unsubscribed by an earlier callback of this round
                continue
            callback(descr, _pysyncobj_mask(events))

    def close(self) -> None:
        self._callbacks.clear()
        self._epoll.close()


class LoopTicker:
    """Runs one SyncObj's ticks on an asyncio loop (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, poller: EpollPoller, period: float,
                 late_after: float = LATE_AFTER) -> None:
        self._loop = loop
        self._poller = poller
        self._period = period
        self._late_after = late_after
        self._syncobj: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._requested = False
        self._tick_lock = threading.Lock()  # one tick at a time: the loop's or the backstop's
        self._last_tick = time.monotonic()
        self._stopped = threading.Event()
        self._backstop: threading.Thread | None = None
        self.ticks = 0
        self.late_ticks = 0  # ticks the backstop thread ran because the loop was busy

    def notify(self) -> None:
        """Tick soon (pysyncobj's pipe notifier's interface: a command was queued). Any thread."""
        if self._requested:
            return
        self._requested = True
        call_soon_any_thread(self._loop, self._requested_tick)

    def _requested_tick(self) -> None:
        self._requested = False
        self._tick()

    def attach(self, syncobj: Any) -> None:
        """Start ticking ``syncobj`` (call on the loop); nothing once ``detach`` ran (a node
        stopped before its start reached the loop)."""
        if self._stopped.is_set():
            return
        self._syncobj = syncobj
        # Proposals wake the tick through a call on the loop, not a pipe write and an epoll wake-up.
        syncobj._SyncObj__pipeNotifier = self
        self._loop.add_reader(self._poller.fileno(), self._tick)
        self._periodic()
        self._backstop = threading.Thread(target=self._tick_when_late, name="raft-tick-backstop", daemon=True)
        self._backstop.start()

    def detach(self) -> None:
        """Stop ticking (call on the loop); returns once no tick runs, and none will."""
        self._syncobj = None
        self._stopped.set()
        with self._tick_lock:  # a backstop tick in progress ends first
            pass
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with contextlib.suppress(OSError, ValueError):
            self._loop.remove_reader(self._poller.fileno())

    def detach_and_wait(self) -> None:
        """``detach`` from any thread: on the loop, and wait for it (at once when called on the
        loop or when the loop no longer runs; at most 5 s)."""
        loop = self._loop
        if asyncio._get_running_loop() is loop or loop.is_closed() or not loop.is_running():
            self.detach()
            return
        done = threading.Event()

        def run() -> None:
            try:
                self.detach()
            finally:
                done.set()

        loop.call_soon_threadsafe(run)
        done.wait(5.0)

    def close(self) -> None:
        """Release the poller (after ``detach`` and the SyncObj's destruction)."""
        self._poller.close()

    def _periodic(self) -> None:
        if self._syncobj is None:
            return
        self._timer = self._loop.call_later(self._period, self._periodic)
        self._tick()

    def _tick(self) -> None:
        if self._syncobj is None:
            return
        if not self._tick_lock.acquire(blocking=False):  # the backstop is ticking: once more after it
            self._loop.call_later(0.001, self._tick)
            return
        try:
            self._tick_locked()
        finally:
            self._tick_lock.release()

    def _tick_locked(self) -> None:
        so = self._syncobj
        if so is None:
            return
        self._last_tick = time.monotonic()
        self.ticks += 1
        try:
            self._poller.dispatch()
            so._onTick(0.0)
        except Exception:  # as pysyncobj's own tick thread: log, and tick again
            log.exception("event=tick_failed")

    def _tick_when_late(self) -> None:
        """Backstop thread: tick when the loop has not for ``late_after`` seconds (one long
        callback, or a loop saturated by requests), so heartbeats and votes never wait for it."""
        while not self._stopped.wait(self._late_after / 2):
            if time.monotonic() - self._last_tick < self._late_after:
                continue
            with self._tick_lock:
                if self._stopped.is_set() or time.monotonic() - self._last_tick < self._late_after:
                    continue
                self.late_ticks += 1
                # The loop takes on no new work until this tick is done: sharing the GIL with a
                # saturated loop stretched backstop ticks to 0.3-0.6 s under the overload
                # benchmark, long enough for a follower to time out (heartbeats go out in ticks).
                with contextlib.suppress(RuntimeError):  # the loop closed: the node is stopping
                    self._loop.call_soon_threadsafe(self._wait_for_backstop)
                self._tick_locked()

    def _wait_for_backstop(self) -> None:
        """On the loop: block until no backstop tick runs (the GIL is released meanwhile)."""
        with self._tick_lock:
            pass
