"""The replicated state machine: the registry and the key/value store behind one ``apply``.

Contract (hashicorp/raft's FSM, as each part's):
- ``apply(index, cmd)`` hands each command to the part it belongs to; deterministic, never raises
  (a failure is returned as ``Failed``).
- ``snapshot()`` encodes every part, deterministically; ``restore()`` reads this build's format
  and every older one. Version 1 was the registry alone (``Registry.snapshot()``); version 2 is
  ``[2, registry, kv]``. Restore keeps each part encoded until that part decodes it, one stored
  object at a time (a restarted node's peak memory stays close to its final size).
"""

from __future__ import annotations

import msgspec

from raftreg.state.commands import Command, KVDelete, KVSet, KVTxn
from raftreg.state.kv import KVResult, KVStore
from raftreg.state.registry import Failed, Registry
from raftreg.state.registry import Result as RegistryResult

SNAPSHOT_VERSION = 2

Result = RegistryResult | KVResult


class _Head(msgspec.Struct, array_like=True):
    """The first field of every snapshot version (the rest is ignored when decoding this)."""

    v: int


class _Snapshot(msgspec.Struct, array_like=True):
    v: int
    registry: msgspec.Struct
    kv: msgspec.Struct


class _SnapshotRaw(msgspec.Struct, array_like=True):
    v: int
    registry: msgspec.Raw
    kv: msgspec.Raw


_encoder = msgspec.msgpack.Encoder()
_head_decoder = msgspec.msgpack.Decoder(_Head)
_raw_decoder = msgspec.msgpack.Decoder(_SnapshotRaw)


class StateMachine:
    """Every replicated part. Not thread-safe: the caller serialises apply/restore with readers."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.kv = KVStore()

    def apply(self, index: int, cmd: Command) -> Result:
        """Apply ``cmd`` committed at Raft ``index``. Never raises."""
        if isinstance(cmd, KVSet | KVDelete | KVTxn):
            try:
                return self.kv.apply(index, cmd)
            except Exception as exc:  # apply must never raise (research/pysyncobj.md §4.1)
                return Failed(f"{type(exc).__name__}: {exc}")
        return self.registry.apply(index, cmd)

    def item_count(self) -> int:
        """Stored objects of every part (the log-compaction budget scales with it)."""
        return self.registry.instance_count() + self.kv.item_count()

    def snapshot(self) -> bytes:
        """The whole state as compact, deterministic msgpack bytes (the current version)."""
        return _encoder.encode(_Snapshot(SNAPSHOT_VERSION, self.registry.snapshot_struct(),
                                         self.kv.snapshot_struct()))

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the one ``data`` describes (any known version);
        ``ValueError`` for an unknown one."""
        version = _head_decoder.decode(data).v
        registry, kv = Registry(), KVStore()
        if version == 1:
            registry.restore(data)
        elif version == SNAPSHOT_VERSION:
            parts = _raw_decoder.decode(data)
            registry.restore(memoryview(parts.registry))
            kv.restore(memoryview(parts.kv))
        else:
            raise ValueError(f"snapshot version {version}, this build knows 1 to {SNAPSHOT_VERSION}")
        self.registry, self.kv = registry, kv
