"""``RaftStatus``: one sample of a node's Raft view, and ``StatusReader``, which takes it.

Contract:
- ``StatusReader.sample(syncobj)`` never raises and never invents a state: when pysyncobj's
  ``getStatus()`` fails (a dict changed size under us in the tick thread, three times in a row)
  or its answer cannot be read, it returns the last good sample. An empty sample would read as
  "follower, no leader" and make the leader drop its lease table.
- ``StatusReader.on_tick(syncobj)`` runs in pysyncobj's tick thread. It records when this node
  last heard from its leader (pysyncobj resets a follower's election deadline on every
  AppendEntries; it keeps no such timestamp itself) and the terms this node led, read together
  in the tick thread (``getStatus()`` from another thread reads state and term at different
  moments, so a leader stepping down into a higher term could look like a leader of that term).
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("raftreg.raft")

LEADER_STATE = 2  # pysyncobj's _RAFT_STATE.LEADER
CANDIDATE_STATE = 1  # pysyncobj's _RAFT_STATE.CANDIDATE
_STATE_NAMES = {0: "follower", 1: "candidate", 2: "leader"}


@dataclass(frozen=True)
class RaftStatus:
    """A consistent-enough sample of this node's Raft view."""

    state: str  # "leader" | "follower" | "candidate"
    leader: str | None  # raft address of the leader this node believes in
    term: int
    commit_index: int
    applied_index: int
    leader_commit_index: int | None
    log_len: int
    has_quorum: bool
    match_index: dict[str, int]
    connected: frozenset[str]  # raft addresses of peers with an open connection
    last_contact: float  # seconds since this node last heard from the leader (0 on the leader)
    # Leader only: the no-op pysyncobj appends on election is applied, so this leader has applied
    # every entry committed before its term (its commit index may lag until then).
    term_started: bool = False


STOPPED = RaftStatus("follower", None, 0, 0, 0, None, 0, False, {}, frozenset(), float("inf"))


class StatusReader:
    """Turns pysyncobj's status into ``RaftStatus`` samples (see the module docstring)."""

    def __init__(self) -> None:
        self._last_deadline = 0.0
        self._last_contact_at = time.monotonic()
        self._last_tick_at = time.monotonic()
        self._last_state: int | None = None
        self._last_good: RaftStatus = STOPPED
        self.led_terms: collections.deque[int] = collections.deque(maxlen=256)
        self.failed_samples = 0
        self.snapshots = 0  # snapshots written (pysyncobj's serializer child finished)
        self.snapshot_seconds = 0.0
        self._snapshot_started: float | None = None
        self._last_serialized: object = None

    def reset_contact(self) -> None:
        """A new SyncObj starts: count the time without a leader from now."""
        self._last_contact_at = time.monotonic()

    def on_tick(self, so: Any) -> None:
        now = time.monotonic()
        state = so._SyncObj__raftState
        if state == CANDIDATE_STATE and self._last_state != CANDIDATE_STATE:
            # Why an election started: how long since the leader was last heard, and since the
            # previous tick (a long gap: this node's ticks starved, not the leader gone).
            log.warning("event=election_started term=%d since_contact_s=%.3f since_previous_tick_s=%.3f",
                        so._SyncObj__raftCurrentTerm, now - self._last_contact_at, now - self._last_tick_at)
        self._last_state = state
        self._last_tick_at = now
        deadline = so._SyncObj__raftElectionDeadline
        if deadline != self._last_deadline:
            self._last_deadline = deadline
            self._last_contact_at = now
        if so._SyncObj__raftState == LEADER_STATE:
            term = so._SyncObj__raftCurrentTerm
            if not self.led_terms or self.led_terms[-1] != term:
                self.led_terms.append(term)
        self._watch_snapshot(so)

    def _watch_snapshot(self, so: Any) -> None:
        """Count finished snapshots and time them: from the tick that first sees pysyncobj's
        serializer child running to the tick that sees the new last-serialized entry. Read with
        defaults, so a pysyncobj without these attributes only loses the snapshot metrics."""
        serializer = getattr(so, "_SyncObj__serializer", None)
        busy = getattr(serializer, "_Serializer__pid", 0) != 0
        if busy and self._snapshot_started is None:
            self._snapshot_started = time.monotonic()
        last = getattr(so, "_SyncObj__lastSerializedEntry", None)
        if last != self._last_serialized:
            self._last_serialized = last
            if last is not None:
                self.snapshots += 1
                if self._snapshot_started is not None:
                    self.snapshot_seconds += time.monotonic() - self._snapshot_started
            self._snapshot_started = None

    def sample(self, so: Any) -> RaftStatus:
        if so is None:
            return STOPPED
        for _ in range(3):
            try:
                st = so.getStatus()
                status = self._convert(so, st)
            except RuntimeError:  # a dict changed size under us in the tick thread
                continue
            except Exception:
                log.exception("event=status_unreadable: keeping the last good sample")
                break
            self._last_good = status
            return status
        self.failed_samples += 1
        return self._last_good

    def _convert(self, so: Any, st: dict[str, Any]) -> RaftStatus:
        state = _STATE_NAMES[st["state"]]
        leader = st["leader"]
        match = {k.removeprefix("match_idx_server_"): v for k, v in st.items() if k.startswith("match_idx_server_")}
        connected = frozenset(
            k.removeprefix("partner_node_status_server_")
            for k, v in st.items()
            if k.startswith("partner_node_status_server_") and v == 2
        )
        noop = so._SyncObj__noopIDx
        leader_commit = st["leader_commit_idx"]
        installing = getattr(so, "raftreg_installing_up_to", None)  # a snapshot being installed (raft.transport)
        if installing is not None:
            leader_commit = max(installing, leader_commit or 0)
        return RaftStatus(
            state=state,
            leader=leader.address if leader is not None else None,
            term=int(st["raft_term"]),
            commit_index=int(st["commit_idx"]),
            applied_index=int(st["last_applied"]),
            leader_commit_index=leader_commit,
            log_len=int(st["log_len"]),
            has_quorum=bool(st["has_quorum"]),
            match_index=match,
            connected=connected,
            last_contact=0.0 if state == "leader" else time.monotonic() - self._last_contact_at,
            term_started=state == "leader" and noop is not None and so.raftLastApplied >= noop,
        )

