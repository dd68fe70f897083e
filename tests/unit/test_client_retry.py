"""``no_silent_retry``: a write whose connection breaks after sending is reported, not re-sent."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from raftreg.client.async_client import AsyncRegistryClient, ConnectionLostAfterSend, no_silent_retry
from raftreg.errors import OutcomeUnknown


async def start_dropping_server() -> tuple[asyncio.Server, list[bytes], int]:
    """A server that reads one request head per connection, then closes it without answering."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen, server.sockets[0].getsockname()[1]


async def test_plain_aiohttp_resends_the_put_but_the_middleware_does_not() -> None:
    server, seen, port = await start_dropping_server()
    async with server:
        url = f"http://127.0.0.1:{port}/v1/services/s/instances/i"
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                await plain.put(url, json={})
        assert len(seen) == 2  # aiohttp's RFC 9112 retry: the write went out twice
        seen.clear()
        async with aiohttp.ClientSession(middlewares=(no_silent_retry,)) as guarded:
            with pytest.raises(ConnectionLostAfterSend):
                await guarded.put(url, json={})
        assert len(seen) == 1


async def test_client_reports_unknown_outcome_not_failure() -> None:
    """An idempotent write is retried under the deadline, then reported as an unknown outcome."""
    server, seen, port = await start_dropping_server()
    async with server, AsyncRegistryClient([f"127.0.0.1:{port}"], deadline=0.5) as client:
        with pytest.raises(OutcomeUnknown, match="outcome is unknown"):
            await client.register("s", "i", {"address": "10.0.0.1", "port": 80})
    assert len(seen) >= 1


async def test_a_non_idempotent_write_is_sent_once() -> None:
    server, seen, port = await start_dropping_server()
    async with server, AsyncRegistryClient([f"127.0.0.1:{port}"], deadline=5.0) as client:
        with pytest.raises(OutcomeUnknown, match="not sent again"):
            await client.request("POST", "/v1/cluster/transfer-leader", json={})
    assert len(seen) == 1
