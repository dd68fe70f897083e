"""Identities: the replicated table of each member's incarnation (member name -> incarnation id).

Why: a node whose data directory was lost must not rejoin under its old name with an empty log
as if nothing happened (an entry committed on {A, B} would then survive only on A). Each data
directory gets an incarnation id the first time a node starts on it (``raftreg.node.incarnation``);
the cluster records it here, and ``raftreg serve`` on an empty data directory refuses to start
when the cluster already holds a different (or any) incarnation for its name
(``raftreg.node.identity_check``).

Contract (the same as the other parts):
- Deterministic, never raises; ``snapshot_struct()`` / ``restore()`` round-trip exactly.
- ``RecordIdentity(name, incarnation)`` sets the name's incarnation (creating or replacing it);
  applying the same record twice changes nothing (``changed=False``), so it is idempotent.
  Whether a node may replace a different record is decided before it proposes, not here.
- ``ForgetIdentity(name)`` drops the name's record (the member was removed); a no-op when absent.
"""

from __future__ import annotations

import msgspec

from raftreg.state.commands import ForgetIdentity, RecordIdentity

IDENTITIES_SNAPSHOT_VERSION = 1


class IdentityRecorded(msgspec.Struct, frozen=True):
    """Result of ``RecordIdentity``: whether the table changed, and the incarnation it replaced
    ("" when the name had none)."""

    changed: bool
    previous: str = ""


class IdentityRecord(msgspec.Struct, frozen=True, array_like=True):
    """One member's recorded incarnation and the index at which it was recorded."""

    name: str
    incarnation: str
    index: int


class _IdentitiesSnap(msgspec.Struct, array_like=True):
    v: int
    records: list[IdentityRecord]


_snap_decoder = msgspec.msgpack.Decoder(_IdentitiesSnap)


class Identities:
    """The recorded incarnation of each member name."""

    def __init__(self) -> None:
        self._records: dict[str, IdentityRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def apply(self, index: int, cmd: RecordIdentity | ForgetIdentity) -> IdentityRecorded:
        old = self._records.get(cmd.name)
        if isinstance(cmd, ForgetIdentity):
            self._records.pop(cmd.name, None)
            return IdentityRecorded(changed=old is not None, previous=old.incarnation if old is not None else "")
        if old is not None and old.incarnation == cmd.incarnation:
            return IdentityRecorded(changed=False, previous=old.incarnation)
        self._records[cmd.name] = IdentityRecord(cmd.name, cmd.incarnation, index)
        return IdentityRecorded(changed=True, previous=old.incarnation if old is not None else "")

    def get(self, name: str) -> str | None:
        """The incarnation recorded for ``name``; None when there is none."""
        record = self._records.get(name)
        return record.incarnation if record is not None else None

    def as_dict(self) -> dict[str, str]:
        """Every record as ``{name: incarnation}``, sorted by name."""
        return {name: self._records[name].incarnation for name in sorted(self._records)}

    def snapshot_struct(self) -> _IdentitiesSnap:
        return _IdentitiesSnap(IDENTITIES_SNAPSHOT_VERSION, [self._records[n] for n in sorted(self._records)])

    def restore(self, data: bytes | memoryview) -> None:
        snap = _snap_decoder.decode(data)
        if snap.v != IDENTITIES_SNAPSHOT_VERSION:
            raise ValueError(f"identities snapshot version {snap.v}, this build knows {IDENTITIES_SNAPSHOT_VERSION}")
        self._records = {record.name: record for record in snap.records}
