"""``python -m raftreg.lab.stallfs ROOT MOUNT CONTROL``: a FUSE pass-through of ROOT at MOUNT
whose writes can be stalled or failed, for the lab's disk faults (fusepy).

CONTROL is a small text file read at most every 50 ms: ``ok``, ``stall <seconds>`` (every
write, truncate, create, rename and fsync sleeps that long first) or ``eio`` (each of them fails
with EIO). Reads always pass. Note that pysyncobj writes its journal through ``mmap``: those
writes reach this file system only as page write-back (or on ``msync``/``fsync``), which is
where a stall or an EIO shows.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from typing import Any

from fuse import FUSE, FuseOSError, Operations


class StallFS(Operations):  # type: ignore[misc]
    def __init__(self, root: str, control: str) -> None:
        self.root = root
        self.control = control
        self._mode = "ok"
        self._read_at = 0.0

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _gate(self) -> None:
        now = time.monotonic()
        if now - self._read_at > 0.05:
            try:
                with open(self.control) as f:
                    self._mode = f.read().strip() or "ok"
            except OSError:
                self._mode = "ok"
            self._read_at = now
        if self._mode == "eio":
            raise FuseOSError(errno.EIO)
        if self._mode.startswith("stall"):
            time.sleep(float(self._mode.split()[1]))

    # reads
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        st = os.lstat(self._path(path))
        return {key: getattr(st, key) for key in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink",
                                                  "st_size", "st_uid")}

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def open(self, path: str, flags: int) -> int:
        return os.open(self._path(path), flags)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    def statfs(self, path: str) -> dict[str, Any]:
        st = os.statvfs(self._path(path))
        return {key: getattr(st, key) for key in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                                                  "f_files", "f_flag", "f_frsize", "f_namemax")}

    def access(self, path: str, amode: int) -> None:
        if not os.access(self._path(path), amode):
            raise FuseOSError(errno.EACCES)

    def flush(self, path: str, fh: int) -> None:
        return None

    # writes (gated)
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._gate()
        return os.pwrite(fh, data, offset)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        self._gate()
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        self._gate()
        with open(self._path(path), "r+b") as f:
            f.truncate(length)

    def fsync(self, path: str, datasync: bool, fh: int) -> None:
        self._gate()
        os.fsync(fh)

    def rename(self, old: str, new: str) -> None:
        self._gate()
        os.rename(self._path(old), self._path(new))

    def unlink(self, path: str) -> None:
        self._gate()
        os.unlink(self._path(path))

    def mkdir(self, path: str, mode: int) -> None:
        self._gate()
        os.mkdir(self._path(path), mode)

    def rmdir(self, path: str) -> None:
        self._gate()
        os.rmdir(self._path(path))

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._path(path), mode)

    def utimens(self, path: str, times: Any = None) -> None:
        os.utime(self._path(path), times)


def main() -> None:
    root, mount, control = sys.argv[1:4]
    FUSE(StallFS(root, control), mount, foreground=True, nothreads=False)


if __name__ == "__main__":
    main()
