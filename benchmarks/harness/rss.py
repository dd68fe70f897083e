"""``RssSampler``: a thread sampling the resident memory (VmRSS) of named processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from harness.proc import mib, proc_status_kib


class RssSampler:
    """Samples VmRSS of named processes every ``period`` s between ``start()`` and ``stop()``.

    Per name: the peak over the samples (a name may carry several PIDs over time: ``add`` a
    restarted process under the same name), the last sample, and the kernel's own peak (VmHWM,
    since the process started) read at ``stop()``. ``series()`` gives every sample. A process that
    is gone is skipped silently. Use as a context manager or call ``start()`` / ``stop()``.
    """

    def __init__(self, named: Mapping[str, int | None] | None = None, period: float = 0.1) -> None:
        self.period = period
        self._lock = threading.Lock()
        self._pids: dict[int, str] = {}
        self._peak: dict[str, int | None] = {}
        self._last: dict[str, int | None] = {}
        self._hwm: dict[str, int | None] = {}
        self._samples: list[tuple[float, str, int]] = []  # (time.monotonic, name, KiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        for name, pid in (named or {}).items():
            self.add(name, pid)

    def add(self, name: str, pid: int | None) -> None:
        """Sample ``pid`` under ``name`` from now on (a falsy PID only makes the name known)."""
        with self._lock:
            self._peak.setdefault(name, None)
            self._last.setdefault(name, None)
            if pid:
                self._pids[pid] = name

    def start(self) -> None:
        """Take a first sample and start the thread."""
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, take a last sample and read each live PID's VmHWM."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.sample()
        with self._lock:
            pids = dict(self._pids)
        for pid, name in pids.items():
            hwm = proc_status_kib(pid, "VmHWM")
            if hwm is not None:
                with self._lock:
                    self._hwm[name] = max(hwm, self._hwm.get(name) or 0)

    def __enter__(self) -> RssSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sample(self) -> None:
        """Read VmRSS of every PID once (also called by the thread every ``period``)."""
        with self._lock:
            pids = dict(self._pids)
        now = time.monotonic()
        for pid, name in pids.items():
            kib = proc_status_kib(pid, "VmRSS")
            if kib is None:
                continue
            with self._lock:
                self._samples.append((now, name, kib))
                self._last[name] = kib
                peak = self._peak.get(name)
                self._peak[name] = kib if peak is None else max(peak, kib)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def peak_mib(self) -> dict[str, float | None]:
        """Name -> the highest sampled VmRSS in MiB (None: never sampled)."""
        with self._lock:
            return {k: mib(v) for k, v in self._peak.items()}

    def last_mib(self) -> dict[str, float | None]:
        """Name -> the latest sampled VmRSS in MiB."""
        with self._lock:
            return {k: mib(v) for k, v in self._last.items()}

    def hwm_mib(self) -> dict[str, float | None]:
        """Name -> VmHWM in MiB read at ``stop()`` (the process's peak since it started)."""
        with self._lock:
            return {k: mib(self._hwm.get(k)) for k in self._peak}

    def series(self) -> list[tuple[float, str, int]]:
        """Every sample as (time.monotonic(), name, VmRSS KiB), oldest first."""
        with self._lock:
            return list(self._samples)

    def result(self) -> dict[str, Any]:
        """The numbers for a result JSON: peak, last and VmHWM MiB per name, and the sample count."""
        return {"rss_peak_mib": self.peak_mib(), "rss_last_mib": self.last_mib(), "vmhwm_mib": self.hwm_mib(),
                "samples": len(self.series())}
