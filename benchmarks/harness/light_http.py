"""The benchmarks' HTTP load client: ``LightPool``, a minimal keep-alive HTTP/1.1 asyncio client,
and ``AiohttpPool``, the same interface over an aiohttp ``ClientSession`` (to compare with what a
real Python client costs).

The light client costs the load generator a fraction of aiohttp's CPU per request, so on a 2-core
machine shared with the nodes under test it takes less CPU away from them. Its limits, which
raftreg's answers meet: one request at a time per connection, answers framed by
``Content-Length`` (no chunked encoding), no redirects, no TLS.

Both pools report every request exactly once to a callback ``cb(status, answer)``: ``status`` is
the HTTP status, or one of the negative ``ERR_*`` codes (then ``answer`` is None).
``HttpPool.request`` is the awaitable form.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import urllib.parse
from collections.abc import Callable, Mapping

import aiohttp

from harness.payloads import JSON_HEADERS

# Client-side outcomes that are not HTTP statuses.
ERR_REFUSED, ERR_CONNECT, ERR_LOST, ERR_TIMEOUT, ERR_SKIPPED = -1, -2, -3, -4, -5
ERR_NAMES = {ERR_REFUSED: "connection refused", ERR_CONNECT: "connect error", ERR_LOST: "connection lost",
             ERR_TIMEOUT: "client timeout", ERR_SKIPPED: "not sent (in-flight cap)"}


def err_name(code: int) -> str:
    """The error kind of a status: ``http <code>`` or the name of an ``ERR_*`` code."""
    return ERR_NAMES.get(code, f"http {code}")


def error_key(exc: BaseException) -> str:
    """The error kind of an exception raised by a request (aiohttp clients): ``client timeout`` or
    the exception's class name."""
    if isinstance(exc, TimeoutError):
        return "client timeout"
    return type(exc).__name__


class Answer:
    """An HTTP answer: the raw head (status line and headers, light client) or the headers mapping
    (aiohttp), and the body."""

    __slots__ = ("body", "head", "headers")

    def __init__(self, head: bytes, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.head = head
        self.body = body
        self.headers = headers

    def header(self, name: str) -> str | None:
        """A header's value (name case-insensitive), or None."""
        if self.headers is not None:
            return self.headers.get(name)
        key = b"\r\n" + name.lower().encode("latin-1") + b":"
        lower = self.head.lower()
        k = lower.find(key)
        if k < 0:
            return None
        j = lower.find(b"\r\n", k + 2)
        return self.head[k + len(key):j if j >= 0 else len(lower)].strip().decode("latin-1")


Callback = Callable[[int, Answer | None], None]


class HttpPool:
    """Requests to one node. Subclasses implement ``send`` and ``close``; ``max_open`` is the most
    connections (or requests, for aiohttp) open at once."""

    max_open = 0

    def send(self, method: str, path: str, body: bytes | None, cb: Callback) -> None:
        """Send a request (``body``: JSON, or None); ``cb`` is called once with its outcome."""
        raise NotImplementedError

    async def close(self) -> None:
        """Abort every connection and request (their callbacks may not be called)."""
        raise NotImplementedError

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Answer | None]:
        """Send a request and wait for its outcome: (HTTP status or ``ERR_*`` code, answer or None)."""
        fut: asyncio.Future[tuple[int, Answer | None]] = asyncio.get_running_loop().create_future()

        def done(status: int, answer: Answer | None) -> None:
            if not fut.done():
                fut.set_result((status, answer))

        self.send(method, path, body, done)
        return await fut


class LightConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of a ``LightPool``: one request at a time, the answer
    framed by ``Content-Length``."""

    __slots__ = ("buf", "cb", "pool", "sent_at", "transport")

    def __init__(self, pool: LightPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.cb: Callback | None = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, data: bytes, cb: Callback) -> None:
        assert self.transport is not None
        self.cb = cb
        self.sent_at = time.monotonic()
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        if self.cb is None:  # nothing asked: not an answer to frame
            buf.clear()
            return
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end])
        lower = head.lower()
        k = lower.find(b"\r\ncontent-length:")
        size = 0
        if k >= 0:
            j = lower.find(b"\r\n", k + 2)
            size = int(lower[k + 17:j if j >= 0 else len(lower)])
        if len(buf) < end + 4 + size:
            return
        status = int(head[9:12])
        body = bytes(buf[end + 4:end + 4 + size])
        del buf[:end + 4 + size]
        cb, self.cb = self.cb, None
        self.pool.release(self)
        if cb is not None:
            cb(status, Answer(head, body))

    def connection_lost(self, exc: Exception | None) -> None:
        cb, self.cb = self.cb, None
        self.pool.lost(self)
        if cb is not None:
            cb(ERR_LOST, None)


class LightPool(HttpPool):
    """Keep-alive connections to one node: a request takes an idle connection, or waits for one
    (new ones are opened, at most ``max_connecting`` at a time, up to ``max_conns``). A failed
    connect fails every waiting request (the node is down). Requests older than ``timeout`` (sent
    or still waiting) fail with ``ERR_TIMEOUT``, checked every ``sweep_every`` s. At most
    ``idle_keep`` idle connections are kept (the oldest are closed). Create it inside the event loop.
    """

    def __init__(self, url: str, timeout: float, max_conns: int, *, max_connecting: int = 8,
                 idle_keep: int = 256, sweep_every: float = 0.2) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.hostport = f"{self.host}:{self.port}"
        self.timeout = timeout
        self.max_conns = max_conns
        self.max_connecting = max_connecting
        self.idle_keep = idle_keep
        self.sweep_every = sweep_every
        self.loop = asyncio.get_running_loop()
        self.idle: list[LightConn] = []
        self.busy: set[LightConn] = set()
        self.waiting: collections.deque[tuple[bytes, Callback, float]] = collections.deque()
        self.connecting = 0
        self.open = 0
        self.max_open = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def send(self, method: str, path: str, body: bytes | None, cb: Callback) -> None:
        if body:
            data = (f"{method} {path} HTTP/1.1\r\nHost: {self.hostport}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        else:
            data = f"{method} {path} HTTP/1.1\r\nHost: {self.hostport}\r\nContent-Length: 0\r\n\r\n".encode()
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.sweep_every, self._sweep_tick)
        if self.idle:
            conn = self.idle.pop()
            self.busy.add(conn)
            conn.send(data, cb)
            return
        self.waiting.append((data, cb, time.monotonic()))
        self._grow()

    def _grow(self) -> None:
        while (self.connecting < self.max_connecting and self.open + self.connecting < self.max_conns
               and len(self.waiting) > self.connecting):
            self.connecting += 1
            task = self.loop.create_task(self._connect())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _connect(self) -> None:
        try:
            _, conn = await self.loop.create_connection(lambda: LightConn(self), self.host, self.port)
        except OSError as exc:
            self.connecting -= 1
            code = ERR_REFUSED if isinstance(exc, ConnectionRefusedError) else ERR_CONNECT
            waiting, self.waiting = self.waiting, collections.deque()
            for _, cb, _ in waiting:
                cb(code, None)
            return
        self.connecting -= 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        self.release(conn)
        if self.waiting:
            self._grow()

    def release(self, conn: LightConn) -> None:
        """``conn`` is free: serve the oldest waiting request, or keep it (most recent on top)."""
        if self.waiting:
            data, cb, _ = self.waiting.popleft()
            self.busy.add(conn)
            conn.send(data, cb)
            return
        self.busy.discard(conn)
        self.idle.append(conn)
        if len(self.idle) > self.idle_keep:
            old = self.idle.pop(0)
            if old.transport is not None:
                old.transport.close()

    def lost(self, conn: LightConn) -> None:
        """``conn`` was closed (by either side)."""
        self.open -= 1
        self.busy.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    def _sweep_tick(self) -> None:
        self._sweeper = None
        self.sweep(time.monotonic())
        if self.busy or self.waiting:
            self._sweeper = self.loop.call_later(self.sweep_every, self._sweep_tick)

    def sweep(self, now: float) -> None:
        """Fail the requests older than ``timeout`` (their connections are aborted)."""
        expired = [c for c in self.busy if now - c.sent_at > self.timeout]
        for conn in expired:
            cb, conn.cb = conn.cb, None
            self.busy.discard(conn)
            if conn.transport is not None:
                conn.transport.abort()
            if cb is not None:
                cb(ERR_TIMEOUT, None)
        while self.waiting and now - self.waiting[0][2] > self.timeout:
            _, cb, _ = self.waiting.popleft()
            cb(ERR_TIMEOUT, None)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self.tasks):
            task.cancel()
        for conn in [*self.idle, *self.busy]:
            if conn.transport is not None:
                conn.transport.abort()


class AiohttpPool(HttpPool):
    """The same interface over a shared aiohttp ``ClientSession`` (a task per request; the
    session's timeout and connection limit apply)."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[None]] = set()
        self.max_open = 0

    def send(self, method: str, path: str, body: bytes | None, cb: Callback) -> None:
        task = self.loop.create_task(self._do(method, path, body, cb))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.max_open = max(self.max_open, len(self.tasks))

    async def _do(self, method: str, path: str, body: bytes | None, cb: Callback) -> None:
        answer: Answer | None = None
        try:
            async with self.session.request(method, self.url + path, data=body,
                                            headers=JSON_HEADERS if body else None) as resp:
                answer = Answer(b"", await resp.read(), resp.headers)
                status = resp.status
        except TimeoutError:
            status = ERR_TIMEOUT
        except aiohttp.ClientConnectorError as exc:
            status = ERR_REFUSED if isinstance(exc.os_error, ConnectionRefusedError) else ERR_CONNECT
        except (aiohttp.ClientError, OSError):
            status = ERR_LOST
        cb(status, answer if status >= 0 else None)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class NodePools:
    """One pool per node URL, all ``light`` (``LightPool``) or all ``aiohttp`` (``AiohttpPool`` over
    one shared session with at most ``max_conns`` connections); ``max_connecting`` and ``idle_keep``
    are ``LightPool``'s. Create it inside the event loop; ``await close()`` when done."""

    def __init__(self, client: str, urls: list[str], timeout: float, max_conns: int, *, max_connecting: int = 8,
                 idle_keep: int = 256) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.pools: list[HttpPool]
        if client == "aiohttp":
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max_conns, limit_per_host=0),
                                                 timeout=aiohttp.ClientTimeout(total=timeout))
            self.pools = [AiohttpPool(url, self.session) for url in urls]
        elif client == "light":
            self.pools = [LightPool(url, timeout, max_conns, max_connecting=max_connecting, idle_keep=idle_keep)
                          for url in urls]
        else:
            raise ValueError(f"unknown HTTP client {client!r} (light or aiohttp)")

    def max_open(self) -> list[int]:
        """Per pool: the most connections (light) or requests (aiohttp) open at once."""
        return [p.max_open for p in self.pools]

    async def close(self) -> None:
        for pool in self.pools:
            await pool.close()
        if self.session is not None:
            await self.session.close()
