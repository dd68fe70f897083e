"""``ClusterView``: this node's current picture of the cluster, from its Raft status.

Contract:
- ``refresh()`` samples Raft (every ``STATUS_PERIOD`` from ``run()``, and on demand) and tells
  the listeners ``(status, leader_usable)``; a listener that raises is logged, never fatal.
- ``usable_leader`` is the leader's raft address only while writes can reach it: a follower that
  has not heard from its leader within one maximum election timeout does not trust it
  (pysyncobj keeps naming a dead leader forever on an isolated follower); a leader without a
  connected quorum does not trust itself.
- Readiness (``is_ready``): a usable leader is known and this node has applied up to the
  leader's commit index as last reported. ``serves_reads`` turns on at the first moment of
  readiness after a start or a resync and stays on (see ``check_readable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.errors import Unavailable
from raftreg.raft import RaftNode, RaftStatus

log = logging.getLogger("raftreg.node")

STATUS_PERIOD = 0.05

StatusListener = Callable[[RaftStatus, bool], None]


@dataclass(frozen=True)
class ReadContext:
    """What every read response reports besides its body."""

    index: int
    leader: str
    last_contact_ms: int


class ClusterView:
    def __init__(self, config: ClusterConfig, me: NodeConfig, raft: RaftNode) -> None:
        self.config = config
        self.me = me
        self._raft = raft
        self._contact_limit = config.raft.raft_max_timeout
        self._leader_known = asyncio.Event()
        self._listeners: list[StatusListener] = []
        self.status: RaftStatus = raft.status()
        self.serves_reads = False

    @property
    def names_by_raft(self) -> dict[str, str]:
        """Raft address -> name of the current members (``config.nodes`` follows the live
        membership: ``raftreg.node.membership``)."""
        return {n.raft: n.name for n in self.config.nodes}

    def add_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    async def run(self) -> None:
        """Refresh every ``STATUS_PERIOD`` seconds until cancelled; a failed pass is logged."""
        while True:
            try:
                self.refresh()
            except Exception:
                log.exception("event=status_sample_failed")
            await asyncio.sleep(STATUS_PERIOD)

    def refresh(self) -> RaftStatus:
        st = self.status = self._raft.status()
        usable = self.usable_leader(st) is not None
        if usable:
            self._leader_known.set()
        else:
            self._leader_known.clear()
        for listener in self._listeners:
            try:
                listener(st, usable)
            except Exception:
                log.exception("event=status_listener_failed")
        if not self.serves_reads and self.is_ready()[0]:
            self.serves_reads = True
            log.info("event=caught_up applied_index=%d: serving reads", st.applied_index)
        return st

    def restarted(self) -> None:
        """The replica was wiped: plain reads wait until it has caught up again."""
        self.serves_reads = False

    # ---- leader -------------------------------------------------------------------------
    def usable_leader(self, st: RaftStatus | None = None) -> str | None:
        st = st or self.status
        if st.leader is None:
            return None
        if st.state == "leader":
            return st.leader if st.has_quorum or not self._raft.peer_addrs else None
        if st.state == "follower" and st.last_contact <= self._contact_limit:
            return st.leader
        return None

    def is_usable_leader(self) -> bool:
        """This node is the leader and may act as one (it has a quorum)."""
        return self.usable_leader() == self.me.raft

    def usable_leader_name(self) -> str | None:
        leader = self.usable_leader()
        return self.names_by_raft.get(leader) if leader is not None else None

    def leader_name(self) -> str:
        """The leader this node believes in (possibly stale), or ''."""
        leader = self.status.leader
        return self.names_by_raft.get(leader, "") if leader else ""

    def leader_known(self) -> bool:
        """A usable leader was known at the last status sample (``await_leader`` returns at once)."""
        return self._leader_known.is_set()

    async def await_leader(self, timeout: float) -> None:
        """Return once a usable leader is known; wait up to ``timeout`` (at most two election
        timeouts) for an election to finish, then ``Unavailable``."""
        if not self._leader_known.is_set():
            self.refresh()
        if not self._leader_known.is_set():
            wait = min(timeout, self.config.raft.raft_max_timeout * 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leader_known.wait(), max(wait, 0))
            if not self._leader_known.is_set():
                raise Unavailable("no leader is reachable from this node; retry later", retry_after=1.0)

    # ---- readiness ----------------------------------------------------------------------
    def is_ready(self) -> tuple[bool, str]:
        st = self.status
        if self.usable_leader(st) is None:
            return False, "no reachable leader"
        if st.state != "leader" and st.leader_commit_index is None:  # sampled between pysyncobj's two updates
            return False, "the leader's commit index is not known yet"
        target = st.commit_index if st.state == "leader" else (st.leader_commit_index or 0)
        if st.applied_index < target:
            return False, f"applied {st.applied_index} of {target}"
        return True, "ready"

    def check_readable(self) -> None:
        """Reads need a node that has caught up with the cluster at least once since it started.

        pysyncobj applies its journal only once it learns the commit index from a leader, so a
        restarted node holds an empty state until then: answering from it would show an empty
        registry at index 0, even the writes this node acknowledged before it went down. Later,
        a node cut off from the leader keeps answering default reads from its last state (stale,
        as documented; ``X-Raftreg-Last-Contact`` says how stale)."""
        if not self.serves_reads:
            raise Unavailable("this node has not caught up with the cluster since it started; "
                              "retry or read another node", retry_after=1.0)

    def read_context(self, index: int) -> ReadContext:
        st = self.status
        contact = 0 if st.state == "leader" else int(min(st.last_contact, 1e9) * 1000)
        return ReadContext(index=index, leader=self.leader_name(), last_contact_ms=contact)

    # ---- members ------------------------------------------------------------------------
    def live_members(self) -> list[str] | None:
        """This node (only while it has a usable leader and serves reads, else None) and the
        peers its Raft transport is connected to: who shares the active checks. Replicas never
        share them (None on a replica; a voter's connected peers are voters only)."""
        st = self.status
        if self.usable_leader(st) is None or not self.serves_reads or self.me.role == "replica":
            return None  # (a read replica runs no checks)
        return [self.me.name, *(self.names_by_raft[a] for a in st.connected if a in self.names_by_raft)]

    def members(self) -> list[dict[str, Any]]:
        """Each voter as this node sees it (``GET /v1/cluster`` ``members``; the replicas' rows
        come from ``raftreg.node.replicas``)."""
        st = self.status
        out = []
        for n in self.config.voters:
            match: int | None
            if n.name == self.me.name:
                member_status, match = st.state, st.applied_index
            else:
                if n.raft not in st.connected:
                    member_status = "unreachable"
                else:
                    member_status = "leader" if st.leader == n.raft else "follower"
                match = st.match_index.get(n.raft, 0) if st.state == "leader" else None
            lag = max(0, st.commit_index - match) if match is not None and st.state == "leader" else None
            out.append({"name": n.name, "raft": n.raft, "http": n.http, "status": member_status,
                        "match_index": match, "role": n.role, "lag": lag})
        return out
