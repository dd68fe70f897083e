"""Group commit: commands that arrive while a Raft proposal is in flight go out together as the
next entry (as etcd batches its Ready loop).

A lone command is proposed at once. Under load one entry carries up to ``max_batch`` commands
and ``max_entry_bytes`` of encoded commands (a single larger command goes alone), so throughput
does not depend on pysyncobj's own batching, and an entry stays small enough to travel in one
AppendEntries message (see ``raftreg.raft.bridge``: pysyncobj's chunked transfer of large entries
is broken). Each command is encoded once, when it is proposed; a retry reuses the bytes. An
entry of ``compress_from`` bytes or more (0: none) is stored zlib-compressed
(``raftreg.raft.entry_compression``).

Waiting for company: under concurrent load (the last entry carried ``wait_from`` commands or more)
the next entry waits up to ``batch_wait`` seconds after its oldest command was queued, unless
twice the last entry's commands, or a full entry's worth, are queued first (an overloaded queue
never waits). Every entry costs each node a fixed share of work (Raft messages, ticks, journal
writes, the wake-ups of apply) however many commands it carries, so under load fewer, larger
entries leave more of the machine's CPU for serving requests. A lone writer,
or a few concurrent ones, never wait: their entries stay below ``wait_from``. Only the leader
waits: a follower's entry travels two more Raft hops before it commits, and there the wait cost
more in latency than it saved in CPU (benchmarks/README.md, "waiting for company").

Pipelining: one entry is in flight as a rule; up to ``max_inflight`` while the queue holds a full
entry's worth (``max_batch`` commands or ``max_entry_bytes``). Without it a node's write rate
under overload was one full entry per commit round: when thousands of connections keep the event
loop busy, a round takes hundreds of milliseconds (``benchmarks/overload_bench.py``).

Backpressure: at most ``max_queued`` client commands wait in the queue. ``check_capacity`` (and
``propose`` of a bounded command) raises ``Unavailable`` at once when it is full, before anything
reaches Raft, so an overloaded node answers fast 503s instead of growing its queue and its
latency without limit. The HTTP layer admits a write when it reads it (``admit_at_once``,
``raftreg.http.shed``) and reserves it a slot until its handler runs (``release``): one loop
iteration reads hundreds of requests before any handler queues its command, so without the
reservation most of them passed the read-time check and were refused later, through aiohttp, at
several times the cost. While the queue is congested (half of ``max_queued`` or more, slots
reserved included) a client command that waited ``max_queue_wait`` seconds without being
proposed fails with ``Unavailable`` too (nothing was applied): under overload the queue keeps
serving recent writes instead of ones whose callers are about to give up. A short queue is never
refused for its age: 64 writers behind an entry stalled for 0.8 s (followers starved of CPU)
got 18 false "overloaded" 503s that way. The node's own commands (expiries, check transitions)
are not bounded.

Failures: an entry whose attempt failed, certainly (pysyncobj NOT_LEADER, DISCARDED, ...) or with
an unknown outcome (LEADER_CHANGED, UNKNOWN_OUTCOME), is re-submitted until its callers' deadlines,
as the *same* proposal: each entry carries this committer's ``proposer`` token and a ``seq`` it
never reuses, a retry carries the same pair (with the commands whose callers still wait), and
the state machine applies each pair at most once (``raftreg.state.applied_entries``). So no
command is ever applied twice, "blind" writes, compare-and-set and transactions alike, and a
retry that applies gives the exact result. When the first attempt had applied after all, the
retry answers ``Repeated`` and its callers get ``OutcomeUnknown`` (504: it applied, its result is
lost). A retried entry goes out alone and ahead of newer commands.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from raftreg.errors import OutcomeUnknown, Unavailable
from raftreg.node.deadlines import Deadlines
from raftreg.raft import ProposalFailed, RaftNode
from raftreg.raft.entry_compression import compress_entry
from raftreg.state.applied_entries import Repeated
from raftreg.state.commands import Command, encode_command, encode_entry_from
from raftreg.state.machine import Result

log = logging.getLogger("raftreg.proposer")

RETRY_DELAY = 0.05


@dataclass(frozen=True)
class Committed:
    """A command's outcome once applied on this node."""

    index: int
    result: Result


