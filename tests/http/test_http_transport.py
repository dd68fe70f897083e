"""Body size limits and transport-level abuse over real HTTP (research §4.2 rows 1, 2, 4, 21): an
aiohttp client for ordinary requests, raw asyncio sockets where a client library would refuse to lie
(wrong Content-Length, stalled bodies)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

pytestmark = pytest.mark.cluster

MIB = 1024 * 1024
SERVICE = "transport"
TARGET = f"/v1/services/{SERVICE}/instances/t1"
GOOD = b'{"address": "10.0.0.5", "port": 8080}'
TIMEOUT = aiohttp.ClientTimeout(total=30)


def padded(size: int) -> bytes:
    """A valid registration body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    assert size >= len(GOOD)
    return GOOD + b" " * (size - len(GOOD))


async def chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
        yield s


async def error_of(resp: aiohttp.ClientResponse, status: int, code: str) -> dict:
    text = await resp.text()
    assert resp.status == status, text
    assert "Traceback" not in text and 'File "' not in text, text
    assert resp.content_type == "application/json"
    body = json.loads(text)
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


class RawHttp:
    """One raw connection: write whatever bytes, read one response (status, headers, body)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def __aenter__(self) -> RawHttp:
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def send_head(self, method: str, path: str, headers: dict[str, str]) -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        self.writer.write("\r\n".join(lines).encode())
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        async def read() -> tuple[int, dict[str, str], bytes]:
            status_line = await self.reader.readline()
            assert status_line, "the server closed the connection without answering"
            status = int(status_line.split()[1])
            headers = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            return status, headers, await self.reader.readexactly(length)

        return await asyncio.wait_for(read(), timeout)


@pytest.fixture
def raw(api):
    return lambda: RawHttp(api.host, api.port)


# ---- body size ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [MIB + 1, 2 * MIB, 5 * MIB])
async def test_body_over_1mib_with_content_length_is_413(api, session, size):
    with api.unchanged(TARGET):
        async with session.put(api.base_url + TARGET, data=padded(size),
                               headers={"Content-Type": "application/json"}) as resp:
            err = await error_of(resp, 413, "payload_too_large")
            assert "field" not in err


@pytest.mark.parametrize("size", [MIB + 1, 3 * MIB])
async def test_chunked_body_over_1mib_is_413(api, session, size):
    with api.unchanged(TARGET):
        async with session.put(api.base_url + TARGET, data=chunks(padded(size)),
                               headers={"Content-Type": "application/json"}) as resp:
            assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
            await error_of(resp, 413, "payload_too_large")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_of_exactly_1mib_is_accepted(api, session, chunked):
    body = padded(MIB)
    data = chunks(body) if chunked else body
    async with session.put(api.base_url + TARGET, data=data, headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["port"] == 8080
    api.delete_ok(SERVICE, "t1")


async def test_huge_claimed_length_is_refused_before_the_body_arrives(api, raw):
    with api.unchanged(TARGET):
        async with raw() as conn:
            await conn.send_head("PUT", TARGET, {"Content-Type": "application/json", "Content-Length": str(10**12)})
            # Not a byte of the body is sent: the answer must come from the header alone.
            status, _, body = await conn.response(timeout=10)
            assert status == 413, body
            assert json.loads(body)["error"]["code"] == "payload_too_large"


# ---- lying Content-Length, stalled bodies ----------------------------------------------------

async def test_short_content_length_parses_only_the_claimed_bytes(api, raw):
    with api.unchanged(TARGET):
        async with raw() as conn:
            await conn.send_head("PUT", TARGET, {"Content-Type": "application/json", "Content-Length": "10"})
            await conn.send(GOOD)  # 37 bytes where 10 were announced
            status, headers, body = await conn.response()
            # The first 10 bytes are not a valid body; what follows is not a valid request.
            assert status == 400, body
            assert b"Traceback" not in body and b'File "' not in body
            if headers.get("content-type", "").startswith("application/json"):
                assert json.loads(body)["error"]["code"] == "invalid_argument"


async def test_body_shorter_than_its_content_length_then_eof_changes_nothing(api, raw):
    with api.unchanged(TARGET):
        async with raw() as conn:
            await conn.send_head("PUT", TARGET, {"Content-Type": "application/json", "Content-Length": "1000"})
            await conn.send(GOOD)
            conn.writer.write_eof()
            # The server must not act on a truncated body: no 2xx, at most an error, usually a close.
            rest = await asyncio.wait_for(conn.reader.read(), 15)
            if rest:
                status = int(rest.split(b" ", 2)[1])
                assert status >= 400, rest
                assert b"Traceback" not in rest


async def test_stalled_body_does_not_block_other_requests(api, raw, session):
    other = f"/v1/services/{SERVICE}/instances/other"
    async with raw() as stalled:
        await stalled.send_head("PUT", TARGET, {"Content-Type": "application/json", "Content-Length": "1000"})
        await stalled.send(GOOD[:10])
        # While that request waits for the rest of its body, the node serves everyone else.
        async with session.get(api.base_url + "/v1/health", timeout=aiohttp.ClientTimeout(total=10)) as resp:
            assert resp.status == 200
        async with session.put(api.base_url + other, data=GOOD, headers={"Content-Type": "application/json"},
                               timeout=aiohttp.ClientTimeout(total=15)) as resp:
            assert resp.status == 200, await resp.text()
        api.delete_ok(SERVICE, "other")
        commit = api.commit_index()
        assert api.get(TARGET).status == 404
    # The stalled connection is gone: its half body was never applied.
    assert api.get(TARGET).status == 404
    assert api.commit_index() == commit


# ---- content types and headers ---------------------------------------------------------------

async def test_aiohttp_text_body_is_rejected_as_wrong_content_type(api, session):
    with api.unchanged(TARGET):
        # aiohttp sends a str body as text/plain
        async with session.put(api.base_url + TARGET, data=GOOD.decode()) as resp:
            assert resp.request_info.headers["Content-Type"].startswith("text/plain")
            err = await error_of(resp, 400, "invalid_argument")
            assert err["field"] == "Content-Type"


async def test_json_client_round_trip(api, session):
    async with session.put(api.base_url + TARGET, json={"address": "10.0.0.5", "port": 8080, "tags": ["a"]}) as resp:
        assert resp.status == 200, await resp.text()
        put = await resp.json()
    async with session.get(api.base_url + TARGET) as resp:
        assert resp.status == 200
        assert resp.headers["X-Raftreg-Index"] == str(put["modify_index"])
        assert resp.headers["X-Raftreg-Leader"] == "n1"
        assert resp.headers["X-Raftreg-Last-Contact"] == "0"
        assert (await resp.json())["tags"] == ["a"]
    async with session.delete(api.base_url + TARGET) as resp:
        assert await resp.json() == {"deleted": True, "index": int(resp.headers["X-Raftreg-Index"])}


async def test_oversized_header_is_refused_without_traceback(api, raw):
    with api.unchanged(TARGET):
        async with raw() as conn:
            await conn.send_head("PUT", TARGET, {"Content-Type": "application/json", "X-Big": "x" * 20_000,
                                                 "Content-Length": str(len(GOOD))})
            await conn.send(GOOD)
            status, _, body = await conn.response()
            assert status in (400, 431), body
            assert b"Traceback" not in body
