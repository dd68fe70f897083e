"""``ReadChannel``: ReadIndex (Raft §6.4) run inside the Raft tick, over the Raft connections.

``read_index()`` (on the asyncio loop) returns a future of an index ``c`` such that every write
acknowledged before the call is at or below ``c`` (or None: no index could be had; the caller
answers 503). A read answered from a state that has applied ``c`` is linearizable.

Leader. Requests (its own reads', and followers' ``raftreg_index`` messages) wait in ``pending``.
At each tick, if no round is in flight, one round takes them all: provided this node leads and
has applied the first entry of its term (so its commit index covers everything committed before
its term), it records its term ``T`` and commit index ``c`` (read together in the Raft tick,
the only thread that changes them) and sends ``raftreg_check {term: T}`` to every peer. A peer
answers ``raftreg_check_ack {ok}``: ok when it is a follower in ``T`` whose leader is the sender.
With itself, a majority of ok answers the round with ``c``: any newer leader needs the vote of one
of them, given after its answer, so no write of a newer leader precedes the read. Enough "no"s, a
change of term or state, or ``ROUND_TIMEOUT`` answer None. Requests that arrive during a round
wait for the next one (a confirmation sent before a read arrived proves nothing about it), so all
concurrent reads share one round.

Follower. Its reads' requests wait likewise; one ``raftreg_index`` message at a time goes to the
leader pysyncobj follows (None at once when there is none), answered by ``raftreg_index_ack``.

The asker is the majority's second member. When the leader needs one "yes" besides its own (three
voters) and the request comes from a voter that says it can confirm (``confirms: true``), the
leader skips the round: it answers at once with its commit index ``c`` and its term ``T``
(``confirm: true``), and the follower uses ``c`` only if, on receiving it, it still follows the
sender in term ``T``. That is the round's argument with the asker as the confirming member: a
newer leader needs the vote of the leader (before it recorded ``c``, so it would not have been
leading in ``T``) or of the asker (before it checked, so it would have left ``T``). Two messages
instead of six per burst of follower reads; a leader or follower of an older release takes the
round path (the flag is ignored by one, never sent by the other).

These messages travel on pysyncobj's TCP connections (encrypted and authenticated with the
cluster secret): ``GuardedTransport`` hands every message whose type starts with ``raftreg_`` to
``receive`` instead of to pysyncobj, and they are dropped for a blocked peer like every message.

Threading: the loop only queues requests (and asks for a tick, once per burst); everything else
runs in the Raft tick (on the loop; on the backstop or pysyncobj's thread, raftreg.raft.loop_tick),
which hands the answers back to the loop in batches (one call per burst).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raftreg.raft.loop_tick import call_soon_any_thread

PREFIX = "raftreg_"
CHECK, CHECK_ACK, INDEX, INDEX_ACK = "raftreg_check", "raftreg_check_ack", "raftreg_index", "raftreg_index_ack"
FOLLOWER_STATE, LEADER_STATE = 0, 2  # pysyncobj's _RAFT_STATE
ROUND_TIMEOUT = 1.0  # seconds a round (or a follower's request) may stay unanswered
# Every request is answered (None when no index could be had) within this many seconds while the
# node ticks: at worst it waits out the round in flight, then its own round, then one tick.
ANSWERED_WITHIN = 2 * ROUND_TIMEOUT + 0.2

# Who waits for an index: a local future (on the loop), or a follower's request (node, seq).
Waiter = asyncio.Future[int | None] | tuple[Any, int]


def _term_started(so: Any) -> bool:
    """The leader has applied its term's first entry: its commit index covers everything
    committed before its term."""
    noop = so._SyncObj__noopIDx
    return noop is not None and so.raftLastApplied >= noop


def is_channel_message(message: Any) -> bool:
    return isinstance(message, dict) and str(message.get("type", "")).startswith(PREFIX)


@dataclass
class _Round:
    seq: int
    term: int
    index: int
    started: float
    waiters: list[Waiter]
    yes: set[str] = field(default_factory=set)
    no: set[str] = field(default_factory=set)


class ReadChannel:
    def __init__(self) -> None:
        self._requests: collections.deque[asyncio.Future[int | None]] = collections.deque()  # from the loop
        self._pending: list[Waiter] = []  # Raft tick: waiting for the next round / request
        self._round: _Round | None = None  # leader: the round in flight
        self._asked: tuple[int, float, list[Waiter]] | None = None  # follower: (seq, sent at, waiters)
        self._seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._answers: collections.deque[tuple[asyncio.Future[int | None], int | None]] = collections.deque()
        self._answers_lock = threading.Lock()
        self._drain_scheduled = False
        self.rounds = 0
        self.requests_sent = 0
        self.fast_answers = 0  # leader: follower requests answered without a round

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # ---- the loop's side ------------------------------------------------------------------
    def read_index(self) -> asyncio.Future[int | None]:
        """Queue a request for a read index (the caller wakes the Raft tick)."""
        assert self._loop is not None
        fut: asyncio.Future[int | None] = self._loop.create_future()
        self._requests.append(fut)
        return fut

    # ---- Raft tick ------------------------------------------------------------------------
    def busy(self) -> bool:
        return bool(self._requests or self._pending or self._round or self._asked)

    def on_tick(self, so: Any, send: Callable[[Any, dict[str, Any]], Any]) -> None:
        while self._requests:
            self._pending.append(self._requests.popleft())
        now = time.monotonic()
        if self._round is not None and (now - self._round.started > ROUND_TIMEOUT
                                        or so._SyncObj__raftState != LEADER_STATE):
            self._finish_round(so, send, None)
        if self._asked is not None and now - self._asked[1] > ROUND_TIMEOUT:
            self._answer_all(send, self._asked[2], None)
            self._asked = None
        if not self._pending:
            return
        if so._SyncObj__raftState == LEADER_STATE:
            if self._round is None:
                self._start_round(so, send)
        elif self._asked is None:
            self._ask_leader(so, send)

    def _start_round(self, so: Any, send: Callable[[Any, dict[str, Any]], Any]) -> None:
        waiters, self._pending = self._pending, []
        if not _term_started(so):
            self._answer_all(send, waiters, None)
            return
        self.rounds += 1
        rnd = _Round(next(self._seq), so._SyncObj__raftCurrentTerm, so.raftCommitIndex, time.monotonic(), waiters)
        peers = list(so._SyncObj__otherNodes)
        if not peers:
            self._answer_all(send, waiters, rnd.index)
            return
        self._round = rnd
        for node in peers:
            send(node, {"type": CHECK, "term": rnd.term, "seq": rnd.seq})

    def _finish_round(self, so: Any, send: Callable[[Any, dict[str, Any]], Any], index: int | None) -> None:
        rnd, self._round = self._round, None
        if rnd is not None:
            still = so._SyncObj__raftState == LEADER_STATE and so._SyncObj__raftCurrentTerm == rnd.term
            self._answer_all(send, rnd.waiters, index if still else None)

    def _ask_leader(self, so: Any, send: Callable[[Any, dict[str, Any]], Any]) -> None:
        waiters, self._pending = self._pending, []
        leader = so._SyncObj__raftLeader
        if leader is None or so._SyncObj__raftState != FOLLOWER_STATE:
            self._answer_all(send, waiters, None)
            return
        seq = next(self._seq)
        self._asked = (seq, time.monotonic(), waiters)
        self.requests_sent += 1
        send(leader, {"type": INDEX, "seq": seq, "confirms": True})

    def receive(self, so: Any, send: Callable[[Any, dict[str, Any]], Any], node: Any, message: dict[str, Any]) -> None:
        kind, seq = message.get("type"), message.get("seq")
        if not isinstance(seq, int):
            return
        if kind == CHECK:
            send(node, {"type": CHECK_ACK, "seq": seq, "ok": self._still_follows(so, node, message.get("term"))})
        elif kind == CHECK_ACK:
            rnd = self._round
            if rnd is None or rnd.seq != seq:
                return
            (rnd.yes if message.get("ok") is True else rnd.no).add(node.address)
            peers = len(so._SyncObj__otherNodes)
            needed = (peers + 1) // 2  # with this node: a majority of peers + 1
            if len(rnd.yes) >= needed:
                self._finish_round(so, send, rnd.index)
            elif peers - len(rnd.no) < needed:
                self._finish_round(so, send, None)
            else:
                return
            if self._pending and so._SyncObj__raftState == LEADER_STATE:  # the next round, at once
                self._start_round(so, send)
        elif kind == INDEX:
            if message.get("confirms") is True and self._asker_completes_a_majority(so, node):
                self.fast_answers += 1
                send(node, {"type": INDEX_ACK, "seq": seq, "index": so.raftCommitIndex,
                            "term": so._SyncObj__raftCurrentTerm, "confirm": True})
                return
            self._pending.append((node, seq))
            if so._SyncObj__raftState == LEADER_STATE and self._round is None:
                self._start_round(so, send)
        elif kind == INDEX_ACK and self._asked is not None and self._asked[0] == seq:
            index = message.get("index")
            if message.get("confirm") is True and not self._still_follows(so, node, message.get("term")):
                index = None  # the leader counted on this node's confirmation, which it cannot give
            self._answer_all(send, self._asked[2], index if isinstance(index, int) else None)
            self._asked = None
            if self._pending:  # reads that arrived meanwhile ask at once, not at the next tick
                self._ask_leader(so, send)

    @staticmethod
    def _asker_completes_a_majority(so: Any, node: Any) -> bool:
        """This node leads a term it has started, one confirmation besides its own makes a
        majority, and ``node`` is a voter (a read replica's word counts for nothing)."""
        if so._SyncObj__raftState != LEADER_STATE or not _term_started(so):
            return False
        peers = so._SyncObj__otherNodes
        address = getattr(node, "address", None)  # a read replica is a bare Node, known by a counter id
        return (len(peers) + 1) // 2 == 1 and address is not None and any(p.address == address for p in peers)

    @staticmethod
    def _still_follows(so: Any, node: Any, term: Any) -> bool:
        leader = so._SyncObj__raftLeader
        return (so._SyncObj__raftState == FOLLOWER_STATE and so._SyncObj__raftCurrentTerm == term
                and leader is not None and leader.address == getattr(node, "address", None))

    def _answer_all(self, send: Callable[[Any, dict[str, Any]], Any], waiters: list[Waiter], index: int | None) -> None:
        local = False
        for waiter in waiters:
            if isinstance(waiter, tuple):
                node, seq = waiter
                send(node, {"type": INDEX_ACK, "seq": seq, "index": index})
            else:
                self._answers.append((waiter, index))
                local = True
        if local:
            self._schedule_drain()

    def _schedule_drain(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._answers_lock:
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        call_soon_any_thread(loop, self._drain)

    def _drain(self) -> None:
        with self._answers_lock:
            self._drain_scheduled = False
        while self._answers:
            fut, index = self._answers.popleft()
            if not fut.done():
                fut.set_result(index)
