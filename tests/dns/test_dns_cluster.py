"""DNS on a real 3-node cluster, compared with the native HTTP view, with dnspython as the client.

Instances are registered through the HTTP API (some passing, one warning and one critical set by
``PUT .../status``, tags, weights, one IPv6 address, and a service with more instances than fit in
512 bytes); every node's DNS answers must match ``GET /v1/services/NAME?passing`` on that node.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from raftreg.config import AclSettings, DnsSettings
from raftreg.node.hosts import host_node
from raftreg.testing import LocalCluster, http_json, wait_for
from tests.conftest import START_TIMEOUT
from tests.dns.dns_data import texts

pytestmark = pytest.mark.cluster

CART = [  # (id, address, port, tags, weight, status set by hand)
    ("cart-1", "10.0.0.1", 8001, ["v2"], 10, None),
    ("cart-2", "10.0.0.2", 8002, ["v1"], 0, None),
    ("cart-3", "10.0.0.3", 8003, ["v2"], 100, "critical"),
    ("cart-4", "fd00::4", 8004, ["v2"], 50, None),
    ("cart-5", "10.0.0.5", 8005, ["v2"], 100, "warning"),
]
BIG = 60  # A records of 60 addresses need about 1 KB: more than fit in 512 bytes
TIMEOUT = 2.0
IDLE = 1.0  # tcp_idle_timeout of the cluster's DNS
MAX_TCP = 6  # max_tcp_connections


def put(cluster: LocalCluster, path: str, body: dict[str, Any]) -> None:
    code, answer = http_json(cluster.url("n1") + path, method="PUT", body=body, timeout=10.0)
    assert code == 200, (path, code, answer)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(3, dns=DnsSettings(tcp_idle_timeout=IDLE, max_tcp_connections=MAX_TCP), name="dns")
    try:
        c.start(wait=START_TIMEOUT)
        for iid, address, port, tags, weight, status in CART:
            put(c, f"/v1/services/cart/instances/{iid}", {"address": address, "port": port, "tags": tags,
                                                           "weight": weight})
            if status is not None:
                put(c, f"/v1/services/cart/instances/{iid}/status", {"status": status, "note": "test"})
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: put(c, f"/v1/services/big/instances/big-{n}",
                                        {"address": f"10.9.{n // 200}.{n % 200 + 1}", "port": 7000 + n}),
                          range(BIG)))
        c.wait_converged(timeout=30.0)
        yield c
    finally:
        c.close()


def http_view(cluster: LocalCluster, node: str, service: str, tag: str | None = None) -> list[dict[str, Any]]:
    query = "?passing" + (f"&tag={tag}" if tag else "")
    code, body = http_json(f"{cluster.url(node)}/v1/services/{service}{query}")
    assert code == 200
    instances: list[dict[str, Any]] = body["instances"]
    return instances


def udp(cluster: LocalCluster, node: str, name: str, rdtype: str = "A", **kw: Any) -> dns.message.Message:
    host, port = cluster.dns_address(node)
    return dns.query.udp(dns.message.make_query(name, rdtype, **kw), host, port=port, timeout=TIMEOUT)


def tcp(cluster: LocalCluster, node: str, name: str, rdtype: str = "A") -> dns.message.Message:
    host, port = cluster.dns_address(node)
    return dns.query.tcp(dns.message.make_query(name, rdtype), host, port=port, timeout=TIMEOUT)


def test_a_aaaa_and_srv_match_the_http_view_on_every_node(cluster: LocalCluster) -> None:
    for node in cluster.names:
        passing = http_view(cluster, node, "cart")
        assert {i["id"] for i in passing} == {"cart-1", "cart-2", "cart-4"}
        v4 = sorted(i["address"] for i in passing if ":" not in i["address"])
        v6 = sorted(i["address"] for i in passing if ":" in i["address"])
        a = udp(cluster, node, "cart.service.consul.")
        assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AA
        assert sorted(texts(a.answer)) == v4
        assert sorted(texts(tcp(cluster, node, "cart.service.consul.", "AAAA").answer)) == v6
        srv = udp(cluster, node, "_cart._tcp.service.consul.", "SRV")
        expected = sorted(f"1 {i['weight']} {i['port']} {host_node(i['address']).name}.node.dc1.consul."
                          for i in passing)
        assert sorted(texts(srv.answer)) == expected
        glue = {r.name.to_text(): texts([r]) for r in srv.additional}
        assert glue == {f"{host_node(i['address']).name}.node.dc1.consul.": [i["address"]] for i in passing}


def test_the_tag_filter_matches_http_on_every_node(cluster: LocalCluster) -> None:
    for node in cluster.names:
        tagged = http_view(cluster, node, "cart", tag="v2")
        assert {i["id"] for i in tagged} == {"cart-1", "cart-4"}
        expected = sorted(f"1 {i['weight']} {i['port']} {host_node(i['address']).name}.node.dc1.consul."
                          for i in tagged)
        for name in ("v2.cart.service.consul.", "_cart._v2.service.consul.", "V2.CART.service.dc1.consul."):
            assert sorted(texts(udp(cluster, node, name, "SRV").answer)) == expected, (node, name)
        assert udp(cluster, node, "v9.cart.service.consul.").rcode() == dns.rcode.NXDOMAIN


def test_unknown_names_are_nxdomain_with_soa_and_outside_names_refused(cluster: LocalCluster) -> None:
    for node in cluster.names:
        missing = udp(cluster, node, "nope.service.consul.", "SRV")
        assert missing.rcode() == dns.rcode.NXDOMAIN
        assert [r.rdtype for r in missing.authority] == [dns.rdatatype.SOA]
        assert udp(cluster, node, "example.com.").rcode() == dns.rcode.REFUSED
    assert texts(udp(cluster, "n2", "ip-10-0-0-1.node.consul.").answer) == ["10.0.0.1"]


def test_more_than_fits_in_512_bytes_is_truncated_over_udp_and_whole_over_tcp(cluster: LocalCluster) -> None:
    node = "n3"
    everything = sorted(i["address"] for i in http_view(cluster, node, "big"))
    assert len(everything) == BIG
    small = udp(cluster, node, "big.service.consul.")
    assert small.flags & dns.flags.TC and 0 < len(texts(small.answer)) < BIG
    assert set(texts(small.answer)) <= set(everything)
    assert len(small.to_wire()) <= 512
    whole = tcp(cluster, node, "big.service.consul.")
    assert not whole.flags & dns.flags.TC and sorted(texts(whole.answer)) == everything
    edns = udp(cluster, node, "big.service.consul.", use_edns=0, payload=4096)
    assert not edns.flags & dns.flags.TC and sorted(texts(edns.answer)) == everything


def test_tcp_serves_several_queries_on_one_connection(cluster: LocalCluster) -> None:
    host, port = cluster.dns_address("n1")
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        for name in ("cart.service.consul.", "big.service.consul.", "nope.service.consul."):
            reply = dns.query.tcp(dns.message.make_query(name, "A"), host, port=port, sock=sock, timeout=TIMEOUT)
            assert reply.rcode() == (dns.rcode.NXDOMAIN if name.startswith("nope") else dns.rcode.NOERROR)


def closed_by_server(conn: socket.socket, within: float) -> bool:
    conn.settimeout(within)
    try:
        return conn.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_idle_tcp_connections_are_closed_and_their_number_capped(cluster: LocalCluster) -> None:
    host, port = cluster.dns_address("n3")
    with socket.create_connection((host, port), timeout=TIMEOUT) as idle:
        assert closed_by_server(idle, IDLE + 2.0)
    conns = [socket.create_connection((host, port), timeout=TIMEOUT) for _ in range(MAX_TCP)]
    try:
        wait_for(lambda: not closed_by_server(conns[-1], 0.05), 2.0, "the last allowed connection open")
        with socket.create_connection((host, port), timeout=TIMEOUT) as extra:
            assert closed_by_server(extra, 0.5)
    finally:
        for conn in conns:
            conn.close()
    wait_for(lambda: tcp_answers(cluster, "n3"), 5.0, "TCP answered again once the connections closed")


def tcp_answers(cluster: LocalCluster, node: str) -> bool:
    try:
        return tcp(cluster, node, "cart.service.consul.").rcode() == dns.rcode.NOERROR
    except (OSError, EOFError, dns.exception.Timeout):
        return False


def test_malformed_packets_do_not_kill_the_server(cluster: LocalCluster) -> None:
    host, port = cluster.dns_address("n2")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        # no header, a response (QR set: never answered), a header with zero questions, a cut name
        for junk in (b"", b"\x01", b"\xff" * 11, b"\x12\x34" + b"\xff" * 40, b"\x00" * 512,
                     b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05trunc"):
            sock.sendto(junk, (host, port))
        replies = [sock.recvfrom(4096)[0] for _ in range(2)]
    assert sorted(r[:2] for r in replies) == [b"\x00\x00", b"\xab\xcd"]
    assert all(dns.message.from_wire(r).rcode() == dns.rcode.FORMERR for r in replies)
    for junk in (b"\x00\x05ab", b"\x00\x00", b"\x00\x10" + b"\xff" * 16, b"\x7f"):
        with socket.create_connection((host, port), timeout=TIMEOUT) as conn:
            conn.sendall(junk)
    assert sorted(texts(udp(cluster, "n2", "cart.service.consul.").answer)) == ["10.0.0.1", "10.0.0.2"]
    assert texts(tcp(cluster, "n2", "ip-10-0-0-2.node.consul.").answer) == ["10.0.0.2"]


def test_order_is_random_and_a_status_change_reaches_dns_on_every_node(cluster: LocalCluster) -> None:
    for node in cluster.names:  # enough repeats to be answered from the node's answer cache too
        orders = {tuple(texts(udp(cluster, node, "_cart._tcp.service.consul.", "SRV").answer)) for _ in range(30)}
        assert len(orders) > 1 and len({tuple(sorted(o)) for o in orders}) == 1
    put(cluster, "/v1/services/cart/instances/cart-2/status", {"status": "critical", "note": "down"})
    try:
        for node in cluster.names:
            wait_for(lambda n=node: "10.0.0.2" not in texts(udp(cluster, n, "cart.service.consul.").answer),
                     10.0, f"cart-2 gone from DNS on {node}")
            assert "10.0.0.2" not in [i["address"] for i in http_view(cluster, node, "cart")]
    finally:
        put(cluster, "/v1/services/cart/instances/cart-2/status", {"status": "passing", "note": "up"})


def test_with_acls_denying_by_default_dns_shows_nothing() -> None:
    """Security fails closed: DNS answers as a client without a token, which may read nothing."""
    with LocalCluster(1, dns=True, acl=AclSettings(enabled=True, default_policy="deny"), name="dnsacl") as c:
        code, body = http_json(c.url("n1") + "/v1/acl/bootstrap", method="PUT", body={})
        assert code == 200, body
        auth = {"Authorization": f"Bearer {body['secret_id']}"}
        code, body = http_json(c.url("n1") + "/v1/services/cart/instances/c1", method="PUT", headers=auth,
                               body={"address": "10.0.0.1", "port": 80})
        assert code == 200, body
        code, body = http_json(c.url("n1") + "/v1/services/cart", headers=auth)
        assert code == 200 and [i["id"] for i in body["instances"]] == ["c1"]
        assert http_json(c.url("n1") + "/v1/services/cart")[0] == 401
        for name, rdtype in (("cart.service.consul.", "A"), ("_cart._tcp.service.consul.", "SRV"),
                             ("ip-10-0-0-1.node.consul.", "A")):
            reply = udp(c, "n1", name, rdtype)
            assert reply.rcode() == dns.rcode.NXDOMAIN and reply.answer == [], name
