"""Commands in network namespaces, and entering one from this process.

Everything the lab does to the network is a plain command (``ip``, ``nft``, ``iptables``,
``tc``) run inside a namespace the lab created (``ip netns exec <ns> ...``); the root
namespace's interfaces, routes and firewall are never touched. ``entered(ns)`` moves the
*calling thread* of this process into a namespace (``setns(2)``), so that the HTTP calls of the
chaos workload and of the checks go over the lab's bridge; threads started meanwhile inherit it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"


class LabError(RuntimeError):
    """A lab command failed, or the lab cannot run here (not root, a tool missing)."""


def require_root() -> None:
    """LabError with a clear message unless this process is root and has the tools."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root: it creates network namespaces, nft/iptables rules and qdiscs "
                       "(run as root, e.g. sudo .venv/bin/raftreg lab up)")
    missing = [tool for tool in ("ip", "nft", "iptables", "tc") if shutil.which(tool) is None]
    if missing:
        raise LabError(f"the lab needs {', '.join(missing)}: run .ci/ensure-lab (installs nftables, iptables, "
                       "iproute2, fuse3)")


def run(cmd: Sequence[str], *, check: bool = True, stdin: str | None = None, timeout: float = 20.0) -> str:
    """Run one command; its stdout. ``check``: a non-zero exit raises LabError with stderr."""
    proc = subprocess.run(list(cmd), input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def in_ns(ns: str, *cmd: str, check: bool = True, stdin: str | None = None) -> str:
    """Run ``cmd`` inside namespace ``ns``."""
    return run(["ip", "netns", "exec", ns, *cmd], check=check, stdin=stdin)


def exec_prefix(ns: str) -> list[str]:
    """The argv prefix that runs a program inside ``ns`` (``ip netns exec`` execs it: same pid)."""
    return ["ip", "netns", "exec", ns]


def namespaces() -> list[str]:
    """Every named network namespace on the machine."""
    out = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def pids_in(ns: str) -> list[int]:
    """The processes whose network namespace is ``ns``."""
    out = run(["ip", "netns", "pids", ns], check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise LabError(f"setns failed: {os.strerror(err)}")


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Run the body with the calling thread in network namespace ``ns``; back to the thread's
    own namespace after. Sockets opened inside stay in ``ns``; threads started inside stay there."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
