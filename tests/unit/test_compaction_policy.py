"""The Raft log is compacted by bytes, relative to the state's size (raftreg.raft.compaction)."""

from __future__ import annotations

from raftreg.raft.compaction import ENTRY_OVERHEAD_BYTES, REPLAY_FACTOR, CompactionPolicy


def policy(items: int, min_bytes: int = 10_000) -> CompactionPolicy:
    return CompactionPolicy(lambda: items, min_bytes=min_bytes, ratio=0.25)


def test_empty_state_compacts_after_min_bytes() -> None:
    p = policy(items=0)
    p.on_entry(5_000 - ENTRY_OVERHEAD_BYTES, 5_000 - ENTRY_OVERHEAD_BYTES, 10)
    assert not p.due()
    p.on_entry(5_000 - ENTRY_OVERHEAD_BYTES, 5_000 - ENTRY_OVERHEAD_BYTES, 10)
    assert p.due()
    p.requested()
    assert not p.due() and p.requests == 1 and p.bytes_since == 0


def test_budget_grows_with_the_state() -> None:
    p = policy(items=1_000)  # 1,000 items of 100 bytes: a 100,000-byte state
    p.on_entry(10_000 - ENTRY_OVERHEAD_BYTES, 10_000 - ENTRY_OVERHEAD_BYTES, 100)
    assert p.state_bytes() == 100_000 - ENTRY_OVERHEAD_BYTES * 10
    assert p.budget() == 24_750
    assert not p.due(), "a larger state allows a longer log: the snapshot cost per write stays flat"
    for _ in range(15):
        p.on_entry(1_000 - ENTRY_OVERHEAD_BYTES, 1_000 - ENTRY_OVERHEAD_BYTES, 10)
    assert p.due()


def test_small_state_keeps_the_minimum() -> None:
    p = policy(items=10)
    p.on_entry(100, 100, 1)
    assert p.budget() == 10_000


def test_every_entry_counts_its_overhead() -> None:
    p = policy(items=0, min_bytes=100 * ENTRY_OVERHEAD_BYTES)
    for _ in range(99):
        p.on_entry(0, 0, 0)
    assert not p.due()
    p.on_entry(0, 0, 0)
    assert p.due(), "many tiny entries also fill the log"


def test_compressed_entries_count_their_stored_bytes_until_the_replay_bound() -> None:
    p = policy(items=1_000)  # 100-byte commands: a 100,000-byte state, a 25,000-byte budget
    p.on_entry(1_000 - ENTRY_OVERHEAD_BYTES, 10_000, 100)
    assert p.state_bytes() == 100_000, "the state is estimated from the commands' encoded size"
    assert p.budget() == 25_000 and p.used() == 2_500
    for _ in range(8):
        p.on_entry(1_000 - ENTRY_OVERHEAD_BYTES, 10_000, 100)
    assert p.used() == 90_000 // REPLAY_FACTOR and not p.due(), "a tenth of the memory: more commands per compaction"
    p.on_entry(1_000 - ENTRY_OVERHEAD_BYTES, 10_000, 100)
    assert p.due(), "a restart replays at most REPLAY_FACTOR budgets of commands"
    p.requested()
    assert p.used() == 0 and not p.due()


def test_compressed_entries_still_fill_the_memory_budget() -> None:
    p = policy(items=0)  # the 10,000-byte minimum
    p.on_entry(9_000, 10_000, 10)
    assert not p.due()
    p.on_entry(1_000 - ENTRY_OVERHEAD_BYTES * 2, 1_000, 1)
    assert p.due(), "stored bytes alone reach the budget"
