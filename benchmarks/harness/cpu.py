"""``CpuAccount``: CPU use of named processes, and of the whole machine, over measuring windows.

CPU % is 100 per core (the 2-core box has 200). Ticks come from /proc (utime + stime), so the
resolution is one clock tick (10 ms): windows that add up to a few tens of ms give rough numbers.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from harness.proc import CLK_TCK, machine_ticks, proc_stat, steal_ticks, uptime_ticks


class _Proc:
    """One PID of a name: its ticks at the window start (``base``) and at the latest sample."""

    __slots__ = ("base", "last", "name", "sampled", "total")

    def __init__(self, name: str) -> None:
        self.name = name
        self.base: int | None = None
        self.last: int | None = None
        self.sampled = False  # a sample after ``base`` in the current window
        self.total: int | None = 0  # ticks over the closed windows; None once a window was unknown


class CpuAccount:
    """CPU % of named processes over one or more windows (``start()`` ... ``stop()``, summed).

    A name may stand for several PIDs over time (a restarted node is a new process): ``see(name,
    pid)`` adds one, and the name's number is the sum over its PIDs. Per PID and window: from its
    ticks at the window start (0 for a process that started inside the window) to its last sample,
    taken at ``stop()`` or, for a process that is gone by then, at the last ``see()`` (call it just
    before killing a process). A PID that was gone at the window start, or that vanished without any
    sample in the window, makes its name's number unknown (None). ``see`` may be called from
    another thread (a monitor) while a window is open.
    """

    def __init__(self, named: Mapping[str, int | None] | None = None) -> None:
        """``named``: name -> PID to account from the first window on (falsy PIDs are skipped)."""
        self._lock = threading.Lock()
        self._procs: dict[int, _Proc] = {}
        self._names: list[str] = []
        self._open = False
        self._t0 = 0.0
        self._boot0 = 0.0
        self._m0 = (0, 0)
        self.wall = 0.0  # seconds over the closed windows
        self._busy = 0
        self._total = 0
        self._s0 = (0, 0)
        self._steal = 0
        self._steal_total = 0
        for name, pid in (named or {}).items():
            if pid:
                self.see(name, pid)

    def start(self) -> None:
        """Open a window: sample every known PID and the machine."""
        with self._lock:
            self._t0, self._m0, self._boot0, self._open = time.monotonic(), machine_ticks(), uptime_ticks(), True
            self._s0 = steal_ticks()
            for pid, p in self._procs.items():
                st = proc_stat(pid)
                p.base = p.last = None if st is None else st[0]
                p.sampled = False

    def see(self, name: str, pid: int) -> None:
        """Account ``pid`` under ``name`` (from now on) and, in an open window, sample it."""
        st = proc_stat(pid)
        with self._lock:
            p = self._procs.get(pid)
            if p is None:
                p = self._procs[pid] = _Proc(name)
                if name not in self._names:
                    self._names.append(name)
                if self._open and st is not None:
                    p.base = 0 if st[1] > self._boot0 else st[0]
            if self._open and st is not None and p.base is not None:
                p.last = st[0] if p.last is None else max(p.last, st[0])
                p.sampled = True

    def stop(self) -> None:
        """Close the window: sample every PID and the machine, add the window to the totals."""
        for pid, p in list(self._procs.items()):
            self.see(p.name, pid)
        with self._lock:
            for p in self._procs.values():
                if p.total is not None:
                    p.total = None if p.base is None or p.last is None or not p.sampled else p.total + p.last - p.base
                p.base = p.last = None
            self.wall += time.monotonic() - self._t0
            b1, t1 = machine_ticks()
            self._busy += b1 - self._m0[0]
            self._total += t1 - self._m0[1]
            s1, st1 = steal_ticks()
            self._steal += s1 - self._s0[0]
            self._steal_total += st1 - self._s0[1]
            self._open = False

    def ticks(self, name: str) -> int | None:
        """Clock ticks of ``name`` over the closed windows (None if unknown)."""
        total = 0
        for p in self._procs.values():
            if p.name == name:
                if p.total is None:
                    return None
                total += p.total
        return total

    def pct(self) -> dict[str, float | None]:
        """Name -> CPU % over the closed windows, rounded to 0.1, in the order the names came."""
        wall = max(self.wall, 1e-9)
        out: dict[str, float | None] = {}
        for name in self._names:
            t = self.ticks(name)
            out[name] = None if t is None else round(100.0 * t / CLK_TCK / wall, 1)
        return out

    def cpu_ms(self, name: str) -> float | None:
        """CPU time of ``name`` over the closed windows in ms (None if unknown)."""
        t = self.ticks(name)
        return None if t is None else 1000.0 * t / CLK_TCK

    def machine_busy_pct(self) -> float:
        """Machine-wide busy % over the closed windows (100 per core)."""
        return round(100.0 * (os.cpu_count() or 1) * self._busy / max(1, self._total), 1)

    def steal_pct(self) -> float:
        """Percent of the machine's time the hypervisor gave to other guests over the closed windows
        (``harness.proc.steal_ticks``): not in the busy or other figures."""
        return round(100.0 * self._steal / max(1, self._steal_total), 1)

    def other_pct(self) -> float:
        """Machine-wide busy % minus the processes accounted here: everybody else and the kernel."""
        busy = 100.0 * (os.cpu_count() or 1) * self._busy / max(1, self._total)
        return round(busy - sum(v or 0.0 for v in self.pct().values()), 1)

    def lifetimes(self) -> list[dict[str, Any]]:
        """Per PID: its name and CPU seconds over the closed windows (None if unknown)."""
        return [{"name": p.name, "pid": pid, "cpu_s": None if p.total is None else round(p.total / CLK_TCK, 2)}
                for pid, p in self._procs.items()]
