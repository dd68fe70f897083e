"""The registry state machine.

Contract (the same as hashicorp/raft's FSM):
- ``apply(index, cmd)`` is deterministic: the same commands at the same indexes give the same
  state and byte-identical ``snapshot()``s on every replica. It never raises; a failure is
  returned as ``Failed``.
- ``restore(snapshot())`` rebuilds exactly the same state.
- It is not thread-safe: the caller serialises ``apply``/``restore`` with readers.

Indexes: every change records the Raft index of the command that made it. A service's index is
the index of its last change (register that changed something, or deregistration). An absent
service answers with the catalog index (the last time any service appeared or disappeared), so
its index moves when it is created and unrelated writes do not move it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import msgspec

from raftreg.models import Instance, ServiceSummary, Status, effective_status
from raftreg.state.commands import Command, Deregister, Expire, Noop, Register, SetCheckStatus, SetManualStatus
from raftreg.state.interning import shared_strings

SNAPSHOT_VERSION = 1


class Registered(msgspec.Struct, frozen=True):
    """Result of Register: the stored instance and whether the command changed it."""

    instance: Instance
    changed: bool


class Deregistered(msgspec.Struct, frozen=True):
    """Result of Deregister and Expire: whether the instance existed (Expire: and was still the
    version it named) and was removed."""

    existed: bool


class StatusSet(msgspec.Struct, frozen=True):
    """Result of SetCheckStatus / SetManualStatus: the stored instance (None when it does not
    exist, or is another incarnation) and whether the command changed it."""

    instance: Instance | None
    changed: bool


class Nothing(msgspec.Struct, frozen=True):
    """Result of Noop."""


class Failed(msgspec.Struct, frozen=True):
    """A command that could not be applied; the state is unchanged."""

    reason: str


Result = Registered | Deregistered | StatusSet | Nothing | Failed


class _ServiceSnap(msgspec.Struct, array_like=True):
    name: str
    index: int
    instances: list[Instance]


class _Snapshot(msgspec.Struct, array_like=True):
    v: int
    index: int
    catalog_index: int
    services: list[_ServiceSnap]


class _ServiceSnapRaw(msgspec.Struct, array_like=True):
    """``_ServiceSnap`` as read back: each instance still encoded (decoded one at a time)."""

    name: str
    index: int
    instances: list[msgspec.Raw]


class _SnapshotRaw(msgspec.Struct, array_like=True):
    v: int
    index: int
    catalog_index: int
    services: list[_ServiceSnapRaw]


_snap_encoder = msgspec.msgpack.Encoder()
# Restore decodes the outline first and each instance only when it is stored: decoding the whole
# snapshot into objects and then building the stored (string-sharing) copies left the first set's
# memory pinned by the strings both share (1M instances: 1.6 GiB after a restart instead of 0.9).
_snap_decoder = msgspec.msgpack.Decoder(_SnapshotRaw)
_instance_decoder = msgspec.msgpack.Decoder(Instance)


class Registry:
    """Services and their instances, with Raft indexes."""

    def __init__(self) -> None:
        self._services: dict[str, dict[str, Instance]] = {}
        self._service_index: dict[str, int] = {}
        self._index = 0
        self._catalog_index = 0
        self._checked: set[tuple[str, str]] = set()  # instances with an active check (derived)
        self._count = 0  # instances in all services (derived)

    # ---- writes -------------------------------------------------------------------------
    def apply(self, index: int, cmd: Command) -> Result:
        """Apply ``cmd`` committed at Raft ``index``. Never raises."""
        try:
            if isinstance(cmd, Register):
                return self._register(index, cmd.instance)
            if isinstance(cmd, Deregister):
                return self._deregister(index, cmd.service, cmd.id)
            if isinstance(cmd, Noop):
                return Nothing()
            if isinstance(cmd, Expire):
                return self._expire(index, cmd)
            if isinstance(cmd, SetCheckStatus):
                return self._set_check_status(index, cmd)
            if isinstance(cmd, SetManualStatus):
                return self._set_manual_status(index, cmd)
            return Failed(f"unknown command {type(cmd).__name__}")
        except Exception as exc:  # apply must never raise (research/pysyncobj.md §4.1, poison pill)
            return Failed(f"{type(exc).__name__}: {exc}")

    def _register(self, index: int, new: Instance) -> Registered:
        """Upsert. The status fields of ``new`` are ignored: a status set by hand survives a
        re-registration; the check's verdict survives while the check definition is unchanged,
        and a new or changed check starts ``critical`` until it passes."""
        instances = self._services.get(new.service)
        old = instances.get(new.id) if instances is not None else None
        check_status: Status | None = None
        if new.check is not None:
            kept = old is not None and old.check == new.check and old.check_status is not None
            check_status = old.check_status if kept and old is not None else "critical"
        manual = old.manual_status if old is not None else None
        status_fields = {
            "check_status": check_status,
            "manual_status": manual,
            "status": effective_status(manual, check_status),
            "status_note": old.status_note if old is not None and (manual is not None or check_status is not None)
            else "",
        }
        if old is not None and old.same_definition(msgspec.structs.replace(new, **status_fields)):
            return Registered(old, changed=False)
        stored = shared_strings(new, create_index=old.create_index if old is not None else index, modify_index=index,
                                **status_fields)
        if instances is None:
            instances = self._services[new.service] = {}
            self._catalog_index = index
        if old is None:
            self._count += 1
        instances[new.id] = stored
        if stored.check is not None:
            self._checked.add((stored.service, stored.id))
        else:
            self._checked.discard((stored.service, stored.id))
        self._service_index[new.service] = index
        self._index = index
        return Registered(stored, changed=True)

    def _expire(self, index: int, cmd: Expire) -> Deregistered:
        inst = self.get_instance(cmd.service, cmd.id)
        if inst is None or inst.modify_index != cmd.modify_index:
            return Deregistered(existed=False)
        return self._deregister(index, cmd.service, cmd.id)

    def _set_check_status(self, index: int, cmd: SetCheckStatus) -> StatusSet:
        old = self.get_instance(cmd.service, cmd.id)
        if old is None or old.create_index != cmd.create_index or old.check is None:
            return StatusSet(None, changed=False)
        if old.check_status == cmd.status:
            return StatusSet(old, changed=False)
        note = old.status_note if old.manual_status is not None else cmd.output
        return self._replace_status(index, old, old.manual_status, cmd.status, note)

    def _set_manual_status(self, index: int, cmd: SetManualStatus) -> StatusSet:
        old = self.get_instance(cmd.service, cmd.id)
        if old is None:
            return StatusSet(None, changed=False)
        manual: Status | None = None if cmd.status == "passing" else cmd.status
        note = cmd.note if manual is not None else ""
        if old.manual_status == manual and old.status_note == note:
            return StatusSet(old, changed=False)
        return self._replace_status(index, old, manual, old.check_status, note)

    def _replace_status(
        self, index: int, old: Instance, manual: Status | None, check_status: Status | None, note: str
    ) -> StatusSet:
        stored = msgspec.structs.replace(
            old,
            manual_status=manual,
            check_status=check_status,
            status=effective_status(manual, check_status),
            status_note=note,
            modify_index=index,
        )
        self._services[old.service][old.id] = stored
        self._service_index[old.service] = index
        self._index = index
        return StatusSet(stored, changed=True)

    def _deregister(self, index: int, service: str, instance_id: str) -> Deregistered:
        instances = self._services.get(service)
        if instances is None or instance_id not in instances:
            return Deregistered(existed=False)
        del instances[instance_id]
        self._count -= 1
        self._checked.discard((service, instance_id))
        self._index = index
        if instances:
            self._service_index[service] = index
        else:
            del self._services[service]
            del self._service_index[service]
            self._catalog_index = index
        return Deregistered(existed=True)

    # ---- reads --------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """Raft index of the last command that changed anything (0 when empty and untouched)."""
        return self._index

    def service_index(self, service: str) -> int:
        """The index answering a query on ``service`` (see the module docstring)."""
        return self._service_index.get(service, self._catalog_index)

    def get_instance(self, service: str, instance_id: str) -> Instance | None:
        instances = self._services.get(service)
        return instances.get(instance_id) if instances is not None else None

    def list_instances(
        self,
        service: str,
        *,
        passing_only: bool = False,
        tags: Iterable[str] = (),
        meta: Iterable[tuple[str, str]] = (),
    ) -> list[Instance]:
        """Instances of ``service`` sorted by id, filtered: passing only, every tag, every meta pair."""
        instances = self._services.get(service)
        if not instances:
            return []
        wanted_tags = set(tags)
        wanted_meta = list(meta)
        out = []
        for inst in instances.values():
            if passing_only and inst.status != "passing":
                continue
            if wanted_tags and not wanted_tags.issubset(inst.tags):
                continue
            if wanted_meta and any(inst.meta.get(k) != v for k, v in wanted_meta):
                continue
            out.append(inst)
        out.sort(key=_by_id)
        return out

    def list_services(self) -> list[ServiceSummary]:
        """Every service with its instance count, count per status and tags, sorted by name."""
        return [_summary(name, insts.values()) for name, insts in sorted(self._services.items())]

    def instance_count(self) -> int:
        return self._count

    def service_count(self) -> int:
        return len(self._services)

    def service_size(self, service: str) -> int:
        """How many instances ``service`` has (0 when it does not exist)."""
        return len(self._services.get(service, ()))

    def checked_instances(self) -> list[Instance]:
        """Every instance that has an active check (kept in a derived index: no full scan)."""
        return [self._services[service][instance_id] for service, instance_id in self._checked]

    def instances_where(self, keep: Callable[[Instance], bool]) -> list[Instance]:
        """Every instance for which ``keep`` is true (leases: those with a ttl; checks: with a check)."""
        return [inst for insts in self._services.values() for inst in insts.values() if keep(inst)]

    def place_at(self, index: int) -> None:
        """A restore committed at ``index``: every service and catalog index becomes ``index``."""
        self._service_index = dict.fromkeys(self._service_index, index)
        self._index = self._catalog_index = index

    # ---- snapshots ----------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The whole state as compact, deterministic msgpack bytes."""
        return _snap_encoder.encode(self.snapshot_struct())

    def snapshot_struct(self) -> _Snapshot:
        """What ``snapshot()`` encodes (``raftreg.state.machine`` encodes it with the other parts)."""
        services = [
            _ServiceSnap(name, self._service_index[name], sorted(insts.values(), key=_by_id))
            for name, insts in sorted(self._services.items())
        ]
        return _Snapshot(SNAPSHOT_VERSION, self._index, self._catalog_index, services)

    def restore(self, data: bytes | memoryview) -> None:
        """Replace the whole state with the one ``data`` (from ``snapshot()``) describes."""
        snap = _snap_decoder.decode(data)
        if snap.v != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snap.v}, this build knows {SNAPSHOT_VERSION}")
        services: dict[str, dict[str, Instance]] = {}
        checked: set[tuple[str, str]] = set()
        decode = _instance_decoder.decode
        for service in snap.services:
            stored = services[sys.intern(service.name)] = {}
            for raw in service.instances:
                decoded = decode(raw)
                inst = shared_strings(decoded, decoded.create_index, decoded.modify_index)
                stored[inst.id] = inst
                if inst.check is not None:
                    checked.add((inst.service, inst.id))
            service.instances = []  # the encoded instances are not needed any more
        self._services = services
        self._service_index = {s.name: s.index for s in snap.services}
        self._checked = checked
        self._count = sum(len(insts) for insts in services.values())
        self._index = snap.index
        self._catalog_index = snap.catalog_index


def _by_id(inst: Instance) -> str:
    return inst.id


def _summary(name: str, instances: Iterable[Instance]) -> ServiceSummary:
    counts = {"passing": 0, "warning": 0, "critical": 0}
    tags: set[str] = set()
    total = 0
    for inst in instances:
        total += 1
        counts[inst.status] += 1
        tags.update(inst.tags)
    return ServiceSummary(name=name, instances=total, passing=counts["passing"], warning=counts["warning"],
                          critical=counts["critical"], tags=tuple(sorted(tags)))
