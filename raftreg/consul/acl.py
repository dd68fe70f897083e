"""ACLs on the Consul-compatible API, mapped onto raftreg's own (``raftreg.node.acl``: tokens,
rules, decisions; ``raftreg.http.permissions``: the ``Need`` of a route). Nothing is decided here
that the node's ACL manager does not decide for the native API.

Contract, when ACLs are on (``[acl] enabled``):
- The token comes from ``?token=``, ``X-Consul-Token`` or ``Authorization: Bearer``, in Consul's
  order. A request without one is the anonymous token (the default policy decides, as Consul's
  anonymous token does).
- Every route has a ``Need`` in the app's table (``ConsulRoutes``); a matched route without
  one is refused. ``open``: anyone; ``token``: a known token is required; ``command``: the
  caller is authenticated and the handler or the write path decides (a command is checked by
  ``raftreg.node.writes`` when written and again at apply; list reads filter what the token may
  not read, as Consul does); ``resource``: the permission is checked here.
- Denials are **403** with Consul's plain-text ``Permission denied: ...``; an unknown token is
  403 ``ACL not found``. Never 401: py-consul reads 401 as "ACLs disabled".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from aiohttp import web

from raftreg.consul.wire import ConsulError
from raftreg.errors import PermissionDenied
from raftreg.http.permissions import Need
from raftreg.http.wire import Handler
from raftreg.node.acl import Authority
from raftreg.node.authority import current_authority
from raftreg.node.registry_node import RegistryNode

Resource = Literal["service", "key", "session", "operator", "acl"]  # raftreg.state.acl_rules'
RouteTable = dict[tuple[str, str], Need]
Decide = Callable[[Resource, str, str], bool]

ACL_NOT_FOUND = "ACL not found"


def consul_secret(request: web.Request) -> str | None:
    """The token a Consul client sent: ``?token=``, then ``X-Consul-Token``, then ``Authorization: Bearer``."""
    token = request.query.get("token", "").strip()
    if token:
        return token
    token = request.headers.get("X-Consul-Token", "").strip()
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def decider(node: RegistryNode) -> Decide:
    """``(resource, name, "read"|"write") -> bool`` for the request being served: everything when
    ACLs are off; the request's token's rules when on; nothing when on and no authority was set
    (fail closed)."""
    if not node.acl.enabled:
        return lambda _resource, _name, _access: True
    authority = current_authority.get()
    if authority is None:
        return lambda _resource, _name, _access: False
    return node.acl.reader(authority)


def require(node: RegistryNode, resource: Resource, name: str, access: str) -> None:
    """Raise 403 unless the request's token may ``access`` ``resource`` ``name``."""
    if not decider(node)(resource, name, access):
        raise denied(resource, name, access)


def denied(resource: str, name: str, access: str) -> ConsulError:
    target = f' on "{name}"' if name else ""
    return permission_denied(f"lacks permission '{resource}:{access}'{target}", current_authority.get())


def permission_denied(detail: str, authority: Authority | None) -> ConsulError:
    """Consul's 403 text: ``Permission denied: token with AccessorID '<id>' <detail>``."""
    accessor = authority.accessor_id if authority is not None and authority.accessor_id else "anonymous"
    return ConsulError(403, f"Permission denied: token with AccessorID '{accessor}' {detail}")


class ConsulAcl:
    """The middleware of the Consul application (see the module docstring)."""

    def __init__(self, node: RegistryNode, table: RouteTable) -> None:
        self._node = node
        self._table = table

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        acl = self._node.acl
        if not acl.enabled:
            return await handler(request)
        route = request.match_info.route
        if route.resource is None or request.match_info.http_exception is not None:
            return await handler(request)  # 404 / 405: nothing to decide
        method = "GET" if request.method == "HEAD" else request.method
        need = self._table.get((method, route.resource.canonical))
        if need is None:
            raise PermissionDenied(f"route {method} {route.resource.canonical} has no ACL entry")
        if need.kind == "open":
            return await handler(request)
        secret = consul_secret(request)
        authority: Authority | None
        if secret is None:
            if need.kind == "token":
                raise ConsulError(403, ACL_NOT_FOUND)
            authority = acl.anonymous()
        else:
            authority = acl.resolve(secret)
            if authority is None:
                raise ConsulError(403, ACL_NOT_FOUND)
        token = current_authority.set(authority)
        try:
            if need.kind == "resource":
                name = request.match_info.get(need.name, "") if need.name else ""
                if need.resource:
                    require(self._node, need.resource, name, need.access)
            return await handler(request)
        except PermissionDenied as err:  # the write path's check: "permission denied: lacks service:write on 'x'"
            detail = err.message.partition("lacks ")[2] or err.message
            raise permission_denied(f"lacks {detail}", authority) from None
        finally:
            current_authority.reset(token)
