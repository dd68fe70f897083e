"""``DiskWatch``: a node whose data directory cannot be written exits loudly.

pysyncobj writes its Raft log through ``mmap`` and never calls ``msync`` or ``fsync``: an entry
counts as persisted (and is acknowledged to the leader) once it is in the page cache. A disk
that fails does not fail those writes; the error shows only at write-back, where nobody looks,
and the node would go on acknowledging entries its disk is dropping. Its other writes (the
``raft.journal.meta`` term/vote file, the journal's growth, the ``raft.dump`` snapshot, our own
ACL files) do fail with ``OSError``, in whichever thread makes them.

Policy (README "Testing on a real network"): every ``INTERVAL_S`` a thread ``fsync``s the
journal (which writes back the entries pysyncobj put in the page cache and reports their
write-back errors) and writes and ``fsync``s a probe file. On any write error it logs
``event=disk_failed`` at CRITICAL and exits the process at once (status ``EXIT_STATUS``), so the
node acknowledges nothing more; a supervisor (the chaos runner, systemd) restarts it, and it
catches up from the leader. A write that is merely slow (a stall) is logged as ``event=disk_slow``
and waited out: a slow node is late, not wrong, and Raft tolerates a slow minority.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger("raftreg.node")

INTERVAL_S = 0.5
SLOW_S = 1.0
EXIT_STATUS = 75  # EX_TEMPFAIL: the supervisor should restart the node once the disk is healthy
PROBE = "disk-probe"
JOURNAL = "raft.journal"
# Errors that mean the disk could not take a write (anything else, e.g. ENOENT during a resync
# that replaces the files, is logged and the next check runs as usual).
FAILED_WRITE_ERRNOS = {errno.EIO, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


class DiskWatch:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._stop = threading.Event()
        self._journal_fd: int | None = None
        self._journal_ino: int | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="disk-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def check_once(self) -> float:
        """One check; its duration in seconds. Raises OSError when a write failed."""
        started = time.monotonic()
        self._sync_journal()
        fd = os.open(self.data_dir / PROBE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{time.time():.3f}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return time.monotonic() - started

    def _sync_journal(self) -> None:
        path = self.data_dir / JOURNAL
        try:
            ino = path.stat().st_ino
        except FileNotFoundError:
            return
        if ino != self._journal_ino:  # first time, or pysyncobj replaced the file (a resync wipes it)
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = self._journal_ino = None
            try:
                self._journal_fd, self._journal_ino = os.open(path, os.O_RDONLY), ino
            except FileNotFoundError:
                return  # removed since the stat: nothing to sync
        assert self._journal_fd is not None
        os.fsync(self._journal_fd)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            try:
                took = self.check_once()
            except OSError as exc:
                if exc.errno not in FAILED_WRITE_ERRNOS:  # e.g. a file removed under us: not the disk
                    log.warning("event=disk_check_error data_dir=%s error=%r", self.data_dir, exc)
                    continue
                log.critical("event=disk_failed data_dir=%s error=%r: exiting so that this node acknowledges "
                             "nothing it may not have persisted; restart it once the disk is healthy",
                             self.data_dir, exc)
                logging.shutdown()
                os._exit(EXIT_STATUS)
            if took > SLOW_S:
                log.warning("event=disk_slow data_dir=%s seconds=%.2f", self.data_dir, took)
