"""``wrk`` (Debian's C load generator) from Python: several at once, summed."""

from __future__ import annotations

import re
import subprocess

_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)|Socket errors:.*")


def wrk_all(urls: list[str], *, duration: float, connections: int, script: str | None = None,
            threads: int = 1, script_args: tuple[str, ...] = ()) -> tuple[float, list[str]]:
    """Load every URL at once (one ``wrk`` each, ``connections`` each, ``script`` a Lua file or
    None, ``script_args`` passed to its ``init``); the summed requests/s and every error line the
    runs printed."""
    extra = ["-s", script] if script else []
    after = ["--", *script_args] if script_args else []
    procs = [subprocess.Popen(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", *extra, url, *after],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for url in urls]
    total, errors = 0.0, []
    for proc in procs:
        out, _ = proc.communicate(timeout=duration + 30)
        match = _RATE.search(out)
        if match is None:
            raise RuntimeError(f"wrk printed no rate:\n{out}")
        total += float(match.group(1))
        errors += [m.group(0) for m in _ERRORS.finditer(out)]
    return total, errors
