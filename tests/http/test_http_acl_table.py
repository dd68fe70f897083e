"""The route -> permission table covers every route of the application (fail closed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from raftreg.config import LimitsTuning
from raftreg.http.app import build_app
from raftreg.http.permissions import ROUTES, need_for


def _routes() -> set[tuple[str, str]]:
    node: Any = SimpleNamespace(acl=SimpleNamespace(enabled=False), session_get=None,  # build_app only keeps references
                                config=SimpleNamespace(limits=LimitsTuning()))
    app = build_app(node, secret="s", debug_endpoints=True)
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}


def test_every_route_has_an_entry() -> None:
    unmapped = sorted(r for r in _routes() if need_for(*r) is None)
    assert not unmapped, f"routes without an ACL entry (add them to raftreg.http.permissions.ROUTES): {unmapped}"


def test_no_stale_entries() -> None:
    served = {("GET" if m == "HEAD" else m, p) for m, p in _routes()}
    stale = sorted(set(ROUTES) - served - {("GET", "/v1/metrics"), ("GET", "/v1/openapi.json")})  # merged later
    assert not stale, f"entries for routes that do not exist: {stale}"


def test_an_unknown_route_is_refused() -> None:
    assert need_for("PUT", "/v1/something/new") is None
    assert need_for("HEAD", "/v1/health") is not None


async def test_the_middleware_refuses_a_route_without_an_entry() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from raftreg.config import AclSettings
    from raftreg.http.auth import AclMiddleware
    from raftreg.node.authority import Authority
    from raftreg.signing import Verifier

    settings = AclSettings(enabled=True, default_policy="allow")
    acl = SimpleNamespace(enabled=True, default_allow=True, settings=settings,
                          anonymous=lambda: Authority(None, 0, True), allows=lambda *a: True)
    node: Any = SimpleNamespace(acl=acl, acl_conflict=None)
    app = web.Application(middlewares=[AclMiddleware(node, Verifier("s")).middleware])

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"reached": True})

    app.router.add_get("/v1/unmapped", handler)
    app.router.add_get("/v1/health", handler)
    async with TestClient(TestServer(app)) as client:
        refused = await client.get("/v1/unmapped")
        assert refused.status == 403 and (await refused.json())["error"]["code"] == "permission_denied"
        assert (await client.get("/v1/health")).status == 200


async def test_acl_routes_refuse_when_acls_are_off() -> None:
    """Nobody may bootstrap or mint tokens while ACLs are off (they would count once turned on)."""
    from aiohttp.test_utils import TestClient, TestServer

    node: Any = SimpleNamespace(acl=SimpleNamespace(enabled=False), config=SimpleNamespace(limits=LimitsTuning()),
                                acl_conflict=None)
    app = build_app(node, secret="s", debug_endpoints=False)
    async with TestClient(TestServer(app)) as client:
        for method, path in (("PUT", "/v1/acl/bootstrap"), ("PUT", "/v1/acl/tokens"), ("GET", "/v1/acl/policies")):
            resp = await client.request(method, path, json={})
            assert resp.status == 403, (path, await resp.text())
        refused = await client.get("/v1/services?token=abc")
        assert refused.status == 400 and (await refused.json())["error"]["field"] == "token"
