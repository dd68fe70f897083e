"""``Recovery``: the watchdog's policy for a wedged replica, and the resync itself.

Contract:
- The watchdog (``raftreg.node.watchdog``) judges this node from its Raft status and calls
  ``recover(reason)`` on a wedge. Recovery wipes and resyncs this replica only when that is
  safe: a majority of the members *other than this one* holds every committed entry (an entry
  committed with this node's vote and not yet on any other follower would otherwise exist on the
  leader alone). The leader is asked, over HTTP, for its commit index and its followers' match
  indexes.
- Which member leads is asked of the members themselves when this node knows no usable leader:
  the wedge pysyncobj really produces leaves a node a candidate with no leader and a rising term
  (research/pysyncobj.md §4.1), and a rule that needs a known leader could never repair it. The
  member that says it leads, with a quorum, in the highest term, is taken.
- A refused recovery is logged (``event=resync_refused``), counted in ``refused``, and retried
  after ``RETRY_REFUSED`` seconds; only a resync that happened counts in ``recoveries``.
- ``resync()`` wipes the replica's Raft data and state, keeping its term and vote
  (raftreg.raft.storage), and rejoins empty; plain reads answer 503 until it has caught up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.node.peers import Peers
from raftreg.node.tasks import cancel_and_wait
from raftreg.node.view import ClusterView
from raftreg.node.watchdog import Watchdog
from raftreg.raft import RaftNode

log = logging.getLogger("raftreg.recovery")

RETRY_REFUSED = 5.0


class Recovery:
    def __init__(self, config: ClusterConfig, me: NodeConfig, raft: RaftNode, view: ClusterView,
                 peers: Peers) -> None:
        self._config = config
        self._me = me
        self._raft = raft
        self._view = view
        self._peers = peers
        self.watchdog = Watchdog(raft.status, self.recover)
        self.recoveries = 0
        self.refused = 0
        self._task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    def recover(self, reason: str) -> None:
        """Watchdog action: wipe and resync if safe (in the background; one attempt at a time)."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._recover_safely(reason), name="recovery")

    async def _recover_safely(self, reason: str) -> None:
        safe, why = await self.safe_to_wipe()
        if not safe:
            self.refused += 1
            log.error("event=resync_refused reason=%r why=%r: retrying in %gs", reason, why, RETRY_REFUSED)
            self.watchdog.retry_in(RETRY_REFUSED)
            return
        log.warning("event=resync_started reason=%r %s", reason, why)
        await self.resync()
        self.recoveries += 1

    async def resync(self) -> None:
        """Wipe this replica's Raft data and state (keeping term and vote) and rejoin."""
        self._view.restarted()
        await asyncio.get_running_loop().run_in_executor(None, self._raft.wipe_and_restart)

    async def safe_to_wipe(self) -> tuple[bool, str]:
        """Whether a majority without this node holds every committed entry, and why."""
        found = await self._find_leader()
        if found is None:
            return False, "no member says it leads with a quorum"
        leader, info = found
        return majority_without(self._me.name, leader, info, len(self._config.voters))  # replicas count in no quorum

    async def _find_leader(self) -> tuple[str, dict[str, Any]] | None:
        """The leader's name and ``/v1/cluster`` document, asked of the member this node believes
        leads, else of every other member."""
        believed = self._view.usable_leader_name()
        if believed and believed != self._me.name:
            info = await self._peers.cluster_status(believed)
            if info is not None and _leads(info):
                return believed, info
        others = [n.name for n in self._config.voters if n.name != self._me.name]  # replicas never lead
        answers = await asyncio.gather(*(self._peers.cluster_status(name) for name in others))
        return pick_leader(dict(zip(others, answers, strict=True)))


def pick_leader(answers: dict[str, dict[str, Any] | None]) -> tuple[str, dict[str, Any]] | None:
    """Of the members' ``/v1/cluster`` answers (None: no answer), the one that says it leads with
    a quorum, in the highest term; None when none does."""
    leaders = [(info["term"], name, info) for name, info in answers.items()
               if info is not None and _leads(info) and isinstance(info.get("term"), int)]
    if not leaders:
        return None
    _, name, info = max(leaders, key=lambda entry: entry[0])
    return name, info


def majority_without(me: str, leader: str, info: dict[str, Any], cluster_size: int) -> tuple[bool, str]:
    """Whether, by the leader's ``/v1/cluster`` answer ``info``, a majority of the
    ``cluster_size`` voters other than ``me`` holds every committed entry (the leader itself,
    plus the voting followers whose match index reaches the commit index; read replicas count in
    no quorum); and why."""
    commit = info.get("commit_index")
    members = info.get("members")
    if not isinstance(commit, int) or not isinstance(members, list):
        return False, f"leader {leader} answered an unexpected status"
    holders = 1 + sum(
        1 for m in members
        if isinstance(m, dict) and m.get("name") not in (me, leader) and m.get("role") != "replica"
        and isinstance(m.get("match_index"), int) and m["match_index"] >= commit
    )
    majority = cluster_size // 2 + 1
    why = f"leader {leader} commit {commit}: {holders} of the other members hold it, {majority} needed"
    return holders >= majority, why


def _leads(info: dict[str, Any]) -> bool:
    return info.get("state") == "leader" and info.get("has_quorum") is True
