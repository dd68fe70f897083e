"""GroupCommitter against a fake Raft whose entries the test resolves by hand."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import pytest

from raftreg.errors import OutcomeUnknown, Unavailable
from raftreg.node.proposer import Committed, GroupCommitter
from raftreg.raft import ProposalFailed
from raftreg.raft.entry_compression import COMPRESS_FROM_BYTES, expand_entry
from raftreg.state.applied_entries import Repeated
from raftreg.state.commands import Command, Deregister, Envelope, KVSet, decode_envelope, encode_command
from raftreg.state.registry import Failed, Result
from tests.unit.waiting import timed_out

DEADLINE = 2.0


class FakeRaft:
    """Records every submitted entry (decoded) with the future the committer waits on."""

    def __init__(self) -> None:
        self.leader = True  # what ``is_leader`` answers
        self.entries: list[tuple[list[Command], asyncio.Future[tuple[int, list[Result]]]]] = []
        self.envelopes: list[Envelope] = []
        self.stored: list[bytes] = []  # the entries' bytes as submitted

    def submit(self, raw: bytes) -> asyncio.Future[tuple[int, list[Result]]]:
        fut: asyncio.Future[tuple[int, list[Result]]] = asyncio.get_running_loop().create_future()
        self.stored.append(raw)
        envelope = decode_envelope(expand_entry(raw))
        self.envelopes.append(envelope)
        self.entries.append((envelope.cmds, fut))
        return fut

    def is_leader(self) -> bool:
        return self.leader

    def origin(self, n: int) -> tuple[str, int]:
        return self.envelopes[n].proposer, self.envelopes[n].seq

    def batch(self, n: int) -> list[Command]:
        return self.entries[n][0]

    def succeed(self, n: int, index: int) -> list[Result]:
        """Resolve entry ``n`` at ``index``; each command's result names the command."""
        cmds, fut = self.entries[n]
        results: list[Result] = [Failed(f"result-of-{name(c)}") for c in cmds]
        fut.set_result((index, results))
        return results

    def repeat(self, n: int, index: int) -> None:
        """Resolve entry ``n`` as the state machine does when its origin was applied already."""
        cmds, fut = self.entries[n]
        fut.set_result((index, [Repeated() for _ in cmds]))

    def fail(self, n: int, applied: bool | None) -> None:
        self.entries[n][1].set_exception(ProposalFailed("NOT_LEADER" if applied is False else "UNKNOWN", applied))


def cmd(name: str) -> Deregister:
    return Deregister("svc", name)


def name(c: Command) -> str:
    assert isinstance(c, Deregister | KVSet)
    return c.id if isinstance(c, Deregister) else c.key


def names(cmds: list[Command]) -> list[str]:
    return [name(c) for c in cmds]


async def wait_until(cond: Callable[[], bool], timeout: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.001)


def entries_reach(raft: FakeRaft, count: int) -> bool:
    return len(raft.entries) == count


async def settle() -> None:
    """Let every ready callback and task run (no timers involved)."""
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
def raft() -> FakeRaft:
    return FakeRaft()


def committer(
    raft: FakeRaft, *, max_batch: int = 100, max_queued: int = 10_000, stuck_after: float = 30.0,
    max_entry_bytes: int = 1 << 30, compress_from: int = 0,
) -> GroupCommitter:
    return GroupCommitter(raft, max_batch=max_batch, max_queued=max_queued,  # type: ignore[arg-type]
                          stuck_after=stuck_after, max_entry_bytes=max_entry_bytes,
                          compress_from=compress_from)


def propose(gc: GroupCommitter, n: str) -> asyncio.Task[Committed]:
    return asyncio.ensure_future(gc.propose(cmd(n)))


async def test_lone_command_is_proposed_at_once(raft: FakeRaft) -> None:
    gc = committer(raft)
    task = propose(gc, "a")
    await asyncio.sleep(0)  # one loop turn: the task runs up to its await
    assert len(raft.entries) == 1
    assert names(raft.batch(0)) == ["a"]
    (result,) = raft.succeed(0, index=7)
    assert await asyncio.wait_for(task, DEADLINE) == Committed(7, result)
    assert gc.stats.entries == 1
    assert gc.stats.commands == 1


