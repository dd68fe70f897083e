"""GroupCommitter's wait for company (``batch_wait``): under concurrent load on the leader the next
entry waits a little for more commands; a lone writer, a full entry and a follower never wait."""

from __future__ import annotations

import asyncio

import pytest

from raftreg.node.proposer import Committed, GroupCommitter
from tests.unit.test_proposer import DEADLINE, FakeRaft, entries_reach, names, propose, settle, wait_until

WAIT = 0.5  # long enough that "not proposed yet" right after a settle is no race on a loaded machine


@pytest.fixture
def raft() -> FakeRaft:
    return FakeRaft()


def waiting_committer(raft: FakeRaft, *, batch_wait: float = WAIT, wait_from: int = 3,
                      max_batch: int = 100) -> GroupCommitter:
    return GroupCommitter(raft, max_batch=max_batch, max_queued=10_000,  # type: ignore[arg-type]
                          stuck_after=30.0, batch_wait=batch_wait, wait_from=wait_from)


async def _load_with_an_entry_of(gc: GroupCommitter, raft: FakeRaft, size: int) -> list[asyncio.Task[Committed]]:
    """Commands so that the entry now in flight (entry 1) carries ``size`` commands."""
    tasks = [propose(gc, "first")]
    await settle()
    tasks += [propose(gc, f"b{n}") for n in range(size)]
    await settle()
    raft.succeed(0, index=1)
    await wait_until(lambda: entries_reach(raft, 2))
    assert len(raft.batch(1)) == size
    return tasks


async def test_under_load_the_next_entry_waits_for_company_at_most_batch_wait(raft: FakeRaft) -> None:
    gc = waiting_committer(raft)
    tasks = await _load_with_an_entry_of(gc, raft, 3)  # 3 = wait_from: the load is concurrent
    raft.succeed(1, index=2)
    await settle()
    loop = asyncio.get_running_loop()
    queued_at = loop.time()
    tasks.append(propose(gc, "c0"))
    await settle()
    assert entries_reach(raft, 2), "the lone command waits for company"
    tasks.append(propose(gc, "c1"))
    await wait_until(lambda: entries_reach(raft, 3))
    assert loop.time() - queued_at >= WAIT * 0.9
    assert names(raft.batch(2)) == ["c0", "c1"]
    raft.succeed(2, index=3)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_commands_queued_while_an_entry_flies_go_at_once_when_they_waited_long_enough(
        raft: FakeRaft) -> None:
    gc = waiting_committer(raft, batch_wait=0.05)
    tasks = await _load_with_an_entry_of(gc, raft, 3)
    tasks.append(propose(gc, "late"))
    await asyncio.sleep(0.08)  # "late" has waited longer than batch_wait behind entry 1
    raft.succeed(1, index=2)
    await settle()
    assert entries_reach(raft, 3) and names(raft.batch(2)) == ["late"]
    raft.succeed(2, index=3)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_a_full_entry_does_not_wait(raft: FakeRaft) -> None:
    gc = waiting_committer(raft, max_batch=4)
    tasks = await _load_with_an_entry_of(gc, raft, 3)
    raft.succeed(1, index=2)
    await settle()
    tasks += [propose(gc, f"f{n}") for n in range(3)]
    await settle()
    assert entries_reach(raft, 2)
    tasks.append(propose(gc, "f3"))  # the fourth makes a full entry: it goes now
    await settle()
    assert entries_reach(raft, 3) and names(raft.batch(2)) == ["f0", "f1", "f2", "f3"]
    raft.succeed(2, index=3)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_a_lone_writer_never_waits(raft: FakeRaft) -> None:
    gc = waiting_committer(raft, batch_wait=0.1, wait_from=2)
    for n in range(5):
        task = propose(gc, f"seq{n}")
        await settle()
        assert entries_reach(raft, n + 1), "each lone command is proposed at once"
        raft.succeed(n, index=n + 1)
        await asyncio.wait_for(task, DEADLINE)


@pytest.mark.parametrize(("leader", "batch_wait"), [(False, WAIT), (True, 0.0)])
async def test_a_follower_or_a_zero_batch_wait_never_waits(raft: FakeRaft, leader: bool, batch_wait: float) -> None:
    raft.leader = leader
    gc = waiting_committer(raft, batch_wait=batch_wait)
    tasks = await _load_with_an_entry_of(gc, raft, 5)
    raft.succeed(1, index=2)
    await settle()
    tasks.append(propose(gc, "next"))
    await settle()
    assert entries_reach(raft, 3), "proposed at once"
    raft.succeed(2, index=3)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_a_queue_holding_twice_the_last_entry_does_not_wait(raft: FakeRaft) -> None:
    """An overloaded queue never waits: its company is there already."""
    gc = waiting_committer(raft)
    tasks = await _load_with_an_entry_of(gc, raft, 3)
    tasks += [propose(gc, f"o{n}") for n in range(6)]  # queued within the last moment, behind entry 1
    await settle()
    raft.succeed(1, index=2)
    await settle()
    assert entries_reach(raft, 3) and names(raft.batch(2)) == [f"o{n}" for n in range(6)]
    raft.succeed(2, index=3)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)


async def test_a_wait_ends_as_soon_as_twice_the_last_entry_is_queued(raft: FakeRaft) -> None:
    gc = waiting_committer(raft, batch_wait=10.0)  # only the company can end this wait in time
    tasks = await _load_with_an_entry_of(gc, raft, 3)
    raft.succeed(1, index=2)
    await settle()
    tasks += [propose(gc, f"w{n}") for n in range(5)]
    await settle()
    assert entries_reach(raft, 2), "five of six: still waiting"
    tasks.append(propose(gc, "w5"))
    await settle()
    assert entries_reach(raft, 3) and names(raft.batch(2)) == [f"w{n}" for n in range(6)]
    raft.succeed(2, index=3)
    await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
