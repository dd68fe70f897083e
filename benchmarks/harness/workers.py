"""Client worker processes: ``ClientPool`` spawns them once per benchmark; each runs jobs (dicts
with a ``kind``) sent over its pipe, one at a time, each in a fresh asyncio loop, and sends one
result dict back per job. A job handler may also send intermediate messages over the pipe (the
watch job does) and may wait on the pool's start barrier (every load job does, so that all
processes start their measured part together).

Handlers are module-level async functions (they are pickled by reference into the spawned
processes): ``handler(job, conn, barrier) -> result``. A handler that raises produces the result
``{"fatal": <traceback>}``, which ``ClientPool.collect`` turns into a RuntimeError in the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import signal
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Mapping, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier
from typing import Any

JobHandler = Callable[[dict[str, Any], Connection, Barrier], Coroutine[Any, Any, dict[str, Any]]]


def worker_main(conn: Connection, barrier: Barrier, handlers: Mapping[str, JobHandler]) -> None:
    """Body of a client worker process: run jobs from the pipe until None or EOF; each job goes to
    ``handlers[job["kind"]]``. Ctrl-C is left to the parent (which kills the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        handler = handlers.get(job.get("kind", ""))
        if handler is None:
            result: dict[str, Any] = {"fatal": f"unknown job kind {job.get('kind')!r} (known: {sorted(handlers)})"}
        else:
            try:
                result = asyncio.run(handler(job, conn, barrier))
            except BaseException:
                result = {"fatal": traceback.format_exc(limit=5)}
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


class ClientPool:
    """``n`` spawned client processes (``client0`` ... in CPU tables) with a pipe each and one start
    barrier for all of them plus the parent. Not thread-safe: use it from one thread."""

    def __init__(self, n: int, handlers: Mapping[str, JobHandler]) -> None:
        """Spawn the processes; ``handlers`` maps job kinds to their handlers."""
        ctx = mp.get_context("spawn")
        self.n = n
        self.barrier = ctx.Barrier(n + 1)
        self.conns: list[Connection] = []
        self.procs: list[BaseProcess] = []
        for i in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, self.barrier, dict(handlers)),
                               name=f"bench-client-{i}", daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def pids(self) -> dict[str, int | None]:
        """``client<i>`` -> PID."""
        return {f"client{i}": p.pid for i, p in enumerate(self.procs)}

    def send(self, jobs: Sequence[dict[str, Any] | None]) -> list[int]:
        """Send ``jobs[i]`` to process i (None: nothing); returns the numbers of the processes that
        got a job."""
        assert len(jobs) == self.n
        used = []
        for i, (conn, job) in enumerate(zip(self.conns, jobs, strict=True)):
            if job is not None:
                conn.send(job)
                used.append(i)
        return used

    def start(self, timeout: float) -> None:
        """Wait at the start barrier with every process. If it breaks (a process failed, or took more
        than ``timeout`` s to set up), collect what the processes say and raise RuntimeError (or the
        RuntimeError of a failed worker); the barrier is reset for the next run."""
        try:
            self.barrier.wait(timeout=timeout)
        except threading.BrokenBarrierError:
            try:
                results = self.collect(30.0, what="start barrier")
            finally:
                self.barrier.reset()
            raise RuntimeError(f"client workers did not reach the start barrier: {results}") from None

    def collect(self, timeout: float, which: Sequence[int] | None = None, what: str = "client workers"
                ) -> list[dict[str, Any]]:
        """One message from each process of ``which`` (default all), within ``timeout`` s in total.
        TimeoutError if one has none by then; RuntimeError (with the tracebacks) if one failed."""
        deadline = time.monotonic() + timeout
        out = []
        for i in range(self.n) if which is None else which:
            conn = self.conns[i]
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{what}: client process {i} had no answer within {timeout:.0f}s")
            out.append(conn.recv())
        fatal = [r["fatal"] for r in out if "fatal" in r]
        if fatal:
            raise RuntimeError(f"{what}: client worker failed:\n" + "\n".join(fatal))
        return out

    def answered(self) -> bool:
        """Whether a process has sent something not collected yet (e.g. it ended or failed early)."""
        return any(c.poll() for c in self.conns)

    def close(self, timeout: float = 5.0) -> None:
        """Ask every process to exit, wait up to ``timeout`` s in total, kill the rest."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill(self) -> None:
        """Kill every process at once (e.g. busy with a job that would not read a polite stop)."""
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
        for proc in self.procs:
            proc.join(timeout=5)
        for conn in self.conns:
            conn.close()
