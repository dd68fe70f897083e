"""What the overload benchmark (``overload_bench.py``) watches while it runs: every node's
``GET /v1/cluster`` (group commit counters and Raft state, ``NodeMonitor``), the snapshot children
pysyncobj forks (``ForkWatcher``), and what follows from the samples (when entries were proposed,
how often the leader changed).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any

from harness.cpu import CpuAccount
from harness.sync_http import Http

MONITOR_PERIOD_S = 0.2  # GET /v1/cluster of every node


class ForkWatcher:
    """A thread that finds the nodes' child processes (pysyncobj forks one to write each log
    compaction snapshot) every ``period`` s and accounts their CPU as ``<node>-fork`` in the
    ``CpuAccount`` whose window is open (``account``); otherwise it would count as *other CPU*.
    ``seen``: child PID -> (node, first seen, last seen), times monotonic."""

    def __init__(self, nodes: dict[str, int | None], period: float = 0.2) -> None:
        self.nodes = {pid: name for name, pid in nodes.items() if pid}
        self.period = period
        self.account: CpuAccount | None = None
        self.seen: dict[int, tuple[str, float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fork-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            now = time.monotonic()
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/stat") as f:
                        data = f.read()
                except OSError:
                    continue
                ppid = int(data[data.rindex(")") + 2:].split()[1])
                node = self.nodes.get(ppid)
                if node is None:
                    continue
                pid = int(entry.name)
                first = self.seen.get(pid, (node, now, now))[1]
                self.seen[pid] = (node, first, now)
                account = self.account
                if account is not None:
                    account.see(f"{node}-fork", pid)

    def alive_between(self, t0: float, t1: float) -> int:
        """Children seen alive at some time in [t0, t1)."""
        return sum(1 for _, a, b in self.seen.values() if a < t1 and b >= t0)


class NodeMonitor:
    """One thread per node polling ``GET /v1/cluster`` every ``period`` s: (time, group_commit,
    state) samples, the time being the middle of the request."""

    def __init__(self, urls: dict[str, str], period: float = MONITOR_PERIOD_S) -> None:
        self.period = period
        self.samples: dict[str, list[tuple[float, dict[str, Any], str]]] = {n: [] for n in urls}
        self.failures: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n, u), name=f"monitor-{n}", daemon=True)
                         for n, u in urls.items()]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def _run(self, name: str, url: str) -> None:
        http = Http(url, timeout=5.0)
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    info = http.cluster()
                    self.samples[name].append(((t0 + time.monotonic()) / 2, info.get("group_commit") or {},
                                               str(info.get("state"))))
                except Exception:
                    self.failures[name] += 1
                self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))
        finally:
            http.close()

    def at(self, name: str, t: float) -> dict[str, Any] | None:
        """The node's group_commit counters of its last sample before ``t`` (None: none)."""
        best = None
        for ts, gc, _ in self.samples[name]:
            if ts > t:
                break
            best = gc
        return best

    def window(self, name: str, t0: float, t1: float) -> dict[str, Any]:
        """Counter deltas (``refused``, ``refused_at_once``, ``commands``, ``entries``, ``retries``) over [t0, t1), the
        peak ``queued`` of the samples in it and the number of samples."""
        a, b = self.at(name, t0), self.at(name, t1)
        inside = [gc for ts, gc, _ in self.samples[name] if t0 <= ts < t1]
        out: dict[str, Any] = {}
        for k in ("refused", "refused_at_once", "commands", "entries", "retries"):
            out[k] = None if a is None or b is None or k not in b else int(b[k]) - int(a.get(k, 0))
        out["peak_queued"] = max((int(gc.get("queued", 0)) for gc in inside), default=None)
        out["samples"] = len(inside)
        return out


def proposed_times(monitor: NodeMonitor) -> list[float]:
    """One time per command the nodes proposed (each node's ``commands`` counter rising between two
    of its samples, the commands placed at the later sample), sorted."""
    times: list[float] = []
    for samples in monitor.samples.values():
        last: int | None = None
        for t, gc, _ in samples:
            n = gc.get("commands")
            if n is None:
                continue
            if last is not None and n > last:
                times.extend([t] * (int(n) - last))
            last = int(n)
    return sorted(times)


def leader_changes(monitor: NodeMonitor) -> int:
    """Leaderships won during the run beyond the first: each node's samples counted where the node
    turns "leader" (not leader in its previous sample, or its first sample), minus the one leader
    the run started with. A node polled through a failed request keeps its last state."""
    won = 0
    for samples in monitor.samples.values():
        states = [state for _, _, state in samples]
        won += sum(1 for i, state in enumerate(states) if state == "leader" and (i == 0 or states[i - 1] != "leader"))
    return max(0, won - 1)
