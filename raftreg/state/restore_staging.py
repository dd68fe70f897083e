"""An online restore staged through the Raft log, chunk by chunk (``PUT /v1/snapshot``).

A backup's payload can be tens of MiB, far more than one entry may hold, so the proposer sends
``RestoreBegin`` (id, SHA-256, size, chunk count), then ``RestoreChunk``s in order, then
``RestoreCommit``. This part of the state machine holds the staging:
- ``RestoreBegin`` with a new id discards any other staging (the newer restore wins); with the
  id already staged it changes nothing (a retried proposal).
- ``RestoreChunk`` is kept only if it is the next one of the staged id (a retried one already
  kept, or one of a discarded restore, changes nothing).
- ``RestoreCommit`` takes the payload when every chunk arrived and the joined bytes have the
  announced size and SHA-256 (checked at apply, on every replica alike), and clears the staging
  either way; ``StagedResult.ok`` false with the reason otherwise. With ``abort`` it only clears
  the staging, if it is still that id's.
The staging is part of the state machine's snapshots, so a node that installs a log-compaction
snapshot in the middle of a staging holds the same chunks as the others. A staging abandoned
half-way stays until the next ``RestoreBegin`` or an aborting ``RestoreCommit`` (which the
proposer sends when its staging fails).
Pure and deterministic (hashlib's SHA-256 is a pure function).
"""

from __future__ import annotations

import hashlib

import msgspec

from raftreg.state.commands import RestoreBegin, RestoreChunk, RestoreCommit

STAGING_SNAPSHOT_VERSION = 1
# The parts of ``StateMachine`` a restore replaces; every other part is kept (the live cluster's
# membership, identities, the staging itself, anything added later unless listed here).
RESTORABLE = ("registry", "kv", "sessions", "acl")


class StagedResult(msgspec.Struct, frozen=True):
    """What a restore command did: ``ok`` false with ``reason`` when it changed nothing (or, for
    a commit, when the staging was dropped because it was incomplete or corrupted)."""

    ok: bool
    reason: str = ""
    restored: bool = False  # a commit that replaced the state


class _StagingSnap(msgspec.Struct, array_like=True):
    v: int
    id: str
    sha256: str
    size: int
    chunks: int
    data: list[bytes]


class RestoreStaging:
    def __init__(self) -> None:
        self._begin: RestoreBegin | None = None
        self._data: list[bytes] = []

    def begin(self, cmd: RestoreBegin) -> StagedResult:
        if self._begin is not None and self._begin.id == cmd.id:
            return StagedResult(True, "already staging this restore")
        self._begin, self._data = cmd, []
        return StagedResult(True)

    def chunk(self, cmd: RestoreChunk) -> StagedResult:
        begin = self._begin
        if begin is None or begin.id != cmd.id:
            return StagedResult(False, f"no restore {cmd.id!r} is staged (a newer one replaced it?)")
        if cmd.seq < len(self._data):
            return StagedResult(True, "chunk already staged")
        if cmd.seq != len(self._data) or cmd.seq >= begin.chunks:
            return StagedResult(False, f"chunk {cmd.seq} out of order (expected {len(self._data)})")
        self._data.append(cmd.data)
        return StagedResult(True)

    def take(self, cmd: RestoreCommit) -> bytes | StagedResult:
        """The verified payload of ``cmd.id`` (the staging is cleared), or why not."""
        begin = self._begin
        if begin is None or begin.id != cmd.id:
            return StagedResult(False, f"no restore {cmd.id!r} is staged (a newer one replaced it?)")
        data, self._begin, self._data = self._data, None, []
        if cmd.abort:
            return StagedResult(True, f"restore {cmd.id!r} discarded")
        if len(data) != begin.chunks:
            return StagedResult(False, f"restore {cmd.id!r} has {len(data)} of {begin.chunks} chunks")
        payload = b"".join(data)
        if len(payload) != begin.size or hashlib.sha256(payload).hexdigest() != begin.sha256:
            return StagedResult(False, f"restore {cmd.id!r}: the staged payload does not match its size and sha256")
        return payload

    @property
    def staged(self) -> tuple[str, int] | None:
        """(id, chunks staged so far), or None."""
        return (self._begin.id, len(self._data)) if self._begin is not None else None

    def snapshot_struct(self) -> _StagingSnap:
        b = self._begin
        if b is None:
            return _StagingSnap(STAGING_SNAPSHOT_VERSION, "", "", 0, 0, [])
        return _StagingSnap(STAGING_SNAPSHOT_VERSION, b.id, b.sha256, b.size, b.chunks, list(self._data))

    def restore(self, data: bytes | memoryview) -> None:
        snap = msgspec.msgpack.decode(data, type=_StagingSnap)
        if snap.v != STAGING_SNAPSHOT_VERSION:
            raise ValueError(f"restore staging snapshot version {snap.v}, this build knows {STAGING_SNAPSHOT_VERSION}")
        self._begin = RestoreBegin(snap.id, snap.sha256, snap.size, snap.chunks) if snap.id else None
        self._data = list(snap.data)
