"""JournalPages on pysyncobj's real FileJournal: written pages leave this process's RSS, the bytes
stay in the file."""

from __future__ import annotations

import types
from pathlib import Path

from pysyncobj.journal import FileJournal

from raftreg.raft.journal_pages import JournalPages, journal_mapping

ENTRY = b"e" * 60_000
ENTRIES = 100  # ~6 MB of journal


def mapped_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0]
        if "-" in first and ":" not in first:  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and first == "Rss:":
            total += int(line.split()[1])
    return total


def test_written_pages_are_dropped_and_the_journal_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    journal = FileJournal(str(path))
    syncobj = types.SimpleNamespace(_SyncObj__raftLog=journal)
    for idx in range(1, ENTRIES + 1):
        journal.add(ENTRY, idx, 1)
    assert mapped_kib(path) > 5_000, "the written journal pages should be resident before the drop"
    pages = JournalPages(period=60.0)
    pages.on_tick(syncobj)
    assert pages.drops == 1
    assert mapped_kib(path) <= 8, "the journal's pages are still mapped after the drop"
    journal.add(ENTRY, ENTRIES + 1, 1)  # writing again maps only what it touches
    assert mapped_kib(path) < 200
    pages.on_tick(syncobj)
    assert pages.drops == 1, "dropped again within the period"
    journal._destroy()
    again = FileJournal(str(path))
    assert len(again) == ENTRIES + 1
    assert again[0] == (ENTRY, 1, 1) and again[ENTRIES] == (ENTRY, ENTRIES + 1, 1)
    again._destroy()


def test_an_in_memory_journal_has_nothing_to_drop() -> None:
    syncobj = types.SimpleNamespace(_SyncObj__raftLog=[])
    assert journal_mapping(syncobj) is None
    pages = JournalPages()
    pages.on_tick(syncobj)
    assert pages.drops == 0
