"""When to compact the Raft log: by the bytes it holds, relative to the size of the state.

pysyncobj compacts when its log holds more than ``logCompactionMinEntries`` entries or after
``logCompactionMinTime``. Counting entries costs more as the registry grows: every compaction
encodes and gzips the whole state in a forked child (100,000 instances: ~40 MB encoded, ~0.5 s
of CPU), so a fixed entry count makes the snapshot cost per write grow with the registry, while
the log itself (held twice by pysyncobj: a Python list and the mmap'd journal) is bounded only
loosely, since an entry carries anything from one command to a whole group commit.

``CompactionPolicy`` asks for a compaction once the bytes the log stores since the last request
reach ``budget = max(min_bytes, ratio x the state's estimated size)``, the state's size being
its item count times the average encoded command seen so far (the dump file is gzipped: its
size says little), or once the encoded commands since then reach ``REPLAY_FACTOR x budget``.
Stored and encoded bytes differ when entries are compressed (4-6 times fewer stored bytes for a
group commit of registrations: ``raftreg.raft.entry_compression``). Then:
- the log's memory is bounded by ``budget`` plus one entry;
- a restart replays at most ``REPLAY_FACTOR x budget`` bytes of commands after the snapshot;
- each byte of command causes about ``1 / (ratio x min(compression, REPLAY_FACTOR))`` bytes of
  snapshot encoding, whatever the registry's size: the compaction cost per write stays flat as
  the registry grows, and compressed entries make it several times smaller for the same memory.
(Consul's ``snapshot_threshold`` and etcd's ``--snapshot-count`` count entries; a byte budget
fits a log whose entries vary from one command to thousands.)

Tick thread only: ``on_entry`` from apply, ``due``/``requested`` from a tick; ``state_items`` is
called there too (the state is not changing meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable

# Python's own cost of holding one entry in pysyncobj's log list, beyond its bytes.
ENTRY_OVERHEAD_BYTES = 100
# The encoded commands a log may hold between compactions, in budgets (module docstring).
REPLAY_FACTOR = 4


class CompactionPolicy:
    """Byte budget for the Raft log between compactions (see the module docstring)."""

    def __init__(self, state_items: Callable[[], int], *, min_bytes: int, ratio: float) -> None:
        self._state_items = state_items
        self.min_bytes = min_bytes
        self.ratio = ratio
        self.bytes_since = 0  # bytes stored in the log since compaction was last requested
        self.encoded_since = 0  # their commands' encoded bytes (more when entries are compressed)
        self.requests = 0
        self._next_check = min_bytes
        self._bytes_total = 0
        self._commands_total = 0

    def on_entry(self, stored: int, encoded: int, commands: int) -> None:
        """An entry holding ``commands`` commands was applied: ``stored`` bytes in the log (until
        the next compaction), ``encoded`` bytes once expanded (``stored`` when not compressed)."""
        self.bytes_since += stored + ENTRY_OVERHEAD_BYTES
        self.encoded_since += encoded
        self._bytes_total += encoded
        self._commands_total += commands

    def used(self) -> int:
        """How much of the budget the log uses: its stored bytes, or its encoded bytes divided by
        ``REPLAY_FACTOR`` when that is more."""
        return max(self.bytes_since, self.encoded_since // REPLAY_FACTOR)

    def state_bytes(self) -> int:
        """Estimated encoded size of the state: items x average bytes per command."""
        if self._commands_total == 0:
            return 0
        return self._state_items() * self._bytes_total // self._commands_total

    def budget(self) -> int:
        """Bytes the log may hold before a compaction is due."""
        return max(self.min_bytes, int(self.ratio * self.state_bytes()))

    def due(self) -> bool:
        """True when the log has used its budget. Cheap: the budget is recomputed at most once
        per ``min_bytes / 4`` appended bytes."""
        used = self.used()
        if used < self._next_check:
            return False
        budget = self.budget()
        if used >= budget:
            return True
        self._next_check = min(budget, used + self.min_bytes // 4)
        return False

    def requested(self) -> None:
        """A compaction was requested: start counting again."""
        self.bytes_since = self.encoded_since = 0
        self.requests += 1
        self._next_check = self.min_bytes
