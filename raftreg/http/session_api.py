"""The session routes of API.md ("Sessions, locks and leader election"): ``/v1/sessions``.

- ``PUT /v1/sessions`` ``{"ttl", "name", "behavior", "lock_delay", "instances"}`` -> ``{"id",
  "index"}``; 404 naming ``instances[i]`` when a tied instance does not exist or is critical.
- ``PUT /v1/sessions/{id}/renew`` -> ``{"id", "ttl"}`` (a lease renewal: no Raft entry); 404 when
  the session is gone (expired or destroyed: create a new one).
- ``DELETE /v1/sessions/{id}`` -> ``{"destroyed": true, "index"}``; 404 when absent.
- ``GET /v1/sessions`` -> ``{"index", "sessions": [...]}`` sorted by id; ``GET /v1/sessions/{id}``
  -> the session or 404. Reads take the read options of every read (blocking on the session set).
"""

from __future__ import annotations

from aiohttp import web

from raftreg.errors import NotFound
from raftreg.http.kv_validation import check_session_id, parse_session
from raftreg.http.validation import parse_read_options
from raftreg.http.wire import json_response, read_body, read_headers
from raftreg.node.reads import SESSIONS
from raftreg.node.registry_node import RegistryNode

SESSIONS_PATH = "/v1/sessions"


class SessionApi:
    def __init__(self, node: RegistryNode) -> None:
        self.node = node

    async def create(self, request: web.Request) -> web.Response:
        self.node.check_write_capacity()
        session = parse_session(await read_body(request))
        index, stored = await self.node.session_create(session)
        return json_response({"id": stored.id, "index": index}, headers={"X-Raftreg-Index": str(index)})

    async def renew(self, request: web.Request) -> web.Response:
        session_id = check_session_id(request.match_info["id"])
        return json_response({"id": session_id, "ttl": await self.node.session_renew(session_id)})

    async def destroy(self, request: web.Request) -> web.Response:
        session_id = check_session_id(request.match_info["id"])
        self.node.check_write_capacity()
        index, existed = await self.node.session_destroy(session_id)
        headers = {"X-Raftreg-Index": str(index)}
        if not existed:
            return json_response(NotFound(f"no session {session_id!r}").to_body(), status=404, headers=headers)
        return json_response({"destroyed": True, "index": index}, headers=headers)

    async def get(self, request: web.Request) -> web.Response:
        session_id = check_session_id(request.match_info["id"])
        await self.node.prepare_read(parse_read_options(request.query), SESSIONS)
        index, session = self.node.session_get(session_id)
        headers = read_headers(self.node.read_context(index))
        if session is None:
            return json_response(NotFound(f"no session {session_id!r}").to_body(), status=404, headers=headers)
        return json_response(session, headers=headers)

    async def list(self, request: web.Request) -> web.Response:
        await self.node.prepare_read(parse_read_options(request.query), SESSIONS)
        index, sessions = self.node.session_list()
        headers = read_headers(self.node.read_context(index))
        return json_response({"index": index, "sessions": sessions}, headers=headers)


def add_session_routes(app: web.Application, node: RegistryNode) -> None:
    api = SessionApi(node)
    app.router.add_put(SESSIONS_PATH, api.create)
    app.router.add_get(SESSIONS_PATH, api.list, allow_head=False)
    app.router.add_get(SESSIONS_PATH + "/{id}", api.get, allow_head=False)
    app.router.add_delete(SESSIONS_PATH + "/{id}", api.destroy)
    app.router.add_put(SESSIONS_PATH + "/{id}/renew", api.renew)
