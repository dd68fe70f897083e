"""An online restore staged through the log (raftreg.state.restore_staging, and its commit in
raftreg.state.machine): chunks in order, a newer restore discards an older staging, the commit
verifies the hash, the staging survives a snapshot, indexes never go back, other parts are kept."""

from __future__ import annotations

import hashlib

from raftreg.models import Instance, KVEntry
from raftreg.state.commands import KVSet, Register, RestoreBegin, RestoreChunk, RestoreCommit
from raftreg.state.machine import StateMachine
from raftreg.state.restorable import encode_payload
from raftreg.state.restore_staging import StagedResult


def inst(i: int) -> Instance:
    return Instance(service="cart", id=f"i{i}", address="10.0.0.1", port=8000 + i)


def backup_payload() -> bytes:
    state = StateMachine()
    for i in range(20):
        state.apply(i + 1, Register(inst(i)))
    state.apply(21, KVSet(key="app/x", value=b"from-backup"))
    return encode_payload(state)


def live_state() -> StateMachine:
    state = StateMachine()
    for i in range(100, 400):
        state.apply(i, Register(Instance(service="other", id=f"o{i}", address="10.0.0.2", port=1)))
    state.apply(400, KVSet(key="app/x", value=b"live"))
    return state


def stage(state: StateMachine, payload: bytes, index: int, restore_id: str = "r1", size: int = 700) -> int:
    chunks = [payload[i:i + size] for i in range(0, len(payload), size)]
    digest = hashlib.sha256(payload).hexdigest()
    assert state.apply(index, RestoreBegin(restore_id, digest, len(payload), len(chunks))) == StagedResult(True)
    for seq, chunk in enumerate(chunks):
        index += 1
        assert state.apply(index, RestoreChunk(restore_id, seq, chunk)).ok  # type: ignore[union-attr]
    return index + 1


def test_commit_replaces_the_restorable_parts_at_its_index() -> None:
    state, payload = live_state(), backup_payload()
    before = (state.registry.index, state.kv.key_index("app/x"), state.registry.service_index("cart"))
    state.extra_part = "kept"  # type: ignore[attr-defined]  # a part added later, not restorable
    commit_at = stage(state, payload, 401)
    result = state.apply(commit_at, RestoreCommit("r1"))
    assert result == StagedResult(True, restored=True)
    assert state.registry.instance_count() == 20 and state.registry.get_instance("other", "o100") is None
    entry = state.kv.get("app/x")
    assert isinstance(entry, KVEntry) and entry.value == b"from-backup"
    after = (state.registry.index, state.kv.key_index("app/x"), state.registry.service_index("cart"))
    assert after == (commit_at, commit_at, commit_at) and all(a > b for a, b in zip(after, before, strict=True))
    assert state.kv.prefix_index("app/") == commit_at and state.kv.key_index("absent") == commit_at
    assert state.sessions.index == commit_at and state.acl.index == commit_at
    assert state.extra_part == "kept"  # type: ignore[attr-defined]
    assert state.staging.staged is None
    # The data is the backup's: the same instances as a machine restored from the payload.
    fresh = StateMachine()
    fresh.restore(payload)
    assert state.registry.get_instance("cart", "i3") == fresh.registry.get_instance("cart", "i3")


def test_a_corrupted_or_incomplete_staging_changes_nothing() -> None:
    payload = backup_payload()
    state = live_state()
    digest = hashlib.sha256(payload).hexdigest()
    state.apply(401, RestoreBegin("r1", digest, len(payload), 2))
    state.apply(402, RestoreChunk("r1", 0, payload[:10]))
    state.apply(403, RestoreChunk("r1", 1, payload[10:-1] + b"\x00"))  # a flipped last byte
    result = state.apply(404, RestoreCommit("r1"))
    assert isinstance(result, StagedResult) and not result.ok and "sha256" in result.reason
    assert state.registry.instance_count() == 300 and state.registry.index == 399
    state.apply(405, RestoreBegin("r2", digest, len(payload), 2))
    state.apply(406, RestoreChunk("r2", 0, payload[:10]))
    result = state.apply(407, RestoreCommit("r2"))
    assert isinstance(result, StagedResult) and not result.ok and "1 of 2 chunks" in result.reason
    assert state.registry.instance_count() == 300


def test_a_newer_begin_discards_the_older_staging_and_chunks_must_come_in_order() -> None:
    payload = backup_payload()
    state = live_state()
    digest = hashlib.sha256(payload).hexdigest()
    state.apply(401, RestoreBegin("old", digest, len(payload), 1))
    state.apply(402, RestoreBegin("new", digest, len(payload), 1))
    stale = state.apply(403, RestoreChunk("old", 0, payload))
    assert isinstance(stale, StagedResult) and not stale.ok
    skipped = state.apply(404, RestoreChunk("new", 1, payload))
    assert isinstance(skipped, StagedResult) and not skipped.ok and "out of order" in skipped.reason
    assert state.apply(405, RestoreBegin("new", digest, len(payload), 1)).ok  # type: ignore[union-attr]  # a retry
    assert state.apply(406, RestoreChunk("new", 0, payload)).ok  # type: ignore[union-attr]
    assert state.apply(407, RestoreChunk("new", 0, payload)).ok  # type: ignore[union-attr]  # a retried chunk
    assert state.apply(408, RestoreCommit("old")).ok is False  # type: ignore[union-attr]
    assert state.apply(409, RestoreCommit("new")) == StagedResult(True, restored=True)


def test_the_staging_is_part_of_the_snapshot() -> None:
    payload = backup_payload()
    state = live_state()
    commit_at = stage(state, payload, 401)
    copy = StateMachine()
    copy.restore(state.snapshot())  # a node installing a log-compaction snapshot mid-staging
    assert copy.staging.staged == state.staging.staged and copy.snapshot() == state.snapshot()
    for machine in (state, copy):
        assert machine.apply(commit_at, RestoreCommit("r1")) == StagedResult(True, restored=True)
    assert copy.snapshot() == state.snapshot()


def test_a_payload_that_does_not_decode_changes_nothing() -> None:
    state = live_state()
    junk = b"\x93\x09\x01\x02"  # a msgpack array of an unknown snapshot version
    commit_at = stage(state, junk, 401)
    result = state.apply(commit_at, RestoreCommit("r1"))
    assert not isinstance(result, StagedResult) and state.registry.instance_count() == 300


def test_an_abort_drops_only_its_own_staging() -> None:
    payload = backup_payload()
    state = live_state()
    digest = hashlib.sha256(payload).hexdigest()
    state.apply(401, RestoreBegin("mine", digest, len(payload), 2))
    state.apply(402, RestoreChunk("mine", 0, payload[:10]))
    assert state.apply(403, RestoreCommit("other", abort=True)).ok is False  # type: ignore[union-attr]
    assert state.staging.staged == ("mine", 1)
    assert state.apply(404, RestoreCommit("mine", abort=True)).ok  # type: ignore[union-attr]
    assert state.staging.staged is None and state.registry.instance_count() == 300
