"""A data directory's incarnation id: the file ``incarnation`` beside the Raft files.

Contract:
- ``create_incarnation`` writes a new uuid4 atomically (temporary file, fsync, rename, fsync of
  the directory): a crash leaves the old file or the new one, never a torn one.
- The watchdog's wipe-and-resync (``raftreg.raft.storage.RaftFiles.wipe_keeping_vote``) deletes
  only the Raft files, so it keeps the incarnation: the node is still the same member.
- ``BOOT_ID`` identifies the running process, not the directory.
- ``has_raft_data`` says whether the directory holds a Raft log or snapshot (pysyncobj's journal
  or dump); a directory without them is "empty" for the start-up identity check
  (``raftreg.node.identity_check``).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from raftreg.raft.storage import RaftFiles

INCARNATION_FILE = "incarnation"
# This process's own random id, new at every start (unlike the incarnation, which outlives
# restarts): ``GET /v1/cluster`` shows it, so a rolling restart tells the restarted node from the
# process it replaced even where pids repeat (containers).
BOOT_ID = uuid.uuid4().hex


def incarnation_path(data_dir: Path) -> Path:
    return data_dir / INCARNATION_FILE


def read_incarnation(data_dir: Path) -> str | None:
    """The directory's incarnation id; None when there is no (or an empty) file."""
    try:
        text = incarnation_path(data_dir).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def create_incarnation(data_dir: Path) -> str:
    """Write a new incarnation id (replacing any) atomically and return it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    incarnation = str(uuid.uuid4())
    path = incarnation_path(data_dir)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, (incarnation + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return incarnation


def has_raft_data(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a Raft journal or snapshot."""
    files = RaftFiles(data_dir)
    return files.journal.exists() or files.dump.exists()
