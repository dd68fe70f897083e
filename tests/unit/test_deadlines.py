"""``raftreg.node.deadlines.Deadlines``: one timer fails the waits whose deadlines passed."""

from __future__ import annotations

import asyncio
from typing import Any

from raftreg.node.deadlines import SLACK, Deadlines
from tests.unit.waiting import timed_out

DEADLINE = 5.0  # seconds: a bound for waits that must end much sooner


def timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timers armed on ``loop`` and not cancelled (the loop keeps cancelled ones for a while)."""
    return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]


async def test_a_wait_past_its_deadline_fails_with_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    fut: asyncio.Future[Any] = loop.create_future()
    started = loop.time()
    deadlines.add(fut, started + 0.05, loop)
    assert await timed_out(fut, DEADLINE)
    assert loop.time() - started >= 0.05 - 0.002  # the loop may run a timer a clock tick early
    assert deadlines.expired == 1 and len(deadlines) == 0


async def test_a_wait_done_before_its_deadline_is_left_alone_and_leaves_no_timer() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    done: asyncio.Future[Any] = loop.create_future()
    waiting: asyncio.Future[Any] = loop.create_future()
    deadlines.add(done, loop.time() + 0.05, loop)
    deadlines.add(waiting, loop.time() + 0.1, loop)
    done.set_result("committed")
    assert await timed_out(waiting, DEADLINE)
    assert done.result() == "committed" and deadlines.expired == 1
    assert len(deadlines) == 0 and timers(loop) == 0


async def test_one_timer_serves_every_wait_and_each_ends_at_its_own_deadline() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    base = timers(loop)
    now = loop.time()
    futs: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(100)]
    for i, fut in enumerate(futs):
        deadlines.add(fut, now + 0.05 + (0.2 if i % 2 else 0.0), loop)
    assert timers(loop) == base + 1
    await asyncio.wait_for(asyncio.wait(futs[0::2]), DEADLINE)
    assert all(isinstance(f.exception(), TimeoutError) for f in futs[0::2])
    assert not any(f.done() for f in futs[1::2])  # their deadline is 0.2 s later
    await asyncio.wait_for(asyncio.wait(futs[1::2]), DEADLINE)
    assert loop.time() - now >= 0.25 - 0.002
    assert deadlines.expired == 100 and timers(loop) == base


async def test_an_earlier_deadline_added_later_is_kept_on_time() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    late: asyncio.Future[Any] = loop.create_future()
    early: asyncio.Future[Any] = loop.create_future()
    now = loop.time()
    deadlines.add(late, now + 30.0, loop)
    deadlines.add(early, now + 0.05, loop)
    assert await timed_out(early, DEADLINE)
    assert loop.time() - now < 5.0 and not late.done()  # not held back by the 30 s deadline
    late.cancel()


async def test_deadlines_close_together_all_end_with_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    now = loop.time()
    futs: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(3)]
    for i, fut in enumerate(futs):
        deadlines.add(fut, now + 0.05 + i * SLACK / 4, loop)
    await asyncio.wait_for(asyncio.wait(futs), DEADLINE)
    assert all(isinstance(f.exception(), TimeoutError) for f in futs)


async def test_a_cancelled_wait_is_dropped_without_an_exception_set() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    cancelled: asyncio.Future[Any] = loop.create_future()
    other: asyncio.Future[Any] = loop.create_future()
    deadlines.add(cancelled, loop.time() + 0.05, loop)
    deadlines.add(other, loop.time() + 0.05, loop)
    cancelled.cancel()
    assert await timed_out(other, DEADLINE)
    assert cancelled.cancelled() and deadlines.expired == 1
