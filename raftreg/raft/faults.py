"""Fault hooks for chaos runs and tests (reached only through the signed debug endpoints).

``FaultHooks`` is shared by a ``RaftNode`` and its guarded transport, and survives a wipe and
resync (the blocked peers stay blocked; a requested wedge is consumed by the SyncObj it hit).

- ``blocked``: raft addresses of peers whose messages are dropped both ways while the TCP
  connections stay up: a silent network cut as Raft sees it.
- ``request_wedge()``: at the next tick, put the node into the wedge pysyncobj really produces
  (research/pysyncobj.md §4.1 finding 3): its log is emptied, then its election timer fires.
  It becomes a candidate in a higher term and raises ``IndexError`` building its vote request
  before sending it, at every election timeout from then on: candidate, no leader, term rising,
  while the leader's AppendEntries (lower term) are ignored. Only a wipe and resync repairs it.
  Between the emptying and the election the node is ``deaf`` (every Raft message to it is
  dropped): otherwise the leader's next AppendEntries, arriving in the same tick, would fail on
  the empty log while the node still knows the leader, and the watchdog would repair that
  simpler state first (the leaderless wedge would then go untested).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("raftreg.raft")

CANDIDATE_STATE = 1  # pysyncobj's _RAFT_STATE.CANDIDATE


class FaultHooks:
    def __init__(self) -> None:
        self.blocked: frozenset[str] = frozenset()
        self._wedge_requested = False
        self.deaf = False
        # Not a fault: while a leadership hand-over is in progress, commands followers forward to
        # this leader are dropped (their pysyncobj fails them with LEADER_CHANGED once the new
        # leader is known, and raftreg's group commit retries them there), so the log stops
        # growing and the chosen follower can be fully caught up when it campaigns.
        self.holding_commands = False

    def block(self, peers: Iterable[str]) -> None:
        self.blocked = frozenset(peers)
        log.warning("event=fault_partition blocked=%s", sorted(self.blocked) or "none")

    def request_wedge(self) -> None:
        self._wedge_requested = True
        log.warning("event=fault_wedge: emptying the raft log and forcing an election at the next tick")

    def on_tick(self, so: Any) -> None:
        """Tick thread: apply a requested wedge to this SyncObj."""
        if self._wedge_requested:
            self._wedge_requested = False
            so._SyncObj__raftLog.clear()
            so._SyncObj__raftElectionDeadline = 0
            self.deaf = True
        elif self.deaf and so._SyncObj__raftState == CANDIDATE_STATE:
            self.deaf = False
