"""The registry's snapshot survives pysyncobj's pickling, compressed, and old dumps stay readable."""

from __future__ import annotations

import pickle
from typing import Any

from raftreg.models import Instance
from raftreg.raft.snapshot import SnapshotBlob, _blob_from_bytes
from raftreg.state.commands import Register
from raftreg.state.registry import Registry


def filled_registry() -> Registry:
    reg = Registry()
    for i in range(200):
        reg.apply(i + 1, Register(Instance(service="cart", id=f"i{i}", address="10.0.0.1", port=8000 + i)))
    return reg


def test_blob_round_trips_compressed() -> None:
    reg = filled_registry()
    raw = reg.snapshot()
    pickled = pickle.dumps({"registry": SnapshotBlob(reg)})
    assert len(pickled) < len(raw) / 2, "the blob travels compressed"
    blob = pickle.loads(pickled)["registry"]
    assert isinstance(blob, SnapshotBlob) and blob.data == raw
    copy = Registry()
    copy.restore(blob.data)
    assert copy.snapshot() == raw


class _OldBlob:
    """Pickles as a blob did before compression: ``_blob_from_bytes(raw msgpack)``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_blob_from_bytes, (self.data,))


def test_dump_from_before_compression_still_loads() -> None:
    raw = filled_registry().snapshot()
    loaded = pickle.loads(pickle.dumps(_OldBlob(raw)))
    assert isinstance(loaded, SnapshotBlob) and loaded.data == raw
