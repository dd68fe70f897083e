"""One result format for every benchmark: timestamped log lines, number formats, plain-text tables
on stdout, and the result JSON (run metadata, per-phase results, the summary, the error if any)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from harness.proc import fd_limit, loadavg

REPO = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO / "benchmarks" / "results"

# Above this, other processes took enough CPU during a run to spoil its numbers.
BUSY_OTHER_PCT = 30


def log(msg: str) -> None:
    """A progress line on stdout, prefixed with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fmt_num(v: float | None) -> str:
    """1,234 (no decimals); ``-`` for None."""
    return "-" if v is None else f"{v:,.0f}"


def fmt_ms(v: float | None) -> str:
    """Milliseconds: 2 decimals below 10, 1 from 10; ``-`` for None."""
    return "-" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fmt_s(v: float | None) -> str:
    """Seconds with 2 decimals and an ``s``; ``-`` for None."""
    return "-" if v is None else f"{v:.2f}s"


def fmt_cpu(cpu: Mapping[str, float | None], roles: Mapping[str, str] | None = None) -> str:
    """``n1(L) 52 n2(F) 12 ...``: CPU % per process, tagged with the first letter of its role."""
    parts = []
    for k, v in cpu.items():
        tag = f"{k}({roles[k][0].upper()})" if roles and k in roles else k
        parts.append(f"{tag} {'-' if v is None else f'{v:.0f}'}")
    return " ".join(parts)


def kinds_text(kinds: Mapping[str, int]) -> str:
    """``http 503: 4, client timeout: 1``, or ``0`` when there is none."""
    return ", ".join(f"{k}: {v}" for k, v in kinds.items()) or "0"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A titled table with left-aligned columns as wide as their widest cell, then a blank line."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(flush=True)


def note_busy(during: str, those: bool = True) -> None:
    """The warning that other processes took more than ``BUSY_OTHER_PCT`` % of a core ``during``
    some runs (``those`` numbers) or the whole run (``the`` numbers)."""
    print(f"note: other processes used > {BUSY_OTHER_PCT}% of a core during {during}: "
          f"{'those' if those else 'the'} numbers are contaminated by a concurrent load\n", flush=True)


def print_run_table(title: str, runs: Sequence[tuple[str, Mapping[str, Any]]], roles: bool = False) -> None:
    """The table of closed-loop runs (``closed_loop.run_closed_loop`` results), one row per (name,
    run); ``roles`` tags the nodes leader / follower from each run's ``leader``."""
    rows = []
    for name, r in runs:
        node_roles = None
        if roles and r.get("leader"):
            node_roles = {k: ("leader" if k == r["leader"] else "follower") for k in r["server_cpu_pct"]}
        rows.append([
            name, fmt_num(r["ops_ok"]), fmt_num(r["ops_per_s"]), fmt_ms(r["p50_ms"]), fmt_ms(r["p99_ms"]),
            fmt_ms(r["max_ms"]), kinds_text(r["errors_by_kind"]), fmt_cpu(r["server_cpu_pct"], node_roles),
            f"{r['client_cpu_pct_total']:.0f} ({fmt_cpu(r['client_cpu_pct'])})",
            f"{r['other_procs_cpu_pct']:.0f}", f"{r.get('steal_pct', 0.0):.0f}", f"{r['loadavg_at_start'][0]:.2f}",
        ])
    print_table(title, ["run", "ok ops", "ops/s", "p50 ms", "p99 ms", "max ms", "errors", "server CPU %",
                        "client CPU %", "other CPU %", "steal %", "load"], rows)
    busy = [name for name, r in runs if r["other_procs_cpu_pct"] > BUSY_OTHER_PCT]
    if busy:
        note_busy(", ".join(busy))


