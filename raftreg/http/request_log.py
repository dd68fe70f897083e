"""Request logs (``[logging] requests = true``; off by default): one ``raftreg.request`` line per
HTTP request, written once the answer is known.

Fields: ``api`` (``native``, or ``consul`` for the Consul-compatible API), ``method``, ``route``
(the route template, e.g. ``/v1/kv/{key}``: never the raw path, which may carry key names),
``status``, ``duration_ms``, ``client`` (the peer address) and, when there is one, ``query``
(the raw, percent-encoded query string, quoted; a ``token=`` in it is masked by the process's
redaction filter, ``raftreg.logs``). No header value is ever logged.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Middleware

from raftreg.http.metrics import route_template
from raftreg.http.wire import Handler

request_log = logging.getLogger("raftreg.request")


def request_log_middleware(api: str) -> Middleware:
    """The request-log middleware of the API ``api`` (its name is the line's ``api`` field)."""

    @web.middleware
    async def log_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            query = request.rel_url.raw_query_string  # still percent-encoded: no space or quote in it
            request_log.info("event=request api=%s method=%s route=%s status=%d duration_ms=%.2f client=%s%s", api,
                             request.method, route_template(request), status, (time.perf_counter() - started) * 1000,
                             request.remote or "-", f' query="{query}"' if query else "")

    return log_request


def install_request_log(app: web.Application, enabled: bool, api: str = "native") -> None:
    """Add the request log of ``api`` as the outermost middleware when ``enabled``."""
    if enabled:
        app.middlewares.insert(0, request_log_middleware(api))
