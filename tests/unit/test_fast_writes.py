"""Which requests the registration fast path takes (raftreg.http.fast_writes.FastWrites.takes):
only plain registrations that aiohttp would route and parse the same way."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from raftreg.http.fast_writes import MAX_HEAD, MAX_HEADERS, FastWrites
from raftreg.http.shed import parse_whole
from raftreg.node.registry_node import RegistryNode

BODY = b'{"address":"10.0.0.1","port":8080}'


def node(*, acl: bool = False, conflict: str | None = None, request_log: bool = False) -> RegistryNode:
    stub: Any = SimpleNamespace(acl=SimpleNamespace(enabled=acl), acl_conflict=conflict,
                                config=SimpleNamespace(logging=SimpleNamespace(requests=request_log)))
    return cast(RegistryNode, stub)


def request(method: bytes = b"PUT", target: bytes = b"/v1/services/web/instances/i1",
            headers: bytes = b"Host: n1\r\nContent-Type: application/json\r\n") -> bytes:
    return (method + b" " + target + b" HTTP/1.1\r\n" + headers + b"Content-Length: %d\r\n\r\n" % len(BODY)
            + BODY)


def takes(data: bytes, **node_kw: Any) -> bool:
    whole = parse_whole(data)
    assert whole is not None
    return FastWrites(node(**node_kw), None, None).takes(whole)


def test_a_plain_registration_is_taken() -> None:
    assert takes(request())
    assert takes(request(target=b"/v1/services/web/instances/a.b:c_d-1"))
    assert takes(request(headers=b"HOST: n1\r\ncontent-type:application/json\r\nX-Any:\t v \r\n"))


@pytest.mark.parametrize("data", [
    request(b"DELETE"),
    request(b"POST"),
    request(target=b"/v1/services/web/instances/i1?token=x"),  # a query string: aiohttp's
    request(target=b"/v1/services/web/instances/i%31"),  # aiohttp decodes it
    request(target=b"/v1/services/web/instances/../instances/i1"),  # aiohttp normalises it
    request(target=b"/v1/services/./instances/i1"),
    request(target=b"/v1/services/web/instances/.i1"),
    request(target=b"/v1/services/web/instances/i1/status"),
    request(target=b"/v1/services/web/instances/i1/heartbeat"),
    request(target=b"/v1/services/web/instances/"),
    request(target=b"/v1/services/web/instance/i1"),
    request(target=b"/v1/services/web/instances/" + b"i" * 300),
    request(headers=b"Host: n1\r\nHost: n2\r\n"),  # a repeated header: aiohttp answers 400
    request(headers=b"Host: n1\r\nContent-Type: application/json\r\ncontent-type: text/plain\r\n"),
    request(headers=b"Host n1\r\n"),  # no colon
    request(headers=b"Bad Name: x\r\n"),
    request(headers=b"X: a\x01b\r\n"),  # a control character
    request(headers=b"X-Big: " + b"x" * MAX_HEAD + b"\r\n"),
    request(headers=b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADERS + 1))),
])
def test_anything_else_is_left_to_aiohttp(data: bytes) -> None:
    assert not takes(data)


@pytest.mark.parametrize("node_kw", [{"acl": True}, {"conflict": "acl differs"}, {"request_log": True}])
def test_a_node_with_acls_an_acl_conflict_or_a_request_log_answers_through_aiohttp(node_kw: dict[str, Any]) -> None:
    assert not takes(request(), **node_kw)