@dataclass
class _Pending:
    raw: bytes  # the command's encoding
    fut: asyncio.Future[Committed]
    queued_at: float
    bounded: bool
    proposed: bool = False


@dataclass
class _Batch:
    """The commands of one proposal and its ``seq`` (kept by every re-submission)."""

    seq: int
    pendings: list[_Pending]


@dataclass
class ProposerStats:
    entries: int = 0
    commands: int = 0
    retries: int = 0
    abandoned: int = 0
    refused: int = 0  # commands refused because the queue was full
    refused_at_once: int = 0  # of them, refused by the HTTP layer without a request object (raftreg.http.shed)
    expired: int = 0  # commands that waited max_queue_wait without being proposed
    compressed: int = 0  # entries proposed compressed (``compress_from``)
    batch_sizes: collections.Counter[int] = field(default_factory=collections.Counter)


class GroupCommitter:
    """Queues commands and proposes them in batches (pipelined while full batches wait; module
    docstring).

    ``stuck_after``: an entry that has not resolved by then stops blocking the queue (its
    commands may still commit later and then still resolve their callers).
    """

    def __init__(self, raft: RaftNode, *, max_batch: int, max_queued: int, stuck_after: float,
                 max_entry_bytes: int = 60_000, max_queue_wait: float = float("inf"), max_inflight: int = 1,
                 compress_from: int = 0, batch_wait: float = 0.0, wait_from: int = 8) -> None:
        self._raft = raft
        self._batch_wait = batch_wait
        self._wait_from = wait_from
        self._last_batch = 0  # commands in the last entry proposed
        self._wait_timer: asyncio.TimerHandle | None = None
        self._compress_from = compress_from
        self._max_queue_wait = max_queue_wait
        self._max_batch = max_batch
        self._max_entry_bytes = max_entry_bytes
        self._max_queued = max_queued
        self._max_inflight = max_inflight
        self._stuck_after = stuck_after
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued_bytes = 0  # encoded bytes of the commands in ``_queue``
        self.reserved = 0  # slots held by writes admitted at read time whose handler has not run yet
        self._retries: collections.deque[_Batch] = collections.deque()
        self.proposer_id = secrets.token_hex(8)  # this process's origin token (never reused)
        self._last_seq = 0
        self._inflight: set[asyncio.Future[tuple[int, list[Result]]]] = set()
        self._retry: asyncio.TimerHandle | None = None
        self._paused = False
        self._deadlines = Deadlines()
        self.stats = ProposerStats()
        # Seconds from proposing an entry to its apply on this node (``raftreg.node.metrics``
        # sets it when metrics are on; None costs nothing).
        self.latency_observer: Callable[[float], None] | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def counters(self) -> dict[str, int]:
        """The ``group_commit`` counters of ``GET /v1/cluster``."""
        st = self.stats
        return {"entries": st.entries, "commands": st.commands, "retries": st.retries, "queued": self.queued,
                "refused": st.refused, "refused_at_once": st.refused_at_once, "expired": st.expired,
                "reserved": self.reserved, "compressed": st.compressed, "timed_out": self._deadlines.expired}

    def check_capacity(self) -> None:
        """``Unavailable`` when the queue holds ``max_queued`` commands (nothing was proposed).
        The slots reserved by ``admit_at_once`` do not count: this is the admitted writes' own
        check, made when their handler runs."""
        if len(self._queue) >= self._max_queued:
            self.stats.refused += 1
            raise self._refusal(len(self._queue))

    def admit_at_once(self) -> None:
        """A write read by the HTTP layer, before any request object exists: ``Unavailable`` when the
        queue and the slots already reserved hold ``max_queued`` (counted in ``refused_at_once``);
        else one slot is reserved for it until ``release``."""
        held = len(self._queue) + self.reserved
        if held >= self._max_queued:
            self.stats.refused += 1
            self.stats.refused_at_once += 1
            raise self._refusal(held)
        self.reserved += 1

    def release(self) -> None:
        """The write ``admit_at_once`` admitted reached its handler, or its connection was lost."""
        if self.reserved > 0:
            self.reserved -= 1

    @staticmethod
    def _refusal(held: int) -> Unavailable:
        return Unavailable(f"this node has {held} writes queued (its limit); retry shortly", retry_after=1.0)

    async def propose(self, cmd: Command, *, bounded: bool = True, deadline: float | None = None) -> Committed:
        """Commit ``cmd`` and return its outcome on this node. ``TimeoutError`` once ``deadline``
        (loop time) passes without an outcome (``raftreg.node.deadlines``: one timer for all the
        waits); without a deadline it never returns for a command that cannot commit, and the
        caller bounds the wait. A wait that ends either way (or is cancelled) drops the command
        from the queue if it has not been proposed yet, and from any later re-submission: its
        outcome is then unknown if it was proposed. A ``bounded`` command is refused with
        ``Unavailable`` when the queue is full. ``OutcomeUnknown``: an earlier attempt applied it
        and its result was lost."""
        if bounded:
            self.check_capacity()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Committed] = loop.create_future()
        raw = encode_command(cmd)
        self._queue.append(_Pending(raw, fut, loop.time(), bounded))
        self._queued_bytes += len(raw)
        if deadline is not None:
            self._deadlines.add(fut, deadline, loop)
        self._kick()
        try:
            return await fut
        finally:
            # A failed ``fut`` holds its exception, whose traceback holds this frame: without the
            # ``del`` every refused or expired write left a reference cycle (the request and its
            # objects included) for the garbage collector, whose full passes then took 0.3-1.5 s
            # under the overload benchmark.
            del fut

    def pause(self, paused: bool) -> None:
        """While paused nothing is proposed (commands wait in the queue, under their deadlines)."""
        self._paused = paused
        if not paused:
            self._kick()

    def _kick(self) -> None:
        while self._retry is None and not self._paused and (self._queue or self._retries) and (
                not self._inflight or (len(self._inflight) < self._max_inflight and self._full_entry_waits())):
            if self._waits_for_company() or not self._flush():
                return

    def _waits_for_company(self) -> bool:
        """True while the next entry waits for more commands (module docstring); a timer then
        kicks again when the oldest queued command has waited ``batch_wait``."""
        if (not self._batch_wait or self._retries or not self._queue or self._full_entry_waits()
                or self._last_batch < self._wait_from or len(self._queue) >= 2 * self._last_batch
                or not self._raft.is_leader()):
            return False  # ``_flush`` cancels a timer still armed
        if self._wait_timer is not None:
            return True
        loop = asyncio.get_running_loop()
        due = self._queue[0].queued_at + self._batch_wait
        if due <= loop.time():
            return False
        self._wait_timer = loop.call_at(due, self._waited)
        return True

    def _waited(self) -> None:
        self._wait_timer = None
        self._last_batch = 0  # the wait is over: propose what is queued
        self._kick()

    def _full_entry_waits(self) -> bool:
        return len(self._queue) >= self._max_batch or self._queued_bytes >= self._max_entry_bytes

    def _flush(self) -> bool:
        """Propose the next entry; False when nothing was left to propose."""
        batch = self._next_retry() or self._next_batch()
        if batch is None:
            return False
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        self._last_batch = len(batch.pendings)
        raw = encode_entry_from([p.raw for p in batch.pendings], self.proposer_id, batch.seq)
        stored = compress_entry(raw, self._compress_from) if self._compress_from else raw
        self.stats.compressed += stored is not raw
        entry = self._raft.submit(stored)
        self._inflight.add(entry)
        self.stats.entries += 1
        self.stats.commands += len(batch.pendings)
        self.stats.batch_sizes[_bucket(len(batch.pendings))] += 1
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._stuck_after, self._unblock, entry)
        proposed_at = loop.time()
        entry.add_done_callback(lambda f: self._on_entry_done(f, batch, timer, proposed_at))
        return True

    def _next_retry(self) -> _Batch | None:
        """The oldest failed proposal that still has waiting callers (only those), if any."""
        while self._retries:
            batch = self._retries.popleft()
            batch.pendings = [p for p in batch.pendings if not p.fut.done()]
            if batch.pendings:
                return batch
        return None

    def _next_batch(self) -> _Batch | None:
        """A new proposal of the queue's head (None when nothing is left to propose)."""
        batch: list[_Pending] = []
        size = 0
        queue = self._queue
        # Only a congested queue refuses its stale commands: after a stall (a follower starved of
        # CPU, a long collection) a few writes that waited are proposed, not refused as overload.
        congested = len(queue) + self.reserved >= self._max_queued / 2
        stale_before = asyncio.get_running_loop().time() - self._max_queue_wait if congested else -math.inf
        while queue and len(batch) < self._max_batch:
            if batch and size + len(queue[0].raw) > self._max_entry_bytes:
                break
            pending = queue.popleft()
            self._queued_bytes -= len(pending.raw)
            if pending.fut.done():
                continue
            if pending.bounded and not pending.proposed and pending.queued_at < stale_before:
                self.stats.expired += 1
                pending.fut.set_exception(Unavailable(
                    f"the write waited {self._max_queue_wait:g}s in this node's queue and was not proposed "
                    "(overloaded): nothing was applied; retry", retry_after=1.0))
                continue
            pending.proposed = True
            batch.append(pending)
            size += len(pending.raw)
        if not batch:
            return None
        self._last_seq += 1
        return _Batch(self._last_seq, batch)

    def _unblock(self, entry: asyncio.Future[tuple[int, list[Result]]]) -> None:
        if entry in self._inflight:
            self.stats.abandoned += 1
            log.warning("event=proposal_stuck after=%.1fs: proposing the next batch", self._stuck_after)
            self._inflight.discard(entry)
            self._kick()

    def _on_entry_done(
        self, entry: asyncio.Future[tuple[int, list[Result]]], batch: _Batch, timer: asyncio.TimerHandle,
        proposed_at: float,
    ) -> None:
        timer.cancel()
        self._inflight.discard(entry)
        exc = entry.exception() if not entry.cancelled() else ProposalFailed("cancelled", None)
        if exc is None:
            if self.latency_observer is not None:
                self.latency_observer(asyncio.get_running_loop().time() - proposed_at)
            index, results = entry.result()
            for pending, result in zip(batch.pendings, results, strict=True):
                if pending.fut.done():
                    continue
                if isinstance(result, Repeated):
                    pending.fut.set_exception(OutcomeUnknown(
                        "the write was applied by an earlier attempt whose answer was lost in a leader change"
                        if not result.too_old else "the write may have been applied by an earlier attempt"))
                else:
                    pending.fut.set_result(Committed(index, result))
        else:
            reason = exc.reason if isinstance(exc, ProposalFailed) else repr(exc)
            log.info("event=proposal_failed reason=%s seq=%d commands=%d retrying", reason, batch.seq,
                     len(batch.pendings))
            self.stats.retries += 1
            self._retries.append(batch)
            if self._retry is None:
                self._retry = asyncio.get_running_loop().call_later(RETRY_DELAY, self._retry_now)
        self._kick()

    def _retry_now(self) -> None:
        self._retry = None
        self._kick()


def _bucket(n: int) -> int:
    """Power-of-two bucket for batch-size statistics."""
    return 1 << (n - 1).bit_length()