async def test_commands_arriving_during_flight_go_out_together_in_order(raft: FakeRaft) -> None:
    gc = committer(raft)
    first = propose(gc, "a")
    await settle()
    later = [propose(gc, n) for n in ("b", "c", "d")]
    await settle()
    assert len(raft.entries) == 1  # nothing else goes out while "a" is in flight
    (ra,) = raft.succeed(0, index=10)
    await wait_until(lambda: len(raft.entries) == 2)
    assert names(raft.batch(1)) == ["b", "c", "d"]
    results = raft.succeed(1, index=11)
    assert await asyncio.wait_for(first, DEADLINE) == Committed(10, ra)
    got = await asyncio.wait_for(asyncio.gather(*later), DEADLINE)
    assert got == [Committed(11, r) for r in results]
    assert [c.result for c in got] == [Failed("result-of-b"), Failed("result-of-c"), Failed("result-of-d")]
    await settle()
    assert len(raft.entries) == 2
    assert gc.stats.entries == 2
    assert gc.stats.commands == 4


async def test_sequential_lone_commands_each_go_at_once(raft: FakeRaft) -> None:
    gc = committer(raft)
    for i, n in enumerate(("a", "b", "c")):
        task = propose(gc, n)
        await asyncio.sleep(0)
        assert len(raft.entries) == i + 1
        raft.succeed(i, index=i + 1)
        assert (await asyncio.wait_for(task, DEADLINE)).index == i + 1


async def test_not_applied_failure_is_retried_and_succeeds(raft: FakeRaft) -> None:
    gc = committer(raft)
    task = propose(gc, "a")
    await settle()
    raft.fail(0, applied=False)
    await wait_until(lambda: len(raft.entries) == 2)
    assert names(raft.batch(1)) == ["a"]
    assert raft.origin(1) == raft.origin(0)  # the same proposal: it applies at most once
    (result,) = raft.succeed(1, index=5)
    assert await asyncio.wait_for(task, DEADLINE) == Committed(5, result)
    assert gc.stats.retries == 1


async def test_unknown_outcome_is_retried_and_reported(raft: FakeRaft) -> None:
    gc = committer(raft)
    task = propose(gc, "a")
    await settle()
    raft.fail(0, applied=None)
    await wait_until(lambda: len(raft.entries) == 2)
    raft.fail(1, applied=False)  # a later certain failure does not clear the earlier doubt
    await wait_until(lambda: len(raft.entries) == 3)
    assert names(raft.batch(2)) == ["a"]
    (result,) = raft.succeed(2, index=9)
    assert await asyncio.wait_for(task, DEADLINE) == Committed(9, result)
    assert gc.stats.retries == 2


async def test_a_compare_and_set_is_retried_as_the_same_proposal_after_an_unknown_outcome(raft: FakeRaft) -> None:
    """A CAS whose attempt may have applied is re-submitted under the same origin: the state
    machine applies it at most once, so the retry cannot report a conflict its own first attempt
    caused (it answers ``Repeated`` instead, below)."""
    gc = committer(raft)
    cas = asyncio.ensure_future(gc.propose(KVSet("k", b"v", cas=3)))
    plain = propose(gc, "plain")
    await settle()
    raft.fail(0, applied=None)
    await wait_until(lambda: len(raft.entries) == 2)
    assert raft.origin(1) == raft.origin(0)
    assert len(raft.batch(1)) == 1  # "plain" came later: a proposal of its own
    (rcas,) = raft.succeed(1, index=4)
    assert await asyncio.wait_for(cas, DEADLINE) == Committed(4, rcas)
    await wait_until(lambda: len(raft.entries) == 3)
    assert names(raft.batch(2)) == ["plain"] and raft.origin(2)[1] == raft.origin(1)[1] + 1
    (rplain,) = raft.succeed(2, index=5)
    assert await asyncio.wait_for(plain, DEADLINE) == Committed(5, rplain)


