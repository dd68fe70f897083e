"""Raft entries stored compressed: fewer bytes of log per command, so fewer compactions.

pysyncobj keeps its whole log in memory (and in its journal) until a compaction, which encodes
the whole state in a forked child (``raftreg.raft.compaction``). The log's bytes between two
compactions are therefore a node's memory, and the commands the log may hold for that memory
decide how often the state is encoded again: at 100,000 instances the compactions at the 4 MiB
floor had made a write about a fifth slower than on an empty registry (``benchmarks/README.md``).

A group-commit entry of registrations compresses 4-6 times with zlib level 1 (measured
2026-12-07: 100 registrations with unique ids, addresses and commit hashes, 26 kB -> 4.7 kB,
~1 µs per command to compress, ~0.3 µs to expand; the benchmarks' bodies, identical but for the
id, 25 times). ``compress_entry`` (the proposer, ``raft.compress_entries_from_bytes``) stores
such an entry as a zlib stream; ``expand_entry`` (apply, on every node) gives back the
envelope's bytes.

A zlib stream's first byte is ``0x78`` (deflate, 32 KiB window); an envelope is a msgpack array,
whose first byte is ``0x90``-``0x9f``: the two tell themselves apart without a marker. An entry
under ``COMPRESS_FROM_BYTES`` (the default; a lone command) is stored as it is: zlib gains
little there and costs ~8 µs. Data format 3 (``raftreg.raft.data_format``): an older release cannot read these
entries.
"""

from __future__ import annotations

import zlib

from raftreg.state.commands import UnsupportedEntry

COMPRESS_FROM_BYTES = 2048  # smaller entries are stored as they are (``raft.compress_entries_from_bytes``)
MAX_ENTRY_EXPANSION = 64 * 1024 * 1024  # the most bytes one stored entry may expand to
_ZLIB_FIRST_BYTE = 0x78


def compress_entry(raw: bytes, from_bytes: int = COMPRESS_FROM_BYTES) -> bytes:
    """The bytes to store for the entry ``raw`` (an envelope's encoding): zlib-compressed when it
    is at least ``from_bytes`` long and compression makes it shorter, else ``raw``."""
    if len(raw) < from_bytes:
        return raw
    packed = zlib.compress(raw, 1)
    return packed if len(packed) < len(raw) else raw


def expand_entry(stored: bytes) -> bytes:
    """The envelope bytes of a stored entry (``compress_entry``'s inverse; an uncompressed entry is
    returned as it is). ``UnsupportedEntry`` for a corrupt stream or one that expands beyond
    ``MAX_ENTRY_EXPANSION``."""
    if not stored or stored[0] != _ZLIB_FIRST_BYTE:
        return stored
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(stored, MAX_ENTRY_EXPANSION)
    except zlib.error as exc:
        raise UnsupportedEntry(f"corrupt compressed log entry: {exc}") from exc
    if inflater.unconsumed_tail or not inflater.eof:
        raise UnsupportedEntry(f"compressed log entry incomplete or over {MAX_ENTRY_EXPANSION} bytes")
    return raw
