"""The registration fast path (raftreg.http.fast_writes) on a real node: what it answers is what
aiohttp's route answers, in order, counted, rate-limited and timed out like any request.

A request read whole is answered by the fast path, which writes no ``Server`` header; the same
request with a query string (which the route ignores) always goes through aiohttp, which does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from raftreg.config import LimitsTuning
from raftreg.testing import LocalCluster
from tests.conftest import START_TIMEOUT
from tests.http.conftest import Http

DEADLINE = 10.0
GOOD = {"address": "10.0.0.7", "port": 8080, "tags": ["a"], "meta": {"k": "v"}, "weight": 5}
PER_WRITE = ("index", "create_index", "modify_index", "id")  # fields that differ between two writes


class Conn:
    """One raw keep-alive connection: write bytes, read whole answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        async def read() -> tuple[int, dict[str, str], bytes]:
            status_line = await self.reader.readline()
            assert status_line, "the server closed the connection without answering"
            headers: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                assert name.lower() not in headers, f"header {name} twice"
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers["content-length"]))
            return int(status_line.split()[1]), headers, body

        return await asyncio.wait_for(read(), DEADLINE)


@contextlib.asynccontextmanager
async def connect(api: Http, source_host: str | None = None) -> AsyncIterator[Conn]:
    """A connection to ``api``'s node, from ``source_host`` (a loopback address: its own client
    for the node's per-address limits) when given."""
    local = (source_host, 0) if source_host else None
    reader, writer = await asyncio.wait_for(asyncio.open_connection(api.host, api.port, local_addr=local), DEADLINE)
    try:
        yield Conn(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def put(path: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    head = (f"PUT {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def exchange(api: Http, data: bytes) -> tuple[int, dict[str, str], bytes]:
    async with connect(api) as conn:
        await conn.send(data)
        return await conn.answer()


def without_per_write(body: bytes) -> dict[str, Any]:
    doc = json.loads(body)
    return {k: v for k, v in doc.items() if k not in PER_WRITE}


async def test_a_registration_is_answered_by_the_fast_path_exactly_as_by_aiohttp(api: Http) -> None:
    body = json.dumps(GOOD).encode()
    fast = await exchange(api, put("/v1/services/fast/instances/f1", body))
    slow = await exchange(api, put("/v1/services/fast/instances/f2?via=aiohttp", body))
    assert (fast[0], slow[0]) == (200, 200), (fast, slow)
    assert "server" not in fast[1] and "server" in slow[1], "the two requests did not take the two paths"
    assert set(fast[1]) == set(slow[1]) - {"server"}
    for name in ("content-type", "content-length"):
        assert fast[1][name] == slow[1][name]
    doc = json.loads(fast[2])
    assert doc["id"] == "f1" and fast[1]["x-raftreg-index"] == str(doc["index"])
    assert without_per_write(fast[2]) == without_per_write(slow[2])
    stored = api.get("/v1/services/fast/instances/f1")
    assert stored.status == 200 and without_per_write(stored.body) == without_per_write(slow[2])


BAD = {
    "malformed JSON": (b'{"address": ', "application/json", ""),
    "unknown field": (json.dumps({**GOOD, "colour": "red"}).encode(), "application/json", ""),
    "wrong type": (json.dumps({**GOOD, "port": "80"}).encode(), "application/json", ""),
    "bad address": (json.dumps({**GOOD, "address": "not an address"}).encode(), "application/json", ""),
    "ttl too short": (json.dumps({**GOOD, "ttl": 0.1}).encode(), "application/json", ""),
    "id differs": (json.dumps({**GOOD, "id": "other"}).encode(), "application/json", ""),
    "duplicate key": (b'{"address": "10.0.0.1", "port": 80, "port": 81}', "application/json", ""),
    "not JSON": (json.dumps(GOOD).encode(), "text/plain", ""),
    "compressed": (json.dumps(GOOD).encode(), "application/json", "Content-Encoding: gzip\r\n"),
    "not UTF-8": (b'{"address": "\xff", "port": 80}', "application/json", ""),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_registrations_get_the_same_error_from_both_paths_and_change_nothing(api: Http, case: str) -> None:
    body, content_type, extra = BAD[case]
    path = "/v1/services/fast/instances/bad1"
    with api.unchanged(path):
        fast = await exchange(api, put(path, body, content_type, extra))
        slow = await exchange(api, put(path + "?via=aiohttp", body, content_type, extra))
    assert "server" not in fast[1] and "server" in slow[1]
    assert fast[0] == slow[0] == 400, (fast, slow)
    assert fast[2] == slow[2]
    assert set(fast[1]) == set(slow[1]) - {"server"}
    Http.assert_no_traceback(fast[2])


@pytest.mark.parametrize("path", ["/v1/services/Fast/instances/i1", "/v1/services/fast/instances/-i1",
                                  "/v1/services/fast/instances/i%31", "/v1/services/fast/instances/i1#x"])
async def test_a_path_to_decode_or_refuse_is_left_to_aiohttp(api: Http, path: str) -> None:
    status, headers, body = await exchange(api, put(path, json.dumps(GOOD).encode()))
    assert "server" in headers, (status, body)
    assert status in (200, 400), body


async def test_answers_on_one_connection_keep_the_order_of_the_requests(api: Http) -> None:
    async with connect(api) as conn:
        # The second and third requests arrive while the first one's commit is pending.
        await conn.send(put("/v1/services/order/instances/o1", json.dumps(GOOD).encode()))
        await conn.send(b"GET /v1/services/order/instances/o1 HTTP/1.1\r\nHost: test\r\n\r\n")
        await conn.send(put("/v1/services/order/instances/o2", json.dumps(GOOD).encode()))
        first, second, third = [await conn.answer() for _ in range(3)]
    assert first[0] == 200 and json.loads(first[2])["id"] == "o1"
    assert second[0] == 200 and json.loads(second[2])["id"] == "o1"
    assert int(second[1]["x-raftreg-index"]) >= json.loads(first[2])["index"]
    assert third[0] == 200 and json.loads(third[2])["id"] == "o2"


def registrations_counted(api: Http, status: int) -> float:
    text = api.get("/metrics").body.decode()
    pattern = (r'^raftreg_http_requests_total\{api="native",method="PUT",route="/v1/services/\{service\}/instances/'
               rf'\{{id\}}",status="{status}"\}} (\S+)$')
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_fast_registrations_are_counted_in_the_request_metrics(api: Http) -> None:
    before_ok, before_bad = registrations_counted(api, 200), registrations_counted(api, 400)
    for n in range(3):
        status, headers, _ = await exchange(api, put(f"/v1/services/counted/instances/c{n}", json.dumps(GOOD).encode()))
        assert status == 200 and "server" not in headers
    status, headers, _ = await exchange(api, put("/v1/services/counted/instances/c9", b"{"))
    assert status == 400 and "server" not in headers
    assert registrations_counted(api, 200) == before_ok + 3
    assert registrations_counted(api, 400) == before_bad + 1


LIMITED_BURST = 20


@pytest.fixture(scope="module")
def limited() -> Iterator[Http]:
    """A node allowing each client ``LIMITED_BURST`` requests at once, then 2 a second, that
    closes a connection idle for 1 s."""
    cluster = LocalCluster(1, limits=LimitsTuning(rate=2.0, burst=LIMITED_BURST, header_timeout=1.0))
    try:
        cluster.start(wait=START_TIMEOUT)
        yield Http(cluster.url("n1"), cluster.secret)
    finally:
        cluster.close()


async def test_the_fast_path_keeps_the_rate_limit_and_the_idle_timeout(limited: Http) -> None:
    async with connect(limited, source_host="127.1.77.1") as conn:  # a client nothing else used
        answered = 0
        while True:
            await conn.send(put(f"/v1/services/rated/instances/r{answered}", json.dumps(GOOD).encode()))
            status, headers, body = await conn.answer()
            assert "server" not in headers, (status, body)
            if status != 200:
                break
            answered += 1
            assert answered < 20 * LIMITED_BURST, "never limited"
        assert answered >= LIMITED_BURST
        assert status == 429, body
        assert json.loads(body)["error"]["code"] == "rate_limited"
        assert int(headers["retry-after"]) >= 1
        # Idle after its last answer, the connection is closed after header_timeout (1 s).
        assert await asyncio.wait_for(conn.reader.read(), DEADLINE) == b""