async def test_a_retry_of_a_proposal_that_had_applied_answers_outcome_unknown(raft: FakeRaft) -> None:
    gc = committer(raft)
    a, b = propose(gc, "a"), propose(gc, "b")
    await settle()
    raft.fail(0, applied=None)  # "a" went out alone; "b" waits
    await wait_until(lambda: len(raft.entries) == 2)
    raft.repeat(1, index=9)  # the first attempt had applied: its result is lost
    with pytest.raises(OutcomeUnknown, match="earlier attempt"):
        await asyncio.wait_for(a, DEADLINE)
    await wait_until(lambda: len(raft.entries) == 3)
    (rb,) = raft.succeed(2, index=10)
    assert await asyncio.wait_for(b, DEADLINE) == Committed(10, rb)


async def test_a_retry_leaves_out_callers_that_gave_up(raft: FakeRaft) -> None:
    gc = committer(raft)
    a = propose(gc, "a")
    await settle()
    b, c = propose(gc, "b"), propose(gc, "c")
    raft.succeed(0, index=1)
    await wait_until(lambda: len(raft.entries) == 2)
    raft.fail(1, applied=None)
    b.cancel()
    await wait_until(lambda: len(raft.entries) == 3)
    assert names(raft.batch(2)) == ["c"] and raft.origin(2) == raft.origin(1)
    raft.succeed(2, index=2)
    assert (await asyncio.wait_for(c, DEADLINE)).index == 2
    assert (await a).index == 1


async def test_retry_keeps_failed_batch_ahead_of_newer_commands(raft: FakeRaft) -> None:
    gc = committer(raft)
    a = propose(gc, "a")
    await settle()
    b = propose(gc, "b")
    await settle()
    raft.fail(0, applied=False)
    await wait_until(lambda: len(raft.entries) == 2)
    assert names(raft.batch(1)) == ["a"]  # re-submitted as it was, before "b"
    (ra,) = raft.succeed(1, index=3)
    await wait_until(lambda: len(raft.entries) == 3)
    assert names(raft.batch(2)) == ["b"]
    (rb,) = raft.succeed(2, index=4)
    assert await asyncio.wait_for(a, DEADLINE) == Committed(3, ra)
    assert await asyncio.wait_for(b, DEADLINE) == Committed(4, rb)


async def test_caller_cancelled_before_its_batch_is_not_proposed(raft: FakeRaft) -> None:
    gc = committer(raft)
    a = propose(gc, "a")
    await settle()
    b, c = propose(gc, "b"), propose(gc, "c")
    await settle()
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    raft.succeed(0, index=1)
    await wait_until(lambda: len(raft.entries) == 2)
    assert names(raft.batch(1)) == ["c"]
    (rc,) = raft.succeed(1, index=2)
    assert await asyncio.wait_for(c, DEADLINE) == Committed(2, rc)
    assert (await a).index == 1
    assert all("b" not in names(cmds) for cmds, _ in raft.entries)


async def test_only_cancelled_callers_queued_proposes_nothing(raft: FakeRaft) -> None:
    gc = committer(raft)
    a = propose(gc, "a")
    await settle()
    b = propose(gc, "b")
    await settle()
    b.cancel()
    await settle()
    raft.succeed(0, index=1)
    await asyncio.wait_for(a, DEADLINE)
    await settle()
    assert len(raft.entries) == 1


async def test_stuck_entry_stops_blocking_after_stuck_after(raft: FakeRaft) -> None:
    loop = asyncio.get_running_loop()
    gc = committer(raft, stuck_after=0.05)
    a = propose(gc, "a")
    await settle()
    started = loop.time()
    b = propose(gc, "b")
    await settle()
    assert len(raft.entries) == 1  # "a" still blocks the queue
    await wait_until(lambda: len(raft.entries) == 2)
    assert loop.time() - started >= 0.04
    assert names(raft.batch(1)) == ["b"]
    assert gc.stats.abandoned == 1
    (rb,) = raft.succeed(1, index=8)
    assert await asyncio.wait_for(b, DEADLINE) == Committed(8, rb)
    assert not a.done()
    # The abandoned entry may still commit later; its caller then gets the result.
    (ra,) = raft.succeed(0, index=7)
    assert await asyncio.wait_for(a, DEADLINE) == Committed(7, ra)
    await settle()
    assert len(raft.entries) == 2


