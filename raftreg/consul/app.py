"""The Consul-compatible HTTP API: one aiohttp application over a ``RegistryNode``.

Translation only (DESIGN.md "Compatibility layers"): every handler calls the same node facade as
the native API (``raftreg.http.app``); nothing here holds state or rules of its own, so an
instance registered through either API is visible through both.

Each module adds its routes through ``ConsulRoutes.add(method, path, handler, need)``
(``raftreg.consul.routes``), which records the route's ``Need`` in the table the ACL middleware
(``raftreg.consul.acl``) reads; a route added any other way is refused when ACLs are on.
``ROUTE_MODULES`` lists the modules' ``add_*_routes`` functions in order.

Errors leave through ``error_middleware`` in Consul's form: a plain-text body and Consul's status
codes (400 naming the parameter, 403 ``Permission denied``/``ACL not found``, 404, 503 with
``Retry-After``); never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from raftreg.consul.acl import ACL_NOT_FOUND, ConsulAcl
from raftreg.consul.agent import add_agent_routes
from raftreg.consul.catalog import add_catalog_routes
from raftreg.consul.health import add_health_routes
from raftreg.consul.kv import add_kv_routes
from raftreg.consul.routes import NODE_KEY, ConsulRoutes
from raftreg.consul.session import add_session_routes
from raftreg.consul.status import add_status_routes
from raftreg.consul.txn import add_txn_routes
from raftreg.consul.unsupported import add_unsupported_routes
from raftreg.consul.wire import ConsulError, read_headers, text_response
from raftreg.errors import InvalidArgument, PermissionDenied, RaftregError, Unauthenticated, Unavailable
from raftreg.http.limits import install_limits
from raftreg.http.wire import MAX_BODY, Handler
from raftreg.node.registry_node import RegistryNode

log = logging.getLogger("raftreg.consul")


def _error_text(err: RaftregError) -> tuple[int, str]:
    """Consul's status and message for one of raftreg's errors."""
    if isinstance(err, Unauthenticated):
        return 403, ACL_NOT_FOUND
    if isinstance(err, PermissionDenied):  # a route without an ACL entry (raftreg.consul.acl)
        return 403, f"Permission denied: {err.message}"
    if isinstance(err, InvalidArgument) and err.field:
        return err.status, f"Invalid {err.field}: {err.message}"
    return err.status, err.message


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    node = request.app[NODE_KEY]
    try:
        return await handler(request)
    except ConsulError as err:
        return text_response(err.message, err.status,
                             read_headers(node, err.index) if err.index is not None else None)
    except RaftregError as err:
        status, text = _error_text(err)
        headers = {"Retry-After": str(max(1, round(err.retry_after)))} if isinstance(err, Unavailable) else None
        if status >= 500 and status not in (503, 504):
            log.error("event=handler_error method=%s path=%s code=%s message=%r", request.method, request.path,
                      err.code, err.message)
        return text_response(text, status, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return text_response(f"{exc.status} {exc.reason}", exc.status, headers)
    except Exception:
        log.exception("event=consul_handler_failed method=%s path=%s", request.method, request.path)
        return text_response("internal error", 500)


RouteModule = Callable[[ConsulRoutes], None]


# The ``add_*_routes`` function of every module of this API; the catch-all of unsupported
# features goes last.
ROUTE_MODULES: list[RouteModule] = [add_agent_routes, add_catalog_routes, add_health_routes, add_status_routes,
                                    add_kv_routes,
                                    add_txn_routes,
                                    add_session_routes,
                                    add_unsupported_routes]


def build_consul_app(node: RegistryNode, *, secret: str) -> web.Application:
    """The Consul-compatible application serving ``node``. ``secret`` is the cluster secret
    (kept for node-to-node use; no Consul route accepts a signed request)."""
    del secret
    app = web.Application(client_max_size=MAX_BODY)
    app[NODE_KEY] = node
    routes = ConsulRoutes(app, node)
    app.middlewares.extend([error_middleware, ConsulAcl(node, routes.table).middleware])
    install_limits(app, node.config.limits)
    for add in ROUTE_MODULES:
        add(routes)
    return app
