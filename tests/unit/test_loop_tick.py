"""pysyncobj driven by the asyncio loop (raftreg.raft.loop_tick): the poller and the ticker.

Real sockets and a real loop; the SyncObj is a fake that records its ticks (a real one runs in
every cluster test, where ``tick_on_loop`` is the default)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from raftreg.raft.loop_tick import ERROR, READ, WRITE, EpollPoller, LoopTicker, call_soon_any_thread


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


class FakeSyncObj:
    """What the ticker touches: ``_onTick`` and the pipe-notifier slot."""

    def __init__(self, poller: EpollPoller | None = None, fail_first: int = 0) -> None:
        self._SyncObj__pipeNotifier: Any = object()
        self.ticks: list[int] = []  # events dispatched before each tick
        self.events: list[tuple[int, int]] = []
        self._fail = fail_first

    def on_event(self, descr: int, mask: int) -> None:
        self.events.append((descr, mask))

    def _onTick(self, timeToWait: float) -> None:
        assert timeToWait == 0.0
        self.ticks.append(len(self.events))
        if self._fail:
            self._fail -= 1
            raise RuntimeError("a tick that fails")


def test_the_poller_reports_readable_and_writable_and_forgets_unsubscribed() -> None:
    poller = EpollPoller()
    a, b = socket.socketpair()
    seen: list[tuple[int, int]] = []
    try:
        poller.subscribe(a.fileno(), lambda d, m: seen.append((d, m)), READ | ERROR)
        poller.dispatch()
        assert seen == []  # nothing to read yet
        b.send(b"x")
        poller.dispatch()
        assert seen == [(a.fileno(), READ)]
        a.recv(1)
        seen.clear()
        poller.subscribe(a.fileno(), lambda d, m: seen.append((d, m)), READ | WRITE | ERROR)  # modify
        poller.dispatch()
        assert seen == [(a.fileno(), WRITE)]
        seen.clear()
        poller.unsubscribe(a.fileno())
        b.send(b"y")
        poller.dispatch()
        assert seen == []
        poller.poll(1.0)  # pysyncobj's call at the end of a tick: returns at once, delivers nothing
        assert seen == []
    finally:
        a.close()
        b.close()
        poller.close()


def test_a_closed_descriptor_can_be_unsubscribed_and_its_number_reused() -> None:
    poller = EpollPoller()
    a, b = socket.socketpair()
    number = a.fileno()
    poller.subscribe(number, lambda d, m: None, READ)
    a.close()  # pysyncobj closes the socket before it unsubscribes
    poller.unsubscribe(number)
    c, d = socket.socketpair()  # likely reuses the number: registered afresh either way
    seen: list[int] = []
    try:
        poller.subscribe(c.fileno(), lambda d_, m: seen.append(m), READ)
        d.send(b"z")
        poller.dispatch()
        assert seen == [READ]
    finally:
        for s in (b, c, d):
            s.close()
        poller.close()


async def test_the_ticker_dispatches_events_before_the_tick_and_ticks_periodically() -> None:
    loop = asyncio.get_running_loop()
    poller = EpollPoller()
    so = FakeSyncObj()
    ticker = LoopTicker(loop, poller, period=0.01)
    a, b = socket.socketpair()
    try:
        poller.subscribe(a.fileno(), so.on_event, READ)
        ticker.attach(so)
        assert so._SyncObj__pipeNotifier is ticker  # proposals wake the ticker directly
        await wait_until(lambda: len(so.ticks) >= 3)  # periodic, with nothing to do
        b.send(b"x")
        await wait_until(lambda: bool(so.events))
        await wait_until(lambda: so.ticks[-1] >= 1)  # a tick ran after the event was delivered
        a.recv(1)
        ticker.detach()
        ticks = len(so.ticks)
        await asyncio.sleep(0.05)
        assert len(so.ticks) == ticks, "a detached ticker ticked"
    finally:
        a.close()
        b.close()
        ticker.close()


async def test_a_notify_ticks_soon_once_per_burst_from_any_thread() -> None:
    loop = asyncio.get_running_loop()
    so = FakeSyncObj()
    ticker = LoopTicker(loop, EpollPoller(), period=60.0, late_after=60.0)  # no tick but the ones asked for
    try:
        ticker.attach(so)
        await wait_until(lambda: len(so.ticks) == 1)
        for _ in range(5):
            ticker.notify()
        await wait_until(lambda: len(so.ticks) == 2)
        await asyncio.sleep(0.02)
        assert len(so.ticks) == 2, "one burst of notifications should cost one tick"
        threading.Thread(target=ticker.notify).start()
        await wait_until(lambda: len(so.ticks) == 3)
    finally:
        ticker.detach()
        ticker.close()


async def test_a_tick_that_raises_is_logged_and_ticking_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    so = FakeSyncObj(fail_first=2)
    ticker = LoopTicker(loop, EpollPoller(), period=0.01)
    try:
        ticker.attach(so)
        await wait_until(lambda: len(so.ticks) >= 4)
    finally:
        ticker.detach()
        ticker.close()
    assert caplog.text.count("event=tick_failed") == 2


async def test_call_soon_any_thread_runs_on_the_loop_from_either_side() -> None:
    loop = asyncio.get_running_loop()
    ran: list[int] = []

    def record() -> None:
        ran.append(threading.get_ident())

    call_soon_any_thread(loop, record)
    threading.Thread(target=call_soon_any_thread, args=(loop, record)).start()
    await wait_until(lambda: len(ran) == 2)
    assert ran == [threading.get_ident()] * 2


class ThreadRecordingSyncObj(FakeSyncObj):
    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def _onTick(self, timeToWait: float) -> None:
        self.threads.append(threading.get_ident())
        super()._onTick(timeToWait)


async def test_a_blocked_loop_is_ticked_by_the_backstop_thread_and_detach_stops_it() -> None:
    loop = asyncio.get_running_loop()
    so = ThreadRecordingSyncObj()
    ticker = LoopTicker(loop, EpollPoller(), period=0.01, late_after=0.05)
    try:
        ticker.attach(so)
        await wait_until(lambda: len(so.ticks) >= 2)
        assert set(so.threads) == {threading.get_ident()} and ticker.late_ticks == 0
        before = len(so.ticks)
        time.sleep(0.5)  # a long callback: the loop cannot tick for half a second
        late = [t for t in so.threads[before:] if t != threading.get_ident()]
        assert len(late) >= 3 and ticker.late_ticks == len(late), "the backstop did not tick the blocked loop"
        await wait_until(lambda: so.threads[-1] == threading.get_ident())  # the loop ticks again
    finally:
        ticker.detach()
        ticker.close()
    ticks = len(so.ticks)
    time.sleep(0.2)
    assert len(so.ticks) == ticks, "a detached ticker's backstop ticked"


class SlowBackstopSyncObj(FakeSyncObj):
    """Its first tick on another thread than the loop's takes ``slow`` seconds."""

    def __init__(self, loop_thread: int, slow: float) -> None:
        super().__init__()
        self.loop_thread, self.slow = loop_thread, slow
        self.backstop_started = threading.Event()
        self.backstop_ended_at: float | None = None

    def _onTick(self, timeToWait: float) -> None:
        super()._onTick(timeToWait)
        if threading.get_ident() != self.loop_thread and not self.backstop_started.is_set():
            self.backstop_started.set()
            time.sleep(self.slow)
            self.backstop_ended_at = time.monotonic()