def print_summary(summary: Sequence[Sequence[str]], meta: Mapping[str, Any] | None = None) -> None:
    """The closing table: (phase, metric, value, verdict) rows, titled with the run's date, commit,
    machine load and hypervisor steal (``meta`` from ``run_meta``) so a pasted table says when and
    how busy."""
    title = "Summary"
    if meta:
        commit = str(meta.get("git", {}).get("commit", ""))[:7]
        title += (f" ({meta.get('started', '?')}, commit {commit or '?'}, {meta.get('cpus', '?')} CPUs, "
                  f"load average {meta.get('loadavg_at_start', '?')} at start, "
                  f"{meta.get('loadavg_at_end', '?')} at end, hypervisor steal {meta.get('steal_pct', '?')} %)")
    print_table(title, ["phase", "metric", "value", "target"], [list(r) for r in summary])


def git_describe() -> dict[str, Any]:
    """The repository's commit and whether tracked files differ from it."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def run_meta(args: argparse.Namespace, argv: list[str] | None, started: float, phases: list[str],
             tuning: msgspec.Struct, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """What every benchmark's JSON records about the run and the machine."""
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "phases": phases,
        "procs": args.procs,
        "tuning": msgspec.to_builtins(tuning),
        "tuning_overrides": dict(overrides),
        "git": git_describe(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "fd_limit": fd_limit(),
        "loadavg_at_start": loadavg(),
    }


def default_out(name: str) -> Path:
    """``benchmarks/results/<name>-<local time>.json`` (the directory is git-ignored)."""
    return RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def write_result(path: Path, meta: Mapping[str, Any], results: Mapping[str, Any],
                 summary: Sequence[Sequence[str]], error: str | None) -> None:
    """The result JSON: ``{"meta", "results", "summary", "error"}`` (parent directories created)."""
    doc = {"meta": meta, "results": results, "summary": [list(r) for r in summary], "error": error}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def sxs_heading(what: str, overrides: Mapping[str, Any], steal: Sequence[float] = ()) -> str:
    """The first line of a side-by-side summary (``etcd_sxs``, ``peer_sxs``): time, load, the
    hypervisor's steal over the runs (``steal``: one percentage per run), ``what``."""
    tuned = f"; raftreg tuning {dict(overrides)}" if overrides else ""
    stolen = (f", hypervisor steal {statistics.median(steal):.0f} % of the machine (runs {min(steal):.0f}-"
              f"{max(steal):.0f} %)" if steal else "")
    return (f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {loadavg()[0]}{stolen}; "
            f"{what}{tuned}:")


def sxs_cells(res: Mapping[str, Any]) -> str:
    """One side-by-side result (``raftreg_rps``, ``etcd_rps``, ``median_ratio``, ``raftreg_p99_ms``,
    ``etcd_p99_ms``) as the columns: both medians, the median ratio, both p99 medians."""
    med = statistics.median
    p99 = f"{med(res['raftreg_p99_ms']):.1f} / {med(res['etcd_p99_ms']):.1f}"
    return f"{med(res['raftreg_rps']):16.0f}  {med(res['etcd_rps']):13.0f}  {res['median_ratio']:11.2f}x  {p99:>19}"


STEAL_MATCH_POINTS = 5.0  # a pair's two runs lost to the hypervisor within this many points of each other


def steal_matched(res: Mapping[str, Any], within: float = STEAL_MATCH_POINTS) -> str:
    """The median ratio over the pairs whose two runs had about the same hypervisor steal
    (``res["steal_pct"]``: per system, one percentage per run; ``res["ratios"]``), as a note for
    the summary line. A pair where one system lost a third of the machine and the other a tenth
    says more about the host than about either system (2026-12-07: 0.84x and 1.00x pairs with
    13 and 11 points of difference, 1.3-1.6x around them)."""
    steal = res.get("steal_pct")
    if not steal:
        return ""
    fair = [ratio for ratio, a, b in zip(res["ratios"], steal["raftreg"], steal["etcd"], strict=True)
            if abs(a - b) <= within]
    if not fair:
        return f"  (no pair with steal within {within:g} points)"
    return f"  (steal-matched: {statistics.median(fair):.2f}x over {len(fair)} of {len(res['ratios'])} pairs)"


SXS_HEADER = f"{'raftreg median/s':>16}  {'etcd median/s':>13}  {'median ratio':>12}  {'p99 ms raftreg/etcd':>19}"
