"""Watches the cluster during a chaos run: who claims leadership in which term, and the progress line.

"At most one leader per term" is checked from the nodes' own record of the terms they led
(``led_terms`` in ``GET /v1/cluster``, kept by each node's Raft tick, where state and
term are read together). Two different nodes leading the same term is a Raft safety violation.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from raftreg.testing import LocalCluster, http_json


@dataclass(frozen=True)
class LeaderChange:
    """A node seen leading where another (or none) was seen leading before, for the report."""

    at: float  # time.monotonic() of the sample that saw it
    leader: str
    term: int


class LeaderMonitor:
    """Polls ``GET /v1/cluster`` of every running node every ``period`` seconds."""

    def __init__(self, cluster: LocalCluster, period: float = 0.2) -> None:
        self.cluster = cluster
        self.period = period
        self.leaders_by_term: dict[int, set[str]] = defaultdict(set)
        self.current_leader: str = ""
        self.changes: list[LeaderChange] = []  # in time order; the first is the leader at the start
        self.samples = 0

    def violations(self) -> dict[int, list[str]]:
        return {term: sorted(nodes) for term, nodes in self.leaders_by_term.items() if len(nodes) > 1}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.sample)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.period)

    def sample(self) -> None:
        leader, term = "", 0
        for name in self.cluster.names:
            if not self.cluster.procs[name].alive():
                continue
            code, st = http_json(f"{self.cluster.url(name)}/v1/cluster", timeout=0.5)
            if code != 200 or not isinstance(st, dict):
                continue
            self.samples += 1
            for led in st.get("led_terms") or []:
                self.leaders_by_term[int(led)].add(name)
            if st.get("state") == "leader" and int(st.get("term") or 0) >= term:
                leader, term = name, int(st.get("term") or 0)
        last = self.changes[-1] if self.changes else None
        # A deposed leader that answers again (resumed, healed) may still say "leader" in its old
        # term for a moment: only a term at least as new as the last change counts.
        if leader and (last is None or (term >= last.term and (last.leader, last.term) != (leader, term))):
            self.changes.append(LeaderChange(time.monotonic(), leader, term))
        self.current_leader = leader


class ProgressLine:
    """One status line on stderr, rewritten every second (a plain line per update when not a TTY)."""

    def __init__(self, render: Callable[[], str], period: float = 1.0) -> None:
        self._render = render
        self._period = period
        self._tty = sys.stderr.isatty()

    async def run(self, stop: asyncio.Event) -> None:
        last_plain = 0.0
        while not stop.is_set():
            line = self._render()
            if self._tty:
                sys.stderr.write("\r\x1b[K" + line)
                sys.stderr.flush()
            elif time.monotonic() - last_plain >= 10 * self._period:
                sys.stderr.write(line + "\n")
                last_plain = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._period)
        if self._tty:
            sys.stderr.write("\r\x1b[K" + self._render() + "\n")