async def test_abandoned_entry_that_fails_later_is_retried(raft: FakeRaft) -> None:
    gc = committer(raft, stuck_after=0.02)
    a = propose(gc, "a")
    await settle()
    b = propose(gc, "b")
    await wait_until(lambda: len(raft.entries) == 2)  # "a" abandoned, "b" in flight
    raft.fail(0, applied=None)  # the abandoned entry finally reports an unknown outcome
    await settle()
    assert len(raft.entries) == 2  # "b" is still in flight: the retry waits its turn
    (rb,) = raft.succeed(1, index=4)
    assert await asyncio.wait_for(b, DEADLINE) == Committed(4, rb)
    await wait_until(lambda: len(raft.entries) == 3)
    assert names(raft.batch(2)) == ["a"]
    (ra,) = raft.succeed(2, index=5)
    assert await asyncio.wait_for(a, DEADLINE) == Committed(5, ra)


@pytest.mark.parametrize(("max_batch", "queued", "sizes"), [(3, 7, [3, 3, 1]), (1, 3, [1, 1, 1]), (5, 5, [5])])
async def test_max_batch_is_honoured(raft: FakeRaft, max_batch: int, queued: int, sizes: list[int]) -> None:
    gc = committer(raft, max_batch=max_batch)
    first = propose(gc, "first")
    await settle()
    tasks = [propose(gc, f"c{i}") for i in range(queued)]
    await settle()
    for n, size in enumerate(sizes, start=1):
        raft.succeed(n - 1, index=n)
        await wait_until(functools.partial(entries_reach, raft, n + 1))
        assert len(raft.batch(n)) == size
    raft.succeed(len(sizes), index=len(sizes) + 1)
    await asyncio.wait_for(first, DEADLINE)
    done = await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
    assert [c.result for c in done] == [Failed(f"result-of-c{i}") for i in range(queued)]
    assert [names(cmds) for cmds, _ in raft.entries[1:]] == [
        [f"c{i}" for i in range(start, start + size)] for start, size in zip(_starts(sizes), sizes, strict=True)
    ]


def _starts(sizes: list[int]) -> list[int]:
    out, acc = [], 0
    for size in sizes:
        out.append(acc)
        acc += size
    return out


# ---- backpressure ---------------------------------------------------------------------------------
async def test_a_full_queue_refuses_at_once_without_touching_raft(raft: FakeRaft) -> None:
    gc = committer(raft, max_queued=3)
    tasks = [propose(gc, n) for n in ("inflight", "q1", "q2", "q3")]
    await settle()
    assert len(raft.entries) == 1 and gc.queued == 3
    with pytest.raises(Unavailable, match="queued") as err:
        await gc.propose(cmd("refused"))
    assert err.value.retry_after >= 1
    assert gc.stats.refused == 1
    with pytest.raises(Unavailable):
        gc.check_capacity()
    assert len(raft.entries) == 1 and gc.queued == 3, "the refused command reached Raft or the queue"
    raft.succeed(0, index=1)
    await wait_until(lambda: entries_reach(raft, 2))
    assert names(raft.batch(1)) == ["q1", "q2", "q3"]
    assert gc.queued == 0
    gc.check_capacity()  # room again
    accepted = propose(gc, "after")
    raft.succeed(1, index=2)
    await wait_until(lambda: entries_reach(raft, 3))
    raft.succeed(2, index=3)
    assert (await asyncio.wait_for(accepted, DEADLINE)).index == 3
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_slots_reserved_at_read_time_count_for_the_next_reads_only(raft: FakeRaft) -> None:
    gc = committer(raft, max_queued=3)
    tasks = [propose(gc, n) for n in ("inflight", "q1")]
    await settle()
    assert gc.queued == 1
    gc.admit_at_once()
    gc.admit_at_once()  # queue 1 + 2 reserved: full for the next read
    assert gc.reserved == 2
    with pytest.raises(Unavailable, match="3 writes queued"):
        gc.admit_at_once()
    assert (gc.stats.refused, gc.stats.refused_at_once, gc.reserved) == (1, 1, 2)
    gc.release()  # the admitted writes' handlers run: their own check ignores the reservations
    gc.check_capacity()
    tasks.append(propose(gc, "q2"))
    gc.release()
    gc.check_capacity()
    tasks.append(propose(gc, "q3"))
    await settle()
    assert (gc.queued, gc.reserved) == (3, 0)
    with pytest.raises(Unavailable):
        gc.admit_at_once()
    gc.release()  # more releases than reservations (a lost connection) never go below zero
    assert gc.reserved == 0
    raft.succeed(0, index=1)
    await wait_until(lambda: entries_reach(raft, 2))
    raft.succeed(1, index=2)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_the_nodes_own_commands_are_not_bounded(raft: FakeRaft) -> None:
    gc = committer(raft, max_queued=1)
    first, queued = propose(gc, "inflight"), propose(gc, "q1")
    await settle()
    own = asyncio.ensure_future(gc.propose(cmd("expire"), bounded=False))
    await settle()
    assert gc.queued == 2 and gc.stats.refused == 0
    raft.succeed(0, index=1)
    await wait_until(lambda: entries_reach(raft, 2))
    assert names(raft.batch(1)) == ["q1", "expire"]
    raft.succeed(1, index=2)
    await asyncio.wait_for(asyncio.gather(first, queued, own), DEADLINE)


