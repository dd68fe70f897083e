"""The node's periodic malloc_trim: called in a worker thread, survives a failing call, stops on cancel."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from raftreg.node import memory


async def test_trims_periodically_off_the_loop_and_survives_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_trim(pad: int) -> int:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise OSError("first call fails")
        return 1

    monkeypatch.setattr(memory, "_malloc_trim", fake_trim)
    task = asyncio.create_task(memory.trim_periodically(period=0.01))
    async with asyncio.timeout(5):
        while len(calls) < 3:
            await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert threading.main_thread().name not in calls  # never on the event loop's thread
    assert memory.trim_now() is True


async def test_without_malloc_trim_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_malloc_trim", None)
    await asyncio.wait_for(memory.trim_periodically(period=0.01), 1)  # returns at once
    assert memory.trim_now() is False


def test_the_real_c_library_trims() -> None:
    assert memory._malloc_trim is not None  # glibc on this platform
    assert isinstance(memory.trim_now(), bool)
