"""A wipe-and-resync keeps the Raft term and vote (election safety).

One real ``RaftNode`` (real pysyncobj, journal on) whose two peers never answer, so it never
campaigns by itself. Vote requests are delivered through its guarded transport inside a Raft
tick (on the loop, or in pysyncobj's tick thread: both modes), exactly where pysyncobj receives
them. It votes for n2 in term 5, is wiped and restarted as the watchdog does, and must then
refuse n3's vote request for the same term 5.
"""

from __future__ import annotations

import asyncio
import queue
from pathlib import Path
from typing import Any

import pytest

from raftreg.config import RaftTuning
from raftreg.raft import RaftNode
from raftreg.raft.transport import GuardedTransport
from raftreg.testing import free_ports


def deliver_in_tick_thread(node: RaftNode, sender: str, message: dict[str, Any]) -> None:
    """Hand ``message`` from peer ``sender`` to pysyncobj in its tick thread; return once delivered.

    (A tick callback cannot unregister itself: pysyncobj holds its callback lock meanwhile. This
    one stays registered on this SyncObj and does nothing once it has delivered.)"""
    so = node._syncobj
    peer = next(n for n in so._SyncObj__otherNodes if n.address == sender)
    done: queue.Queue[BaseException | None] = queue.Queue()
    pending = [message]

    def once() -> None:
        if not pending:
            return
        try:
            so._SyncObj__transport._onMessageReceivedCallback(peer, pending.pop())
            done.put(None)
        except BaseException as exc:  # reported to the test thread
            done.put(exc)

    so.addOnTickCallback(once)
    error = done.get(timeout=10)
    if error is not None:
        raise error


def vote_request(term: int) -> dict[str, Any]:
    return {"type": "request_vote", "term": term, "last_log_index": 1, "last_log_term": 0}


def term_and_vote(node: RaftNode) -> tuple[int, str | None]:
    so = node._syncobj
    return so._SyncObj__raftCurrentTerm, so._SyncObj__votedForNodeId


@pytest.mark.parametrize("tick_on_loop", [True, False], ids=["ticks-on-the-loop", "tick-thread"])
async def test_a_wiped_node_does_not_vote_twice_in_a_term(tmp_path: Path, tick_on_loop: bool) -> None:
    ports = free_ports(3)
    me, n2, n3 = (f"127.0.0.1:{p}" for p in ports)
    node = RaftNode(self_addr=me, peer_addrs=[n2, n3], data_dir=tmp_path, secret="s3cret",
                    tuning=RaftTuning(tick_on_loop=tick_on_loop))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, node.start, loop)
    try:
        await loop.run_in_executor(None, deliver_in_tick_thread, node, n2, vote_request(5))
        term, voted = term_and_vote(node)
        assert (term, voted) == (5, n2), "the node should have voted for n2 in term 5"
        await loop.run_in_executor(None, node.wipe_and_restart)
        assert term_and_vote(node) == (5, voted), "the wipe forgot the term or the vote"
        await loop.run_in_executor(None, deliver_in_tick_thread, node, n3, vote_request(5))
        assert term_and_vote(node) == (5, voted), "the wiped node granted a second vote in term 5"
        # A later term is a new election: voting again there is allowed.
        await loop.run_in_executor(None, deliver_in_tick_thread, node, n3, vote_request(6))
        term, voted_again = term_and_vote(node)
        assert (term, voted_again) == (6, n3)
        # ... and the state after the wipe is empty: it will take the leader's snapshot.
        assert node.registry.index == 0 and node.applied_index <= 1
    finally:
        await loop.run_in_executor(None, node.stop)
    assert not node.running


async def test_the_transport_is_guarded_before_the_first_tick(tmp_path: Path) -> None:
    """pysyncobj builds its transport (from ``transportClass``) in the SyncObj constructor, before
    the tick thread starts: the guard is in place for the very first message."""
    ports = free_ports(2)
    me, peer = (f"127.0.0.1:{p}" for p in ports)
    node = RaftNode(self_addr=me, peer_addrs=[peer], data_dir=tmp_path, secret="s3cret", tuning=RaftTuning())
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, node.start, loop)
    try:
        transport = node._syncobj._SyncObj__transport
        assert isinstance(transport, GuardedTransport)
        assert transport._onMessageReceivedCallback.__qualname__.endswith("_guard.<locals>.guarded")
        node.block_peers([peer])
        sent = transport.send(next(iter(node._syncobj._SyncObj__otherNodes)), {"type": "append_entries"})
        assert sent is True  # "sent" into the cut, as on a dead link
    finally:
        await loop.run_in_executor(None, node.stop)
