"""The replicated members table: who joined the cluster at run time, by name, with addresses.

Contract:
- Pure (no time, I/O or randomness). ``apply`` is deterministic and never raises.
- ``MemberSet`` records (or replaces) a member's row; ``MemberDelete`` removes one. Each answers
  ``MemberChanged``. The table says nothing about who votes: that is the Raft member set
  (pysyncobj's); the table names the Raft addresses that joined after the config file was
  written, and records read replicas (``role = "replica"``), which never are Raft voters.
- ``snapshot_struct``/``restore`` round-trip the table; a snapshot written before the table existed
  simply has none (``StateMachine.restore``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Role = Literal["voter", "replica"]


class Member(msgspec.Struct, frozen=True, array_like=True):
    """One row: a member's name and addresses, its role and the log index that added it."""

    name: str
    raft: str
    http: str
    consul_http: str | None = None
    dns: str | None = None
    role: Role = "voter"
    added_index: int = 0


class MemberSet(msgspec.Struct, frozen=True, tag="memset", array_like=True):
    """Record ``member`` (its ``added_index`` is set at apply), replacing a row of that name."""

    member: Member


class MemberDelete(msgspec.Struct, frozen=True, tag="memdel", array_like=True):
    """Remove the row named ``name`` (``existed=False`` when there was none)."""

    name: str


class MemberChanged(msgspec.Struct, frozen=True):
    """Result of a members command: the stored row (``MemberSet``), or whether one existed."""

    member: Member | None = None
    existed: bool = False


class _MembersSnap(msgspec.Struct, array_like=True):
    v: int
    rows: list[Member]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_MembersSnap)


class MembersTable:
    """Name -> ``Member``. Not thread-safe (the state machine's lock covers it)."""

    def __init__(self) -> None:
        self._rows: dict[str, Member] = {}

    def apply(self, index: int, cmd: MemberSet | MemberDelete) -> MemberChanged:
        if isinstance(cmd, MemberSet):
            existed = cmd.member.name in self._rows
            row = msgspec.structs.replace(cmd.member, added_index=index)
            self._rows[row.name] = row
            return MemberChanged(row, existed)
        return MemberChanged(None, self._rows.pop(cmd.name, None) is not None)

    def get(self, name: str) -> Member | None:
        return self._rows.get(name)

    def rows(self) -> list[Member]:
        """Every row, by name."""
        return [self._rows[name] for name in sorted(self._rows)]

    def by_raft(self) -> dict[str, Member]:
        return {row.raft: row for row in self._rows.values()}

    def __len__(self) -> int:
        return len(self._rows)

    def snapshot_struct(self) -> msgspec.Struct:
        return _MembersSnap(1, self.rows())

    def restore(self, data: bytes | memoryview) -> None:
        snap = _decoder.decode(data)
        if snap.v != 1:
            raise ValueError(f"members table version {snap.v}, this build knows 1")
        self._rows = {row.name: row for row in snap.rows}

    def encode(self) -> bytes:
        """The table alone (tests and digests)."""
        return _encoder.encode(self.snapshot_struct())
