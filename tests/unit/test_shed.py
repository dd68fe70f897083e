"""raftreg.http.shed: which bytes are one whole request, which writes are refused at once, and the answer."""

from __future__ import annotations

import json

import pytest

from raftreg.errors import Unavailable
from raftreg.http.shed import Shedder, parse_whole, refusal_bytes, sheddable

BODY = b'{"address":"10.0.0.1","port":8080}'


def request(method: bytes = b"PUT", target: bytes = b"/v1/services/web/instances/i1", body: bytes = BODY,
            headers: bytes = b"") -> bytes:
    length = b"Content-Length: %d\r\n" % len(body) if body else b""
    return (method + b" " + target + b" HTTP/1.1\r\nHost: n1\r\nContent-Type: application/json\r\n" + length
            + headers + b"\r\n" + body)


def test_one_whole_request_gives_its_method_and_path_without_the_query() -> None:
    whole = parse_whole(request(target=b"/v1/services/web/instances/i1?x=1"))
    assert whole is not None
    assert (whole.method, whole.path, whole.has_query, whole.body) == (
        b"PUT", b"/v1/services/web/instances/i1", True, BODY)
    assert whole.head.startswith(b"\r\n") and whole.head.endswith(b"\r\n")
    whole = parse_whole(request(b"DELETE", body=b""))
    assert whole is not None
    assert (whole.method, whole.path, whole.has_query, whole.body) == (
        b"DELETE", b"/v1/services/web/instances/i1", False, b"")


@pytest.mark.parametrize("data", [
    request()[:-1],  # the body is not all there
    request() + b"x",  # more than one request's bytes
    request() + request(),  # two pipelined requests
    request()[:20],  # half a request line
    request().replace(b"HTTP/1.1", b"HTTP/1.0"),
    request().replace(b"\r\n", b"\n"),
    request(headers=b"Transfer-Encoding: chunked\r\n"),
    request(headers=b"Expect: 100-continue\r\n"),
    request(headers=b"Connection: close\r\n"),
    request(headers=b"Connection: Upgrade\r\nUpgrade: h2c\r\n"),
    request(headers=b"Content-Length: 5\r\n"),  # a repeated length
    request().replace(b"Content-Length: %d" % len(BODY), b"Content-Length: +%d" % len(BODY)),
    b"{\"address\": \"10.0.0.1\"}",  # a body without a head
])
def test_anything_but_one_whole_simple_request_is_left_to_aiohttp(data: bytes) -> None:
    assert parse_whole(data) is None


def test_header_names_are_matched_in_any_case() -> None:
    data = request().replace(b"Content-Length", b"cOnTeNt-LeNgTh")
    assert parse_whole(data) is not None
    assert parse_whole(data[:-1]) is None
    assert parse_whole(request(headers=b"TRANSFER-ENCODING: chunked\r\n")) is None


@pytest.mark.parametrize(("method", "path"), [
    (b"PUT", b"/v1/services/web/instances/i1"),
    (b"DELETE", b"/v1/services/web/instances/i1"),
    (b"PUT", b"/v1/services/web/instances/i1/status"),
    (b"PUT", b"/v1/kv/config/a/b"),
    (b"DELETE", b"/v1/kv/config"),
    (b"PUT", b"/v1/txn"),
    (b"PUT", b"/v1/sessions"),
    (b"DELETE", b"/v1/sessions/abc"),
])
def test_the_writes_that_check_capacity_first_are_sheddable(method: bytes, path: bytes) -> None:
    assert sheddable(method, path)


@pytest.mark.parametrize(("method", "path"), [
    (b"GET", b"/v1/services/web/instances/i1"),
    (b"PUT", b"/v1/services/web/instances/i1/heartbeat"),  # keeps leases alive: never shed
    (b"DELETE", b"/v1/services/web/instances/i1/status"),
    (b"PUT", b"/v1/services/web"),
    (b"PUT", b"/v1/services//instances/i1"),
    (b"PUT", b"/v1/services/web/instances/"),
    (b"POST", b"/v1/internal/heartbeats"),
    (b"POST", b"/v1/members"),
    (b"PUT", b"/v1/sessions/abc/renew"),
    (b"GET", b"/v1/kv/config"),
    (b"PUT", b"/v1/snapshot"),
    (b"PUT", b"/v1/acl/tokens"),
])
def test_reads_heartbeats_and_other_routes_are_never_shed(method: bytes, path: bytes) -> None:
    assert not sheddable(method, path)


def test_the_refusal_is_the_error_middleware_answer() -> None:
    raw = refusal_bytes(Unavailable("this node has 1000 writes queued (its limit); retry shortly", retry_after=1.0))
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 503 Service Unavailable"
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    assert headers[b"Retry-After"] == b"1"
    assert headers[b"Content-Type"] == b"application/json"  # as aiohttp's json_response
    assert int(headers[b"Content-Length"]) == len(body)
    assert json.loads(body) == {"error": {"code": "unavailable",
                                          "message": "this node has 1000 writes queued (its limit); retry shortly"}}


def test_the_shedder_reserves_a_slot_or_answers_the_refusal() -> None:
    full = [False]
    slots: list[str] = []

    def admit() -> None:
        if full[0]:
            raise Unavailable("this node has 3 writes queued (its limit); retry shortly", retry_after=1.0)
        slots.append("reserved")

    shedder = Shedder(admit, lambda: slots.pop())
    assert shedder.refuse_or_reserve() is None and slots == ["reserved"]
    shedder.release()
    assert slots == []
    full[0] = True
    answer = shedder.refuse_or_reserve()
    assert answer is not None and answer.startswith(b"HTTP/1.1 503 ")
    assert slots == [] and shedder.refused == 1
