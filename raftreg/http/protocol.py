"""The connection protocol of raftreg's servers: aiohttp's, with JSON protocol errors, fast refusals
and fast registrations.

Every answer carries API.md's error body, even the ones aiohttp gives before our middleware.

aiohttp answers some requests before the application (and so ``error_middleware``) sees them, in
``text/plain``: requests its HTTP parser rejects (a method token it does not know, a request line
or header over 8190 bytes, control characters in a header, a repeated singleton header; from
``RequestHandler.handle_error``), and HTTP errors raised while routing, such as 417 for an
``Expect`` other than ``100-continue`` (returned through ``RequestHandler.finish_response``).
``NodeRequestHandler`` answers both with ``{"error": {"code", "message"}}``, without echoing
the offending input.

On a server given a ``Shedder`` (``install_shedding``), a read that is one whole write request
while the node's write queue is full is answered 503 at once, without aiohttp; one that is
admitted holds a slot of the queue until aiohttp starts handling it (``_handle_request``) or the
connection is lost (``raftreg.http.shed`` has the contract). A whole registration that is
admitted and that the server's ``FastWrites`` takes is answered by it instead of aiohttp
(``raftreg.http.fast_writes``): the protocol writes the answer when it is ready; until then the
connection is busy: whatever else arrives on it is held (and reading paused) and handed on
after the answer, so answers keep the order of the requests; the keep-alive timer does not
close a busy connection, and a graceful shutdown waits for the answer as it waits for aiohttp's
handlers. This reads aiohttp's private per-connection state (``SHED_STATE``): the aiohttp version
is pinned, and the layout is checked at start.

``use_node_request_handler()`` makes the servers this process creates from then on use it:
``aiohttp.web_server.RequestHandler``, the class ``web.Server`` instantiates per connection,
becomes this subclass. ``raftreg serve`` calls it once at start; it refuses with
``RuntimeError`` if aiohttp's layout is not what it was written for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web_server
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from raftreg.http.fast_writes import FastWrites
from raftreg.http.shed import Shedder, WholeRequest, parse_whole, sheddable
from raftreg.http.wire import JSON, encode

# aiohttp's private RequestHandler attributes the fast refusal reads or sets.
SHED_STATE = ("_request_count", "_payload_parser", "_upgraded", "_force_close", "_close",
              "_next_keepalive_close_time", "_keepalive_timeout", "_keepalive_handle", "_process_keepalive",
              "_loop", "transport", "_handle_request", "shutdown", "_waiter", "_keepalive", "peername",
              "_pause_reading_for_buffer", "_resume_reading_for_buffer")
_SHEDDER_ATTR = "_raftreg_shedder"
_FAST_ATTR = "_raftreg_fast_writes"

_CODES = {400: "invalid_argument", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
          415: "unsupported_media_type", 417: "expectation_failed", 431: "invalid_argument",
          503: "unavailable", 504: "timeout"}
_MESSAGES = {400: "malformed HTTP request", 417: "unsupported Expect header: only 100-continue is supported",
             431: "request headers too large", 500: "internal error", 504: "the request took too long"}


def _json_error(status: int, message: str | None = None) -> web.Response:
    code = _CODES.get(status, "invalid_argument" if status < 500 else "internal")
    text = message or _MESSAGES.get(status) or ("malformed HTTP request" if status < 500 else "internal error")
    resp = web.Response(status=status, body=encode({"error": {"code": code, "message": text}}), content_type=JSON)
    return resp


def install_shedding(server: web.Server, shedder: Shedder, fast: FastWrites | None = None) -> None:
    """Refuse whole write requests at once on ``server``'s connections while the write queue is
    full (``raftreg.http.shed``), and answer the registrations ``fast`` takes without aiohttp
    (``raftreg.http.fast_writes``); call after ``runner.setup()``, before the site starts."""
    setattr(server, _SHEDDER_ATTR, shedder)
    setattr(server, _FAST_ATTR, fast)


class NodeRequestHandler(RequestHandler):
    """aiohttp's ``RequestHandler`` with JSON protocol errors, fast refusals and fast registrations
    (module docstring)."""

    __slots__ = ("_answered", "_fast", "_fast_task", "_held", "_reserved", "_shedder", "_whole_reads")

    def __init__(self, manager: web.Server, *args: Any, **kwargs: Any) -> None:
        super().__init__(manager, *args, **kwargs)
        self._shedder: Shedder | None = getattr(manager, _SHEDDER_ATTR, None)
        self._fast: FastWrites | None = getattr(manager, _FAST_ATTR, None) if self._shedder is not None else None
        self._fast_task: asyncio.Task[None] | None = None  # a fast answer in progress (``_serve_fast``)
        self._held: list[bytes] = []  # what arrived while it was
        self._whole_reads = True  # every read so far was one whole request: the parser holds nothing
        self._answered = 0  # requests whose answer is written (``finish_response`` returned)
        self._reserved = False  # the next request handled holds a write slot (``Shedder``)

    def data_received(self, data: bytes) -> None:
        if self._fast_task is not None:  # a fast answer is pending: what follows waits for it
            self._hold(data)
            return
        shedder = self._shedder
        if shedder is not None and self._whole_reads and data:  # aiohttp itself feeds b"" at times
            whole = parse_whole(data)
            if whole is None:
                self._whole_reads = False
            elif self._idle() and sheddable(whole.method, whole.path):
                refusal = shedder.refuse_or_reserve()
                if refusal is not None:
                    assert self.transport is not None  # idle: the connection is open
                    self.transport.write(refusal)
                    self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
                    return
                fast = self._fast
                if fast is not None and fast.takes(whole):  # holds the slot until ``_serve_fast`` starts
                    self._fast_task = self._loop.create_task(self._serve_fast(fast, whole))
                    return
                self._reserved = True  # idle: this read's request is the next one handled here
        super().data_received(data)

    async def _serve_fast(self, fast: FastWrites, whole: WholeRequest) -> None:
        """Answer ``whole`` through ``fast``, then hand what arrived meanwhile on (module docstring).
        ``fast.serve`` answers every error itself; anything that still escapes (the task is
        cancelled as the loop stops) closes the connection, as aiohttp would."""
        assert self._shedder is not None
        self._shedder.release()
        try:
            answer = await fast.serve(whole, self._remote())
        except BaseException:
            if self.transport is not None:
                self.transport.close()
            raise
        finally:
            self._fast_task = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(answer)
        self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
        held, self._held = self._held, []
        if held:
            self._resume_reading_for_buffer()
            self.data_received(b"".join(held))

    def _hold(self, data: bytes) -> None:
        if not data:
            return
        if not self._held:
            self._pause_reading_for_buffer()  # the client is waiting for its answer: little more comes
        self._held.append(data)

    def _remote(self) -> str:
        """The peer's address, as aiohttp's ``request.remote`` gives it."""
        peer = self.peername
        if isinstance(peer, list | tuple) and peer:
            return str(peer[0])
        return str(peer) if peer else "?"

    def _process_keepalive(self) -> None:
        if self._fast_task is not None:  # the connection is busy, not idle: look again later
            self._keepalive_handle = self._loop.call_at(self._loop.time() + self._keepalive_timeout,
                                                        self._process_keepalive)
            return
        super()._process_keepalive()

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        self._close = True  # no new fast request from here on (``_idle``)
        task = self._fast_task
        if task is not None:  # a graceful stop answers the fast request in progress as aiohttp's
            started = self._loop.time()
            await asyncio.wait({task}, timeout=timeout)
            if timeout is not None:
                timeout = max(0.0, timeout - (self._loop.time() - started))
        await super().shutdown(timeout)

    async def _handle_request(self, request: BaseRequest, start_time: float | None,
                              request_handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]],
                              ) -> tuple[web.StreamResponse, bool]:
        # aiohttp runs this as a task for each request it parsed, in order. The slot is given back
        # when the task starts: the write's handler then queues its command before it first waits.
        self._release_slot()
        result: tuple[web.StreamResponse, bool] = await super()._handle_request(request, start_time, request_handler)
        return result

    def connection_lost(self, exc: BaseException | None) -> None:
        self._release_slot()
        super().connection_lost(exc)

    def _release_slot(self) -> None:
        if self._reserved:
            self._reserved = False
            assert self._shedder is not None
            self._shedder.release()

    def _idle(self) -> bool:
        """Every request aiohttp parsed on this connection is answered (so an answer written now
        comes after theirs), aiohttp's loop is waiting for the next one, and the connection is
        keep-alive, not streaming, upgraded or closing."""
        waiter = self._waiter  # set while ``start()`` waits for the next request: not closing after an answer
        return (self._answered == self._request_count and self._payload_parser is None and not self._upgraded
                and not self._force_close and not self._close and self._keepalive
                and waiter is not None and not waiter.done())

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if a response already started
        resp = _json_error(status)
        resp.force_close()
        return resp

    async def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        if isinstance(resp, web.HTTPException) and resp.status >= 400 and resp.content_type != JSON:
            replacement = _json_error(resp.status, _MESSAGES.get(resp.status))
            for name in ("Allow", "Retry-After"):
                if name in resp.headers:
                    replacement.headers[name] = resp.headers[name]
            resp = replacement
        result: tuple[web.StreamResponse, bool] = await super().finish_response(request, resp, start_time)
        self._answered += 1
        return result


def use_node_request_handler() -> None:
    """Make ``web.Server`` build ``NodeRequestHandler``s from now on (idempotent)."""
    module: Any = aiohttp.web_server
    current = getattr(module, "RequestHandler", None)
    if current is NodeRequestHandler:
        return
    if current is not RequestHandler:
        raise RuntimeError("aiohttp.web_server.RequestHandler is not aiohttp's RequestHandler: cannot make "
                           "protocol-level errors answer JSON")
    missing = [name for name in SHED_STATE if not hasattr(RequestHandler, name)]
    if missing:
        raise RuntimeError(f"aiohttp's RequestHandler has no {', '.join(missing)}: cannot refuse writes "
                           "without it (raftreg.http.shed)")
    module.RequestHandler = NodeRequestHandler
