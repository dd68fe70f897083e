"""The Consul API's route -> permission table covers every route (fail closed), and its ACL
middleware refuses a route added without an entry, in Consul's form (403, plain text)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from raftreg.config import LimitsTuning
from raftreg.consul.app import build_consul_app
from raftreg.consul.routes import ROUTE_TABLE
from raftreg.node.authority import Authority


def _app(acl_enabled: bool) -> tuple[web.Application, Any]:
    acl = SimpleNamespace(enabled=acl_enabled, anonymous=lambda: Authority(None, 0, True),
                          reader=lambda _authority: lambda *_args: True)
    node: Any = SimpleNamespace(acl=acl, config=SimpleNamespace(limits=LimitsTuning(), datacenter="dc1"))
    return build_consul_app(node, secret="s"), node


def test_every_route_has_an_entry() -> None:
    app, _ = _app(acl_enabled=False)
    table = app[ROUTE_TABLE]
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    assert served, "no routes"
    assert served == set(table), f"routes without an entry: {sorted(served - set(table))}"


async def test_a_route_without_an_entry_is_refused_when_acls_are_on() -> None:
    app, _ = _app(acl_enabled=True)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"reached": True})

    app.router.add_get("/v1/unmapped", handler)  # not through ConsulRoutes.add: no entry
    async with TestClient(TestServer(app)) as client:
        refused = await client.get("/v1/unmapped")
        assert refused.status == 403
        assert (await refused.text()).startswith("Permission denied")
        assert (await client.get("/v1/status/leader-nope")).status == 404
