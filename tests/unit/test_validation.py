"""Request validation: every rejected input is an InvalidArgument that names the field at fault."""

from __future__ import annotations

import ipaddress
import itertools
import json
from typing import Any

import msgspec
import pytest

from raftreg.errors import InvalidArgument
from raftreg.http.validation import (
    _IPV4,
    check_address,
    check_instance_id,
    check_service_name,
    parse_flag,
    parse_meta_filters,
    parse_register,
)
from raftreg.http.wire import encode, instance_with_index
from raftreg.models import Check, Instance

BASE: dict[str, Any] = {"address": "10.0.0.5", "port": 8080}


def register(body: Any, service: str = "cart", instance_id: str = "cart-1") -> Instance:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_register(service, instance_id, raw)


def rejected(body: Any, service: str = "cart", instance_id: str = "cart-1") -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        register(body, service, instance_id)
    assert info.value.code == "invalid_argument"
    assert info.value.status == 400
    return info.value


# ---- good bodies --------------------------------------------------------------------------------
def test_minimal_body_gets_defaults() -> None:
    inst = register(BASE)
    assert inst == Instance(service="cart", id="cart-1", address="10.0.0.5", port=8080)
    assert inst.tags == ()
    assert inst.meta == {}
    assert inst.weight == 100
    assert inst.ttl is None
    assert inst.check is None
    assert inst.status == "passing"
    assert (inst.create_index, inst.modify_index) == (0, 0)


def test_full_body_from_the_api_doc() -> None:
    body = {
        "address": "10.0.0.5",
        "port": 8080,
        "tags": ["v2"],
        "meta": {"zone": "a"},
        "weight": 100,
        "ttl": "10s",
        "check": {
            "http": "http://10.0.0.5:8080/health",
            "interval": "5s",
            "timeout": "1s",
            "failures_before_critical": 3,
            "successes_before_passing": 2,
            "deregister_critical_after": "1m",
        },
    }
    inst = register(body)
    assert inst.tags == ("v2",)
    assert inst.meta == {"zone": "a"}
    assert inst.ttl == 10.0
    assert inst.check == Check(
        http="http://10.0.0.5:8080/health",
        interval=5.0,
        timeout=1.0,
        failures_before_critical=3,
        successes_before_passing=2,
        deregister_critical_after=60.0,
    )
    assert inst.status == "critical"


GOOD_BODIES: list[tuple[dict[str, Any], str, Any]] = [
    ({"address": "db.internal.example.com"}, "address", "db.internal.example.com"),
    ({"address": "localhost"}, "address", "localhost"),
    ({"address": "host-1."}, "address", "host-1."),
    ({"address": "::1"}, "address", "::1"),
    ({"address": "fe80::1"}, "address", "fe80::1"),
    ({"port": 1}, "port", 1),
    ({"port": 65535}, "port", 65535),
    ({"weight": 0}, "weight", 0),
    ({"weight": 10000}, "weight", 10000),
    ({"tags": ["t"] * 64}, "tags", ("t",) * 64),
    ({"tags": ["x" * 128, "v2"]}, "tags", ("x" * 128, "v2")),
    ({"meta": {f"k{i}": "v" for i in range(64)}}, "meta", {f"k{i}": "v" for i in range(64)}),
    ({"meta": {"A-z_0.9": "x" * 512, "empty": ""}}, "meta", {"A-z_0.9": "x" * 512, "empty": ""}),
    ({"ttl": 1}, "ttl", 1.0),
    ({"ttl": "1s"}, "ttl", 1.0),
    ({"ttl": "1m30s"}, "ttl", 90.0),
    ({"ttl": 86400}, "ttl", 86400.0),
    ({"service": "cart", "id": "cart-1"}, "service", "cart"),
    ({"check": {"tcp": "db:5432"}}, "check", Check(tcp="db:5432")),
    ({"check": {"http": "https://h/health", "interval": 0.1}}, "check", Check(http="https://h/health", interval=0.1)),
]


@pytest.mark.parametrize(("extra", "attr", "expected"), GOOD_BODIES)
def test_good_bodies(extra: dict[str, Any], attr: str, expected: Any) -> None:
    assert getattr(register({**BASE, **extra}), attr) == expected


def test_check_makes_status_critical_and_no_check_passing() -> None:
    assert register({**BASE, "check": {"tcp": "db:5432"}}).status == "critical"
    assert register({**BASE, "check": {"http": "http://h/"}}).status == "critical"
    assert register(BASE).status == "passing"


