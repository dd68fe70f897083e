"""The registry state machine against a plain-dict model (Hypothesis stateful testing).

Small alphabets make collisions (same service, same id, same definition) frequent.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raftreg.models import Check, Instance, ServiceSummary, effective_status
from raftreg.state.commands import Command, Deregister, Expire, Noop, Register, SetCheckStatus, SetManualStatus
from raftreg.state.registry import SNAPSHOT_VERSION, Deregistered, Failed, Nothing, Registered, Registry, StatusSet

SERVICES = ("api", "db", "web")
IDS = ("i1", "i2", "i3", "i4")
TAGS = ("v1", "v2")
META_KEYS = ("zone", "env")
META_VALUES = ("a", "b")
STATUSES = ("passing", "critical")

# Filters checked after every step: every combination of these.
TAG_FILTERS: tuple[tuple[str, ...], ...] = ((), ("v1",), ("v2",), ("v1", "v2"))
META_FILTERS: tuple[tuple[tuple[str, str], ...], ...] = (
    (),
    (("zone", "a"),),
    (("env", "b"),),
    (("zone", "a"), ("env", "a")),
)

definitions = st.fixed_dictionaries(
    {
        "address": st.sampled_from(("10.0.0.1", "10.0.0.2")),
        "port": st.sampled_from((80, 8080)),
        "tags": st.lists(st.sampled_from(TAGS), unique=True, max_size=2).map(tuple),
        "meta": st.dictionaries(st.sampled_from(META_KEYS), st.sampled_from(META_VALUES), max_size=2),
        "weight": st.sampled_from((1, 100)),
        "ttl": st.sampled_from((None, 10.0)),
        "check": st.sampled_from((None, Check(http="http://h/health"), Check(tcp="h:80", interval=5.0))),
    }
)
DEF_FIELDS = ("address", "port", "tags", "meta", "weight", "ttl", "check")
# Status fields inside a Register command must be ignored too: the registry derives them.
junk_statuses = st.sampled_from(STATUSES)
notes = st.sampled_from(("", "maintenance", "disk"))
services = st.sampled_from(SERVICES)
ids = st.sampled_from(IDS)
# Index fields inside a Register command must be ignored by the registry.
junk_indexes = st.integers(min_value=0, max_value=10_000)
gaps = st.integers(min_value=1, max_value=3)


def make_instance(service: str, instance_id: str, d: dict[str, Any], create: int = 0, modify: int = 0) -> Instance:
    return Instance(service=service, id=instance_id, create_index=create, modify_index=modify, **d)


def definition_of(d: dict[str, Any]) -> dict[str, Any]:
    """The registration fields of a stored entry (without the derived status fields)."""
    return {f: d[f] for f in DEF_FIELDS}


def reordered_meta(d: dict[str, Any]) -> dict[str, Any]:
    """The same definition with meta keys in the opposite insertion order (a copy)."""
    return {**d, "meta": dict(reversed(list(d["meta"].items())))}


class Model:
    """What the registry should contain, kept with plain dicts."""

    def __init__(self) -> None:
        # (service, id) -> [definition dict, create_index, modify_index]
        self.instances: dict[tuple[str, str], list[Any]] = {}
        self.index = 0
        self.service_changed: dict[str, int] = {}
        self.catalog_index = 0
        self.deleted_at: dict[str, int] = {}

    def present(self, service: str) -> bool:
        return any(s == service for s, _ in self.instances)

    def expected(self, service: str, instance_id: str) -> Instance | None:
        entry = self.instances.get((service, instance_id))
        if entry is None:
            return None
        d, create, modify = entry
        return make_instance(service, instance_id, d, create, modify)

    def register(self, index: int, service: str, instance_id: str, defn: dict[str, Any]) -> bool:
        key = (service, instance_id)
        old = self.instances.get(key)
        old_d = old[0] if old is not None else None
        check_status = None
        if defn["check"] is not None:
            same_check = old_d is not None and old_d["check"] == defn["check"] and old_d["check_status"] is not None
            check_status = old_d["check_status"] if same_check and old_d is not None else "critical"
        manual = old_d["manual_status"] if old_d is not None else None
        keep_note = old_d is not None and (manual is not None or check_status is not None)
        d = {**definition_of(defn), "check_status": check_status, "manual_status": manual,
             "status": effective_status(manual, check_status),
             "status_note": old_d["status_note"] if keep_note and old_d is not None else ""}
        if old is not None and old[0] == d:
            return False
        if not self.present(service):
            self.catalog_index = index
        create = old[1] if old is not None else index
        self.instances[key] = [dict(d), create, index]
        self.service_changed[service] = index
        self.index = index
        return True

    def set_status(self, index: int, key: tuple[str, str], **fields: Any) -> bool:
        d = self.instances[key][0]
        new = {**d, **fields}
        new["status"] = effective_status(new["manual_status"], new["check_status"])
        if new == d:
            return False
        self.instances[key][0] = new
        self.instances[key][2] = index
        self.service_changed[key[0]] = index
        self.index = index
        return True

    def deregister(self, index: int, service: str, instance_id: str) -> bool:
        if (service, instance_id) not in self.instances:
            return False
        del self.instances[(service, instance_id)]
        self.index = index
        self.service_changed[service] = index
        if not self.present(service):
            self.catalog_index = index
            self.deleted_at[service] = index
            del self.service_changed[service]
        return True

    def summaries(self) -> list[ServiceSummary]:
        out = []
        for s in sorted({s for s, _ in self.instances}):
            defs = [v[0] for (svc, _), v in self.instances.items() if svc == s]
            def count(status: str, defs: list[dict[str, Any]] = defs) -> int:
                return sum(1 for d in defs if d["status"] == status)

            tags = tuple(sorted({t for d in defs for t in d["tags"]}))
            out.append(ServiceSummary(s, len(defs), count("passing"), count("warning"), count("critical"), tags))
        return out

    def filtered(
        self, service: str, passing_only: bool, tags: tuple[str, ...], meta: tuple[tuple[str, str], ...]
    ) -> list[str]:
        out = []
        for (s, i), (d, _, _) in self.instances.items():
            if s != service:
                continue
            if passing_only and d["status"] != "passing":
                continue
            if not all(t in d["tags"] for t in tags):
                continue
            if not all(k in d["meta"] and d["meta"][k] == v for k, v in meta):
                continue
            out.append(i)
        return sorted(out)


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.reg = Registry()
        self.model = Model()
        self.last_index = 0

    def next_index(self, gap: int) -> int:
        self.last_index += gap
        return self.last_index

    def pick_existing(self, data: st.DataObject) -> tuple[str, str]:
        return data.draw(st.sampled_from(sorted(self.model.instances)))

    # ---- rules --------------------------------------------------------------------------
    @rule(service=services, instance_id=ids, d=definitions, junk=junk_indexes, gap=gaps, status=junk_statuses)
    def register(self, service: str, instance_id: str, d: dict[str, Any], junk: int, gap: int, status: str) -> None:
        index = self.next_index(gap)
        incoming = make_instance(service, instance_id, {**d, "status": status}, junk, junk)
        result = self.reg.apply(index, Register(incoming))
        changed = self.model.register(index, service, instance_id, d)
        assert isinstance(result, Registered)
        assert result.changed is changed
        assert result.instance == self.model.expected(service, instance_id)

    @precondition(lambda self: self.model.instances)
    @rule(data=st.data(), junk=junk_indexes, gap=gaps)
    def replace_with_changes(self, data: st.DataObject, junk: int, gap: int) -> None:
        service, instance_id = self.pick_existing(data)
        old_d, old_create, _ = self.model.instances[(service, instance_id)]
        old_def = definition_of(old_d)
        new_def = data.draw(definitions.filter(lambda d: d != old_def))
        index = self.next_index(gap)
        result = self.reg.apply(index, Register(make_instance(service, instance_id, new_def, junk, junk)))
        assert self.model.register(index, service, instance_id, new_def) is True
        assert isinstance(result, Registered)
        assert result.changed is True
        assert result.instance.create_index == old_create
        assert result.instance.modify_index == index
        assert self.reg.index == index
        assert self.reg.service_index(service) == index

    @precondition(lambda self: self.model.instances)
    @rule(data=st.data(), junk=junk_indexes, gap=gaps)
    def reregister_identical(self, data: st.DataObject, junk: int, gap: int) -> None:
        service, instance_id = self.pick_existing(data)
        d = reordered_meta(definition_of(self.model.instances[(service, instance_id)][0]))
        before = self.reg.get_instance(service, instance_id)
        before_index = self.reg.index
        before_service_index = self.reg.service_index(service)
        before_snapshot = self.reg.snapshot()
        index = self.next_index(gap)
        result = self.reg.apply(index, Register(make_instance(service, instance_id, d, junk, junk)))
        assert self.model.register(index, service, instance_id, d) is False
        assert isinstance(result, Registered)
        assert result.changed is False
        assert result.instance == before
        assert self.reg.index == before_index
        assert self.reg.service_index(service) == before_service_index
        assert self.reg.snapshot() == before_snapshot

    @rule(service=services, instance_id=ids, gap=gaps)
    def deregister(self, service: str, instance_id: str, gap: int) -> None:
        index = self.next_index(gap)
        result = self.reg.apply(index, Deregister(service, instance_id))
        existed = self.model.deregister(index, service, instance_id)
        assert result == Deregistered(existed=existed)

    @precondition(lambda self: self.model.instances)
    @rule(data=st.data(), gap=gaps)
    def deregister_existing(self, data: st.DataObject, gap: int) -> None:
        service, instance_id = self.pick_existing(data)
        index = self.next_index(gap)
        result = self.reg.apply(index, Deregister(service, instance_id))
        assert self.model.deregister(index, service, instance_id) is True
        assert result == Deregistered(existed=True)
        assert self.reg.get_instance(service, instance_id) is None
        assert self.reg.index == index

    @precondition(lambda self: self.model.instances)
    @rule(data=st.data(), status=st.sampled_from(("passing", "warning", "critical")), note=notes, gap=gaps)
    def set_manual_status(self, data: st.DataObject, status: str, note: str, gap: int) -> None:
        key = self.pick_existing(data)
        index = self.next_index(gap)
        result = self.reg.apply(index, SetManualStatus(*key, status, note))  # type: ignore[arg-type]
        manual = None if status == "passing" else status
        changed = self.model.set_status(index, key, manual_status=manual, status_note=note if manual else "")
        assert isinstance(result, StatusSet)
        assert result.changed is changed
        assert result.instance == self.model.expected(*key)

    @precondition(lambda self: self.model.instances)
    @rule(data=st.data(), status=junk_statuses, note=notes, stale=st.booleans(), gap=gaps)
    def set_check_status(self, data: st.DataObject, status: str, note: str, stale: bool, gap: int) -> None:
        key = self.pick_existing(data)
        d, create, _ = self.model.instances[key]
        index = self.next_index(gap)
        result = self.reg.apply(index, SetCheckStatus(*key, create - 1 if stale else create, status, note))  # type: ignore[arg-type]
        assert isinstance(result, StatusSet)
        if stale or d["check"] is None:
            assert result == StatusSet(None, changed=False)
            return
        fields: dict[str, Any] = {"check_status": status}
        if d["check_status"] != status and d["manual_status"] is None:
            fields["status_note"] = note
        changed = self.model.set_status(index, key, **fields)
        assert result.changed is changed
        assert result.instance == self.model.expected(*key)

    @precondition(lambda self: self.model.instances)
    @rule(data=st.data(), stale=st.booleans(), gap=gaps)
    def expire(self, data: st.DataObject, stale: bool, gap: int) -> None:
        """Compare-and-delete: an Expire naming an older version removes nothing."""
        key = self.pick_existing(data)
        modify = self.model.instances[key][2]
        index = self.next_index(gap)
        result = self.reg.apply(index, Expire(*key, modify - 1 if stale else modify))
        assert result == Deregistered(existed=not stale)
        if not stale:
            assert self.model.deregister(index, *key) is True

    @rule(gap=gaps)
    def noop(self, gap: int) -> None:
        before = self.reg.snapshot()
        result = self.reg.apply(self.next_index(gap), Noop())
        assert result == Nothing()
        assert self.reg.snapshot() == before

    @rule(
        cmds=st.lists(
            st.one_of(
                st.builds(lambda s, i, d: Register(make_instance(s, i, d)), services, ids, definitions),
                st.builds(Deregister, services, ids),
                st.just(Noop()),
            ),
            min_size=2,
            max_size=4,
        ),
        gap=gaps,
    )
    def apply_entry_batch(self, cmds: list[Command], gap: int) -> None:
        """Group commit applies every command of one Raft entry at the same index (raft.py)."""
        index = self.next_index(gap)
        for cmd in cmds:
            result = self.reg.apply(index, cmd)
            if isinstance(cmd, Register):
                inst = cmd.instance
                d = {f: getattr(inst, f) for f in DEF_FIELDS}
                assert isinstance(result, Registered)
                assert result.changed is self.model.register(index, inst.service, inst.id, d)
            elif isinstance(cmd, Deregister):
                assert result == Deregistered(self.model.deregister(index, cmd.service, cmd.id))
            else:
                assert result == Nothing()

    @rule()
    def snapshot_and_restore(self) -> None:
        snap = self.reg.snapshot()
        fresh = Registry()
        fresh.restore(snap)
        assert fresh.snapshot() == snap
        self.reg = fresh

    # ---- checks after every step ----------------------------------------------------------
    @invariant()
    def instances_match_model(self) -> None:
        for service, instance_id in itertools.product(SERVICES, IDS):
            assert self.reg.get_instance(service, instance_id) == self.model.expected(service, instance_id)
        assert self.reg.instance_count() == len(self.model.instances)

    @invariant()
    def checked_index_matches_model(self) -> None:
        want = sorted((s, i) for (s, i), (d, _, _) in self.model.instances.items() if d["check"] is not None)
        assert sorted((x.service, x.id) for x in self.reg.checked_instances()) == want

    @invariant()
    def indexes_match_model(self) -> None:
        assert self.reg.index == self.model.index
        for service in SERVICES:
            got = self.reg.service_index(service)
            if self.model.present(service):
                assert got == self.model.service_changed[service]
            else:
                assert got == self.model.catalog_index
                assert got >= self.model.deleted_at.get(service, 0)

    @invariant()
    def listings_match_model(self) -> None:
        assert self.reg.list_services() == self.model.summaries()
        for service in SERVICES:
            for passing_only, tags, meta in itertools.product((False, True), TAG_FILTERS, META_FILTERS):
                got = self.reg.list_instances(service, passing_only=passing_only, tags=tags, meta=meta)
                assert [i.id for i in got] == self.model.filtered(service, passing_only, tags, meta)
                assert all(i == self.model.expected(service, i.id) for i in got)
        assert self.reg.list_instances("absent") == []


RegistryMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRegistryMachine = RegistryMachine.TestCase


# ---- replay determinism -----------------------------------------------------------------------
commands = st.one_of(
    st.builds(lambda s, i, d: Register(make_instance(s, i, d)), services, ids, definitions),
    st.builds(Deregister, services, ids),
    st.just(Noop()),
)


@settings(max_examples=100, deadline=None)
@given(cmds=st.lists(commands, max_size=40))
def test_replay_gives_byte_identical_snapshots(cmds: list[Command]) -> None:
    a, b = Registry(), Registry()
    for index, cmd in enumerate(cmds, start=1):
        ra, rb = a.apply(index, cmd), b.apply(index, cmd)
        assert ra == rb
        assert not isinstance(ra, Failed)
    snap = a.snapshot()
    assert snap == b.snapshot()
    restored = Registry()
    restored.restore(snap)
    assert restored.snapshot() == snap
    assert restored.index == a.index
    assert restored.list_services() == a.list_services()
    for service in SERVICES:
        assert restored.service_index(service) == a.service_index(service)
        assert restored.list_instances(service) == a.list_instances(service)


# ---- examples worth spelling out --------------------------------------------------------------
def test_service_index_examples() -> None:
    reg = Registry()
    assert reg.index == 0
    assert reg.service_index("api") == 0
    reg.apply(3, Register(Instance("api", "i1", "10.0.0.1", 80)))
    reg.apply(5, Register(Instance("db", "i1", "10.0.0.1", 80)))
    assert reg.service_index("api") == 3
    assert reg.service_index("db") == 5
    assert reg.service_index("web") == 5  # catalog index: last time a service appeared
    reg.apply(7, Register(Instance("api", "i2", "10.0.0.1", 80)))
    assert reg.service_index("web") == 5  # unrelated writes do not move an absent service's index
    assert reg.service_index("api") == 7
    reg.apply(9, Deregister("db", "i1"))
    assert reg.service_index("db") == 9  # deletion index
    assert reg.service_index("web") == 9
    reg.apply(11, Deregister("api", "i1"))
    assert reg.service_index("api") == 11  # still exists: its own last change
    assert reg.service_index("db") == 9
    assert reg.index == 11


def test_apply_never_raises_and_reports_failed() -> None:
    reg = Registry()
    reg.apply(1, Register(Instance("api", "i1", "10.0.0.1", 80)))
    before = reg.snapshot()
    unknown = reg.apply(2, object())  # type: ignore[arg-type]
    assert isinstance(unknown, Failed)
    assert "unknown command" in unknown.reason
    broken = reg.apply(3, Register(instance=None))  # type: ignore[arg-type]
    assert isinstance(broken, Failed)
    assert reg.snapshot() == before
    assert reg.index == 1


def test_restore_rejects_other_snapshot_version() -> None:
    reg = Registry()
    reg.apply(1, Register(Instance("api", "i1", "10.0.0.1", 80)))
    snap = msgspec.msgpack.decode(reg.snapshot())
    assert snap[0] == SNAPSHOT_VERSION
    snap[0] = SNAPSHOT_VERSION + 1
    with pytest.raises(ValueError, match="snapshot version"):
        Registry().restore(msgspec.msgpack.encode(snap))


def test_restore_replaces_previous_state() -> None:
    source = Registry()
    source.apply(4, Register(Instance("db", "x", "10.0.0.1", 80)))
    target = Registry()
    target.apply(1, Register(Instance("api", "i1", "10.0.0.1", 80)))
    target.restore(source.snapshot())
    assert target.get_instance("api", "i1") is None
    assert target.list_services() == [ServiceSummary("db", 1, 1)]
    assert target.index == 4
