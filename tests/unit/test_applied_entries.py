"""A proposal re-submitted after an unknown outcome applies at most once (raftreg.state.applied_entries)."""

from __future__ import annotations

import msgspec
import pytest

from raftreg.state.applied_entries import MAX_PROPOSERS, WINDOW, AppliedEntries, Repeated
from raftreg.state.commands import Envelope, KVSet, decode_envelope, encode_entry
from raftreg.state.kv import KVWritten
from raftreg.state.machine import StateMachine


def entry(proposer: str, seq: int, *cmds: KVSet) -> Envelope:
    return decode_envelope(encode_entry(list(cmds), proposer, seq))


def value(machine: StateMachine, key: str) -> bytes | None:
    found = machine.kv.get(key)
    return found.value if found is not None else None


def test_a_blind_write_applied_twice_does_not_undo_a_compare_and_set_in_between() -> None:
    """The 30-minute lab chaos run's violation on kv:chaos/k0, replayed on one state machine:
    client 1's set through a follower applies (index 10), client 5's CAS on it applies (11), then
    the follower re-submits client 1's set after a LEADER_CHANGED (12). Before the fix the second
    apply set the key back to c1's value; now it answers ``Repeated`` and changes nothing."""
    machine = StateMachine()
    first = entry("n2-proc", 7, KVSet("chaos/k0", b"c1-2865"))
    admission, (set_result,) = machine.apply_entry(10, first)
    assert admission == "new" and isinstance(set_result, KVWritten) and set_result.ok
    modify_index = machine.kv.get("chaos/k0").modify_index  # type: ignore[union-attr]
    admission, (cas_result,) = machine.apply_entry(11, entry("n1-proc", 3, KVSet("chaos/k0", b"c5-2743",
                                                                                 cas=modify_index)))
    assert admission == "new" and isinstance(cas_result, KVWritten) and cas_result.ok
    assert machine.apply_entry(12, first) == ("repeated", [Repeated()])
    assert value(machine, "chaos/k0") == b"c5-2743"
    assert machine.applied_index == 12


def test_an_entry_without_an_origin_always_applies() -> None:
    """Entries written before origins existed (envelope version 1) apply as they always did."""
    machine = StateMachine()
    legacy = Envelope(1, [KVSet("k", b"v")])
    assert machine.apply_entry(1, legacy)[0] == "new"
    assert machine.apply_entry(2, legacy)[0] == "new"


def test_out_of_order_seqs_within_the_window_are_judged_exactly() -> None:
    applied = AppliedEntries()
    assert applied.admit(1, "p", 1) == "new"
    assert applied.admit(2, "p", 4) == "new"  # 2 and 3 still in flight (a stuck proposal, a retry)
    assert applied.admit(3, "p", 3) == "new"
    assert applied.admit(4, "p", 3) == "repeated"
    assert applied.admit(5, "p", 4) == "repeated"
    assert applied.admit(6, "p", 2) == "new"
    assert applied.admit(7, "p", 1) == "repeated"
    assert applied.admit(8, "q", 1) == "new"  # another process's seqs are its own


def test_a_seq_below_the_window_is_never_applied() -> None:
    applied = AppliedEntries()
    assert applied.admit(1, "p", 1) == "new"
    assert applied.admit(2, "p", 1 + WINDOW + 5) == "new"
    assert applied.admit(3, "p", 3) == "too_old"  # might have applied: it cannot tell, so no
    assert applied.admit(4, "p", 1 + WINDOW + 4) == "new"  # within the window: still exact


def test_a_proposer_first_seen_mid_stream_treats_lower_seqs_as_applied() -> None:
    applied = AppliedEntries()
    assert applied.admit(1, "p", 50) == "new"
    assert applied.admit(2, "p", 49) == "repeated"


def test_the_oldest_proposer_is_forgotten_beyond_the_limit() -> None:
    applied = AppliedEntries()
    for n in range(MAX_PROPOSERS + 1):
        assert applied.admit(n + 1, f"p{n}", 1) == "new"
    assert len(applied) == MAX_PROPOSERS
    assert applied.admit(1000, "p1", 1) == "repeated"  # still remembered
    assert applied.admit(1001, "p0", 1) == "new"  # forgotten (it proposed least recently)


@pytest.mark.parametrize("version_before", [5, 6])
def test_the_memory_survives_a_snapshot_and_older_snapshots_still_load(version_before: int) -> None:
    machine = StateMachine()
    machine.apply_entry(1, entry("p", 1, KVSet("k", b"v")))
    machine.apply_entry(2, entry("p", 3, KVSet("k", b"w")))
    restored = StateMachine()
    restored.restore(machine.snapshot())
    assert restored.snapshot() == machine.snapshot()
    assert restored.apply_entry(3, entry("p", 1, KVSet("k", b"x")))[0] == "repeated"
    assert restored.apply_entry(4, entry("p", 2, KVSet("k", b"y")))[0] == "new"
    if version_before == 5:  # a version-5 snapshot (before this part) loads with an empty memory
        parts = msgspec.msgpack.decode(machine.snapshot())
        old = msgspec.msgpack.encode([5, *parts[1:8]])
        legacy = StateMachine()
        legacy.restore(old)
        assert len(legacy.applied) == 0 and value(legacy, "k") == b"w"
