"""Consul query parsing (raftreg.consul.wire) and the registration body's translation
(raftreg.consul.registration): pure units, no cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import MultiDict

from raftreg.consul.model import META_CHECKS, META_TAGGED, META_WEIGHT_WARNING, check_kinds, checks_view, user_meta
from raftreg.consul.registration import parse_agent_register
from raftreg.consul.wire import ConsulError, parse_query


def query(**params: str) -> MultiDict[str]:
    return MultiDict(params)


@pytest.mark.parametrize(("wait", "seconds"), [
    ("120000ms", 120.0), ("10s", 10.0), ("5m", 300.0), ("1h", 600.0), ("30", 30.0), ("1.5", 1.5),
    ("1m30s", 90.0), ("250000us", 0.25), ("", None),
])
def test_wait_in_every_unit_clamped_to_ten_minutes(wait: str, seconds: float | None) -> None:
    assert parse_query(query(wait=wait), "dc1").read.wait == seconds


@pytest.mark.parametrize("flag", ["stale", "consistent", "cached"])
@pytest.mark.parametrize("value", ["", "1", "true"])
def test_flags_as_go_and_py_consul_send_them(flag: str, value: str) -> None:
    q = parse_query(query(**{flag: value}), "dc1")
    assert q.stale == (flag == "stale")
    assert q.read.consistent == (flag == "consistent")


def test_index_and_defaults() -> None:
    q = parse_query(query(index="42", wait="10s", dc="dc1", ns="default", partition=""), "dc1")
    assert (q.read.index, q.read.wait, q.read.min_index) == (42, 10.0, None)
    assert parse_query(query(), "dc1").read.index is None


@pytest.mark.parametrize(("params", "status", "text"), [
    ({"wait": "10x"}, 400, "Invalid wait"),
    ({"wait": "-1s"}, 400, "Invalid wait"),
    ({"index": "abc"}, 400, "Invalid index"),
    ({"index": "-1"}, 400, "Invalid index"),
    ({"index": "18446744073709551616"}, 400, "Invalid index"),
    ({"stale": "maybe"}, 400, "Invalid stale"),
    ({"stale": "", "consistent": ""}, 400, "Invalid consistent"),
    ({"dc": "dc2"}, 400, "No path to datacenter"),
    ({"ns": "team-a"}, 400, "Invalid ns"),
    ({"partition": "p1"}, 400, "Invalid partition"),
])
def test_bad_parameters_are_400_naming_them(params: dict[str, str], status: int, text: str) -> None:
    with pytest.raises(ConsulError) as info:
        parse_query(query(**params), "dc1")
    assert info.value.status == status
    assert info.value.message.startswith(text), info.value.message


def register(body: dict[str, Any], remote: str | None = "192.0.2.9") -> Any:
    return parse_agent_register(json.dumps(body).encode(), remote)


def test_register_keys_are_case_insensitive_and_snake_case_is_accepted() -> None:
    go = register({"ID": "redis1", "Name": "redis", "Tags": ["primary"], "Address": "10.0.0.5", "Port": 8000,
                   "Meta": {"v": "4"}, "Weights": {"Passing": 10, "Warning": 2},
                   "TaggedAddresses": {"lan": {"Address": "10.0.0.5", "Port": 8000}},
                   "Check": {"HTTP": "http://10.0.0.5:8000/health", "Interval": "10s", "Timeout": "5s",
                             "DeregisterCriticalServiceAfter": "90m"}})
    py = register({"id": "redis1", "name": "redis", "tags": ["primary"], "address": "10.0.0.5", "port": 8000,
                   "meta": {"v": "4"}, "weights": {"passing": 10, "warning": 2},
                   "tagged_addresses": {"lan": {"address": "10.0.0.5", "port": 8000}},
                   "checks": [{"http": "http://10.0.0.5:8000/health", "interval": "10s", "timeout": "5s",
                               "DeregisterCriticalServiceAfter": "90m"}]})
    assert go == py
    inst = go.instance
    assert (inst.service, inst.id, inst.address, inst.port, inst.tags, inst.weight) == \
        ("redis", "redis1", "10.0.0.5", 8000, ("primary",), 10)
    assert inst.check is not None and inst.check.http == "http://10.0.0.5:8000/health"
    assert inst.check.interval == 10.0 and inst.check.deregister_critical_after == 5400.0
    assert inst.meta[META_WEIGHT_WARNING] == "2"
    assert json.loads(inst.meta[META_TAGGED]) == {"lan": {"Address": "10.0.0.5", "Port": 8000}}
    assert user_meta(inst) == {"v": "4"}


def test_register_defaults() -> None:
    reg = register({"Name": "web", "Port": 80})
    assert (reg.instance.id, reg.instance.address, reg.instance.weight, reg.status) == ("web", "192.0.2.9", 1, None)


def test_ttl_and_http_checks_in_order_with_generated_ids() -> None:
    reg = register({"Name": "web", "ID": "w1", "Port": 80, "Checks": [
        {"TTL": "15s", "Name": "heartbeat", "Status": "critical"},
        {"TCP": "10.0.0.1:80", "Interval": "5s", "CheckID": "service:w1:2"}]})
    inst = reg.instance
    assert inst.ttl == 15.0 and inst.check is not None and inst.check.tcp == "10.0.0.1:80"
    assert reg.status == "critical"
    assert json.loads(inst.meta[META_CHECKS]) == [["ttl", "heartbeat"], ["tcp", ""]]
    assert check_kinds(inst) == [("ttl", "heartbeat"), ("tcp", "")]
    views = checks_view(inst)
    assert [(c["CheckID"], c["Name"], c["Type"]) for c in views] == [
        ("service:w1:1", "heartbeat", "ttl"), ("service:w1:2", "Service 'web' check", "tcp")]


@pytest.mark.parametrize(("body", "field"), [
    ({"Name": "Web_Server", "Port": 80}, "Invalid Name"),
    ({"Port": 80}, "Invalid Name"),
    ({"Name": "web", "ID": "has space", "Port": 80}, "Invalid ID"),
    ({"Name": "web"}, "Invalid Port"),
    ({"Name": "web", "Port": 0}, "Invalid Port"),
    ({"Name": "web", "Port": "80"}, "Invalid Port"),
    ({"Name": "web", "Port": 80, "Address": "not an address!"}, "Invalid Address"),
    ({"Name": "web", "Port": 80, "Tags": "v1"}, "Invalid Tags"),
    ({"Name": "web", "Port": 80, "Meta": {"consul-x": "1"}}, "Invalid Meta"),
    ({"Name": "web", "Port": 80, "Meta": {"a b": "1"}}, "Invalid Meta"),
    ({"Name": "web", "Port": 80, "Weights": {"Passing": -1}}, "Invalid Weights.Passing"),
    ({"Name": "web", "Port": 80, "Weights": {"Warning": "x"}}, "Invalid Weights.Warning"),
    ({"Name": "web", "Port": 80, "Bogus": 1}, "Invalid bogus"),
    ({"Name": "web", "name": "web", "Port": 80}, "Invalid name"),
    ({"Name": "web", "Port": 80, "Connect": {"Native": True}}, "Invalid Connect"),
    ({"Name": "web", "Port": 80, "Kind": "connect-proxy"}, "Invalid Kind"),
    ({"Name": "web", "Port": 80, "Check": {"Args": ["/bin/true"], "Interval": "5s"}}, "Invalid Check.Args"),
    ({"Name": "web", "Port": 80, "Check": {"GRPC": "h:1", "Interval": "5s"}}, "Invalid Check.GRPC"),
    ({"Name": "web", "Port": 80, "Check": {"HTTP": "http://h/", "Interval": "5s", "Method": "POST"}},
     "Invalid Check.Method"),
    ({"Name": "web", "Port": 80, "Check": {"HTTP": "http://h/"}}, "Invalid Check.Interval"),
    ({"Name": "web", "Port": 80, "Check": {"HTTP": "ftp://h/", "Interval": "5s"}}, "Invalid Check.HTTP"),
    ({"Name": "web", "Port": 80, "Check": {"HTTP": "http://h/", "Interval": "soon"}}, "Invalid Check.Interval"),
    ({"Name": "web", "Port": 80, "Check": {"TTL": "0.1s"}}, "Invalid Check.TTL"),
    ({"Name": "web", "Port": 80, "Check": {"TTL": "10s", "HTTP": "http://h/"}}, "Invalid Check"),
    ({"Name": "web", "Port": 80, "Check": {"TTL": "10s", "CheckID": "mine"}}, "Invalid Check.CheckID"),
    ({"Name": "web", "Port": 80, "Check": {"TTL": "10s", "Status": "bad"}}, "Invalid Check.Status"),
    ({"Name": "web", "Port": 80, "Checks": [{"TTL": "10s"}, {"TTL": "20s"}]}, "Invalid Checks"),
    ({"Name": "web", "Port": 80, "Checks": [{"TCP": "h:1", "Interval": "1s"}, {"HTTP": "http://h/",
                                                                               "Interval": "1s"}]}, "Invalid Checks"),
    ({"Name": "web", "Port": 80, "Checks": [{"TTL": "10s"}] * 3}, "Invalid Checks"),
    ({"Name": "web", "Port": 80, "Checks": {"TTL": "10s"}}, "Invalid Checks"),
    ({"Name": "web", "Port": 80, "TaggedAddresses": {"lan": {"Port": 70000}}}, "Invalid TaggedAddresses.lan.Port"),
])
def test_bad_registrations_are_400_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ConsulError) as info:
        register(body)
    assert info.value.status == 400
    assert info.value.message.startswith(field + ":"), info.value.message


def test_malformed_json_is_refused() -> None:
    with pytest.raises(Exception, match="Request decode failed"):
        parse_agent_register(b"{not json", None)
    with pytest.raises(ConsulError, match="must be a JSON object"):
        parse_agent_register(b"[1]", None)
