"""``MemberChanges``: add and remove members and hand leadership over, one change at a time.

Contract:
- Runs on the leader; preflight (``raftreg.node.member_rules``) first, nothing changed on refusal.
- One change at a time, enforced here (pysyncobj's own guard never fires): a change holds this
  node's change lock from preflight until its Raft entry is committed; a second request meanwhile
  is refused with 409 (two concurrent adds: exactly one accepted). A change whose commit was not
  confirmed in time (504 ``OutcomeUnknown``: it may still take effect) keeps the next one out
  until its entry commits or another leader takes over (a new leader accepts changes only once
  its term's first entry applied, so every earlier membership entry committed by then).
- Add a voter: the members-table row is committed first (so every node can name the new Raft
  address when it appears), then pysyncobj's ``add`` entry. Remove a voter: pysyncobj's ``rem``
  entry first, then the row is deleted and the member's recorded incarnation forgotten
  (``raftreg.state.identities``: the name may be added back on a fresh data directory). A
  replica is a table row only (no Raft change).
- ``transfer(to)``: TimeoutNow to ``to`` (or the most caught-up follower), retried while the
  target catches up, until another member leads or the deadline passes.
"""

from __future__ import annotations

import asyncio
import logging

from raftreg.config import NodeConfig
from raftreg.errors import Conflict, InvalidArgument, NotFound, OutcomeUnknown, Unavailable
from raftreg.node.member_rules import ChangeFacts, check_add, check_can_change, check_remove
from raftreg.node.membership import Membership
from raftreg.node.view import ClusterView
from raftreg.node.writes import Writer
from raftreg.raft import RaftNode
from raftreg.raft.membership import add_voter, remove_voter, transfer_to
from raftreg.state.commands import Command, ForgetIdentity
from raftreg.state.members import Member, MemberDelete, MemberSet

log = logging.getLogger("raftreg.membership")


class MemberChanges:
    def __init__(self, raft: RaftNode, writer: Writer, view: ClusterView, membership: Membership,
                 timeout: float) -> None:
        self._raft = raft
        self._writer = writer
        self._view = view
        self._membership = membership
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._pending: tuple[int, asyncio.Future[str]] | None = None  # (term, commit of a timed-out change)

    def facts(self) -> ChangeFacts:
        st = self._view.refresh()
        pending = self._pending is not None and self._pending[0] == st.term and not self._pending[1].done()
        names = self._view.names_by_raft
        live = frozenset([self._view.me.name, *(names[a] for a in st.connected if a in names)])
        with self._raft.lock:
            rows = self._raft.state.members.rows()
        joining = frozenset(r.name for r in rows if r.role == "voter" and r.raft in names
                            and r.raft != self._raft.self_addr and st.match_index.get(r.raft, 0) == 0)
        return ChangeFacts(me=self._view.me.name, is_leader=st.state == "leader",
                           leader=self._view.leader_name() or None, term_started=st.term_started,
                           change_pending=pending,
                           members=tuple(self._membership.current()), live=live, joining=joining)

    async def add(self, new: NodeConfig) -> int:
        """Add ``new``; returns the log index of its table row."""
        async with self._exclusive():
            check_add(self.facts(), new)
            row = Member(new.name, new.raft, new.http, new.consul_http, new.dns, new.role)
            index = await self._commit(MemberSet(row))
            if new.role == "voter":
                await self._raft_change(add_voter(self._raft, new.raft), f"adding {new.name}")
            self._membership.follow(self._raft)  # the leader's own answers show it at once
            log.info("event=member_added name=%s raft=%s role=%s", new.name, new.raft, new.role)
            return index

    async def remove(self, name: str) -> int:
        """Remove member ``name``; returns the log index of the table row's deletion."""
        async with self._exclusive():
            target = check_remove(self.facts(), name)
            if target.role == "voter":
                await self._raft_change(remove_voter(self._raft, target.raft), f"removing {name}")
            index = await self._commit(MemberDelete(name))
            await self._commit(ForgetIdentity(name))  # the name may come back on a fresh data directory
            self._membership.follow(self._raft)
            log.info("event=member_removed name=%s raft=%s", name, target.raft)
            return index

    async def transfer(self, to: str | None) -> str:
        """Hand leadership to ``to`` (a voter's name; None: the most caught-up follower); returns
        the new leader's name."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        check_can_change(self.facts())
        if not [m for m in self._membership.voters() if m.name != self._view.me.name]:
            raise Conflict("there is no other voter to hand leadership to")
        target = None
        if to is not None:
            found = [m for m in self._membership.voters() if m.name == to]
            if not found:
                raise NotFound(f"no voter named {to!r}", field="to")
            if to == self._view.me.name:
                raise InvalidArgument(f"{to} already leads", field="to")
            target = found[0].raft
        while loop.time() < deadline:
            st = self._view.refresh()
            if st.state == "leader":
                await asyncio.wait_for(transfer_to(self._raft, target), max(0.01, deadline - loop.time()))
            await asyncio.sleep(0.05)
            st = self._view.refresh()
            if st.state != "leader" and st.leader is not None and st.leader != self._raft.self_addr:
                leader = self._view.names_by_raft.get(st.leader, st.leader)
                if target is None or st.leader == target:
                    log.info("event=leadership_transferred to=%s", leader)
                    return leader
        raise Unavailable("leadership was not handed over in time (is the target caught up and reachable?); retry")

    def _exclusive(self) -> asyncio.Lock:
        if self._lock.locked():
            raise Conflict("another membership change is in progress; retry once it is committed")
        return self._lock

    async def _commit(self, cmd: Command) -> int:
        committed = await self._writer.commit(cmd, self._timeout, bounded=False)
        return committed.index

    async def _raft_change(self, fut: asyncio.Future[str], what: str) -> None:
        term = self._view.status.term
        try:
            reason = await asyncio.wait_for(asyncio.shield(fut), self._timeout)
        except TimeoutError:
            self._pending = (term, fut)
            raise OutcomeUnknown(f"{what}: the change was not confirmed in time; it may still take effect "
                                 "(check GET /v1/cluster before retrying)") from None
        if reason != "SUCCESS":
            raise Unavailable(f"{what}: the leader refused the change ({reason}); retry", retry_after=0.2)