# ---- entry size -----------------------------------------------------------------------------------
async def test_an_entry_holds_at_most_max_entry_bytes_of_commands(raft: FakeRaft) -> None:
    size = len(encode_command(cmd("q00")))
    gc = committer(raft, max_entry_bytes=3 * size)
    tasks = [propose(gc, "inflight")] + [propose(gc, f"q{n:02d}") for n in range(7)]
    await settle()
    raft.succeed(0, index=1)
    for n, expected in ((1, ["q00", "q01", "q02"]), (2, ["q03", "q04", "q05"]), (3, ["q06"])):
        await wait_until(lambda n=n: entries_reach(raft, n + 1))  # type: ignore[misc]
        assert names(raft.batch(n)) == expected
        raft.succeed(n, index=n + 1)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_a_command_larger_than_the_cap_goes_alone(raft: FakeRaft) -> None:
    gc = committer(raft, max_entry_bytes=5)
    tasks = [propose(gc, "inflight"), propose(gc, "big-one"), propose(gc, "big-two")]
    await settle()
    raft.succeed(0, index=1)
    await wait_until(lambda: entries_reach(raft, 2))
    assert names(raft.batch(1)) == ["big-one"]
    raft.succeed(1, index=2)
    await wait_until(lambda: entries_reach(raft, 3))
    assert names(raft.batch(2)) == ["big-two"]
    raft.succeed(2, index=3)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_a_write_that_waited_too_long_unproposed_in_a_congested_queue_is_refused_not_proposed(
        raft: FakeRaft) -> None:
    gc = GroupCommitter(raft, max_batch=100, max_queued=6, stuck_after=30.0,  # type: ignore[arg-type]
                        max_queue_wait=0.05)  # 3 queued = half of max_queued: congested
    inflight, stale = propose(gc, "inflight"), propose(gc, "stale")
    own = asyncio.ensure_future(gc.propose(cmd("expire"), bounded=False))
    await asyncio.sleep(0.08)  # "stale" and "expire" waited longer than max_queue_wait
    fresh = propose(gc, "fresh")
    await settle()
    raft.succeed(0, index=1)
    await wait_until(lambda: entries_reach(raft, 2))
    assert names(raft.batch(1)) == ["expire", "fresh"]  # the node's own command is never expired
    with pytest.raises(Unavailable, match="nothing was applied"):
        await asyncio.wait_for(stale, DEADLINE)
    assert gc.stats.expired == 1
    raft.succeed(1, index=2)
    await asyncio.wait_for(asyncio.gather(inflight, own, fresh), DEADLINE)


