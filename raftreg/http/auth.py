"""The ACL middleware: who is asking, and may they (``raftreg.http.permissions`` says what each
route needs).

Contract, when ACLs are on (``[acl] enabled``):
- The token comes from ``Authorization: Bearer <secret>`` or ``X-Raftreg-Token`` only; a
  ``token`` in the query string is refused (400) whether ACLs are on or not. No other header
  (User-Agent, X-Forwarded-For, anything claiming to be a node) grants anything; a request
  signed with the cluster secret (``X-Raftreg-Signature``, verified over method, raw target and
  body) is the cluster operator.
- No token: 401 ``unauthenticated`` under the ``deny`` default policy, else an anonymous
  authority (the default policy decides). An unknown token: 401.
- A matched route missing from the table: 403 (fail closed). A permission lacked: 403
  ``permission_denied`` naming it (never the secret). Unmatched paths answer 404/405 as before.
- Lists are filtered to what the token may read, with ``X-Raftreg-Results-Filtered-By-ACLs:
  true`` when something was left out.
- Whatever ``[acl]`` says, a node whose ``[acl]`` differs from the leader's
  (``RegistryNode.acl_conflict``) answers 503 ``unavailable`` naming the reason to everything but
  health, ready, ``/v1/cluster``, the web UI's static files and the signed routes (``raftreg.node.acl_agreement``).
- The authority is set for the handler (``raftreg.node.authority``) so writes carry it into the
  log. With ``[acl] audit``, one ``raftreg.audit`` line per write and per denial: accessor id,
  method, route, outcome, status, index.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

from raftreg.errors import InvalidArgument, PermissionDenied, RaftregError, Unauthenticated, Unavailable
from raftreg.http import routes
from raftreg.http.kv_validation import key_from_path
from raftreg.http.permissions import ListFilter, Need, need_for
from raftreg.http.validation import parse_flag
from raftreg.http.wire import Handler, error_response
from raftreg.node.acl import Authority
from raftreg.node.authority import current_authority
from raftreg.node.registry_node import RegistryNode
from raftreg.signing import HEADER, SignatureRejected, Verifier

audit_log = logging.getLogger("raftreg.audit")

TOKEN_HEADER = "X-Raftreg-Token"
FILTERED_HEADER = "X-Raftreg-Results-Filtered-By-ACLs"
_READS = frozenset({"GET", "HEAD"})


def request_secret(request: web.BaseRequest) -> str | None:
    """The token secret a request carries (headers only), or ``None``."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get(TOKEN_HEADER, "").strip() or None


_SERVED_DESPITE_CONFLICT = frozenset({"/v1/health", "/v1/ready", routes.CLUSTER, "/metrics"})


