"""The registry's snapshot survives pysyncobj's pickling, compressed, and old dumps stay readable;
pysyncobj writes the dump without compressing it a second time."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import pysyncobj.serializer
import pytest

from raftreg.models import Instance
from raftreg.raft.snapshot import _STORED_GZIP, SnapshotBlob, _blob_from_bytes, store_dumps_uncompressed
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


def test_pysyncobj_writes_the_dump_in_stored_blocks_and_reads_it_back(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pysyncobj.serializer, "gzip", gzip)  # as imported; restored after the test
    store_dumps_uncompressed()
    assert pysyncobj.serializer.gzip is _STORED_GZIP
    dump = tmp_path / "raft.dump"
    writer = pysyncobj.serializer.Serializer(str(dump), 1 << 20, False, None, None, None)
    members = "m" * 100_000  # compressible: gzip at any level but 0 would shrink it to a few hundred bytes
    data = ({"registry": SnapshotBlob(filled_registry())}, (7, 2), members)
    writer.serialize(data, 7)
    assert dump.stat().st_size >= len(pickle.dumps(data)), "no second compression"
    back = pysyncobj.serializer.Serializer(str(dump), 1 << 20, False, None, None, None).deserialize()
    assert back[0]["registry"].data == filled_registry().snapshot()
    with gzip.open(dump) as plain:  # any gzip reader reads it (an older raftreg's too)
        assert pickle.load(plain)[1] == (7, 2)
