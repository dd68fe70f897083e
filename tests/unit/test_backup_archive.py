"""The snapshot file format (raftreg.backup.archive), the restorable part of the state
(raftreg.state.restorable), the seeded pysyncobj dump (raftreg.raft.seed) and the Raft password
a cluster id implies (raftreg.raft.identity)."""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import pytest

from raftreg.backup.archive import (
    FORMAT_VERSION,
    ArchiveError,
    Counts,
    Manifest,
    Member,
    read_archive,
    read_manifest,
    sha256_hex,
    write_archive,
)
from raftreg.models import Instance
from raftreg.raft.identity import raft_password, read_cluster_id
from raftreg.raft.seed import seed_data_dir
from raftreg.raft.snapshot import SnapshotBlob
from raftreg.state.commands import KVSet, Register
from raftreg.state.machine import StateMachine
from raftreg.state.restorable import RESTORABLE, adopt, counts, decode_payload, encode_payload


def filled_state() -> StateMachine:
    state = StateMachine()
    for i in range(50):
        state.apply(i + 1, Register(Instance(service="cart", id=f"i{i}", address="10.0.0.1", port=8000 + i)))
    state.apply(51, KVSet(key="app/x", value=b"1"))
    return state


def manifest_for(payload: bytes, **changes: object) -> Manifest:
    fields: dict[str, object] = dict(
        format_version=FORMAT_VERSION, cluster="c", index=51, term=2, members=[Member("n1", "a:1", "a:2")],
        created="2026-01-01T00:00:00+00:00", raftreg_version="0", counts=Counts(instances=50),
        sha256=sha256_hex(payload), size=len(payload))
    fields.update(changes)
    return Manifest(**fields)  # type: ignore[arg-type]


def archive_of(payload: bytes, **changes: object) -> bytes:
    out = io.BytesIO()
    write_archive(out, manifest_for(payload, **changes), payload)
    return out.getvalue()


def test_round_trip_restores_the_same_state() -> None:
    state = filled_state()
    payload = encode_payload(state)
    manifest, back = read_archive(archive_of(payload))
    assert back == payload and manifest.index == 51 and manifest.members[0].name == "n1"
    assert read_manifest(archive_of(payload)) == manifest
    assert decode_payload(back).snapshot() == state.snapshot()
    assert counts(state) == {"services": 1, "instances": 50, "keys": 1, "sessions": 0, "tokens": 0, "policies": 0}


def test_writing_refuses_a_manifest_that_does_not_describe_the_payload() -> None:
    with pytest.raises(ValueError):
        write_archive(io.BytesIO(), manifest_for(b"other"), b"payload")


def _flip_in_payload(archive: bytes, marker: bytes) -> bytes:
    raw = bytearray(gzip.decompress(archive))
    raw[raw.index(marker)] ^= 0xFF
    return gzip.compress(bytes(raw))


@pytest.mark.parametrize("damage, message", [
    (lambda a: _flip_in_payload(a, b"10.0.0.1"), "sha256"),
    (lambda a: a[: len(a) // 2], "truncated"),
    (lambda a: a[:-8], "truncated"),
    (lambda a: b"not a snapshot at all", "not a readable snapshot"),
    (lambda a: gzip.compress(gzip.decompress(a).replace(b'"format_version":1', b'"format_version":9')),
     "format_version 9"),
])
def test_damaged_archives_are_refused_with_the_reason(damage: object, message: str) -> None:
    archive = archive_of(encode_payload(filled_state()))
    with pytest.raises(ArchiveError, match=message):
        read_archive(damage(archive))  # type: ignore[operator]


def test_adopt_replaces_the_restorable_parts_and_keeps_the_others() -> None:
    target, source = StateMachine(), filled_state()
    target.extra_part = object()  # type: ignore[attr-defined]  # a part added later, not listed
    kept = target.extra_part  # type: ignore[attr-defined]
    adopt(target, source)
    assert all(getattr(target, part) is getattr(source, part) for part in RESTORABLE)
    assert target.extra_part is kept  # type: ignore[attr-defined]


def test_seeded_dump_holds_the_state_at_the_index(tmp_path: Path) -> None:
    payload = encode_payload(filled_state())
    assert seed_data_dir(tmp_path / "n1", payload, 51, "cid", ["127.0.0.1:1", "127.0.0.1:2"]) == 51
    with gzip.open(tmp_path / "n1" / "raft.dump") as f:
        data, last, before, cluster = pickle.load(f)
    blob = data[1]["registry"]
    assert isinstance(blob, SnapshotBlob) and blob.data == payload
    assert (last[1], last[2], before[1], before[2]) == (51, 0, 50, 0)
    assert {node.address for node in cluster} == {"127.0.0.1:1", "127.0.0.1:2"}
    assert read_cluster_id(tmp_path / "n1") == "cid"
    with pytest.raises(FileExistsError):
        seed_data_dir(tmp_path / "n1", payload, 51, "cid", [])


def test_a_cluster_id_changes_the_raft_password(tmp_path: Path) -> None:
    assert raft_password("s", tmp_path) == "s"  # no cluster_id: today's password
    (tmp_path / "cluster_id").write_text("one\n")
    first = raft_password("s", tmp_path)
    (tmp_path / "cluster_id").write_text("two\n")
    assert first not in ("s", raft_password("s", tmp_path))
