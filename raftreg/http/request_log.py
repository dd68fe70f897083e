"""Request logs (``[logging] requests = true``; off by default): one ``raftreg.request`` line per
HTTP request, written once the answer is known.

Fields: ``method``, ``route`` (the route template, e.g. ``/v1/kv/{key}``: never the raw path,
which may carry key names), ``status``, ``duration_ms``, ``client`` (the peer address) and, when
there is one, ``query`` (the raw, percent-encoded query string, quoted; a ``token=`` in it is masked by the
process's redaction filter, ``raftreg.logs``). No header value is ever logged.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from raftreg.http.metrics import route_template
from raftreg.http.wire import Handler

request_log = logging.getLogger("raftreg.request")


@web.middleware
async def request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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
        request_log.info("event=request method=%s route=%s status=%d duration_ms=%.2f client=%s%s",
                         request.method, route_template(request), status, (time.perf_counter() - started) * 1000,
                         request.remote or "-", f' query="{query}"' if query else "")


def install_request_log(app: web.Application, enabled: bool) -> None:
    """Add the request log as the outermost middleware when ``enabled``."""
    if enabled:
        app.middlewares.insert(0, request_log_middleware)
