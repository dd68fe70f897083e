"""Ctrl-C that always stops a CLI command promptly, even one parked in a long blocking query.

CPython runs a signal's Python handler only between bytecodes of the main thread. A SIGINT that
lands just before the main thread enters a blocking system call (the ``recv`` of a watch's
blocking query, a ``join``) is handled only when that call returns: up to a watch's whole wait.
Seen in about one ``lookup --watch`` interrupt in ten when the signal followed an answer at once.
So the long waits run in a daemon thread and the main thread only ever waits in short slices.
And a KeyboardInterrupt raised *inside* those waits can land in the middle of ``queue.Queue``'s
lock handling and come out as a second, different exception (a traceback instead of a clean
stop: seen in CI). So while the main thread waits, SIGINT only sets a flag, and the
KeyboardInterrupt is raised between two slices, outside any lock.

Contract:
- ``in_background(items)`` yields what the iterator ``items`` yields, in order, producing it in a
  daemon thread; an exception ``items`` raises is raised in the caller; a KeyboardInterrupt in the
  caller reaches it within ``slice_seconds`` (the daemon thread dies with the process).
- ``join_promptly(thread)`` waits for ``thread`` in slices of ``slice_seconds``, so signal
  handlers run meanwhile.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

SLICE_SECONDS = 0.25


def in_background(items: Iterator[T], slice_seconds: float = SLICE_SECONDS) -> Iterator[T]:
    """Iterate ``items`` in a daemon thread; see the module docstring."""
    handoff: queue.Queue[tuple[bool, T | BaseException | None]] = queue.Queue(maxsize=1)

    def pump() -> None:
        try:
            for item in items:
                handoff.put((True, item))
        except BaseException as exc:  # handed to the caller, which raises it
            handoff.put((False, exc))
        else:
            handoff.put((False, None))

    threading.Thread(target=pump, name="raftreg-cli-background", daemon=True).start()
    while True:
        got: tuple[bool, T | BaseException | None] | None = None
        with _sigint_as_flag() as interrupted, contextlib.suppress(queue.Empty):
            got = handoff.get(timeout=slice_seconds)
        if interrupted():
            raise KeyboardInterrupt
        if got is None:
            continue
        produced, value = got
        if produced:
            yield value  # type: ignore[misc]  # produced: a T
        elif value is None:
            return
        else:
            assert isinstance(value, BaseException)
            raise value


def join_promptly(thread: threading.Thread, slice_seconds: float = SLICE_SECONDS) -> None:
    """``thread.join()`` in short slices (module docstring)."""
    while thread.is_alive():
        with _sigint_as_flag() as interrupted:
            thread.join(slice_seconds)
        if interrupted():
            raise KeyboardInterrupt


@contextlib.contextmanager
def _sigint_as_flag() -> Iterator[Callable[[], bool]]:
    """While inside, SIGINT only records itself; yields "was SIGINT received?". Off the main
    thread (where handlers cannot be set), or when SIGINT has a handler of the command's own
    (``register --keepalive`` stops on its flag), it changes nothing and the answer is always no."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: False
        return
    received: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)
