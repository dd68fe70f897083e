"""``ReadIndex``: linearizable reads without a log write (Raft §6.4, "ReadIndex").

Contract of ``linearizable_index()``: an index ``c`` such that every write acknowledged before the
call began is at or below ``c``; a read answered from a state that has applied ``c`` is
linearizable. ``Unavailable`` (503, never a stale answer) when it cannot be established in time.

On the leader (a round):
1. it must have applied the first entry of its own term (``term_started``): its commit index then
   covers every entry committed before its term;
2. it records its commit index ``c`` and term ``T``;
3. it asks every other member, over the signed internal channel, whether ``T`` is still its term
   and this node its leader (``Peers.confirm_leadership``); with itself, a majority must say yes.
   Any newer leader needs the vote of one of them, given only after its answer, so no write of a
   newer leader precedes the read: ``c`` is the answer.
Rounds run one at a time; every read that arrives while a round is in flight waits for the next
one (a confirmation sent before a read arrived proves nothing about it), so concurrent reads share
one round.

On a follower, the same batching: one ``Peers.read_index`` request to the leader at a time, which
answers with a leader round's ``c``; the reads that arrived before it was sent share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.errors import RaftregError, Unavailable
from raftreg.node.peers import Peers
from raftreg.node.view import ClusterView
from raftreg.raft import RaftNode

log = logging.getLogger("raftreg.reads")


class _Rounds:
    """Runs ``fetch`` for batches of callers, one batch at a time; a caller joins the batch that
    starts after it arrived."""

    def __init__(self, fetch: Callable[[], Awaitable[int]]) -> None:
        self._fetch = fetch
        self._next: asyncio.Future[int] | None = None
        self._runner: asyncio.Task[None] | None = None
        self.rounds = 0

    async def get(self) -> int:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        fut = self._next
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="read-index-rounds")
        return await asyncio.shield(fut)

    async def _run(self) -> None:
        while self._next is not None:
            fut, self._next = self._next, None
            self.rounds += 1
            try:
                fut.set_result(await self._fetch())
            except Exception as exc:  # every waiter of the round gets the same error
                fut.set_exception(exc if isinstance(exc, RaftregError) else Unavailable(
                    "the read index could not be established; retry", retry_after=1.0))
            # A waiter that gave up (its request timed out) must not leave an unretrieved error.
            fut.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner


class ReadIndex:
    def __init__(self, config: ClusterConfig, me: NodeConfig, raft: RaftNode, view: ClusterView,
                 peers: Peers) -> None:
        self._config = config
        self._me = me
        self._raft = raft
        self._view = view
        self._peers = peers
        self._others = [n.name for n in config.nodes if n.name != me.name]
        self._timeout = config.raft.commit_timeout
        self._leader_rounds = _Rounds(self._confirm_round)
        self._follower_rounds = _Rounds(self._ask_leader)

    @property
    def rounds(self) -> dict[str, int]:
        return {"leader": self._leader_rounds.rounds, "follower": self._follower_rounds.rounds}

    async def close(self) -> None:
        await self._leader_rounds.close()
        await self._follower_rounds.close()

    async def linearizable_index(self) -> int:
        """The read index for a read arriving now (see the module docstring)."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._view.await_leader(self._timeout)
                if self._view.is_usable_leader():
                    return await self._leader_rounds.get()
                return await self._follower_rounds.get()
        except TimeoutError:
            raise Unavailable("this node could not confirm with a majority that its state is current "
                              "in time; retry later", retry_after=1.0) from None

    async def serve_follower(self) -> int:
        """Leader: a follower asks for the read index of reads that arrived before it asked."""
        if not self._view.is_usable_leader():
            raise Unavailable("this node is not the leader", retry_after=0.5)
        async with asyncio.timeout(self._timeout):
            return await self._leader_rounds.get()

    def confirms(self, sender: str, term: int) -> bool:
        """Follower: is ``term`` still this node's term, and ``sender`` its leader?"""
        st = self._raft.status()
        leader = self._view.names_by_raft.get(st.leader or "")
        return st.state == "follower" and st.term == term and leader == sender

    async def _confirm_round(self) -> int:
        st = self._raft.status()
        if st.state != "leader" or not st.term_started:
            raise Unavailable("this node is not a leader that has committed an entry of its term", retry_after=0.5)
        term, index = st.term, self._raft.commit_index
        needed = len(self._config.nodes) // 2  # besides this node
        if needed:
            await self._majority_confirms(term, needed)
        if self._raft.status().term != term:
            raise Unavailable("this node's term changed while it confirmed its leadership", retry_after=0.5)
        return index

    async def _majority_confirms(self, term: int, needed: int) -> None:
        pending = {asyncio.ensure_future(self._peers.confirm_leadership(name, term)) for name in self._others}
        yes = 0
        try:
            while pending and yes < needed:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                yes += sum(1 for d in done if not d.cancelled() and d.exception() is None and d.result())
        finally:
            for task in pending:
                task.cancel()
        if yes < needed:
            raise Unavailable("a majority did not confirm this node's leadership; retry", retry_after=0.5)

    async def _ask_leader(self) -> int:
        leader = self._view.usable_leader_name()
        if leader is None or leader == self._me.name:
            raise Unavailable("no leader is reachable from this node; retry later", retry_after=1.0)
        return await self._peers.read_index(leader)
