"""pysyncobj's small messages framed as stored zlib streams (raftreg.raft.message_framing): what a
node sends is what any zlib reader reads, and importing ``raftreg.raft`` installs it (every
cluster test then runs its Raft traffic through it)."""

from __future__ import annotations

import os
import pickle
import zlib

import pysyncobj.tcp_connection
import pytest

from raftreg.raft.message_framing import STORED_UP_TO, StoredZlib, compress_stored, frame_messages_stored

MESSAGE = pickle.dumps({"type": "append_entries", "term": 3, "commit_index": 99, "prevLogIdx": 99, "prevLogTerm": 3,
                        "entries": [(b'{"address":"10.0.0.1","port":8080}' * 20, 100, 3), (os.urandom(3000), 101, 3)]})


@pytest.mark.parametrize("data", [b"", b"x", MESSAGE, os.urandom(200_000)])
def test_any_zlib_reader_reads_a_stored_frame(data: bytes) -> None:
    framed = compress_stored(data, 3)
    assert zlib.decompress(framed) == data  # pysyncobj's reader, also in an older raftreg
    assert zlib.decompressobj().decompress(framed) == data


def test_a_small_message_is_framed_stored_and_a_large_one_compressed() -> None:
    # Stored blocks: the frame is the data plus a few bytes of headers, never smaller.
    assert len(MESSAGE) < STORED_UP_TO
    assert len(MESSAGE) < len(compress_stored(MESSAGE)) <= len(MESSAGE) + 64
    assert len(zlib.compress(MESSAGE, 3)) < len(MESSAGE)  # what pysyncobj did: it did compress
    catch_up = MESSAGE * (STORED_UP_TO // len(MESSAGE) + 1)
    assert compress_stored(catch_up, 3) == zlib.compress(catch_up, 3)  # as pysyncobj did


def test_importing_raftreg_raft_frames_pysyncobj_messages_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    import raftreg.raft  # noqa: F401  (installs it at import)

    assert pysyncobj.tcp_connection.zlib is StoredZlib  # type: ignore[attr-defined]
    monkeypatch.setattr(pysyncobj.tcp_connection, "zlib", zlib)
    frame_messages_stored()
    assert pysyncobj.tcp_connection.zlib is StoredZlib  # type: ignore[attr-defined]
    frame_messages_stored()  # idempotent
    assert pysyncobj.tcp_connection.zlib.decompress is zlib.decompress  # type: ignore[attr-defined]
