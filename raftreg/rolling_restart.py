"""Rolling restart: restart every member in turn without losing the cluster's availability.

Contract (issue 16 item 6; ``raftreg rolling-restart`` is the command, ``raftreg.cli.rolling``):
- Before each restart the whole cluster must be healthy: every member answers ``GET /v1/cluster``,
  is ready (``GET /v1/ready``), and one member leads with a quorum. Restarting a member of a
  degraded cluster could cost the quorum, so the run waits (up to ``node_timeout``) and then
  stops instead.
- Followers go first, the leader last (re-read before every step: leadership may move). Before
  the leader goes, it is asked to hand leadership over (``Probe.transfer_leadership``) and the
  run waits until another member leads; where the cluster cannot be asked (an older build), the
  leader's graceful stop (SIGTERM) hands leadership over itself.
- ``restart(name)`` is the operator's step (a shell command, or a callback in tests). The member
  counts as back once it answers with a new ``boot_id`` (a new process, not the old one still
  running), is ready, and has applied up to ``max_lag`` entries short of the leader's commit
  index; all within ``node_timeout`` of the restart's start.
- Progress goes to ``progress`` (one line per event); the first failure raises
  ``RollingRestartFailed`` with a message that names the member and what was awaited, and no
  further member is restarted.
- ``clock`` and ``sleep`` are injectable (unit tests); the probe does the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class RollingRestartFailed(Exception):
    """The rolling restart stopped; the message says at which member and why."""


class Probe(Protocol):
    def status(self, name: str) -> dict[str, Any] | None:
        """That member's ``GET /v1/cluster`` document, or None when it does not answer."""
        ...

    def ready(self, name: str) -> bool:
        """Whether that member answers ``GET /v1/ready`` with 200."""
        ...

    def transfer_leadership(self, leader: str) -> str | None:
        """Ask ``leader`` to hand leadership over: None once asked successfully, else why not."""
        ...


@dataclass(frozen=True)
class RollingSettings:
    node_timeout: float = 120.0  # seconds for one member: restart, back, ready and caught up
    max_lag: int = 50  # entries a restarted member may still be short of the leader's commit index
    poll: float = 0.2  # seconds between probes


@dataclass(frozen=True)
class Health:
    """The cluster as the probes saw it: the leader (None: none agreed) and what is missing."""

    leader: str | None
    statuses: dict[str, dict[str, Any]]
    problems: list[str]


def process_id(status: dict[str, Any]) -> object:
    """What tells a restarted process from the old one (``boot_id``; ``pid`` for older builds)."""
    return status.get("boot_id") or status.get("pid")


def judge(members: list[str], statuses: dict[str, dict[str, Any] | None], ready: dict[str, bool]) -> Health:
    """Pure: every member answering and ready, and exactly one leading with a quorum."""
    problems = [f"{name} does not answer" for name in members if statuses.get(name) is None]
    problems += [f"{name} is not ready" for name in members if statuses.get(name) is not None
                 and not ready.get(name, False)]
    leaders = [name for name in members if (st := statuses.get(name)) is not None
               and st.get("state") == "leader" and st.get("has_quorum") is True]
    if len(leaders) != 1:
        problems.append("no member leads with a quorum" if not leaders else f"several members lead: {leaders}")
    answered = {name: st for name, st in statuses.items() if st is not None}
    return Health(leaders[0] if len(leaders) == 1 else None, answered, problems)


def next_member(pending: list[str], leader: str) -> str:
    """Followers first (in the given order), the leader last."""
    return next((name for name in pending if name != leader), leader)


class RollingRestart:
    def __init__(self, members: list[str], probe: Probe, restart: Callable[[str], None], *,
                 progress: Callable[[str], None] = print, settings: RollingSettings | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if not members:
            raise RollingRestartFailed("no members to restart")
        self._members = list(members)
        self._probe = probe
        self._restart = restart
        self._progress = progress
        self._settings = settings or RollingSettings()
        self._clock = clock
        self._sleep = sleep

    def run(self) -> list[str]:
        """Restart every member once; returns the order in which they were restarted."""
        pending, done = list(self._members), list[str]()
        while pending:
            health = self._wait_healthy(done)
            leader = health.leader or ""  # healthy: exactly one member leads
            name = next_member(pending, leader)
            started = self._clock()
            if name == leader and len(self._members) > 1:
                self._hand_over(name, started)
            old = process_id(health.statuses[name])
            self._progress(f"restarting {name}" + (" (it led)" if name == leader else ""))
            self._restart(name)
            self._wait_back(name, old, started)
            pending.remove(name)
            done.append(name)
        self._progress(f"rolling restart done: {', '.join(done)}")
        return done

    def sample(self) -> Health:
        statuses = {name: self._probe.status(name) for name in self._members}
        ready = {name: self._probe.ready(name) for name in self._members if statuses[name] is not None}
        return judge(self._members, statuses, ready)

    def _wait_healthy(self, done: list[str]) -> Health:
        deadline = self._clock() + self._settings.node_timeout
        while True:
            health = self.sample()
            if not health.problems:
                return health
            if self._clock() >= deadline:
                restarted = f" (restarted so far: {', '.join(done)})" if done else " (nothing was restarted)"
                problems = "; ".join(health.problems)
                raise RollingRestartFailed(f"stopped: the cluster is not healthy after "
                                           f"{self._settings.node_timeout:g}s ({problems}){restarted}")
            self._sleep(self._settings.poll)

    def _hand_over(self, leader: str, started: float) -> None:
        why = self._probe.transfer_leadership(leader)
        if why is not None:
            self._progress(f"{leader} leads; asking it to hand leadership over failed ({why}): "
                           "its graceful stop hands leadership over")
            return
        self._progress(f"{leader} leads: handing leadership over")
        deadline = started + self._settings.node_timeout
        while self._clock() < deadline:
            health = self.sample()
            if health.leader is not None and health.leader != leader:
                self._progress(f"{health.leader} leads now")
                return
            self._sleep(self._settings.poll)
        raise RollingRestartFailed(f"stopped at {leader}: leadership was not handed over within "
                                   f"{self._settings.node_timeout:g}s; nothing was restarted")

    def _wait_back(self, name: str, old: object, started: float) -> None:
        deadline = started + self._settings.node_timeout
        while True:
            waiting_for, caught_up = self._back(name, old)
            if caught_up is not None:
                self._progress(f"{name} is back: ready, {caught_up} ({self._clock() - started:.1f}s)")
                return
            if self._clock() >= deadline:
                raise RollingRestartFailed(f"stopped at {name}: it was restarted but is not back within "
                                           f"{self._settings.node_timeout:g}s (waiting for {waiting_for}); "
                                           "the remaining members were not restarted")
            self._sleep(self._settings.poll)

    def _back(self, name: str, old: object) -> tuple[str, str | None]:
        """(what is still awaited, None) or ("", how far it caught up)."""
        st = self._probe.status(name)
        if st is None or process_id(st) == old:
            return "it to answer as a new process", None
        if not self._probe.ready(name):
            return "it to be ready", None
        health = self.sample()
        leader = health.statuses.get(health.leader or "")
        if leader is None:
            return "a leader", None
        applied, commit = st.get("applied_index"), leader.get("commit_index")
        if not isinstance(applied, int) or not isinstance(commit, int):
            return "its applied index", None
        if applied < commit - self._settings.max_lag:
            return f"it to catch up (applied {applied} of the leader's {commit})", None
        return "", f"applied {applied} of the leader's commit index {commit}"
