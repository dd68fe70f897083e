"""Keeping pysyncobj's journal file out of the node's resident memory.

pysyncobj holds its log twice: entries in a Python list (the copy it reads) and in ``raft.journal``
through a shared ``mmap`` (read back only when a node starts). Every page it writes stays mapped,
so the log's bytes count twice in the node's RSS, and the more the log may hold between
compactions (``raft.log_compaction_ratio``) the more memory the mapping keeps: 11 MB of a node's
145 MB RSS at 246,000 instances with the default ratio (measured 2026-12-07).

``JournalPages.on_tick`` (from the Raft tick) unmaps the journal's pages at most every
``period`` seconds with ``madvise(MADV_DONTNEED)``. On a shared file mapping this discards
nothing: the written bytes are in the page cache, which the kernel writes back as before
(``raftreg.node.disk_watch`` still fsyncs the journal), and the next access of a page maps it
again from the page cache (madvise(2)). It is pysyncobj's private state (``FileJournal`` and
``ResizableFile``, checked by ``raftreg.raft.compat``); a node without a journal file (tests) has
nothing to drop.
"""

from __future__ import annotations

import mmap
import time
from typing import Any

DROP_PERIOD_S = 1.0


def journal_mapping(syncobj: Any) -> mmap.mmap | None:
    """The live ``mmap`` of the SyncObj's journal file, or None (an in-memory journal)."""
    journal = getattr(syncobj, "_SyncObj__raftLog", None)
    resizable = getattr(journal, "_FileJournal__journalFile", None)
    mapping = getattr(resizable, "_ResizableFile__mm", None)
    return mapping if isinstance(mapping, mmap.mmap) else None


class JournalPages:
    """Unmaps the journal's pages from this process at most once per ``period`` (module docstring)."""

    def __init__(self, period: float = DROP_PERIOD_S) -> None:
        self.period = period
        self.drops = 0
        self._next = 0.0

    def on_tick(self, syncobj: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.period
        mapping = journal_mapping(syncobj)
        if mapping is None:
            return
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (ValueError, OSError):  # closed while pysyncobj grows the file: next time
            return
        self.drops += 1
