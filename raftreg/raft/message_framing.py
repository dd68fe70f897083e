"""pysyncobj's small messages framed as stored zlib streams: the same wire format, without the cost.

pysyncobj's ``TcpConnection.send`` frames every message as ``zlib.compress(pickle, 3)`` and the
receiver ``zlib.decompress``es it. ``zlib.compress`` sets up a full deflate state per call: 55 µs
for a 400-byte acknowledgement and 106 µs for a 3 KB AppendEntries of compressed entries on the
benchmark machine (2026-12-07), on every message to every peer; the entries are compressed once
already (``raftreg.raft.entry_compression``) and the rest is small. ``frame_messages_stored``
makes the module see ``StoredZlib`` instead: a message under ``STORED_UP_TO`` bytes becomes a
zlib stream of stored blocks with a 512-byte window and the smallest state (1-4 µs); a larger
one (a follower's catch-up, up to 16 MiB of entries in one message) is compressed as pysyncobj
did, at its level: it saves more bytes than it costs, and pysyncobj's send path copies its whole
write buffer on every partial send, so a large message must stay small on the wire (sent
uncompressed, 85 entries of 128 KiB took longer than 20 s to reach the followers:
tests/cluster/test_large_entries.py). Any zlib reader (pysyncobj's ``zlib.decompress``, an
older raftreg's) reads both, so nodes with and without it talk to each other (a rolling upgrade
needs nothing).
"""

from __future__ import annotations

import types
import zlib

import pysyncobj.tcp_connection

STORED_UP_TO = 64 * 1024  # bytes of pickled message
_WINDOW_BITS = 9  # the smallest window zlib writes a header for
_MEMORY_LEVEL = 1


def compress_stored(data: bytes, level: int = 3) -> bytes:
    """``data`` as a zlib stream: stored blocks under ``STORED_UP_TO`` bytes, else compressed at
    ``level`` (pysyncobj passes 3)."""
    if len(data) >= STORED_UP_TO:
        return zlib.compress(data, level)
    deflater = zlib.compressobj(0, zlib.DEFLATED, _WINDOW_BITS, _MEMORY_LEVEL)
    return deflater.compress(data) + deflater.flush()


StoredZlib = types.SimpleNamespace(compress=compress_stored, decompress=zlib.decompress)


def frame_messages_stored() -> None:
    """Make pysyncobj frame its messages with ``compress_stored`` (idempotent). Its
    ``tcp_connection`` uses ``zlib.compress`` and ``zlib.decompress`` only (``raftreg.raft.compat``
    checks the names)."""
    pysyncobj.tcp_connection.zlib = StoredZlib
