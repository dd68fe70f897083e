"""Sessions and locks in the state machine: acquisition and release (the lock index as a fence),
the end of a session (destroy, lease expiry, a tied instance gone or critical) releasing or
deleting its keys in the same apply, the lock delay counted from the command's time, snapshots."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from raftreg.models import SESSION_LEASE, Instance, Session, SessionInstance
from raftreg.state.commands import (
    Command,
    Deregister,
    Expire,
    KVDelete,
    KVSet,
    Register,
    SessionCreate,
    SessionDestroy,
    SetManualStatus,
)
from raftreg.state.kv import KVWritten
from raftreg.state.machine import StateMachine
from raftreg.state.sessions import SessionCreated, SessionsEnded

S1 = "00000000-0000-4000-8000-000000000001"
S2 = "00000000-0000-4000-8000-000000000002"


class Log:
    """A state machine and the commands applied to it, at consecutive indexes."""

    def __init__(self) -> None:
        self.machine = StateMachine()
        self.index = 0
        self.cmds: list[Command] = []

    def apply(self, cmd: Command) -> object:
        self.index += 1
        self.cmds.append(cmd)
        return self.machine.apply(self.index, cmd)

    def session(self, session_id: str, *, behavior: str = "release", delay: float = 15.0,
                ties: tuple[SessionInstance, ...] = ()) -> Session:
        result = self.apply(SessionCreate(Session(session_id, ttl=10.0, behavior=behavior,  # type: ignore[arg-type]
                                                  lock_delay=delay, instances=ties)))
        assert isinstance(result, SessionCreated) and result.ok and result.session is not None, result
        return result.session

    def lock(self, verb: str, key: str, session: str, at: float, value: bytes = b"v") -> KVWritten:
        result = self.apply(KVSet(key, value, lock=verb, session=session, at=at))  # type: ignore[arg-type]
        assert isinstance(result, KVWritten)
        return result


@pytest.fixture
def log() -> Log:
    return Log()


def test_acquire_release_and_the_lock_index(log: Log) -> None:
    log.session(S1)
    log.session(S2)
    first = log.lock("acquire", "lock/a", S1, at=100.0)
    assert first.ok and first.entry is not None
    assert (first.entry.session, first.entry.lock_index) == (S1, 1)
    again = log.lock("acquire", "lock/a", S1, at=101.0, value=b"still mine")
    assert again.ok and again.entry is not None and again.entry.lock_index == 1  # no new fence
    held = log.lock("acquire", "lock/a", S2, at=102.0)
    assert (held.ok, held.reason) == (False, "held")
    assert log.lock("release", "lock/a", S2, at=103.0).reason == "not_holder"
    released = log.lock("release", "lock/a", S1, at=104.0)
    assert released.ok and released.entry is not None and released.entry.session is None
    taken = log.lock("acquire", "lock/a", S2, at=105.0)  # a release by hand has no lock delay
    assert taken.ok and taken.entry is not None and (taken.entry.session, taken.entry.lock_index) == (S2, 2)


def test_unknown_sessions_change_nothing(log: Log) -> None:
    before = log.machine.snapshot()
    result = log.lock("acquire", "lock/x", S1, at=1.0)
    assert (result.ok, result.reason, result.entry) == (False, "no_session", None)
    assert log.apply(SessionDestroy(S1, 5.0)) == SessionsEnded()
    assert log.machine.snapshot() == before


def test_destroy_releases_with_the_lock_delay_counted_from_the_command(log: Log) -> None:
    log.session(S1, delay=15.0)
    log.session(S2)
    log.lock("acquire", "lock/d", S1, at=100.0)
    ended = log.apply(SessionDestroy(S1, at=200.0))
    assert ended == SessionsEnded((S1,), ("lock/d",))
    entry = log.machine.kv.get("lock/d")
    assert entry is not None and entry.session is None and entry.modify_index == log.index
    assert log.lock("acquire", "lock/d", S2, at=214.9).reason == "lock_delay"
    late = log.lock("acquire", "lock/d", S2, at=215.1)
    assert late.ok and late.entry is not None and late.entry.lock_index == 2


def test_behavior_delete_deletes_the_locked_keys(log: Log) -> None:
    log.session(S1, behavior="delete")
    log.lock("acquire", "eph/a", S1, at=1.0)
    log.lock("acquire", "eph/b", S1, at=1.0)
    log.apply(KVSet("eph/c", b"unlocked"))
    assert log.apply(SessionDestroy(S1, at=2.0)) == SessionsEnded((S1,), ("eph/a", "eph/b"))
    assert [e.key for e in log.machine.kv.list_prefix("eph/")] == ["eph/c"]


def test_a_lease_expiry_ends_the_session_only_at_its_version(log: Log) -> None:
    session = log.session(S1)
    log.lock("acquire", "lock/e", S1, at=1.0)
    assert log.apply(Expire(SESSION_LEASE, S1, session.modify_index + 1, at=2.0)) == SessionsEnded()
    assert log.machine.sessions.get(S1) is not None
    assert log.apply(Expire(SESSION_LEASE, S1, session.modify_index, at=3.0)) == SessionsEnded((S1,), ("lock/e",))
    assert log.machine.sessions.get(S1) is None


def test_deleting_a_locked_key_forgets_the_lock(log: Log) -> None:
    log.session(S1)
    log.lock("acquire", "lock/f", S1, at=1.0)
    log.apply(KVDelete("lock/f"))
    assert log.machine.kv.locked_keys(S1) == []
    assert log.apply(SessionDestroy(S1, at=2.0)) == SessionsEnded((S1,), ())


@pytest.mark.parametrize("gone", [
    Deregister("web", "w1", at=50.0),
    SetManualStatus("web", "w1", "critical", at=50.0),
])
def test_a_tied_instance_gone_or_critical_ends_the_session_in_the_same_apply(log: Log, gone: Command) -> None:
    log.apply(Register(Instance("web", "w1", "10.0.0.1", 80)))
    log.session(S1, ties=(SessionInstance("web", "w1"),), delay=5.0)
    log.session(S2)
    log.lock("acquire", "leader", S1, at=10.0)
    log.machine.take_cascades()
    log.apply(gone)
    assert log.machine.take_cascades() == [SessionsEnded((S1,), ("leader",))]
    assert log.machine.sessions.get(S1) is None and log.machine.sessions.get(S2) is not None
    assert log.lock("acquire", "leader", S2, at=54.0).reason == "lock_delay"
    assert log.lock("acquire", "leader", S2, at=55.5).ok


def test_a_session_needs_its_instances_alive(log: Log) -> None:
    log.apply(Register(Instance("web", "w1", "10.0.0.1", 80)))
    log.apply(SetManualStatus("web", "w1", "critical"))
    ties = (SessionInstance("web", "w1"), SessionInstance("web", "missing"))
    result = log.apply(SessionCreate(Session(S1, instances=ties)))
    assert isinstance(result, SessionCreated) and (result.ok, result.instance) == (False, 0)
    assert log.machine.sessions.get(S1) is None


def test_create_is_idempotent(log: Log) -> None:
    first = log.session(S1)
    again = log.apply(SessionCreate(Session(S1, ttl=99.0)))
    assert again == SessionCreated(ok=True, session=first)


def test_snapshots_round_trip_and_are_deterministic(log: Log) -> None:
    log.apply(Register(Instance("web", "w1", "10.0.0.1", 80)))
    log.session(S1, ties=(SessionInstance("web", "w1"),))
    log.session(S2)
    log.lock("acquire", "a", S1, at=1.0)
    log.lock("acquire", "b", S2, at=1.0)
    log.apply(SessionDestroy(S2, at=2.0))
    data = log.machine.snapshot()
    restored = StateMachine()
    restored.restore(data)
    assert restored.snapshot() == data
    assert restored.kv.locked_keys(S1) == ["a"]
    assert restored.sessions.tied_to("web", "w1") == [S1]
    assert restored.apply(log.index + 1, KVSet("b", b"", lock="acquire", session=S1, at=3.0)) == KVWritten(
        ok=False, entry=restored.kv.get("b"), reason="lock_delay")
    replayed = StateMachine()
    for index, cmd in enumerate(log.cmds, start=1):
        replayed.apply(index, cmd)
    assert replayed.snapshot() == data


def test_a_version_2_snapshot_written_before_sessions_restores() -> None:
    machine = StateMachine()
    machine.apply(1, KVSet("k", b"v"))
    old = msgspec.msgpack.encode([2, machine.registry.snapshot_struct(), machine.kv.snapshot_struct()])
    restored = StateMachine()
    restored.restore(old)
    assert restored.kv.get("k") == machine.kv.get("k") and len(restored.sessions) == 0


SESSIONS = (S1, S2, "00000000-0000-4000-8000-000000000003")
LOCK_KEYS = ("l/a", "l/b", "l/c")


class LockMachine(RuleBasedStateMachine):
    """Random sessions, locks, writes, deletes, destroys and expiries: whatever happens, a held key
    names a live session, the lock index of a key never goes down, and snapshots round-trip."""

    def __init__(self) -> None:
        super().__init__()
        self.log = Log()
        self.log.apply(Register(Instance("web", "w1", "10.0.0.1", 80)))
        self.clock = 0.0
        self.fences: dict[str, tuple[int, int]] = {}  # key -> (create_index, lock_index) last seen

    def tick(self) -> float:
        self.clock += 1.0
        return self.clock

    @rule(sid=st.sampled_from(SESSIONS), behavior=st.sampled_from(("release", "delete")),
          delay=st.sampled_from((0.0, 2.0)), tied=st.booleans())
    def create(self, sid: str, behavior: str, delay: float, tied: bool) -> None:
        ties = (SessionInstance("web", "w1"),) if tied else ()
        self.log.apply(SessionCreate(Session(sid, behavior=behavior, lock_delay=delay,  # type: ignore[arg-type]
                                             instances=ties)))

    @rule(verb=st.sampled_from(("acquire", "release")), key=st.sampled_from(LOCK_KEYS),
          sid=st.sampled_from(SESSIONS))
    def lock(self, verb: str, key: str, sid: str) -> None:
        self.log.lock(verb, key, sid, at=self.tick())

    @rule(key=st.sampled_from(LOCK_KEYS))
    def write_or_delete(self, key: str) -> None:
        self.log.apply(KVSet(key, b"plain") if self.clock % 2 else KVDelete(key))
        self.tick()

    @rule(sid=st.sampled_from(SESSIONS), expire=st.booleans())
    def end(self, sid: str, expire: bool) -> None:
        session = self.log.machine.sessions.get(sid)
        if expire and session is not None:
            self.log.apply(Expire(SESSION_LEASE, sid, session.modify_index, at=self.tick()))
        else:
            self.log.apply(SessionDestroy(sid, at=self.tick()))

    @rule(gone=st.booleans())
    def instance_flaps(self, gone: bool) -> None:
        cmd: Command = Deregister("web", "w1", at=self.tick()) if gone else Register(
            Instance("web", "w1", "10.0.0.1", 80))
        self.log.apply(cmd)
        self.log.machine.take_cascades()

    @invariant()
    def locks_are_consistent(self) -> None:
        machine = self.log.machine
        for key in LOCK_KEYS:
            entry = machine.kv.get(key)
            if entry is None:
                continue
            if entry.session is not None:
                assert machine.sessions.get(entry.session) is not None, (key, entry)
                assert key in machine.kv.locked_keys(entry.session)
            created, fence = self.fences.get(key, (entry.create_index, 0))
            if created == entry.create_index:  # the same incarnation of the key: the fence never goes down
                assert entry.lock_index >= fence, (key, entry, fence)
            self.fences[key] = (entry.create_index, entry.lock_index)
        for sid in SESSIONS:
            for key in machine.kv.locked_keys(sid):
                held = machine.kv.get(key)
                assert held is not None and held.session == sid

    @invariant()
    def snapshots_round_trip(self) -> None:
        data = self.log.machine.snapshot()
        restored = StateMachine()
        restored.restore(data)
        assert restored.snapshot() == data


TestLockMachine = LockMachine.TestCase
TestLockMachine.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
