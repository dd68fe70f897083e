"""The Raft log is compacted by bytes, relative to the state's size (raftreg.raft.compaction)."""

from __future__ import annotations

from raftreg.raft.compaction import ENTRY_OVERHEAD_BYTES, CompactionPolicy


def policy(items: int, min_bytes: int = 10_000) -> CompactionPolicy:
    return CompactionPolicy(lambda: items, min_bytes=min_bytes, ratio=0.25)


def test_empty_state_compacts_after_min_bytes() -> None:
    p = policy(items=0)
    p.on_entry(5_000 - ENTRY_OVERHEAD_BYTES, 10)
    assert not p.due()
    p.on_entry(5_000 - ENTRY_OVERHEAD_BYTES, 10)
    assert p.due()
    p.requested()
    assert not p.due() and p.requests == 1 and p.bytes_since == 0


def test_budget_grows_with_the_state() -> None:
    p = policy(items=1_000)  # 1,000 items of 100 bytes: a 100,000-byte state
    p.on_entry(10_000 - ENTRY_OVERHEAD_BYTES, 100)
    assert p.state_bytes() == 100_000 - ENTRY_OVERHEAD_BYTES * 10
    assert p.budget() == 24_750
    assert not p.due(), "a larger state allows a longer log: the snapshot cost per write stays flat"
    for _ in range(15):
        p.on_entry(1_000 - ENTRY_OVERHEAD_BYTES, 10)
    assert p.due()


def test_small_state_keeps_the_minimum() -> None:
    p = policy(items=10)
    p.on_entry(100, 1)
    assert p.budget() == 10_000


def test_every_entry_counts_its_overhead() -> None:
    p = policy(items=0, min_bytes=100 * ENTRY_OVERHEAD_BYTES)
    for _ in range(99):
        p.on_entry(0, 0)
    assert not p.due()
    p.on_entry(0, 0)
    assert p.due(), "many tiny entries also fill the log"
