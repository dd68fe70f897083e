"""Reading /proc (Linux only): CPU ticks and start time of a process, its RSS, the machine's busy
ticks and uptime; also the load average and the open-file limit. Every per-process reader
returns None when the process is gone (or never existed) instead of raising."""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


def _stat_fields(pid: int | None) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 on), or None if it is gone."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def proc_stat(pid: int | None) -> tuple[int, int] | None:
    """(utime + stime, start time) of ``pid`` from /proc/<pid>/stat, both in clock ticks (the start
    counted since boot), or None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return int(fields[11]) + int(fields[12]), int(fields[19])


def children_cpu_ticks(pid: int | None) -> int | None:
    """cutime + cstime of ``pid`` (CPU of its children that exited and were waited for, e.g. a
    node's snapshot forks) in clock ticks, or None if it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[13]) + int(fields[14])


def cpu_ticks(pid: int | None) -> int | None:
    """utime + stime of ``pid`` in clock ticks, or None if it is gone."""
    st = proc_stat(pid)
    return None if st is None else st[0]


def _machine_fields() -> list[int]:
    """The "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal ... (ticks)."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks over all CPUs from /proc/stat. Idle, iowait and steal are not
    busy: steal is time the hypervisor gave to another guest (``steal_ticks``)."""
    values = _machine_fields()
    idle = values[3] + values[4] + (values[7] if len(values) > 7 else 0)
    return sum(values) - idle, sum(values)


def steal_ticks() -> tuple[int, int]:
    """(steal, total) clock ticks over all CPUs from /proc/stat. Steal is time this virtual
    machine's CPUs had work to run while the hypervisor ran another guest: it slows every process
    here at once, and on a shared host it comes and goes by the minute (2026-12-07: from under 1 %
    to 38 % of the machine within an hour), which is what makes one run of a benchmark differ from
    the next by up to 2x. Compare ``steal_pct(mark)`` across runs before comparing their rates."""
    values = _machine_fields()
    return (values[7] if len(values) > 7 else 0), sum(values)


def steal_pct(mark: tuple[int, int]) -> float:
    """Percent of the machine's time stolen by the hypervisor since ``mark`` (``steal_ticks()``)."""
    steal, total = steal_ticks()
    return round(100.0 * (steal - mark[0]) / max(1, total - mark[1]), 1)


def uptime_ticks() -> float:
    """Time since boot in clock ticks (comparable with the start time of ``proc_stat``)."""
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) * CLK_TCK


def proc_status_kib(pid: int | None, field: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (``VmRSS``, ``VmHWM``, ``RssAnon``, ``RssFile``), or
    None if the process or the field is missing."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def mib(kib: int | None) -> float | None:
    """KiB to MiB rounded to 0.1 (None stays None)."""
    return None if kib is None else round(kib / 1024.0, 1)


def dir_bytes(path: Path) -> int:
    """Total size of the files under ``path`` (files that vanish while walking count 0)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded to 0.01."""
    return [round(x, 2) for x in os.getloadavg()]


def fd_limit() -> int:
    """The soft open-file limit of this process."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ensure_fd_limit(need: int) -> None:
    """Raise the soft open-file limit to at least ``need`` (up to the hard limit); SystemExit with
    the reason if the hard limit is lower. Spawned client processes inherit the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard == resource.RLIM_INFINITY or hard >= need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY else hard, hard))
        return
    raise SystemExit(f"open-file limit {soft}/{hard} is below the {need} this run needs (ulimit -n)")
