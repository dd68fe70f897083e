"""What every handler shares: JSON responses, the error body, the error middleware, body reading.

Every error leaves through ``error_middleware`` as API.md's body
``{"error": {"code", "message", "field"?}}``; no traceback ever reaches a client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from raftreg.errors import InvalidArgument, PayloadTooLarge, RaftregError, Unavailable
from raftreg.node.view import ReadContext

log = logging.getLogger("raftreg.http")

MAX_BODY = 1024 * 1024
# Seconds a request body may take to arrive (``[limits] body_timeout``; set by raftreg.http.limits).
BODY_TIMEOUT = web.AppKey("body_timeout", float)
DEFAULT_BODY_TIMEOUT = 10.0
JSON = "application/json"
encode = msgspec.json.Encoder().encode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def instance_with_index(stored: msgspec.Struct, index: int) -> bytes:
    """The JSON answer to a write of one instance: its fields, then ``"index"`` (the same bytes as
    encoding ``to_builtins(stored) | {"index": index}``, without the dict)."""
    return b'%b,"index":%d}' % (encode(stored)[:-1], index)


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=encode(body), status=status, content_type=JSON, headers=headers)


def retry_after_seconds(err: RaftregError) -> int | None:
    """The ``Retry-After`` of the answer to ``err``: whole seconds, at least 1, for a 503 or 429."""
    return max(1, round(err.retry_after)) if isinstance(err, Unavailable) else None


def is_logged(err: RaftregError) -> bool:
    """Whether answering ``err`` is logged as a handler error: a 5xx other than 503 and 504."""
    return err.status >= 500 and not isinstance(err, Unavailable) and err.status != 504


def error_response(err: RaftregError, headers: dict[str, str] | None = None) -> web.Response:
    out = dict(headers or {})
    retry_after = retry_after_seconds(err)
    if retry_after is not None:
        out["Retry-After"] = str(retry_after)
    return json_response(err.to_body(), status=err.status, headers=out)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RaftregError as err:
        if is_logged(err):
            log.error("event=handler_error method=%s path=%s code=%s message=%r", request.method,
                      request.path, err.code, err.message)
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "invalid_argument" if exc.status < 500 else "internal")
        body = {"error": {"code": code, "message": exc.reason}}
        return json_response(body, status=exc.status, headers={"Allow": exc.headers["Allow"]}
                             if "Allow" in exc.headers else None)
    except Exception:
        log.exception("event=handler_failed method=%s path=%s", request.method, request.path)
        return json_response({"error": {"code": "internal", "message": "internal error"}}, status=500)


def read_headers(ctx: ReadContext) -> dict[str, str]:
    return {
        "X-Raftreg-Index": str(ctx.index),
        "X-Raftreg-Leader": ctx.leader,
        "X-Raftreg-Last-Contact": str(ctx.last_contact_ms),
    }


async def read_body(request: web.Request) -> bytes:
    """The request body, refusing non-JSON content types and bodies over ``MAX_BODY``."""
    check_content_type(request.headers.get("Content-Type", ""))
    return await read_raw_body(request, MAX_BODY)


def check_content_type(ctype: str) -> None:
    """``InvalidArgument`` naming Content-Type unless ``ctype`` is empty or a JSON media type."""
    media = ctype.split(";", 1)[0].strip().lower()
    if media and media != JSON and not media.endswith("+json"):
        raise InvalidArgument(f"Content-Type must be {JSON}, got {media!r}", field="Content-Type")


def check_content_encoding(coding: str) -> None:
    """``InvalidArgument`` naming Content-Encoding unless ``coding`` is empty or identity."""
    if coding.strip().lower() not in ("", "identity"):
        raise InvalidArgument("compressed request bodies are not accepted (Content-Encoding must be identity)",
                              field="Content-Encoding")


def check_body_headers(ctype: str, coding: str) -> None:
    """What ``read_body`` checks of a JSON body's headers, in its order."""
    check_content_type(ctype)
    check_content_encoding(coding)


async def read_raw_body(request: web.Request, limit: int, field: str | None = None) -> bytes:
    """The request body as sent, of any content type: 413 ``PayloadTooLarge`` (naming ``field``)
    over ``limit`` bytes (at most ``MAX_BODY``), 400 for a compressed body, 408 (and the connection
    closed after the answer) for a body that does not arrive within the app's ``BODY_TIMEOUT``."""
    check_content_encoding(request.headers.get("Content-Encoding", ""))
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, field)
    try:
        if request.content.is_eof():  # the whole body came with the headers: nothing to wait for
            body = await request.read()
        else:
            async with asyncio.timeout(request.config_dict.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT)):
                body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit, field) from None
    except TimeoutError:
        request.protocol.close()  # the rest of the body may still trickle in: never read it
        err = InvalidArgument("the request body did not arrive in time", field=field)
        err.status = 408
        raise err from None
    if len(body) > limit:
        raise _too_large(limit, field)
    return body


def _too_large(limit: int, field: str | None) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than {limit} bytes", field=field)
