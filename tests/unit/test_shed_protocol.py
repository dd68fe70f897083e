"""NodeRequestHandler's fast refusals on a real aiohttp server over real sockets (the node is a stub:
the test says when its write queue is full)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from raftreg.errors import Unavailable
from raftreg.http.protocol import install_shedding, use_node_request_handler
from raftreg.http.shed import Shedder

DEADLINE = 5.0
PATH = "/v1/services/web/instances/i1"
BODY = b'{"address":"10.0.0.1","port":8080}'


@dataclass
class Stub:
    """The node's side: write slots (queued + reserved, up to ``capacity``), the refusals counted,
    a PUT that holds its slot while ``hold_writes`` is set, and a GET that waits for ``release``."""

    capacity: int = 1_000_000
    queued: int = 0
    reserved: int = 0
    admitted: int = 0
    refused_at_once: int = 0
    reserved_in_handler: list[int] = field(default_factory=list)
    server: web.Server | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hold_writes: asyncio.Event | None = None

    @property
    def full(self) -> bool:
        return self.capacity == 0

    @full.setter
    def full(self, value: bool) -> None:
        self.capacity = 0 if value else 1_000_000

    def admit(self) -> None:
        if self.queued + self.reserved >= self.capacity:
            self.refused_at_once += 1
            raise Unavailable("this node has 1 writes queued (its limit); retry shortly", retry_after=1.0)
        self.reserved += 1
        self.admitted += 1

    def give_back(self) -> None:
        assert self.reserved > 0, "a slot given back twice"
        self.reserved -= 1


@pytest.fixture
async def server() -> AsyncIterator[tuple[Stub, int]]:
    stub = Stub()

    async def put(request: web.Request) -> web.Response:
        stub.reserved_in_handler.append(stub.reserved)
        await request.read()
        if stub.hold_writes is not None:  # the write is queued until the test lets it go
            stub.queued += 1
            try:
                await stub.hold_writes.wait()
            finally:
                stub.queued -= 1
        return web.json_response({"by": "app", "id": request.match_info["id"]})

    async def slow_get(request: web.Request) -> web.Response:
        stub.started.set()
        await stub.release.wait()
        return web.json_response({"by": "app", "slow": True})

    app = web.Application()
    app.router.add_put("/v1/services/{service}/instances/{id}", put)
    app.router.add_get("/slow", slow_get)
    use_node_request_handler()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    install_shedding(runner.server, Shedder(stub.admit, stub.give_back))
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    stub.server = runner.server
    try:
        yield stub, port
    finally:
        await runner.cleanup()


async def wait_until(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def put_request(instance: str = "i1") -> bytes:
    return (f"PUT /v1/services/web/instances/{instance} HTTP/1.1\r\nHost: n1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], dict[str, object]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), DEADLINE)
    return int(lines[0].split()[1]), headers, json.loads(body)


async def test_a_whole_write_is_refused_at_once_while_full_and_the_connection_stays_usable(
        server: tuple[Stub, int]) -> None:
    stub, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(put_request())
    status, headers, body = await read_answer(reader)
    assert (status, body["by"]) == (200, "app")
    stub.full = True
    for _ in range(3):
        writer.write(put_request())
        status, headers, body = await read_answer(reader)
        assert status == 503
        assert body == {"error": {"code": "unavailable",
                                  "message": "this node has 1 writes queued (its limit); retry shortly"}}
        assert headers["retry-after"] == "1"
        assert "server" not in headers  # written by the fast path, not by aiohttp
    assert stub.refused_at_once == 3
    stub.full = False
    writer.write(put_request())
    status, _, body = await read_answer(reader)
    assert (status, body["by"]) == (200, "app")
    writer.close()


async def test_reads_go_to_the_app_while_full(server: tuple[Stub, int]) -> None:
    stub, port = server
    stub.full = True
    stub.release.set()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: n1\r\n\r\n")
    status, _, body = await read_answer(reader)
    assert (status, body) == (200, {"by": "app", "slow": True})
    assert stub.refused_at_once == 0
    writer.close()


async def test_a_write_behind_an_unanswered_request_is_answered_in_order(server: tuple[Stub, int]) -> None:
    stub, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: n1\r\n\r\n")
    await asyncio.wait_for(stub.started.wait(), DEADLINE)
    stub.full = True
    writer.write(put_request())  # pipelined behind the GET still in progress: not refused ahead of it
    await writer.drain()
    assert stub.server is not None
    await wait_until(lambda: any(h._request_count == 2 for h in stub.server.connections))  # the PUT was read
    stub.release.set()
    first = await read_answer(reader)
    second = await read_answer(reader)
    assert (first[0], first[2]) == (200, {"by": "app", "slow": True})
    assert second[0] == 200 and second[2]["by"] == "app"  # the app handled it: the stub's app does not refuse
    assert stub.refused_at_once == 0
    writer.close()


async def test_a_connection_that_sent_two_requests_in_one_read_is_never_refused_at_once(
        server: tuple[Stub, int]) -> None:
    stub, port = server
    stub.full = True
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(put_request("a") + put_request("b"))  # pipelined: aiohttp's parser frames them
    answers = [await read_answer(reader) for _ in range(2)]
    assert [a[2]["id"] for a in answers] == ["a", "b"]
    writer.write(put_request("c"))  # a whole read now, but this parser's history is not known to be clean
    status, headers, body = await read_answer(reader)
    assert (status, body["id"]) == (200, "c") and "server" in headers
    assert stub.refused_at_once == 0
    writer.close()


async def test_writes_read_at_once_are_admitted_only_up_to_the_free_slots(server: tuple[Stub, int]) -> None:
    """Five connections send a write each at once with two slots free: the first two read take the
    slots (reserved until their handler runs, then queued), the others are refused at once, although
    the queue alone is never full when they are read."""
    stub, port = server
    stub.capacity = 2
    stub.hold_writes = asyncio.Event()
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    for i, (_, writer) in enumerate(conns):
        writer.write(put_request(f"w{i}"))
    await wait_until(lambda: stub.admitted + stub.refused_at_once == 5)
    assert (stub.admitted, stub.refused_at_once) == (2, 3)
    await wait_until(lambda: stub.queued == 2)
    assert stub.reserved == 0, "a handler that ran still holds its reservation"
    stub.hold_writes.set()
    statuses = sorted([(await read_answer(reader))[0] for reader, _ in conns])
    assert statuses == [200, 200, 503, 503, 503]
    assert stub.reserved_in_handler and max(stub.reserved_in_handler) <= 1
    for _, writer in conns:
        writer.close()


async def test_a_slot_is_given_back_when_the_connection_is_lost_first(server: tuple[Stub, int]) -> None:
    stub, port = server
    for i in range(20):  # each closed at once: its handler may or may not have started
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(put_request(f"gone{i}"))
        writer.transport.abort()
    await wait_until(lambda: stub.admitted == 20)
    await wait_until(lambda: stub.reserved == 0)


def test_an_aiohttp_without_the_state_read_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp.web_server
    from aiohttp.web_protocol import RequestHandler

    from raftreg.http import protocol

    monkeypatch.setattr(aiohttp.web_server, "RequestHandler", RequestHandler)
    monkeypatch.setattr(protocol, "SHED_STATE", (*protocol.SHED_STATE, "_gone_in_a_later_aiohttp"))
    with pytest.raises(RuntimeError, match="_gone_in_a_later_aiohttp"):
        use_node_request_handler()
    assert getattr(aiohttp.web_server, "RequestHandler") is RequestHandler  # noqa: B009 (nothing replaced)
