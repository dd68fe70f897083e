"""The overload benchmark's aggregation helpers (``overload_bench.py``): per-node and per-bucket
figures from the open-loop records, machine CPU shares from ``/proc/stat``, node log events, CPU
pinning of the processes."""

from __future__ import annotations

import collections
import os
import subprocess
from typing import Any

from harness.light_http import ERR_SKIPPED, err_name
from harness.open_loop import OpenLoopRecords
from harness.overload_monitor import NodeMonitor
from harness.proc import mib
from harness.rss import RssSampler
from harness.stats import ms, pct


def per_node(rec: OpenLoopRecords, t0: float, t1: float, names: list[str]) -> dict[str, Any]:
    """Per target node, over the requests due in [t0, t1): sent, accepted/s, 503 share, the
    other failures by kind and accepted latency p50 / p99."""
    sent: collections.Counter[int] = collections.Counter()
    fails: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    lats: dict[int, list[float]] = collections.defaultdict(list)
    for t, lat, st, node in zip(rec.t, rec.lat, rec.status, rec.node, strict=True):
        if not t0 <= t < t1 or st == ERR_SKIPPED:
            continue
        sent[node] += 1
        if 200 <= st < 300:
            lats[node].append(lat)
        else:
            fails[node][err_name(st)] += 1
    out = {}
    for k, name in enumerate(names):
        ok = sorted(lats[k])
        n503 = fails[k].pop(err_name(503), 0)
        out[name] = {"sent": sent[k], "accepted": len(ok), "accepted_per_s": round(len(ok) / (t1 - t0), 1),
                     "share_503": round(n503 / sent[k], 4) if sent[k] else None,
                     "other_errors": dict(fails[k].most_common()),
                     "p50_ms": ms(pct(ok, 50)), "p99_ms": ms(pct(ok, 99))}
    return out


def timeline(rec: OpenLoopRecords, monitor: NodeMonitor, rss: RssSampler, t0: float, t1: float, bucket: float,
             roles: dict[str, str]) -> list[dict[str, Any]]:
    """The harness timeline (by due time) plus per bucket: 503s, the nodes' summed peak ``queued``
    and the highest RSS of any node."""
    rows = rec.timeline(t0, t1, bucket)
    series = rss.series()
    for row in rows:
        a = t0 + row["t_s"]
        b = a + bucket
        row["n503"] = row["errors_by_kind"].get(err_name(503), 0)
        q = [monitor.window(n, a, b)["peak_queued"] for n in roles]
        row["queued_sum"] = sum(v for v in q if v is not None)
        kib = [k for t, _, k in series if a <= t < b]
        row["rss_max_mib"] = mib(max(kib)) if kib else None
    return rows


STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def pin_pids(pids: dict[str, int | None], cpus: str) -> None:
    """``taskset -a -p -c cpus`` for each PID: all its threads, and the processes it forks later."""
    for pid in pids.values():
        if pid:
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, stdout=subprocess.DEVNULL)


def stat_ticks() -> dict[str, int]:
    """The machine's CPU ticks by kind from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:1 + len(STAT_FIELDS)]]
    return dict(zip(STAT_FIELDS, values, strict=False))


def stat_pct(a: dict[str, int], b: dict[str, int]) -> dict[str, float]:
    """irq, softirq and steal between two ``stat_ticks`` as % (100 per core): parts of *other CPU %*
    (softirq: mostly loopback TCP; steal: the hypervisor gave the CPU to another guest)."""
    total = sum(b.values()) - sum(a.values())
    ncpu = os.cpu_count() or 1
    return {k: round(100.0 * ncpu * (b[k] - a[k]) / max(1, total), 1) for k in ("irq", "softirq", "steal")}


def log_events(text: str) -> dict[str, int]:
    """``event=<name>`` occurrences in a node's log, and its WARNING / ERROR / CRITICAL lines and tracebacks."""
    counts: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        k = line.find("event=")
        if k >= 0:
            counts[line[k + 6:].split(None, 1)[0] if line[k + 6:].strip() else "?"] += 1
        for level in ("WARNING", "ERROR", "CRITICAL", "Traceback"):
            if level in line:
                counts[level] += 1
    return dict(counts.most_common())


def pct_text(v: float | None) -> str:
    return "-" if v is None else f"{100.0 * v:.1f}%"
