"""parse_duration / format_duration: numbers, numeric strings and Go-style durations."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftreg.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (10, 10.0),
        (0.5, 0.5),
        (1e3, 1000.0),
        ("10", 10.0),
        ("0.5", 0.5),
        (" 10s ", 10.0),
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        (".5s", 0.5),
        ("1.5h", 5400.0),
        ("2m", 120.0),
        ("1h1m1s", 3661.0),
        ("250us", 250e-6),
        ("250µs", 250e-6),
        ("100ns", 100e-9),
        ("1s500ms", 1.5),
        ("0s", 0.0),
    ],
)
def test_parse_accepts(value: object, seconds: float) -> None:
    got = parse_duration(value)
    assert isinstance(got, float)
    assert got == pytest.approx(seconds, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        -1,
        -0.5,
        math.nan,
        math.inf,
        -math.inf,
        "",
        "   ",
        "10x",
        "s10",
        "-1",
        "-1s",
        "nan",
        "inf",
        "1e999",
        "10 s",
        "1m 30s",
        "1.s",
        "1..5s",
        "ms",
        "10S",
        None,
        [10],
        b"10s",
    ],
)
def test_parse_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_bool_message_names_boolean() -> None:
    with pytest.raises(ValueError, match="boolean"):
        parse_duration(True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0ms"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (1, "1s"),
        (5, "5s"),
        (59, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (90.5, "1m30.5s"),
        (125, "2m5s"),
        (3600, "60m"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=86_400_000))
def test_format_parses_back(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-9, abs=1e-9)