async def test_a_short_queue_is_proposed_however_long_it_waited(raft: FakeRaft) -> None:
    """A stall (followers starved of CPU) is not overload: the few writes behind it still go."""
    gc = GroupCommitter(raft, max_batch=100, max_queued=8, stuck_after=30.0,  # type: ignore[arg-type]
                        max_queue_wait=0.05)
    tasks = [propose(gc, "inflight"), propose(gc, "a"), propose(gc, "b"), propose(gc, "c")]
    await asyncio.sleep(0.08)  # a, b, c waited longer than max_queue_wait: 3 of 8 is not congested
    raft.succeed(0, index=1)
    await wait_until(lambda: entries_reach(raft, 2))
    assert names(raft.batch(1)) == ["a", "b", "c"] and gc.stats.expired == 0
    raft.succeed(1, index=2)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_a_retried_write_is_never_expired(raft: FakeRaft) -> None:
    gc = GroupCommitter(raft, max_batch=100, max_queued=100, stuck_after=30.0,  # type: ignore[arg-type]
                        max_queue_wait=0.05)
    task = propose(gc, "a")
    await settle()
    raft.fail(0, applied=None)  # outcome unknown: it may have applied, so it must go on to its deadline
    await asyncio.sleep(0.08)
    await wait_until(lambda: entries_reach(raft, 2))
    assert names(raft.batch(1)) == ["a"]
    raft.succeed(1, index=3)
    assert (await asyncio.wait_for(task, DEADLINE)).index == 3
    assert gc.stats.expired == 0


# ---- pipelining ---------------------------------------------------------------------------------
async def test_full_entries_are_pipelined_up_to_max_inflight_and_a_partial_one_waits(raft: FakeRaft) -> None:
    gc = GroupCommitter(raft, max_batch=2, max_queued=100, stuck_after=30.0,  # type: ignore[arg-type]
                        max_inflight=3)
    tasks = [propose(gc, "a")]
    await settle()
    assert entries_reach(raft, 1)  # alone at once, as without pipelining
    tasks += [propose(gc, f"q{n}") for n in range(5)]
    await settle()
    # two full entries joined "a" in flight; "q4" alone is not a full entry: it waits
    assert [names(raft.batch(n)) for n in range(len(raft.entries))] == [["a"], ["q0", "q1"], ["q2", "q3"]]
    raft.succeed(0, index=1)
    await settle()
    assert entries_reach(raft, 3)  # still two in flight: the partial entry keeps waiting
    raft.succeed(1, index=2)
    raft.succeed(2, index=3)
    await wait_until(lambda: entries_reach(raft, 4))
    assert names(raft.batch(3)) == ["q4"]
    raft.succeed(3, index=4)
    got = await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
    assert [c.index for c in got] == [1, 2, 2, 3, 3, 4]


async def test_without_pipelining_one_entry_is_in_flight_however_full_the_queue(raft: FakeRaft) -> None:
    gc = committer(raft, max_batch=2)
    tasks = [propose(gc, "a")] + [propose(gc, f"q{n}") for n in range(6)]
    await settle()
    assert entries_reach(raft, 1)
    raft.succeed(0, index=1)
    await wait_until(lambda: entries_reach(raft, 2))
    await settle()
    assert entries_reach(raft, 2)
    for n in range(1, 4):
        await wait_until(lambda n=n: entries_reach(raft, n + 1))  # type: ignore[misc]
        raft.succeed(n, index=n + 1)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_a_refused_write_leaves_no_reference_cycle(raft: FakeRaft) -> None:
    """Without breaking it, the failed future -> its exception -> traceback -> ``propose``'s frame ->
    the future cycle kept every refused write (and its request) until a full garbage collection."""
    import gc as collector
    import weakref
    gcm = GroupCommitter(raft, max_batch=100, max_queued=2, stuck_after=30.0,  # type: ignore[arg-type]
                         max_queue_wait=0.01)  # one queued = half of max_queued: congested
    collector.disable()
    try:
        inflight = propose(gcm, "inflight")
        stale: asyncio.Future[Committed] = asyncio.ensure_future(gcm.propose(cmd("stale")))
        await asyncio.sleep(0.03)  # "stale" waited longer than max_queue_wait behind "inflight"
        raft.succeed(0, index=1)  # the queue is looked at again: "stale" is refused
        await asyncio.wait_for(inflight, DEADLINE)
        refused: weakref.ref[BaseException] | None = None
        try:
            async with asyncio.timeout(DEADLINE):  # not wait_for: its frame would hold the task in a cycle
                await stale
        except Unavailable as exc:
            refused = weakref.ref(exc)
        del stale
        await settle()
        assert refused is not None
        assert refused() is None  # freed by reference counting alone
    finally:
        collector.enable()


