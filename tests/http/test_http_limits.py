"""Limits against abusive clients (raftreg.http.limits) on a real node with small ``[limits]``.

Each test proves one contract of the module docstring: a flooding client gets 429
``rate_limited`` + ``Retry-After`` while another client, health and ready are still served; a
client's extra blocking query is 429 at once; a connection over the per-address cap is answered
429 and closed; a request head trickled byte by byte and a stalled body are cut off within their
timeouts while the node keeps serving others. Waits are on conditions with deadlines.
"""

from __future__ import annotations

import itertools
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from raftreg.config import LimitsTuning
from raftreg.signing import Signer
from raftreg.testing import LocalCluster, wait_for
from tests.conftest import START_TIMEOUT
from tests.http.conftest import Http, Resp

LIMITS = LimitsTuning(rate=2.0, burst=20, conns_per_address=40, blocking_per_client=3,
                      header_timeout=1.5, body_timeout=1.5)
MARGIN = 3.0  # seconds of slack over a timeout on a shared 2-core machine


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(1, limits=LIMITS)
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


_addresses = itertools.count(1)


def new_address() -> str:
    """A loopback address no request of this module used yet (127.1.0.1, 127.1.0.2, ...)."""
    n = next(_addresses)
    return f"127.1.{n // 250}.{n % 250 + 1}"


