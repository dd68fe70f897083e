"""``ReadIndex``: linearizable reads without a log write (Raft §6.4, "ReadIndex").

Contract of ``linearizable_index()``: an index ``c`` such that every write acknowledged before the
call began is at or below ``c``; a read answered from a state that has applied ``c`` is
linearizable. ``Unavailable`` (503, never a stale answer) when it cannot be established within the
write deadline (``raft.commit_timeout``).

The rule itself (leader rounds confirmed by a majority, shared by every read that arrived before
the round started; followers asking the leader) runs in the Raft tick over the Raft
connections: ``raftreg.raft.read_channel``. That channel answers every request within
``ANSWERED_WITHIN`` seconds, so while a leader is known and the write deadline is longer, a read
waits for its index without a timer of its own (a timer per read cost about 4 % of a node's
CPU under ``?consistent`` load).
"""

from __future__ import annotations

import asyncio

from raftreg.config import ClusterConfig
from raftreg.errors import Unavailable
from raftreg.node.view import ClusterView
from raftreg.raft import RaftNode
from raftreg.raft.read_channel import ANSWERED_WITHIN


class ReadIndex:
    def __init__(self, config: ClusterConfig, raft: RaftNode, view: ClusterView) -> None:
        self._raft = raft
        self._view = view
        self._timeout = config.raft.commit_timeout

    @property
    def rounds(self) -> dict[str, int]:
        reads = self._raft.reads
        return {"leader": reads.rounds, "follower": reads.requests_sent, "leader_without_round": reads.fast_answers}

    async def linearizable_index(self) -> int:
        """The read index for a read arriving now (see the module docstring)."""
        try:
            if self._view.leader_known() and self._timeout >= ANSWERED_WITHIN:
                index = await self._raft.read_index()
            else:
                async with asyncio.timeout(self._timeout):
                    await self._view.await_leader(self._timeout)
                    index = await self._raft.read_index()
        except TimeoutError:
            index = None
        if index is None:
            raise Unavailable("this node could not confirm with a majority that its state is current; "
                              "retry later", retry_after=1.0)
        return index