# ---- bad fields -------------------------------------------------------------------------------
BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("address-bad-host", {"address": "bad host"}, "address"),
    ("address-leading-dash", {"address": "-host"}, "address"),
    ("address-empty-label", {"address": "a..b"}, "address"),
    ("address-underscore", {"address": "a_b"}, "address"),
    ("address-empty", {"address": ""}, "address"),
    ("address-label-64", {"address": "a" * 64 + ".com"}, "address"),
    ("address-missing", {"address": None}, "address"),
    ("address-number", {"address": 10}, "address"),
    ("port-0", {"port": 0}, "port"),
    ("port-65536", {"port": 65536}, "port"),
    ("port-string", {"port": "80"}, "port"),
    ("port-bool", {"port": True}, "port"),
    ("port-float", {"port": 80.5}, "port"),
    ("port-missing", {"port": None}, "port"),
    ("weight-negative", {"weight": -1}, "weight"),
    ("weight-10001", {"weight": 10001}, "weight"),
    ("tags-65", {"tags": [f"t{i}" for i in range(65)]}, "tags"),
    ("tags-empty-tag", {"tags": ["ok", ""]}, "tags"),
    ("tags-129-chars", {"tags": ["x" * 129]}, "tags"),
    ("tags-not-a-list", {"tags": "v1"}, "tags"),
    ("meta-65-pairs", {"meta": {f"k{i}": "v" for i in range(65)}}, "meta"),
    ("meta-value-513", {"meta": {"k": "x" * 513}}, "meta"),
    ("meta-value-not-str", {"meta": {"k": 1}}, "meta"),
    ("ttl-below-1s", {"ttl": 0.5}, "ttl"),
    ("ttl-500ms", {"ttl": "500ms"}, "ttl"),
    ("ttl-abc", {"ttl": "abc"}, "ttl"),
    ("ttl-negative", {"ttl": -5}, "ttl"),
    ("ttl-over-a-day", {"ttl": "25h"}, "ttl"),
    ("ttl-bool", {"ttl": True}, "ttl"),
    ("check-both", {"check": {"http": "http://h/", "tcp": "h:80"}}, "check"),
    ("check-neither", {"check": {}}, "check"),
    ("check-unknown-field", {"check": {"tcp": "h:80", "script": "rm -rf /"}}, "check"),
    ("check-tcp-no-port", {"check": {"tcp": "host"}}, "check.tcp"),
    ("check-tcp-no-host", {"check": {"tcp": ":80"}}, "check.tcp"),
    ("check-tcp-port-0", {"check": {"tcp": "h:0"}}, "check.tcp"),
    ("check-tcp-port-65536", {"check": {"tcp": "h:65536"}}, "check.tcp"),
    ("check-tcp-port-text", {"check": {"tcp": "h:http"}}, "check.tcp"),
    ("check-http-not-url", {"check": {"http": "ftp://h/"}}, "check.http"),
    ("check-interval", {"check": {"tcp": "h:80", "interval": "abc"}}, "check.interval"),
    ("check-interval-too-short", {"check": {"tcp": "h:80", "interval": "1ms"}}, "check.interval"),
    ("check-timeout", {"check": {"tcp": "h:80", "timeout": -1}}, "check.timeout"),
    ("check-dca", {"check": {"tcp": "h:80", "deregister_critical_after": "0.5s"}}, "check.deregister_critical_after"),
    ("check-failures-0", {"check": {"tcp": "h:80", "failures_before_critical": 0}}, "check.failures_before_critical"),
    ("unknown-field", {"nope": 1}, "nope"),
    ("body-service-mismatch", {"service": "other"}, "service"),
    ("body-service-invalid", {"service": "Cart"}, "service"),
    ("body-id-mismatch", {"id": "cart-2"}, "id"),
]


@pytest.mark.parametrize(("patch", "field"), [(p, f) for _, p, f in BAD_FIELDS], ids=[n for n, _, _ in BAD_FIELDS])
def test_bad_field(patch: dict[str, Any], field: str) -> None:
    body = {**BASE, **patch}
    for key in [k for k, v in patch.items() if v is None]:
        del body[key]
    err = rejected(body)
    assert err.field == field
    assert err.to_body()["error"]["field"] == field


def test_bad_meta_key_names_meta() -> None:
    err = rejected({**BASE, "meta": {"bad key!": "x"}})
    assert err.field == "meta"


def test_bad_meta_key_is_rejected() -> None:
    for key in ("bad key", "a/b", "x" * 129, ""):
        rejected({**BASE, "meta": {key: "x"}})


@pytest.mark.parametrize("tcp", ["h:²", "h:٣"])
def test_check_tcp_port_must_be_ascii_digits(tcp: str) -> None:
    err = rejected({**BASE, "check": {"tcp": tcp}})
    assert err.field == "check.tcp"


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b'{"address": "h", "port": 80', b'{"address": "h", "port": 80}}'],
)
def test_malformed_json(raw: bytes) -> None:
    err = rejected(raw)
    assert err.field is None
    assert "malformed JSON" in err.message


@pytest.mark.parametrize("raw", [b"[]", b'[{"address": "h", "port": 80}]', b"null", b"42", b'"x"'])
def test_top_level_must_be_an_object(raw: bytes) -> None:
    err = rejected(raw)
    assert err.field is None
    assert "object" in err.message


def test_url_names_are_checked_before_the_body() -> None:
    assert rejected(b"garbage", service="Cart").field == "service"
    assert rejected(b"garbage", instance_id="-x").field == "id"