async def test_the_loop_runs_no_callback_while_a_backstop_tick_runs() -> None:
    """A backstop tick must not share the GIL with a saturated loop (benchmarks/README.md, the
    overload runs): the loop blocks at its next callback until the tick is done."""
    loop = asyncio.get_running_loop()
    so = SlowBackstopSyncObj(threading.get_ident(), slow=0.3)
    ticker = LoopTicker(loop, EpollPoller(), period=0.01, late_after=0.05)
    ran_at: list[float] = []
    try:
        ticker.attach(so)
        assert so.backstop_started.wait(5.0), "the backstop never ticked the blocked loop"  # blocks the loop
        loop.call_soon(lambda: ran_at.append(time.monotonic()))
        await wait_until(lambda: bool(ran_at))
    finally:
        ticker.detach()
        ticker.close()
    assert so.backstop_ended_at is not None and ran_at[0] >= so.backstop_ended_at


async def test_detach_and_wait_from_another_thread_returns_once_detached() -> None:
    loop = asyncio.get_running_loop()
    so = FakeSyncObj()
    ticker = LoopTicker(loop, EpollPoller(), period=0.01)
    try:
        ticker.attach(so)
        await wait_until(lambda: len(so.ticks) >= 2)
        await loop.run_in_executor(None, ticker.detach_and_wait)  # as RaftNode.stop does
        ticks = len(so.ticks)
        await asyncio.sleep(0.05)
        assert len(so.ticks) == ticks
    finally:
        ticker.close()