def _serves_despite_conflict(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else ""
    return (canonical in _SERVED_DESPITE_CONFLICT or canonical == "/"
            or canonical.startswith((routes.INTERNAL, routes.DEBUG, routes.UI.rstrip("/"))))


class AclMiddleware:
    """The middleware of ``node``'s application (see the module docstring)."""

    def __init__(self, node: RegistryNode, verifier: Verifier) -> None:
        self.acl = node.acl
        self._node = node
        self._verifier = verifier

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if "token" in request.query:
            return error_response(InvalidArgument("tokens are accepted only in the Authorization or "
                                                  f"{TOKEN_HEADER} header, never in the URL", field="token"))
        conflict = self._node.acl_conflict
        if conflict is not None and not _serves_despite_conflict(request):
            return error_response(Unavailable(conflict, retry_after=2.0))
        if not self.acl.enabled:
            return await handler(request)
        route = request.match_info.route
        if route.resource is None or request.match_info.http_exception is not None:
            return await handler(request)  # 404 / 405: nothing to decide
        need = need_for(request.method, route.resource.canonical)
        if need is not None and need.kind == "signed":
            return await handler(request)  # the handler checks the cluster signature itself
        authority: Authority | None = None
        try:
            if need is None:
                raise PermissionDenied(f"route {request.method} {route.resource.canonical} has no ACL entry")
            authority = await self._authenticate(request, need)
            filtering = self._check(request, need, authority)
        except RaftregError as err:
            self._audit(request, authority, f"denied:{err.code}", err.status, None)
            return error_response(err)
        token = current_authority.set(authority)
        try:
            response = await handler(request)
        finally:
            current_authority.reset(token)
        if filtering and isinstance(response, web.Response) and response.status == 200 and authority is not None:
            response = self._filter(response, need.filters, authority)
        if request.method not in _READS or response.status == 403:
            self._audit(request, authority, "ok" if response.status < 400 else "failed", response.status,
                        response.headers.get("X-Raftreg-Index"))
        return response

    async def _authenticate(self, request: web.Request, need: Need) -> Authority | None:
        if need.kind == "open":
            return None
        if HEADER in request.headers:
            try:
                self._verifier.verify(request.headers[HEADER], request.method, request.raw_path, await request.read())
            except SignatureRejected:
                raise Unauthenticated("the request's cluster signature is not valid") from None
            return Authority(None, 0, True, operator=True)
        secret = request_secret(request)
        if secret is None:
            if not self.acl.default_allow or need.kind == "token":
                raise Unauthenticated("this request needs an ACL token (Authorization: Bearer <secret> or "
                                      f"{TOKEN_HEADER})")
            return self.acl.anonymous()
        authority = self.acl.resolve(secret)
        if authority is None:
            raise Unauthenticated("the ACL token is not known to this cluster")
        return authority

    def _check(self, request: web.Request, need: Need, authority: Authority | None) -> bool:
        """Raise unless allowed; True when the answer is a list to filter."""
        if authority is None or need.kind != "resource" or not need.resource:
            return False
        if need.filters and (not need.filter_modes or any(parse_flag(request.query.get(m), m)
                                                          for m in need.filter_modes)):
            return not authority.operator  # the flags parsed exactly as the handler parses them
        name = self._name(request, need.name)
        if not self.acl.allows(authority, need.resource, name, need.access):
            what = f"{need.resource}:{need.access}" + (f" on {name!r}" if need.name else "")
            raise PermissionDenied(f"permission denied: this token lacks {what}")
        lock = (request.query.get("acquire") or request.query.get("release")) if need.lock_session else None
        if lock is not None:
            session = self._node.session_get(lock)[1]
            session_name = session.name if session is not None else ""
            if not self.acl.allows(authority, "session", session_name, "write"):
                raise PermissionDenied(f"permission denied: this token lacks session:write on {session_name!r} "
                                       "(the lock's session)")
        return False

    def _name(self, request: web.Request, field: str | None) -> str:
        if field is None or field == "":
            return ""
        if field == "key":
            return key_from_path(request.raw_path)
        if field == "session_id":
            session = self._node.session_get(request.match_info.get("id", ""))[1]
            return session.name if session is not None else ""
        return request.match_info.get(field, "")

    def _filter(self, response: web.Response, filters: tuple[ListFilter, ...], authority: Authority) -> web.Response:
        if not isinstance(response.body, bytes):
            return error_response(PermissionDenied("permission denied: the answer cannot be filtered"))
        doc = msgspec.json.decode(response.body)
        if not isinstance(doc, dict) or not any(isinstance(doc.get(f.field), list) for f in filters):
            # not the list this route was expected to answer: refuse rather than pass it unchecked
            return error_response(PermissionDenied("permission denied: the answer is not a list this token "
                                                   "may filter"))
        dropped = False
        allows = self.acl.reader(authority)
        for flt in filters:
            items = doc.get(flt.field)
            if not isinstance(items, list):
                continue
            kept = [i for i in items if allows(flt.resource, i[flt.item_key] if flt.item_key else i, "read")]
            dropped = dropped or len(kept) != len(items)
            doc[flt.field] = kept
        if not dropped:
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        headers[FILTERED_HEADER] = "true"
        return web.Response(body=msgspec.json.encode(doc), status=response.status, headers=headers,
                            content_type="application/json")

    def _audit(self, request: web.Request, authority: Authority | None, outcome: str, status: int,
               index: str | None) -> None:
        if not self.acl.settings.audit:
            return
        route = request.match_info.route.resource
        accessor = ("operator" if authority.operator else authority.accessor_id or "anonymous") if authority else "-"
        audit_log.info("event=audit accessor=%s method=%s route=%s outcome=%s status=%d index=%s", accessor,
                       request.method, route.canonical if route is not None else "-", outcome, status, index or "-")