class FreshClientHttp(Http):
    """Each request is a new client (it comes from a new loopback address), so the tests' own
    observations never drain a bucket; ``client(name)`` is one named client (one address)."""

    def request(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> Resp:
        if self.source_host is not None:
            return super().request(method, path, body, **kw)
        return Http(self.base_url, self.secret, source_host=new_address()).request(method, path, body, **kw)


_named: dict[str, str] = {}


def client(api: Http, name: str) -> Http:
    """The client called ``name``: always the same loopback address."""
    return Http(api.base_url, api.secret, source_host=_named.setdefault(name, new_address()))


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Http:
    return FreshClientHttp(cluster.url("n1"), cluster.secret)


def flood_until_limited(one: Http, path: str = "/v1/services", most: int = 1000) -> None:
    """Send requests as one client until one is refused (at most ``most``)."""
    for _ in range(most):
        resp = one.request("GET", path, content_type=None)
        if resp.status == 429:
            err = one.assert_error(resp, 429, "rate_limited", None)
            assert int(resp.header("Retry-After") or 0) >= 1, resp.headers
            assert "canary" not in err["message"]
            return
        assert resp.status == 200, resp.body
    pytest.fail(f"{most} requests in a row were not rate limited")


def test_a_flooding_client_gets_429_others_and_health_are_served(api: Http) -> None:
    a = client(api, "a")
    flood_until_limited(a)
    assert client(api, "b").request("GET", "/v1/services", content_type=None).status == 200
    assert a.request("GET", "/v1/health", content_type=None).status == 200
    assert a.request("GET", "/v1/ready", content_type=None).status == 200
    with api.unchanged("/v1/services/limited"):
        resp = a.request("PUT", "/v1/services/limited/instances/i1", json_body={"address": "10.0.0.1", "port": 80})
        api.assert_error(resp, 429, "rate_limited", None)  # one token per 0.5 s: still empty
    # without ACLs a token is no identity: the same address with any token is the same client
    for headers in ({"X-Raftreg-Token": "canary-a-secret"}, {"Authorization": f"Bearer {uuid.uuid4().hex}"}):
        api.assert_error(a.request("GET", "/v1/services", headers=headers, content_type=None), 429,
                         "rate_limited", None)


def test_the_bucket_refills(api: Http) -> None:
    refill = client(api, "refill")
    flood_until_limited(refill)
    wait_for(lambda: refill.request("GET", "/v1/services", content_type=None).status == 200,
             5.0, "a token back after Retry-After", interval=0.1)


def test_signed_node_to_node_requests_are_exempt(api: Http) -> None:
    node = client(api, "node")
    flood_until_limited(node)
    body = b"{}"
    headers = api_signer(api).headers("POST", "/v1/internal/lease-digest", body)
    assert node.request("POST", "/v1/internal/lease-digest", body, headers=headers).status != 429
    assert node.request("GET", "/v1/health", content_type=None).status == 200


def api_signer(api: Http) -> Signer:
    assert api.secret
    return Signer(api.secret, "test")


def test_a_blocking_query_over_the_cap_is_429(api: Http, pool: ThreadPoolExecutor, quiet: dict[str, int]) -> None:
    index = api.get("/v1/services/parked").header("X-Raftreg-Index")
    path = f"/v1/services/parked?index={index}&wait=30s"
    w = client(api, "w")
    parked = [pool.submit(w.request, "GET", path, content_type=None) for _ in range(3)]
    wait_for(lambda: api.cluster()["watches"]["waiting"] >= 3, 10.0, "3 parked blocking queries")
    resp = w.request("GET", path, content_type=None)
    api.assert_error(resp, 429, "rate_limited", None)
    assert resp.header("Retry-After") == "1"
    assert client(api, "other").request("GET", path.replace("30s", "0s"), content_type=None).status == 200
    api.put_ok("parked", "i1", {"address": "10.0.0.1", "port": 80})  # wakes the three
    assert all(f.result(timeout=10).status == 200 for f in parked)
    api.delete_ok("parked", "i1")


def connect(api: Http) -> socket.socket:
    return socket.create_connection((api.host, api.port), timeout=MARGIN + 5)


def test_connections_over_the_per_address_cap_are_refused(api: Http) -> None:
    held = [connect(api) for _ in range(LIMITS.conns_per_address - 5)]
    try:
        extra = [connect(api) for _ in range(10)]  # some of these go over the cap
        refused = 0
        for s in extra:
            s.settimeout(0.5)
            try:
                data = s.recv(4096)
            except TimeoutError:
                continue  # accepted, idle
            if data.startswith(b"HTTP/1.1 429"):
                assert b'"rate_limited"' in data and b"Retry-After: 1" in data
                refused += 1
        assert refused >= 5, refused
    finally:
        for s in held + extra:
            s.close()
    wait_for(lambda: api.get("/v1/health").status == 200, 10.0, "served again once the connections closed")


def closed_within(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection; fails past ``deadline``."""
    out = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk
    pytest.fail("the server did not close the connection in time")


def test_a_request_head_sent_byte_by_byte_is_cut_off(api: Http) -> None:
    head = b"GET /v1/services HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    with connect(api) as sock:
        start = time.monotonic()
        sent = 0
        sock.settimeout(0.05)
        while time.monotonic() - start < LIMITS.header_timeout + MARGIN:
            try:
                sock.sendall(head[sent % len(head):][:1])
            except OSError:
                break  # closed by the server
            sent += 1
            assert api.get("/v1/health").status == 200 if sent % 20 == 0 else True
            try:
                if sock.recv(4096) == b"":
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
        else:
            pytest.fail("a trickled request head kept its connection open")
        assert time.monotonic() - start < LIMITS.header_timeout + MARGIN


def test_an_idle_connection_is_closed(api: Http) -> None:
    with connect(api) as sock:
        closed_within(sock, time.monotonic() + LIMITS.header_timeout + MARGIN)


def test_a_stalled_body_is_408_and_closed_and_changes_nothing(api: Http) -> None:
    with api.unchanged("/v1/services/stalled"), connect(api) as sock:
        sock.sendall(b"PUT /v1/services/stalled/instances/i1 HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"address\":")
        assert api.get("/v1/health").status == 200  # others are served meanwhile
        answer = closed_within(sock, time.monotonic() + LIMITS.body_timeout + MARGIN)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"invalid_argument"' in answer and b"Traceback" not in answer
