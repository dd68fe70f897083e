"""The KV store against a plain-dict model (Hypothesis stateful testing), its snapshots (round
trip, determinism, the version-1 format of the registry-only era) and its bounded tombstones.

Small alphabets make collisions (same key, nested prefixes, CAS on a live index) frequent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from raftreg.models import Instance, KVEntry, KVVersion, TxnOp
from raftreg.state import kv as kv_module
from raftreg.state.commands import Command, KVDelete, KVSet, KVTxn, Register
from raftreg.state.kv import KVDeleted, KVStore, KVTxnDone, KVWritten
from raftreg.state.machine import StateMachine
from raftreg.state.registry import Failed, Registry

KEYS = ("a", "a/b", "a/c", "a/b/c", "ab", "b", "b/")
PREFIXES = ("", "a", "a/", "a/b", "b", "c")
keys = st.sampled_from(KEYS)
values = st.sampled_from((b"", b"x", b"yy", b"\x00\xff"))
flags = st.sampled_from((0, 1, 2**64 - 1))
histories = st.sampled_from((0, 1, 3))


@dataclass
class Model:
    """What the store should hold: entries, kept versions, and the index of each key's last change."""

    entries: dict[str, KVEntry] = field(default_factory=dict)
    history: dict[str, list[KVVersion]] = field(default_factory=dict)
    changed_at: dict[str, int] = field(default_factory=dict)

    def write(self, key: str, value: bytes, flag: int, index: int, keep: int, created: int | None = None) -> KVEntry:
        """Store a new version (``created``: its create index when a transaction decided it)."""
        old = self.entries.get(key)
        versions = self.history.pop(key, [])
        if old is not None and keep:
            self.history[key] = [KVVersion(old.value, old.flags, old.create_index, old.modify_index), *versions][:keep]
        if created is None:
            created = old.create_index if old else index
        new = KVEntry(key, value, flag, created, index)
        self.entries[key] = new
        self.changed_at[key] = index
        return new

    def remove(self, key: str, index: int) -> bool:
        if key not in self.entries:
            return False
        del self.entries[key]
        self.history.pop(key, None)
        self.changed_at[key] = index
        return True

    def modify_index(self, key: str) -> int:
        entry = self.entries.get(key)
        return entry.modify_index if entry else 0


class KVMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = KVStore()
        self.model = Model()
        self.index = 0
        self.log: list[tuple[int, Command]] = []

    def apply(self, cmd: KVSet | KVDelete | KVTxn) -> object:
        self.index += 1
        self.log.append((self.index, cmd))
        return self.store.apply(self.index, cmd)

    def cas_value(self, key: str, choice: int) -> int | None:
        """None (no CAS), the current index (should match), 0, or a stale index."""
        return (None, self.model.modify_index(key), 0, max(self.index - 1, 1))[choice]

    @rule(key=keys, value=values, flag=flags, keep=histories, choice=st.integers(0, 3))
    def set(self, key: str, value: bytes, flag: int, keep: int, choice: int) -> None:
        cas = self.cas_value(key, choice)
        result = self.apply(KVSet(key, value, flag, cas, keep))
        assert isinstance(result, KVWritten)
        if cas is not None and cas != self.model.modify_index(key):
            assert result == KVWritten(ok=False, entry=self.model.entries.get(key), reason="cas")
        else:
            assert result == KVWritten(ok=True, entry=self.model.write(key, value, flag, self.index, keep))

    @rule(key=keys, choice=st.integers(0, 3))
    def delete(self, key: str, choice: int) -> None:
        cas = self.cas_value(key, choice)
        result = self.apply(KVDelete(key, cas=cas))
        assert isinstance(result, KVDeleted)
        current = self.model.modify_index(key)
        if cas is not None and cas != current:
            assert result == KVDeleted(ok=False, current=current)
        else:
            existed = self.model.remove(key, self.index)
            assert result == KVDeleted(ok=True, keys=(key,) if existed else ())

    @rule(prefix=st.sampled_from(PREFIXES))
    def delete_recurse(self, prefix: str) -> None:
        result = self.apply(KVDelete(prefix, recurse=True))
        doomed = tuple(sorted(k for k in self.model.entries if k.startswith(prefix)))
        for key in doomed:
            self.model.remove(key, self.index)
        assert result == KVDeleted(ok=True, keys=doomed)

    @rule(data=st.data(), keep=histories)
    def txn(self, data: st.DataObject, keep: int) -> None:
        ops = []
        for _ in range(data.draw(st.integers(1, 4))):
            verb = data.draw(st.sampled_from(("set", "cas", "delete", "delete_cas", "check_index", "get")))
            key = data.draw(keys)
            index = data.draw(st.sampled_from((0, self.model.modify_index(key), self.index)))
            ops.append(TxnOp(verb, key, data.draw(values), data.draw(flags), index))
        before = (dict(self.model.entries), {k: list(v) for k, v in self.model.history.items()},
                  dict(self.model.changed_at))
        result = self.apply(KVTxn(ops, keep))
        assert isinstance(result, KVTxnDone)
        # The model runs the ops one by one on a copy; a failing check restores the copy.
        view: dict[str, KVEntry | None] = {}
        expected: list[KVEntry | int | None] = []
        for i, op in enumerate(ops):
            entry = view[op.key] if op.key in view else self.model.entries.get(op.key)
            current = entry.modify_index if entry else 0
            if op.op in ("cas", "delete_cas", "check_index") and current != op.index:
                assert (result.ok, result.failed) == (False, i), result
                self.model.entries, self.model.history, self.model.changed_at = before
                return
            if op.op in ("set", "cas"):
                created = entry.create_index if entry else self.index
                view[op.key] = KVEntry(op.key, op.value, op.flags, created, self.index)
                expected.append(view[op.key])
            elif op.op in ("delete", "delete_cas"):
                view[op.key] = None
                expected.append(0 if entry is None else 1)
            else:
                expected.append(entry)
        assert result.ok and result.results == expected, result
        changed = []
        for key, new in view.items():
            if new is not None:
                self.model.write(key, new.value, new.flags, self.index, keep, new.create_index)
                changed.append(key)
            elif self.model.remove(key, self.index):
                changed.append(key)
        assert result.keys == tuple(changed)

    @invariant()
    def entries_match(self) -> None:
        assert self.store.list_prefix("") == [self.model.entries[k] for k in sorted(self.model.entries)]
        for key in KEYS:
            assert self.store.get(key) == self.model.entries.get(key)
            assert self.store.history(key) == self.model.history.get(key, [])
            expected = self.model.modify_index(key) or self.model.changed_at.get(key, 0)
            assert self.store.key_index(key) == expected

    @invariant()
    def prefixes_match(self) -> None:
        for prefix in PREFIXES:
            under = sorted(k for k in self.model.entries if k.startswith(prefix))
            assert self.store.keys(prefix) == under
            one_level = []
            for key in under:
                cut = key.find("/", len(prefix))
                name = key[: cut + 1] if cut >= 0 else key
                if name not in one_level:
                    one_level.append(name)
            assert self.store.keys(prefix, "/") == one_level
            touched = [i for k, i in self.model.changed_at.items() if k.startswith(prefix)]
            assert self.store.prefix_index(prefix) == max(touched, default=0)

    @invariant()
    def snapshot_round_trip_and_determinism(self) -> None:
        data = msgspec.msgpack.encode(self.store.snapshot_struct())
        restored = KVStore()
        restored.restore(data)
        assert msgspec.msgpack.encode(restored.snapshot_struct()) == data
        assert restored.stats() == self.store.stats()
        replayed = KVStore()
        for index, cmd in self.log:
            replayed.apply(index, cmd)  # type: ignore[arg-type]
        assert msgspec.msgpack.encode(replayed.snapshot_struct()) == data


TestKVMachine = KVMachine.TestCase
TestKVMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


