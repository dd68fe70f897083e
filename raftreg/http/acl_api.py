"""The ACL routes of API.md ("Authentication"): bootstrap, tokens and policies.

- ``PUT /v1/acl/bootstrap`` -> the management token with its ``secret_id`` (once; then 403).
- ``PUT /v1/acl/tokens`` ``{"description", "rules", "policies"}`` -> the token with its
  ``secret_id`` (the only answer that ever holds it); ``GET /v1/acl/tokens``;
  ``GET|PUT|DELETE /v1/acl/tokens/{accessor_id}`` (a PUT changes only the fields given);
  ``GET /v1/acl/token/self``.
- ``PUT /v1/acl/policies`` ``{"name", "description", "rules"}``, ``GET /v1/acl/policies``,
  ``GET|PUT|DELETE /v1/acl/policies/{name}``.
With ACLs off (``[acl] enabled = false``) every route here answers 403: nobody could be told
apart, so nobody may bootstrap or mint tokens that would count once ACLs are turned on.
Rules are strings (``'key_prefix "app/" read'``) or ``{"kind", "name", "access"}`` objects;
answers render them as strings. A token's answer never holds its secret's hash.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from raftreg.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from raftreg.http.validation import decode_json
from raftreg.http.wire import Handler, json_response, read_body
from raftreg.node.acl import Policy, Token, parse_rules
from raftreg.node.authority import current_authority
from raftreg.node.registry_node import RegistryNode

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_DESCRIPTION = 1024


class _TokenBody(msgspec.Struct, forbid_unknown_fields=True):
    description: str | None = None
    rules: list[Any] | None = None
    policies: list[str] | None = None


class _PolicyBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    description: str = ""
    rules: list[Any] = []


_token_decoder = msgspec.json.Decoder(_TokenBody)
_policy_decoder = msgspec.json.Decoder(_PolicyBody)


def token_view(token: Token, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"accessor_id": token.accessor_id}
    if secret is not None:
        out["secret_id"] = secret
    out.update(description=token.description, rules=[str(r) for r in token.rules], policies=list(token.policies),
               create_index=token.create_index, modify_index=token.modify_index)
    return out


def policy_view(policy: Policy) -> dict[str, Any]:
    return {"name": policy.name, "description": policy.description, "rules": [str(r) for r in policy.rules],
            "create_index": policy.create_index, "modify_index": policy.modify_index}


def _name(value: str, field: str) -> str:
    if not _NAME_RE.match(value):
        raise InvalidArgument(f"{field} must be 1-128 letters, digits, '_', '.' or '-'", field=field)
    return value


def _description(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_DESCRIPTION:
        raise InvalidArgument(f"description is at most {MAX_DESCRIPTION} characters", field="description")
    return value


def _headers(index: int) -> dict[str, str]:
    return {"X-Raftreg-Index": str(index)}


class AclApi:
    def __init__(self, node: RegistryNode) -> None:
        self.acl = node.acl

    async def bootstrap(self, request: web.Request) -> web.Response:
        index, token, secret = await self.acl.bootstrap()
        return json_response({**token_view(token, secret), "index": index}, headers=_headers(index))

    async def token_create(self, request: web.Request) -> web.Response:
        body = decode_json(await read_body(request) or b"{}", _token_decoder)
        policies = tuple(_name(p, f"policies[{i}]") for i, p in enumerate(body.policies or []))
        index, token, secret = await self.acl.token_create(_description(body.description) or "",
                                                           parse_rules(body.rules or []), policies)
        return json_response({**token_view(token, secret), "index": index}, headers=_headers(index))

    async def token_update(self, request: web.Request) -> web.Response:
        body = decode_json(await read_body(request) or b"{}", _token_decoder)
        policies = None if body.policies is None else tuple(_name(p, f"policies[{i}]")
                                                              for i, p in enumerate(body.policies))
        rules = None if body.rules is None else parse_rules(body.rules)
        index, token = await self.acl.token_update(request.match_info["accessor_id"], _description(body.description),
                                                   rules, policies)
        return json_response({**token_view(token), "index": index}, headers=_headers(index))

    async def token_list(self, request: web.Request) -> web.Response:
        index, tokens = self.acl.tokens()
        return json_response({"index": index, "tokens": [token_view(t) for t in tokens]}, headers=_headers(index))

    async def token_get(self, request: web.Request) -> web.Response:
        index, token = self.acl.token(request.match_info["accessor_id"])
        if token is None:
            raise NotFound(f"no token {request.match_info['accessor_id']!r}")
        return json_response(token_view(token), headers=_headers(index))

    async def token_self(self, request: web.Request) -> web.Response:
        authority = current_authority.get()
        if authority is None or authority.token is None:
            raise Unauthenticated("this request carries no ACL token")
        return json_response(token_view(authority.token))

    async def token_delete(self, request: web.Request) -> web.Response:
        index, existed = await self.acl.token_delete(request.match_info["accessor_id"])
        if not existed:
            raise NotFound(f"no token {request.match_info['accessor_id']!r}")
        return json_response({"deleted": True, "index": index}, headers=_headers(index))

    async def policy_put(self, request: web.Request) -> web.Response:
        body = decode_json(await read_body(request) or b"{}", _policy_decoder)
        name = request.match_info.get("name") or body.name
        if not name:
            raise InvalidArgument("a policy needs a name", field="name")
        index, policy = await self.acl.policy_set(_name(name, "name"), _description(body.description) or "",
                                                  parse_rules(body.rules))
        return json_response({**policy_view(policy), "index": index}, headers=_headers(index))

    async def policy_list(self, request: web.Request) -> web.Response:
        index, policies = self.acl.policies()
        return json_response({"index": index, "policies": [policy_view(p) for p in policies]}, headers=_headers(index))

    async def policy_get(self, request: web.Request) -> web.Response:
        index, policy = self.acl.policy(request.match_info["name"])
        if policy is None:
            raise NotFound(f"no policy {request.match_info['name']!r}")
        return json_response(policy_view(policy), headers=_headers(index))

    async def policy_delete(self, request: web.Request) -> web.Response:
        index, existed = await self.acl.policy_delete(request.match_info["name"])
        if not existed:
            raise NotFound(f"no policy {request.match_info['name']!r}")
        return json_response({"deleted": True, "index": index}, headers=_headers(index))


def _only_when_enabled(node: RegistryNode, handler: Handler) -> Handler:
    async def checked(request: web.Request) -> web.StreamResponse:
        if not node.acl.enabled:
            raise PermissionDenied("ACLs are disabled on this node ([acl] enabled = false in the cluster config)")
        return await handler(request)

    return checked


def add_acl_routes(app: web.Application, node: RegistryNode) -> None:
    api = AclApi(node)
    tok, pol = "/v1/acl/tokens/{accessor_id}", "/v1/acl/policies/{name}"
    routes: list[tuple[str, str, Handler]] = [
        ("PUT", "/v1/acl/bootstrap", api.bootstrap),
        ("GET", "/v1/acl/token/self", api.token_self),
        ("PUT", "/v1/acl/tokens", api.token_create),
        ("GET", "/v1/acl/tokens", api.token_list),
        ("GET", tok, api.token_get),
        ("PUT", tok, api.token_update),
        ("DELETE", tok, api.token_delete),
        ("PUT", "/v1/acl/policies", api.policy_put),
        ("GET", "/v1/acl/policies", api.policy_list),
        ("GET", pol, api.policy_get),
        ("PUT", pol, api.policy_put),
        ("DELETE", pol, api.policy_delete),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _only_when_enabled(node, handler))
