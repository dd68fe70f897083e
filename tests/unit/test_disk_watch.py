"""``DiskWatch``: a failed write in the data directory makes the node exit loudly; a file
removed under it (a resync replacing the journal) does not."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from raftreg.node import disk_watch
from raftreg.node.disk_watch import EXIT_STATUS, DiskWatch


class Exited(Exception):
    pass


def _fake_exit(status: int) -> None:
    raise Exited(status)


def test_a_healthy_directory_passes_and_a_replaced_journal_is_followed(tmp_path: Path) -> None:
    watch = DiskWatch(tmp_path)
    assert watch.check_once() >= 0 and (tmp_path / "disk-probe").exists()  # no journal yet: fine
    (tmp_path / "raft.journal").write_bytes(b"x" * 100)
    watch.check_once()
    (tmp_path / "raft.journal").unlink()
    (tmp_path / "raft.journal").write_bytes(b"y")  # replaced: a new inode
    watch.check_once()


def test_an_eio_makes_the_node_exit_with_a_critical_log_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(disk_watch.os, "fsync", failing_fsync)
    monkeypatch.setattr(disk_watch.os, "_exit", _fake_exit)
    monkeypatch.setattr(disk_watch, "INTERVAL_S", 0.0)
    with caplog.at_level(logging.CRITICAL, "raftreg.node"), pytest.raises(Exited) as exited:
        DiskWatch(tmp_path)._run()
    assert exited.value.args == (EXIT_STATUS,)
    assert "event=disk_failed" in caplog.text


def test_a_missing_file_is_not_a_disk_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    watch = DiskWatch(tmp_path)
    calls = []

    def vanishing_open(path: os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        calls.append(path)
        if len(calls) > 1:
            watch.stop()
        raise FileNotFoundError(errno.ENOENT, "gone", str(path))

    monkeypatch.setattr(disk_watch.os, "open", vanishing_open)
    monkeypatch.setattr(disk_watch.os, "_exit", _fake_exit)
    monkeypatch.setattr(disk_watch, "INTERVAL_S", 0.0)
    with caplog.at_level(logging.WARNING, "raftreg.node"):
        watch._run()  # returns once stopped: no exit
    assert "event=disk_check_error" in caplog.text and "disk_failed" not in caplog.text
