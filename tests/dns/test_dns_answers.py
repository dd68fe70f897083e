"""``raftreg.dns.names`` and ``raftreg.dns.answers`` on plain data: every answering rule."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from raftreg.config import DnsSettings
from raftreg.dns.names import Apex, NodeLookup, Outside, ServiceLookup, Unknown, parse
from tests.dns.dns_data import ListCatalog, ask, inst, texts

CONSUL = dns.name.from_text("consul")

CATALOG = ListCatalog([
    inst("cart", 1, "10.0.0.1", 8001, tags=("v2", "Primary"), weight=10),
    inst("cart", 2, "10.0.0.2", 8002, tags=("v1",), weight=0),
    inst("cart", 3, "10.0.0.3", 8003, tags=("v2",), status="warning"),
    inst("cart", 4, "10.0.0.4", 8004, tags=("v2",), status="critical"),
    inst("cart", 5, "10.0.0.1", 8005, tags=("v2",), weight=70000),  # same host, another port
    inst("web", 1, "fd00::5", 443),
    inst("web", 2, "10.0.1.1", 443),
    inst("legacy", 1, "Old-Box.example.com", 25),
    inst("legacy", 2, "other.example.com", 26),
    inst("down", 1, "10.9.9.9", 1, status="critical"),
])


@pytest.mark.parametrize(("name", "expected"), [
    ("cart.service.consul.", ServiceLookup("cart")),
    ("CART.Service.CONSUL.", ServiceLookup("cart")),
    ("v2.cart.service.consul.", ServiceLookup("cart", "v2")),
    ("V2.cart.service.dc1.consul.", ServiceLookup("cart", "v2")),
    ("_cart._tcp.service.consul.", ServiceLookup("cart")),
    ("_cart._v2.service.consul.", ServiceLookup("cart", "v2")),
    ("_Cart._TCP.service.consul.", ServiceLookup("cart")),
    ("ip-10-0-0-1.node.consul.", NodeLookup("ip-10-0-0-1")),
    ("ip-10-0-0-1.node.dc1.consul.", NodeLookup("ip-10-0-0-1")),
    ("consul.", Apex()),
    ("CONSUL.", Apex()),
    ("cart.service.dc2.consul.", Unknown()),
    ("a.b.cart.service.consul.", Unknown()),
    ("_cart.v2.service.consul.", Unknown()),
    ("_cart.service.consul.", Unknown()),
    ("service.consul.", Unknown()),
    ("x.node.y.node.consul.", Unknown()),
    ("cart.query.consul.", Unknown()),
    ("cart.service.consul.example.", Outside()),
    ("example.com.", Outside()),
])
def test_query_names(name: str, expected: object) -> None:
    assert parse(dns.name.from_text(name), CONSUL) == expected


def test_a_records_are_the_passing_instances_distinct_addresses() -> None:
    reply = ask(CATALOG, "cart.service.consul.")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA and not reply.flags & dns.flags.RA and not reply.flags & dns.flags.TC
    assert sorted(texts(reply.answer, "A")) == ["10.0.0.1", "10.0.0.2"]
    assert reply.answer[0].ttl == 0 and reply.authority == []


def test_only_passing_false_adds_warning_never_critical() -> None:
    reply = ask(CATALOG, "cart.service.consul.", settings=DnsSettings(only_passing=False))
    assert sorted(texts(reply.answer, "A")) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_names_and_tags_are_case_insensitive() -> None:
    assert sorted(texts(ask(CATALOG, "V2.Cart.SERVICE.consul.").answer)) == ["10.0.0.1"]
    assert texts(ask(CATALOG, "primary.cart.service.consul.").answer) == ["10.0.0.1"]
    assert texts(ask(CATALOG, "_cart._PRIMARY.service.consul.", "SRV").answer) == [
        "1 10 8001 ip-10-0-0-1.node.dc1.consul."]


def test_aaaa_for_ipv6_and_a_for_ipv4() -> None:
    assert texts(ask(CATALOG, "web.service.consul.", "AAAA").answer) == ["fd00::5"]
    assert texts(ask(CATALOG, "web.service.consul.", "A").answer) == ["10.0.1.1"]
    assert sorted(texts(ask(CATALOG, "web.service.consul.", "ANY").answer)) == ["10.0.1.1", "fd00::5"]


def test_known_name_without_records_of_the_type_is_noerror_with_the_soa() -> None:
    for name, rdtype in [("cart.service.consul.", "AAAA"), ("cart.service.consul.", "TXT"),
                         ("ip-10-0-0-1.node.consul.", "AAAA"), ("consul.", "A")]:
        reply = ask(CATALOG, name, rdtype)
        assert reply.rcode() == dns.rcode.NOERROR, name
        assert reply.answer == []
        assert texts(reply.authority, "SOA") == ["ns.consul. hostmaster.consul. 7 3600 600 86400 0"]


def test_host_name_addresses_give_one_cname_only_when_no_ip_answers() -> None:
    reply = ask(CATALOG, "legacy.service.consul.")
    assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.CNAME]
    assert len(texts(reply.answer)) == 1
    assert texts(reply.answer)[0] in ("Old-Box.example.com.", "other.example.com.")
    srv = ask(CATALOG, "legacy.service.consul.", "SRV")
    assert sorted(texts(srv.answer)) == ["1 100 25 Old-Box.example.com.", "1 100 26 other.example.com."]
    assert srv.additional == []


def test_srv_priority_weight_port_target_and_additional_address() -> None:
    reply = ask(CATALOG, "v2.cart.service.consul.", "SRV")
    assert sorted(texts(reply.answer)) == ["1 10 8001 ip-10-0-0-1.node.dc1.consul.",
                                           "1 65535 8005 ip-10-0-0-1.node.dc1.consul."]
    assert [(r.name.to_text(), texts([r])) for r in reply.additional] == [
        ("ip-10-0-0-1.node.dc1.consul.", ["10.0.0.1"])]
    web = ask(CATALOG, "_web._tcp.service.consul.", "SRV")
    assert sorted(texts(web.answer)) == ["1 100 443 ip-10-0-1-1.node.dc1.consul.",
                                         "1 100 443 ip6-fd00-0-0-0-0-0-0-5.node.dc1.consul."]
    assert sorted((r.name.to_text(), r.rdtype) for r in web.additional) == [
        ("ip-10-0-1-1.node.dc1.consul.", dns.rdatatype.A),
        ("ip6-fd00-0-0-0-0-0-0-5.node.dc1.consul.", dns.rdatatype.AAAA)]
    assert texts(ask(CATALOG, "v1.cart.service.consul.", "SRV").answer) == ["1 0 8002 ip-10-0-0-2.node.dc1.consul."]


def test_srv_targets_resolve_as_nodes() -> None:
    assert texts(ask(CATALOG, "ip-10-0-0-1.node.dc1.consul.").answer) == ["10.0.0.1"]
    assert texts(ask(CATALOG, "IP6-FD00-0-0-0-0-0-0-5.node.consul.", "AAAA").answer) == ["fd00::5"]
    assert texts(ask(CATALOG, "ip-10-9-9-9.node.consul.").answer) == ["10.9.9.9"]  # a host, whatever its health
    assert texts(ask(CATALOG, "old-box-example-com.node.consul.").answer) == ["Old-Box.example.com."]


@pytest.mark.parametrize("name", ["nope.service.consul.", "down.service.consul.", "v3.cart.service.consul.",
                                  "_nope._tcp.service.consul.", "ip-10-0-0-99.node.consul.",
                                  "cart.service.dc2.consul.", "x.y.z.consul."])
def test_unknown_names_are_nxdomain_with_the_soa(name: str) -> None:
    reply = ask(CATALOG, name, "SRV")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.flags & dns.flags.AA
    assert reply.answer == []
    assert [(r.name.to_text(), r.ttl) for r in reply.authority] == [("consul.", 0)]
    assert texts(reply.authority) == ["ns.consul. hostmaster.consul. 7 3600 600 86400 0"]


def test_names_outside_the_domain_are_refused_without_recursion() -> None:
    reply = ask(CATALOG, "example.com.")
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.flags & (dns.flags.AA | dns.flags.RA)
    assert reply.answer == reply.authority == []


def test_configured_domain_and_ttl() -> None:
    settings = DnsSettings(domain="reg.internal", ttl=30)
    reply = ask(CATALOG, "cart.service.reg.internal.", settings=settings)
    assert sorted(texts(reply.answer)) == ["10.0.0.1", "10.0.0.2"] and reply.answer[0].ttl == 30
    srv = ask(CATALOG, "_cart._v2.service.REG.internal.", "SRV", settings=settings)
    assert {r.name.to_text().lower() for r in srv.additional} == {"ip-10-0-0-1.node.dc1.reg.internal."}
    assert srv.additional[0].ttl == 30
    missing = ask(CATALOG, "nope.service.reg.internal.", settings=settings)
    assert texts(missing.authority) == ["ns.reg.internal. hostmaster.reg.internal. 7 3600 600 86400 30"]
    assert missing.authority[0].ttl == 30
    assert ask(CATALOG, "cart.service.consul.", settings=settings).rcode() == dns.rcode.REFUSED


def test_apex_soa_and_ns() -> None:
    assert texts(ask(CATALOG, "consul.", "SOA").answer) == ["ns.consul. hostmaster.consul. 7 3600 600 86400 0"]
    assert texts(ask(CATALOG, "consul.", "NS").answer) == ["ns.consul."]


def test_order_is_random_per_query() -> None:
    many = ListCatalog([inst("big", n, f"10.1.0.{n}") for n in range(1, 11)])
    orders = {tuple(texts(ask(many, "big.service.consul.", seed=seed).answer)) for seed in range(10)}
    assert len(orders) > 1
    assert all(sorted(order) == sorted(f"10.1.0.{n}" for n in range(1, 11)) for order in orders)


def test_a_configured_datacenter_names_the_srv_targets_and_is_the_only_one_answered() -> None:
    import random

    from raftreg.dns.wire import respond

    def ask_in(name: str, rdtype: str) -> dns.message.Message:
        query = dns.message.make_query(name, rdtype)
        wire = respond(query.to_wire(), CATALOG, DnsSettings(), udp=True, serial=7, rng=random.Random(0),
                       datacenter="eu-west")
        assert wire is not None
        return dns.message.from_wire(wire)

    assert sorted(texts(ask_in("v2.cart.service.eu-west.consul.", "SRV").answer)) == [
        "1 10 8001 ip-10-0-0-1.node.eu-west.consul.", "1 65535 8005 ip-10-0-0-1.node.eu-west.consul."]
    assert texts(ask_in("ip-10-0-0-1.node.eu-west.consul.", "A").answer) == ["10.0.0.1"]
    assert ask_in("cart.service.dc1.consul.", "A").rcode() == dns.rcode.NXDOMAIN