# ---- names ------------------------------------------------------------------------------------
GOOD_SERVICES = ["a", "7", "ab", "a-b", "a--b", "x" * 63, "a" + "-" * 61 + "b", "0cart9"]
BAD_SERVICES = [
    "",
    "Cart",
    "CART",
    "-cart",
    "cart-",
    "-",
    "a..b",
    "a.b",
    "a/b",
    "/a",
    "a_b",
    "a b",
    "a\x00",
    "\x00",
    "caf\u00e9",
    "\u0441art",  # starts with CYRILLIC SMALL LETTER ES
    "x" * 64,
]


@pytest.mark.parametrize("name", GOOD_SERVICES)
def test_good_service_names(name: str) -> None:
    assert check_service_name(name) == name
    assert register(BASE, service=name).service == name


@pytest.mark.parametrize("name", BAD_SERVICES, ids=repr)
def test_bad_service_names(name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_service_name(name)
    assert info.value.field == "service"
    assert rejected(BASE, service=name).field == "service"


GOOD_IDS = ["a", "A", "0", "x" * 63, "x" * 64, "x" * 128, "cart-1", "Cart_1.a:b-c", "10.0.0.5:8080", "a.."]
BAD_IDS = ["", "-a", ".a", "_a", ":a", "a/b", "..", "../x", "a b", "a\x00", "\x00", "caf\u00e9", "x" * 129]


@pytest.mark.parametrize("instance_id", GOOD_IDS)
def test_good_instance_ids(instance_id: str) -> None:
    assert check_instance_id(instance_id) == instance_id
    assert register(BASE, instance_id=instance_id).id == instance_id


@pytest.mark.parametrize("instance_id", BAD_IDS, ids=repr)
def test_bad_instance_ids(instance_id: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_instance_id(instance_id)
    assert info.value.field == "id"
    assert rejected(BASE, instance_id=instance_id).field == "id"


@pytest.mark.parametrize(("check", "name"), [(check_service_name, "cart\n"), (check_instance_id, "cart-1\n")])
def test_trailing_newline_is_rejected(check: Any, name: str) -> None:
    with pytest.raises(InvalidArgument):
        check(name)


# ---- helpers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["10.0.0.5", "::1", "2001:db8::1", "a", "a.b.c", "a-1.example.", "x" * 63])
def test_check_address_accepts(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["", ".", "a..b", "-a", "a-", "a b", "a/b", "http://a", "a" * 64, "é.com"])
def test_check_address_rejects(address: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_address(address)
    assert info.value.field == "address"


def test_check_address_rejects_names_over_253_chars() -> None:
    name = ".".join(["a" * 63] * 4)  # 255 chars, every label fine
    with pytest.raises(InvalidArgument):
        check_address(name)


def test_parse_meta_filters() -> None:
    assert parse_meta_filters([]) == []
    assert parse_meta_filters(["zone:a", "env:", "url:http://x"]) == [("zone", "a"), ("env", ""), ("url", "http://x")]
    for bad in (["zone"], [":a"], ["zone:a", "nocolon"]):
        with pytest.raises(InvalidArgument) as info:
            parse_meta_filters(bad)
        assert info.value.field == "meta"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", True),
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("0", False),
        ("false", False),
        ("No", False),
    ],
)
def test_parse_flag(value: str | None, expected: bool) -> None:
    assert parse_flag(value, "passing") is expected


def test_parse_flag_rejects_other_values() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_flag("maybe", "passing")
    assert info.value.field == "passing"


def test_the_dotted_quad_shortcut_accepts_exactly_what_ipaddress_accepts() -> None:
    """``check_address`` answers dotted quads from a regular expression before trying ipaddress:
    it must accept no string ipaddress refuses (leading zeros, 256, non-ASCII digits, spaces)."""
    parts = ["0", "00", "01", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256", "300",
             "0255", "-1", "", "a", "1a", "\u0663", " 1"]
    tried = 0
    for first, second, third in itertools.product(parts, repeat=3):
        for fourth in (parts[tried % len(parts)], "4", "255"):
            tried += 1
            address = f"{first}.{second}.{third}.{fourth}"
            try:
                ipaddress.IPv4Address(address)
                valid = True
            except ValueError:
                valid = False
            assert (_IPV4.fullmatch(address) is not None) == valid, address
    assert tried > 30_000


@pytest.mark.parametrize("extra", [{}, {"tags": ["a", "é"], "meta": {"k": "v\"q"}, "weight": 7, "ttl": "15s"},
                                   {"check": {"http": "http://127.0.0.1:1/health", "interval": "10s"}}])
def test_a_written_instance_is_answered_as_its_fields_then_the_index(extra: dict[str, Any]) -> None:
    stored = parse_register("svc", "i-1", json.dumps({"address": "10.0.0.1", "port": 80, **extra}).encode())
    expected = msgspec.to_builtins(stored)
    expected["index"] = 12345
    assert instance_with_index(stored, 12345) == encode(expected)
    assert list(json.loads(instance_with_index(stored, 12345))) == [*expected]
