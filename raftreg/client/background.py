"""The two ways a live view (``discovery``, ``recipes.config``) keeps itself current: a daemon
thread over a blocking client, or a task over an async client. Both run the view's ``step``, one
query at a time, and pause as long as it says; both wake waiters at every change.

Contract of a view that uses them: ``step()`` / ``astep()`` runs one query, applies the answer
or the failure, and returns the pause before the next query, or a negative number to stop (an
API error ended the watch); ``satisfied(check)`` raises the view's error, if any, else evaluates
``check``; the view calls ``notify()`` after every change that waiters may look at.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from raftreg.errors import RaftregError


class ViewState:
    """What waiters of a live view look at: ``ready`` (the first answer is loaded) and ``error``
    (the API error that ended the watch)."""

    ready: bool
    error: RaftregError | None

    def satisfied(self, check: Callable[[], bool]) -> bool:
        """``check()`` once the first answer is loaded; raises the error that ended the watch."""
        if self.error is not None:
            raise self.error
        return self.ready and check()


class ThreadedWatch:
    """A daemon thread running ``step`` until ``close()``, a negative pause, or ``RuntimeError``
    (the client was closed). ``wait_until`` blocks the caller until a check holds."""

    def __init__(self, step: Callable[[], float], satisfied: Callable[[Callable[[], bool]], bool], name: str) -> None:
        self._step = step
        self._satisfied = satisfied
        self._cond = threading.Condition()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        pause = 0.0
        while not self.closed.wait(pause):
            try:
                pause = self._step()
            except RuntimeError:  # the client was closed
                return
            if pause < 0:
                return

    def wait_until(self, check: Callable[[], bool], timeout: float | None, what: str) -> None:
        """Return once ``satisfied(check)``; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._satisfied(check), timeout):
                raise TimeoutError(f"{what}: condition not met within {timeout}s")

    def close(self) -> None:
        """Stop after the query in flight returns."""
        self.closed.set()


class TaskWatch:
    """An asyncio task running ``astep`` until cancelled or a negative pause. Create it inside the
    running loop."""

    def __init__(self, astep: Callable[[], Awaitable[float]], satisfied: Callable[[Callable[[], bool]], bool],
                 name: str) -> None:
        self._astep = astep
        self._satisfied = satisfied
        self._changed = asyncio.Event()
        self.closed = False
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _run(self) -> None:
        pause = 0.0
        while pause >= 0:
            await asyncio.sleep(pause)
            pause = await self._astep()

    async def wait_until(self, check: Callable[[], bool], timeout: float | None) -> None:
        """Return once ``satisfied(check)``; ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not self._satisfied(check):
                await self._changed.wait()

    def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        self.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
