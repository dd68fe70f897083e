"""Small number helpers: percentiles, latency summaries, and splitting work over processes."""

from __future__ import annotations

from array import array
from collections.abc import Sequence


def pct(sorted_vals: Sequence[float] | array[float], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0-100) of an already sorted sequence; None if it is empty."""
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, round(p / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def ms(seconds: float | None) -> float | None:
    """Seconds to milliseconds rounded to 0.001 ms (None stays None)."""
    return None if seconds is None else round(seconds * 1000.0, 3)


def r3(v: float | None) -> float | None:
    """Round to 0.001 (None stays None)."""
    return None if v is None else round(v, 3)


def lat_stats(vals: Sequence[float] | array[float]) -> dict[str, float | None]:
    """``p50_ms``, ``p99_ms``, ``max_ms`` and ``min_ms`` of latencies given in seconds (any order)."""
    s = sorted(vals)
    return {"p50_ms": ms(pct(s, 50)), "p99_ms": ms(pct(s, 99)), "max_ms": ms(s[-1] if s else None),
            "min_ms": ms(s[0] if s else None)}


def split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal counts, the larger ones first (sum = total)."""
    base, extra = divmod(total, parts)
    return [base + (1 if p < extra else 0) for p in range(parts)]


def share(total: int, weights: Sequence[int]) -> list[tuple[int, int]]:
    """Split range(total) into consecutive [start, stop) pieces proportional to ``weights``."""
    out, start, acc, wsum = [], 0, 0, sum(weights)
    for w in weights:
        acc += w
        stop = total * acc // wsum if wsum else total
        out.append((start, stop))
        start = stop
    return out
