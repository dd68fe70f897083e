"""raftreg.cli.interruptible: items in order, the producer's error in the caller, prompt joins."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from raftreg.cli.interruptible import in_background, join_promptly


def test_items_arrive_in_order_and_the_end_ends_the_loop() -> None:
    assert list(in_background(iter(range(50)), slice_seconds=0.01)) == list(range(50))


def test_an_error_of_the_producer_is_raised_in_the_caller_after_what_it_yielded() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise LookupError("gone")

    got: list[int] = []
    with pytest.raises(LookupError, match="gone"):
        for item in in_background(items(), slice_seconds=0.01):
            got.append(item)
    assert got == [1]


def test_the_producer_runs_in_a_daemon_thread() -> None:
    def items() -> Iterator[bool]:
        yield threading.current_thread().daemon and threading.current_thread() is not threading.main_thread()

    assert list(in_background(items())) == [True]


def test_join_promptly_returns_when_the_thread_ends() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, daemon=True)
    worker.start()
    threading.Timer(0.05, release.set).start()
    join_promptly(worker, slice_seconds=0.01)
    assert not worker.is_alive()
