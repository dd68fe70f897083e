"""``wrk`` (Debian's C load generator) from Python: several at once, summed."""

from __future__ import annotations

import re
import subprocess
from typing import NamedTuple

_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)|Socket errors:.*")


class WrkResult(NamedTuple):
    rate: float  # requests/s, summed over the URLs
    p99_ms: float  # the highest of the runs' 99th-percentile latencies
    errors: list[str]  # every error line the runs printed


def wrk_run(urls: list[str], *, duration: float, connections: int, script: str | None = None,
            threads: int = 1, script_args: tuple[str, ...] = ()) -> WrkResult:
    """Load every URL at once (one ``wrk`` each, ``connections`` each, ``script`` a Lua file or
    None, ``script_args`` passed to its ``init``)."""
    extra = ["-s", script] if script else []
    after = ["--", *script_args] if script_args else []
    procs = [subprocess.Popen(["wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", *extra,
                               url, *after], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for url in urls]
    total, p99, errors = 0.0, 0.0, []
    for proc in procs:
        out, _ = proc.communicate(timeout=duration + 30)
        match = _RATE.search(out)
        if match is None:
            raise RuntimeError(f"wrk printed no rate:\n{out}")
        total += float(match.group(1))
        latency = _P99.search(out)
        if latency is not None:
            p99 = max(p99, float(latency.group(1)) * _UNITS[latency.group(2)])
        errors += [m.group(0) for m in _ERRORS.finditer(out)]
    return WrkResult(total, p99, errors)


def wrk_all(urls: list[str], *, duration: float, connections: int, script: str | None = None,
            threads: int = 1, script_args: tuple[str, ...] = ()) -> tuple[float, list[str]]:
    """``wrk_run``'s summed requests/s and error lines."""
    result = wrk_run(urls, duration=duration, connections=connections, script=script, threads=threads,
                     script_args=script_args)
    return result.rate, result.errors
