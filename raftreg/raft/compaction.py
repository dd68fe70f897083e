"""When to compact the Raft log: by the bytes it holds, relative to the size of the state.

pysyncobj compacts when its log holds more than ``logCompactionMinEntries`` entries or after
``logCompactionMinTime``. Counting entries costs more as the registry grows: every compaction
encodes and gzips the whole state in a forked child (100,000 instances: ~40 MB encoded, ~0.5 s
of CPU), so a fixed entry count makes the snapshot cost per write grow with the registry, while
the log itself (held twice by pysyncobj: a Python list and the mmap'd journal) is bounded only
loosely, since an entry carries anything from one command to a whole group commit.

``CompactionPolicy`` asks for a compaction once the bytes appended since the last request reach
``max(min_bytes, ratio x the state's estimated size)``, the state's size being its item count
times the average encoded command seen so far (the dump file is gzipped: its size says little).
Then:
- the log's memory is bounded by ``max(min_bytes, ratio x state)`` plus one entry;
- each byte of log causes about ``1 / ratio`` bytes of snapshot encoding, whatever the
  registry's size: the compaction cost per write stays flat as the registry grows.
(Consul's ``snapshot_threshold`` and etcd's ``--snapshot-count`` count entries; a byte budget
fits a log whose entries vary from one command to thousands.)

Tick thread only: ``on_entry`` from apply, ``due``/``requested`` from a tick; ``state_items`` is
called there too (the state is not changing meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable

# Python's own cost of holding one entry in pysyncobj's log list, beyond its bytes.
ENTRY_OVERHEAD_BYTES = 100


class CompactionPolicy:
    """Byte budget for the Raft log between compactions (see the module docstring)."""

    def __init__(self, state_items: Callable[[], int], *, min_bytes: int, ratio: float) -> None:
        self._state_items = state_items
        self.min_bytes = min_bytes
        self.ratio = ratio
        self.bytes_since = 0  # bytes appended to the log since compaction was last requested
        self.requests = 0
        self._next_check = min_bytes
        self._bytes_total = 0
        self._commands_total = 0

    def on_entry(self, nbytes: int, commands: int) -> None:
        """An entry of ``nbytes`` holding ``commands`` commands was applied (it stays in the log
        until the next compaction)."""
        self.bytes_since += nbytes + ENTRY_OVERHEAD_BYTES
        self._bytes_total += nbytes
        self._commands_total += commands

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
        if self.bytes_since < self._next_check:
            return False
        budget = self.budget()
        if self.bytes_since >= budget:
            return True
        self._next_check = min(budget, self.bytes_since + self.min_bytes // 4)
        return False

    def requested(self) -> None:
        """A compaction was requested: start counting again."""
        self.bytes_since = 0
        self.requests += 1
        self._next_check = self.min_bytes
