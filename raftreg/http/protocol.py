"""Every answer carries API.md's error body, even the ones aiohttp gives before our middleware.

aiohttp answers some requests before the application (and so ``error_middleware``) sees them, in
``text/plain``: requests its HTTP parser rejects (a method token it does not know, a request line
or header over 8190 bytes, control characters in a header, a repeated singleton header; from
``RequestHandler.handle_error``), and HTTP errors raised while routing, such as 417 for an
``Expect`` other than ``100-continue`` (returned through ``RequestHandler.finish_response``).
``JsonErrorRequestHandler`` answers both with ``{"error": {"code", "message"}}``, without echoing
the offending input.

``use_json_protocol_errors()`` makes the servers this process creates from then on use it:
``aiohttp.web_server.RequestHandler``, the class ``web.Server`` instantiates per connection,
becomes this subclass (it overrides nothing else). ``raftreg serve`` calls it once at start; it
refuses with ``RuntimeError`` if aiohttp's layout is not what it was written for.
"""

from __future__ import annotations

from typing import Any

import aiohttp.web_server
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from raftreg.http.wire import JSON, encode

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


class JsonErrorRequestHandler(RequestHandler):
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
        return result


def use_json_protocol_errors() -> None:
    """Make ``web.Server`` build ``JsonErrorRequestHandler``s from now on (idempotent)."""
    module: Any = aiohttp.web_server
    current = getattr(module, "RequestHandler", None)
    if current is JsonErrorRequestHandler:
        return
    if current is not RequestHandler:
        raise RuntimeError("aiohttp.web_server.RequestHandler is not aiohttp's RequestHandler: cannot make "
                           "protocol-level errors answer JSON")
    module.RequestHandler = JsonErrorRequestHandler
