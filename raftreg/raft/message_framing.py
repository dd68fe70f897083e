"""pysyncobj's messages framed as stored zlib streams: the same wire format, without the cost.

pysyncobj's ``TcpConnection.send`` frames every message as ``zlib.compress(pickle, 3)`` and the
receiver ``zlib.decompress``es it. ``zlib.compress`` sets up a full deflate state per call: 55 µs
for a 400-byte acknowledgement and 106 µs for a 3 KB AppendEntries of compressed entries on the
benchmark machine (2026-12-07), on every message to every peer; the entries are compressed once
already (``raftreg.raft.entry_compression``) and the rest is small. ``frame_messages_stored``
makes the module see ``StoredZlib`` instead: a zlib stream of stored blocks with a 512-byte
window and the smallest state, 1-4 µs per message. Any zlib reader (pysyncobj's
``zlib.decompress``, an older raftreg's) reads it, so nodes with and without it talk to each
other (a rolling upgrade needs nothing).
"""

from __future__ import annotations

import types
import zlib

import pysyncobj.tcp_connection

_WINDOW_BITS = 9  # the smallest window zlib writes a header for
_MEMORY_LEVEL = 1


def compress_stored(data: bytes, level: int = -1) -> bytes:
    """``data`` as a zlib stream of stored blocks (``level`` is ignored: pysyncobj passes 3)."""
    deflater = zlib.compressobj(0, zlib.DEFLATED, _WINDOW_BITS, _MEMORY_LEVEL)
    return deflater.compress(data) + deflater.flush()


StoredZlib = types.SimpleNamespace(compress=compress_stored, decompress=zlib.decompress)


def frame_messages_stored() -> None:
    """Make pysyncobj frame its messages with ``compress_stored`` (idempotent). Its
    ``tcp_connection`` uses ``zlib.compress`` and ``zlib.decompress`` only (``raftreg.raft.compat``
    checks the names)."""
    pysyncobj.tcp_connection.zlib = StoredZlib
