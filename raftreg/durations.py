"""Durations as API.md accepts them: seconds as a number, or a Go-style string ("1m30s", "500ms")."""

from __future__ import annotations

import functools
import math
import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds.

    Accepts a non-negative int/float, a numeric string ("10", "0.5") or a Go duration string
    ("10s", "1m30s", "250ms"). Raises ``ValueError`` with a readable reason otherwise.
    Booleans are rejected (``True`` is not a duration).
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite non-negative number, got {value!r}")
    return seconds


@functools.lru_cache(maxsize=256)
def _parse_text(value: str) -> float:
    """A duration string in seconds (cached: every blocking query sends the same few ``wait`` values)."""
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    try:
        return float(text)
    except ValueError:
        return _parse_go_duration(text, value)


def _parse_go_duration(text: str, value: object) -> float:
    """Sum the unit parts of a Go duration ("1m30s"); ValueError unless they cover all of ``text``."""
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"cannot parse duration {value!r} (use seconds or e.g. '10s', '500ms')")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds compactly for people: 0.5 -> '500ms', 90 -> '1m30s'."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    minutes, secs = divmod(seconds, 60)
    if minutes == 0:
        return f"{secs:g}s"
    return f"{int(minutes)}m{secs:g}s" if secs else f"{int(minutes)}m"