@pytest.mark.parametrize("compress", [True, False])
async def test_a_batch_is_stored_compressed_only_when_asked_and_a_lone_command_never(
        raft: FakeRaft, compress: bool) -> None:
    gc = committer(raft, compress_from=COMPRESS_FROM_BYTES if compress else 0)
    first = propose(gc, "lone")
    await settle()
    batch = [propose(gc, f"instance-{i:04d}") for i in range(100)]
    await settle()
    raft.succeed(0, index=10)
    await wait_until(lambda: len(raft.entries) == 2)
    raft.succeed(1, index=11)
    await asyncio.wait_for(asyncio.gather(first, *batch), DEADLINE)
    lone, full = raft.stored
    assert lone[0] != 0x78 and len(lone) < COMPRESS_FROM_BYTES, "a lone command is stored as it is"
    assert names(raft.batch(1)) == [f"instance-{i:04d}" for i in range(100)]
    if compress:
        assert full[0] == 0x78 and len(full) * 4 < len(expand_entry(full)), "the batch went out compressed"
    else:
        assert full[0] != 0x78 and expand_entry(full) is full
    assert gc.stats.compressed == (1 if compress else 0)


async def test_a_wait_past_its_deadline_ends_with_timeout_error_and_its_command_is_never_proposed(
        raft: FakeRaft) -> None:
    loop = asyncio.get_running_loop()
    gc = committer(raft)
    a = propose(gc, "a")
    await settle()
    b = asyncio.ensure_future(gc.propose(cmd("b"), deadline=loop.time() + 0.05))
    c = propose(gc, "c")
    assert await timed_out(b, DEADLINE)  # "a" is still in flight: "b" waits in the queue
    assert gc.counters()["timed_out"] == 1
    raft.succeed(0, index=1)
    await wait_until(lambda: len(raft.entries) == 2)
    assert names(raft.batch(1)) == ["c"]
    raft.succeed(1, index=2)
    assert (await asyncio.wait_for(c, DEADLINE)).index == 2
    assert (await a).index == 1


async def test_a_deadline_ends_the_wait_of_a_proposed_command_and_its_retry_leaves_it_out(
        raft: FakeRaft) -> None:
    loop = asyncio.get_running_loop()
    gc = committer(raft)
    x = propose(gc, "x")
    await settle()
    a = asyncio.ensure_future(gc.propose(cmd("a"), deadline=loop.time() + 0.05))
    b = propose(gc, "b")
    await settle()
    raft.succeed(0, index=1)
    await wait_until(lambda: len(raft.entries) == 2)
    assert names(raft.batch(1)) == ["a", "b"]
    assert await timed_out(a, DEADLINE)  # proposed: its outcome is unknown to the caller
    raft.fail(1, applied=None)
    await wait_until(lambda: len(raft.entries) == 3)
    assert names(raft.batch(2)) == ["b"] and raft.origin(2) == raft.origin(1)
    raft.succeed(2, index=2)
    assert (await asyncio.wait_for(b, DEADLINE)).index == 2
    assert (await x).index == 1


async def test_a_wait_that_commits_in_time_is_answered_as_without_a_deadline(raft: FakeRaft) -> None:
    loop = asyncio.get_running_loop()
    gc = committer(raft)
    a = asyncio.ensure_future(gc.propose(cmd("a"), deadline=loop.time() + 0.05))
    await wait_until(lambda: len(raft.entries) == 1)
    (ra,) = raft.succeed(0, index=7)
    assert await asyncio.wait_for(a, DEADLINE) == Committed(7, ra)
    await asyncio.sleep(0.1)  # past the deadline: nothing may touch the answered wait
    assert a.result() == Committed(7, ra)
