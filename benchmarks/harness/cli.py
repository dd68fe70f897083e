"""The benchmarks' command lines: the shared options, ``key=value`` overrides of config Structs,
SIGTERM handling, and ``run_and_report``, the tail of every ``main``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import msgspec

from harness.bench import Bench
from harness.proc import loadavg, steal_pct, steal_ticks
from harness.report import default_out, log, print_summary, run_meta, write_result
from raftreg.config import ConfigError, RaftTuning

S = TypeVar("S", bound=msgspec.Struct)


def common_parser(doc: str | None, name: str, phases: Sequence[str], *, procs: int, quick: str,
                  tuning_example: str) -> argparse.ArgumentParser:
    """A parser with ``--quick`` (help: ``quick``), ``--out``, ``--only`` (``phases``), ``--procs``
    (default ``procs``) and ``--tuning``; ``name`` names the default result file. The benchmark adds
    its own options, then its sizes with ``add_size_options``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--out", type=Path, help=f"results JSON (default benchmarks/results/{name}-<time>.json)")
    p.add_argument("--only", default=",".join(phases),
                   help=f"comma-separated phases (default: all of {','.join(phases)})")
    p.add_argument("--procs", type=int, default=procs, help=f"client worker processes (default {procs})")
    add_tuning_option(p, f"raftreg.config.RaftTuning overrides, e.g. {tuning_example}")
    return p


def add_tuning_option(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--tuning KEY=VALUE ...`` (a list; ``parse_struct`` reads it)."""
    p.add_argument("--tuning", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help_text)


def missing_tools(tools: Sequence[str], packages: str) -> bool:
    """True, after saying which on stderr, when one of ``tools`` is not on PATH (``packages``: the
    Debian packages to install)."""
    import shutil

    absent = [tool for tool in tools if shutil.which(tool) is None]
    if absent:
        print(f"{', '.join(absent)} not installed (apt-get install {packages})", file=sys.stderr)
    return bool(absent)


def add_size_options(p: argparse.ArgumentParser, sizes: Mapping[str, tuple[Any, Any]]) -> None:
    """One ``--<size-name>`` option per entry of ``sizes`` (name -> (full, quick) default); its
    value stays None unless given (``Bench.size`` picks the default)."""
    for name, (full, quick) in sizes.items():
        p.add_argument("--" + name.replace("_", "-"), type=type(full), default=None,
                       help=f"default {full} ({quick} with --quick)")


def parse_struct(items: list[str], cls: type[S], flag: str) -> tuple[S, dict[str, Any]]:
    """``key=value`` overrides of a config Struct (``--tuning`` and the like): the Struct and the
    overridden fields. Bad input exits with a one-line message naming the flag and the fields."""
    raw: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} wants key=value, got {item!r}")
        raw[key.strip()] = value.strip()
    try:
        obj = msgspec.convert(raw, cls, strict=False)
    except (msgspec.ValidationError, ConfigError) as exc:
        fields = ", ".join(f.name for f in msgspec.structs.fields(cls))
        raise SystemExit(f"bad {flag}: {exc} (fields: {fields})") from None
    return obj, {k: getattr(obj, k) for k in raw}


def check_common_args(args: argparse.Namespace, known: Sequence[str]) -> tuple[list[str], RaftTuning, dict[str, Any]]:
    """``--only``, ``--procs``, ``--concurrency`` (if the benchmark has it) and ``--tuning`` checked
    (SystemExit with the reason); returns the phases, the tuning and its overrides."""
    phases = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = [x for x in phases if x not in known]
    if unknown or not phases:
        raise SystemExit(f"--only: unknown phase(s) {unknown}; choose from {','.join(known)}")
    if args.procs < 1 or getattr(args, "concurrency", 1) < 1:
        raise SystemExit("--procs and --concurrency must be >= 1")
    tuning, overrides = parse_struct(args.tuning, RaftTuning, "--tuning")
    return phases, tuning, overrides


def exit_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C does: partial results are written, every process killed."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)


def run_and_report(bench: Bench, phases: list[str], argv: list[str] | None, name: str, title: str,
                   detail: str = "", meta: Mapping[str, Any] | None = None) -> int:
    """The tail of every ``main``: install the SIGTERM handler, log the start line (``title``:
    phases, procs, ``detail``), run the phases, always close the bench, print the summary and write
    the result JSON to ``--out`` (default ``benchmarks/results/<name>-<time>.json``), partial
    results too on an error, Ctrl-C or SIGTERM. ``meta`` is added to the run metadata. Returns
    the exit status (1 after an error, whose traceback goes to stderr)."""
    out_path: Path = bench.args.out or default_out(name)
    exit_on_sigterm()
    started, steal_mark = time.time(), steal_ticks()
    full_meta = {**run_meta(bench.args, argv, started, phases, bench.tuning, bench.tuning_overrides), **(meta or {})}
    log(f"{title}: phases {','.join(phases)}, {bench.args.procs} client procs{detail}"
        f"{', quick' if bench.args.quick else ''}; load average {full_meta['loadavg_at_start']}")
    error = None
    try:
        bench.run(phases)
    except BaseException as exc:  # incl. KeyboardInterrupt and SystemExit from SIGTERM: keep partial results
        error = "".join(traceback.format_exception(exc))
        log(f"benchmark aborted: {exc!r}")
    finally:
        with contextlib.suppress(Exception):
            bench.close()
    full_meta["wall_s"] = round(time.time() - started, 1)
    full_meta["loadavg_at_end"] = loadavg()
    full_meta["steal_pct"] = steal_pct(steal_mark)
    print_summary(bench.summary, full_meta)
    write_result(out_path, full_meta, bench.results, bench.summary, error)
    log(f"wrote {out_path} ({full_meta['wall_s']}s; load average at the end {full_meta['loadavg_at_end']})")
    if error:
        print(error, file=sys.stderr)
        return 1
    return 0
