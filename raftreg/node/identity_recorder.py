"""``IdentityRecorder``: a node records its own incarnation in the replicated identities table.

Contract:
- Once this node is ready (it knows a leader and has applied up to its commit index), it reads
  the incarnation recorded for its name (``raftreg.state.identities``). Missing: it proposes
  ``RecordIdentity(name, incarnation)``. Different: it proposes only when its start-up check
  accepted ``--replace-identity`` (``may_replace``, ``raftreg.node.identity_check``), and only
  until its own record is in; otherwise it logs ``event=identity_conflict`` once and leaves the
  record alone (another data directory took the name over).
- The command is idempotent (a retried record changes nothing), so a write whose outcome is
  unknown is simply tried again at the next pass; failures are logged, never raised.
- It keeps checking every ``period`` seconds (a snapshot restore may bring back an older table).
"""

from __future__ import annotations

import asyncio
import logging

from raftreg.errors import RaftregError
from raftreg.node.identity_check import LocalIdentity
from raftreg.node.view import ClusterView
from raftreg.node.writes import Writer
from raftreg.raft import RaftNode
from raftreg.state.commands import RecordIdentity
from raftreg.state.identities import IdentityRecorded

log = logging.getLogger("raftreg.identity")


class IdentityRecorder:
    def __init__(self, name: str, identity: LocalIdentity, *, raft: RaftNode, view: ClusterView, writer: Writer,
                 period: float = 0.1, idle_period: float = 5.0) -> None:
        self._name = name
        self._incarnation = identity.incarnation
        self._may_replace = identity.may_replace
        self._raft = raft
        self._view = view
        self._writer = writer
        self._period = period
        self._idle_period = idle_period
        self._conflict_logged = False
        self.recorded_at: int | None = None  # the index at which this node's record was committed

    def recorded(self) -> str | None:
        """The incarnation the applied state records for this node's name."""
        with self._raft.lock:
            return self._raft.state.identities.get(self._name)

    async def run(self) -> None:
        while True:
            settled = False
            try:
                settled = await self.pass_once()
            except Exception:  # the loop never dies; the next pass tries again
                log.exception("event=identity_record_pass_failed: going on")
            await asyncio.sleep(self._idle_period if settled else self._period)

    async def pass_once(self) -> bool:
        """One look; True when nothing is left to do for now (recorded, or a conflict logged)."""
        if not self._view.is_ready()[0]:
            return False
        recorded = self.recorded()
        if recorded == self._incarnation:
            self._may_replace = False  # ours is in: never replace a later record
            return True
        if recorded is not None and not self._may_replace:
            if not self._conflict_logged:
                self._conflict_logged = True
                log.error("event=identity_conflict node=%s recorded=%s ours=%s: not replacing it (another data "
                          "directory holds this name; see README \"Node identity\")", self._name, recorded,
                          self._incarnation)
            return True
        try:
            committed = await self._writer.commit(RecordIdentity(self._name, self._incarnation), bounded=False)
        except RaftregError as exc:
            log.info("event=identity_record_retry node=%s error=%s", self._name, exc)
            return False
        if isinstance(committed.result, IdentityRecorded):
            self.recorded_at = committed.index
            log.info("event=identity_recorded node=%s incarnation=%s index=%d replaced=%s", self._name,
                     self._incarnation, committed.index, committed.result.previous or "-")
        return False  # the next pass confirms it from the applied state