def test_history_counts_and_zero_disables() -> None:
    store = KVStore()
    for i in range(1, 6):
        store.apply(i, KVSet("k", str(i).encode(), history=3))
    assert [v.value for v in store.history("k")] == [b"4", b"3", b"2"]
    assert store.stats()["history_versions"] == 3
    store.apply(6, KVSet("k", b"6", history=0))
    assert store.history("k") == [] and store.stats()["history_versions"] == 0
    store.apply(7, KVSet("k", b"7", history=2))
    store.apply(8, KVDelete("k"))
    assert store.history("k") == [] and store.stats() == {"keys": 0, "history_versions": 0, "tombstones": 1}


def test_tombstones_are_bounded_and_raise_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kv_module, "MAX_TOMBSTONES", 3)
    store = KVStore()
    for i, key in enumerate(("p/a", "p/b", "q/a", "q/b", "r/a"), start=1):
        store.apply(2 * i - 1, KVSet(key, b"v"))
        store.apply(2 * i, KVDelete(key))
    assert store.stats()["tombstones"] == 3
    # p/a (deleted at 2) and p/b (at 4) were forgotten: prefix p/ still answers at least 4.
    assert store.prefix_index("p/") == 4
    assert store.key_index("p/a") == 4
    assert store.prefix_index("r/") == 10
    assert store.prefix_index("zzz") == 4  # the floor: never 0 once deletions were forgotten
    store.apply(11, KVSet("q/a", b"again"))  # a re-created key drops its tombstone
    assert store.stats()["tombstones"] == 2


def test_failed_commands_change_nothing() -> None:
    store = KVStore()
    store.apply(1, KVSet("k", b"v"))
    before = msgspec.msgpack.encode(store.snapshot_struct())
    assert store.apply(2, KVSet("k", b"w", cas=7)) == KVWritten(ok=False, entry=store.get("k"), reason="cas")
    assert store.apply(3, KVDelete("k", cas=0)) == KVDeleted(ok=False, current=1)
    assert store.apply(4, KVDelete("absent")) == KVDeleted(ok=True)
    done = store.apply(5, KVTxn([TxnOp("set", "x", b"1"), TxnOp("check_index", "k", index=9)]))
    assert isinstance(done, KVTxnDone) and (done.ok, done.failed) == (False, 1)
    assert "check_index on key 'k'" in done.reason and "modify_index 1" in done.reason
    assert msgspec.msgpack.encode(store.snapshot_struct()) == before
    assert store.index == 1


def test_machine_dispatches_and_snapshots_every_part() -> None:
    machine = StateMachine()
    machine.apply(1, Register(Instance("web", "w1", "10.0.0.1", 80)))
    machine.apply(2, KVSet("cfg/a", b"1", history=2))
    machine.apply(3, KVSet("cfg/a", b"2", history=2))
    data = machine.snapshot()
    again = StateMachine()
    again.restore(data)
    assert again.snapshot() == data
    assert again.registry.instance_count() == 1 and again.kv.get("cfg/a") == machine.kv.get("cfg/a")
    assert again.item_count() == 3  # one instance, one key, one kept version


def test_machine_restores_a_version_1_snapshot() -> None:
    """Version 1 was ``Registry.snapshot()`` alone (dumps written before the KV store)."""
    registry = Registry()
    registry.apply(1, Register(Instance("web", "w1", "10.0.0.1", 80)))
    machine = StateMachine()
    machine.restore(registry.snapshot())
    assert machine.registry.snapshot() == registry.snapshot()
    assert machine.kv.stats() == {"keys": 0, "history_versions": 0, "tombstones": 0}


def test_machine_refuses_an_unknown_snapshot_version() -> None:
    with pytest.raises(ValueError, match="snapshot version 9"):
        StateMachine().restore(msgspec.msgpack.encode([9, [], []]))


def test_machine_apply_never_raises() -> None:
    machine = StateMachine()
    bad = KVTxn(None)  # type: ignore[arg-type]  # a corrupt command must come back as Failed
    assert isinstance(machine.apply(1, bad), Failed)
