"""Small SVG building blocks for the chaos report: scales and escaped elements.

Every function returns one element as a string. Every text and attribute value passes through
``html.escape``, so a string from a run (a node name, an error message) cannot open a tag or leave
an attribute. The output is well-formed XML (usable inline in HTML without a namespace) and refers
to nothing outside itself.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def num(value: float) -> str:
    """A coordinate with at most one decimal (``12``, ``12.5``): short and stable for tests."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def attrs(**values: str | float | None) -> str:
    """`` name="value"`` pairs, escaped; ``None`` values are left out, ``_`` in names becomes ``-``
    (``stroke_dasharray`` → ``stroke-dasharray``) and a trailing ``_`` is dropped (``class_``)."""
    parts = []
    for name, value in values.items():
        if value is None:
            continue
        text = num(value) if isinstance(value, float | int) and not isinstance(value, bool) else str(value)
        parts.append(f' {name.rstrip("_").replace("_", "-")}="{html.escape(text, quote=True)}"')
    return "".join(parts)


@dataclass(frozen=True)
class LinearScale:
    """Maps ``domain`` linearly onto ``range_`` (pixels); values outside are clamped to it."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        frac = 0.0 if span <= 0 else (min(max(value, self.lo), self.hi) - self.lo) / span
        return self.start + frac * (self.end - self.start)


@dataclass(frozen=True)
class LogScale:
    """Maps ``[lo, hi]`` (both > 0) logarithmically onto ``[start, end]``; clamps like ``LinearScale``."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        lo, hi = math.log10(self.lo), math.log10(self.hi)
        v = math.log10(min(max(value, self.lo), self.hi))
        frac = 0.0 if hi <= lo else (v - lo) / (hi - lo)
        return self.start + frac * (self.end - self.start)


def rect(x: float, y: float, width: float, height: float, cls: str, title: str | None = None,
         **extra: str | float | None) -> str:
    """A rectangle; ``title`` becomes its tooltip."""
    tip = f"<title>{html.escape(title)}</title>" if title else ""
    opening = f"<rect{attrs(x=x, y=y, width=max(width, 0.0), height=max(height, 0.0), class_=cls, **extra)}"
    return f"{opening}>{tip}</rect>" if tip else f"{opening}/>"


def line(x1: float, y1: float, x2: float, y2: float, cls: str, title: str | None = None,
         **extra: str | float | None) -> str:
    tip = f"<title>{html.escape(title)}</title>" if title else ""
    opening = f"<line{attrs(x1=x1, y1=y1, x2=x2, y2=y2, class_=cls, **extra)}"
    return f"{opening}>{tip}</line>" if tip else f"{opening}/>"


def polyline(points: Sequence[tuple[float, float]], cls: str) -> str:
    """A polyline through ``points``; nothing for fewer than two points."""
    if len(points) < 2:
        return ""
    return f"<polyline{attrs(points=' '.join(f'{num(x)},{num(y)}' for x, y in points), class_=cls)}/>"


def circle(x: float, y: float, r: float, cls: str, title: str | None = None) -> str:
    tip = f"<title>{html.escape(title)}</title>" if title else ""
    return f"<circle{attrs(cx=x, cy=y, r=r, class_=cls)}>{tip}</circle>"


def text(x: float, y: float, content: str, cls: str = "", anchor: str = "start",
         **extra: str | float | None) -> str:
    return (f"<text{attrs(x=x, y=y, class_=cls or None, text_anchor=anchor, **extra)}>"
            f"{html.escape(content)}</text>")


def group(children: Iterable[str], cls: str = "", **extra: str | float | None) -> str:
    return f"<g{attrs(class_=cls or None, **extra)}>{''.join(c for c in children if c)}</g>"


def svg(width: float, height: float, children: Iterable[str], label: str) -> str:
    """The ``<svg>`` element (inline in HTML: no namespace needed, no external reference)."""
    return (f"<svg{attrs(width=width, height=height, viewBox=f'0 0 {num(width)} {num(height)}', role='img')}"
            f"{attrs(aria_label=label)}>{''.join(c for c in children if c)}</svg>")


def nice_step(span: float, target_ticks: int = 8) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``target_ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / max(target_ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if mult * power >= raw:
            return float(mult * power)
    return float(10 * power)


def ticks(lo: float, hi: float, target_ticks: int = 8) -> list[float]:
    """Round values from ``lo`` to ``hi`` (inclusive when round)."""
    step = nice_step(hi - lo, target_ticks)
    first = math.ceil(lo / step) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 10) for i in range(max(count, 0))]
