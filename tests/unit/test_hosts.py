"""Synthetic catalog nodes (raftreg.node.hosts): names are DNS labels, IDs stable per address."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from raftreg.node.hosts import host_node

LABEL = re.compile(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


def test_ipv4_ipv6_and_host_names() -> None:
    assert host_node("10.0.0.5").name == "ip-10-0-0-5"
    assert host_node("::1").name == "ip6-0-0-0-0-0-0-0-1"
    assert host_node("Web-1.example.com").name == "web-1-example-com"


def test_ids_are_stable_uuids_per_address() -> None:
    a, b = host_node("10.0.0.5"), host_node("10.0.0.6")
    assert a.id != b.id
    assert a.id == host_node.__wrapped__("10.0.0.5").id  # not a cached accident
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", a.id)


@given(st.ip_addresses(), st.ip_addresses())
def test_every_ip_gives_a_dns_label_and_distinct_ips_distinct_names(ip: object, other: object) -> None:
    node = host_node(str(ip))
    assert LABEL.match(node.name), node.name
    assert (host_node(str(other)).name == node.name) == (other == ip)


@given(st.text(min_size=1, max_size=300))
def test_any_address_text_gives_a_dns_label(text: str) -> None:
    assert LABEL.match(host_node.__wrapped__(text).name)
