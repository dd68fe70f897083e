"""The ``filter=`` parser and evaluator (raftreg.consul.filter): the bexpr subset tools send, and a
FilterError (the API's 400) with a position and a reason for everything else."""

from __future__ import annotations

from typing import Any

import pytest

from raftreg.consul.filter import FilterError, parse, predicate
from raftreg.consul.model import CATALOG_SCHEMA, HEALTH_SCHEMA

ENTRY: dict[str, Any] = {
    "Node": {"Node": "ip-10-0-0-5", "Address": "10.0.0.5", "Meta": {}, "Datacenter": "dc1"},
    "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1", "primary"], "Address": "10.0.0.5", "Port": 8080,
                "Meta": {"version": "1.2", "zone": "a"}, "EnableTagOverride": False},
    "Checks": [{"CheckID": "service:web-1", "Status": "passing"}, {"CheckID": "x", "Status": "warning"}],
}


@pytest.mark.parametrize(("expr", "expected"), [
    ('Service.Service == "web"', True),
    ("Service.Service == web", True),
    ('Service.Service != "web"', False),
    ("Service.Port == 8080", True),
    ("Service.Port == 80", False),
    ("Service.EnableTagOverride == false", True),
    ('Service.Meta.version == "1.2"', True),
    ("Service.Meta.missing == x", False),
    ('Service.Tags contains "v1"', True),
    ('Service.Tags not contains "v1"', False),
    ('"primary" in Service.Tags', True),
    ("v3 not in Service.Tags", True),
    ('Service.Meta contains "zone"', True),
    ('Service.ID contains "eb-"', True),
    ("Checks.Status == passing", True),
    ("Checks.Status == critical", False),
    ("Checks.Status != critical", True),
    ("Checks.Status != warning", False),
    ("Node.Meta is empty", True),
    ("Service.Meta is not empty", True),
    ("Service.Meta.missing is empty", True),
    ('Service.Meta.version matches "^1\\\\."', True),
    ('Service.Address not matches "^192"', True),
    ('Service.Service == "web" and Service.Port == 80', False),
    ('Service.Service == "db" or Service.Port == 8080', True),
    ('not Service.Service == "db"', True),
    ('not (Service.Service == "web" and "v1" in Service.Tags) or Node.Datacenter == dc1', True),
    ('(Service.Service == "db" or Service.Service == "web") and Service.Tags contains primary', True),
    ("Service.Service == `web`", True),
    ('Service.Meta.version == "1.2" and not Checks.Status == critical', True),
])
def test_expressions(expr: str, expected: bool) -> None:
    assert predicate(expr, HEALTH_SCHEMA)(ENTRY) is expected


def test_empty_filter_keeps_everything() -> None:
    assert parse("  ", HEALTH_SCHEMA) is None
    assert predicate("", HEALTH_SCHEMA)({}) is True


def test_precedence_and_binds_tighter_than_or() -> None:
    # a or (b and c): true because a is true, although b is false
    assert predicate('Service.Port == 8080 or Service.Port == 1 and Service.Port == 2', HEALTH_SCHEMA)(ENTRY)
    assert not predicate('(Service.Port == 8080 or Service.Port == 1) and Service.Port == 2', HEALTH_SCHEMA)(ENTRY)


def test_catalog_fields() -> None:
    entry = {"ServiceName": "web", "ServiceTags": ["a"], "NodeMeta": {}, "ServicePort": 1}
    assert predicate('ServiceName == web and ServiceTags contains a', CATALOG_SCHEMA)(entry)
    assert not predicate('ServiceTags contains b', CATALOG_SCHEMA)(entry)


@pytest.mark.parametrize(("expr", "position", "reason"), [
    ("Bogus == 1", 1, "unknown selector 'Bogus'"),
    ("Service.Bogus == 1", 1, "unknown selector 'Service.Bogus'"),
    ("Service.Meta.a.b == 1", 1, "goes past a map value"),
    ("Service.Service = web", 17, "unexpected character '='"),
    ("Service.Service == ", 20, "expected a value"),
    ("Service.Service", 16, "expected an operator"),
    ("Service.Service like web", 17, "expected an operator"),
    ("(Service.Port == 1", 19, "expected ')'"),
    ("Service.Port == 1)", 18, "unexpected ')'"),
    ("Service.Port == 1 xor Service.Port == 2", 19, "unexpected 'xor'"),
    ("Service.Tags is full", 17, "expected 'empty'"),
    ('"v1" on Service.Tags', 6, "expected 'in'"),
    ('Service.ID matches "("', 20, "bad regular expression"),
    ("and == 1", 1, "expected a selector"),
    ('Service.ID == "x" and', 22, "expected a selector"),
    ("Service.ID == 'x'", 15, "unexpected character"),
    ("Service..ID == x", 1, "bad selector"),
])
def test_errors_name_the_position_and_the_reason(expr: str, position: int, reason: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(expr, HEALTH_SCHEMA)
    assert info.value.position == position, info.value
    assert reason in info.value.reason


def test_overlong_filter_is_refused() -> None:
    with pytest.raises(FilterError, match="longer than"):
        parse("Service.ID == x or " * 400 + "Service.ID == y", HEALTH_SCHEMA)
