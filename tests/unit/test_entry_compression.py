"""Raft entries stored compressed (raftreg.raft.entry_compression): smaller, and read back exactly."""

from __future__ import annotations

import os
import zlib

import pytest

from raftreg.models import Instance
from raftreg.raft import entry_compression
from raftreg.raft.entry_compression import COMPRESS_FROM_BYTES, compress_entry, expand_entry
from raftreg.state.commands import (
    ENVELOPE_VERSION,
    Command,
    Envelope,
    Register,
    SetCheckStatus,
    UnsupportedEntry,
    decode_envelope,
    encode_entry,
)


def registrations(n: int) -> list[Command]:
    return [Register(Instance("cart", f"cart-{i}", f"10.0.{i // 250}.{i % 250}", 8080 + i, meta={"zone": "a"}))
            for i in range(n)]


def test_a_group_commit_entry_is_stored_compressed_and_expands_to_its_envelope() -> None:
    raw = encode_entry(registrations(50), "3f2a9c", 7)
    assert len(raw) >= COMPRESS_FROM_BYTES
    stored = compress_entry(raw)
    assert len(stored) * 4 < len(raw), "a batch of registrations shrinks several times"
    assert stored[0] == 0x78 and raw[0] & 0xF0 == 0x90, "a zlib stream and a msgpack array tell themselves apart"
    assert expand_entry(stored) == raw
    assert decode_envelope(expand_entry(stored)) == Envelope(ENVELOPE_VERSION, registrations(50), "3f2a9c", 7)


def test_small_or_incompressible_entries_are_stored_as_they_are() -> None:
    small = encode_entry(registrations(1))
    assert len(small) < COMPRESS_FROM_BYTES
    assert compress_entry(small) is small and expand_entry(small) is small
    hex_note = encode_entry([SetCheckStatus("s", "i", 3, "critical", os.urandom(3000).hex())])
    assert expand_entry(compress_entry(hex_note)) == hex_note
    noise = b"\x94" + os.urandom(4000)  # compress_entry looks at bytes only
    assert compress_entry(noise) is noise, "zlib would make it longer: kept as it is"


def test_a_corrupt_or_oversized_compressed_entry_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = compress_entry(encode_entry(registrations(50)))
    with pytest.raises(UnsupportedEntry, match="corrupt"):
        expand_entry(stored[:2] + b"\xff" * 40)
    with pytest.raises(UnsupportedEntry, match="incomplete"):
        expand_entry(stored[: len(stored) // 2])
    monkeypatch.setattr(entry_compression, "MAX_ENTRY_EXPANSION", 1000)
    with pytest.raises(UnsupportedEntry, match="over 1000 bytes"):
        expand_entry(zlib.compress(b"\x90" * 5000, 1))
