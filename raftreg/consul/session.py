"""``/v1/session/...``: Consul's sessions over raftreg's (``RegistryNode.session_*``).

A raftreg session is a TTL lease that holds locks, optionally tied to instances (it ends when
one of them is deregistered or turns critical). Consul's session belongs to a node and to
checks. The mapping (README "Using Consul tools with raftreg"):
- ``TTL`` is required (raftreg sessions always expire unless renewed): 10s-24h, as Consul's
  bounds. ``LockDelay``: a Go duration, or a number (below 1000: seconds, else nanoseconds, as
  Consul reads it), 0-60s. ``Behavior``: ``release`` or ``delete``. ``Name``: at most 128
  characters.
- ``ServiceChecks`` (``[{"ID": "service:<id>"}]``) and service check IDs in ``Checks`` tie the
  session to those instances. ``NodeChecks``/``Checks`` may name ``serfHealth`` (Consul's default
  node check; raftreg has no agent health, so it adds nothing); any other node check is 400.
- ``Node`` in answers is the synthetic catalog node of the first tied instance
  (``raftreg.node.hosts``), ``""`` for an untied session; ``/v1/session/node/:node`` lists the
  sessions on that node. A create may name that node, or a raftreg server (what
  ``/v1/agent/self`` reports as ``NodeName``, Consul's default: it adds nothing); any other
  node is 400.
- Answers: create ``{"ID"}``; renew ``[session]`` (404 when the session is gone; a session this
  node has not applied yet is looked up again after a consistent read, so a renew right after a
  create through another node finds it); destroy
  ``true`` (also for an unknown session, as Consul); info ``[session]`` or ``[]``; list and node
  arrays. Session JSON: ``ID, Name, Node, LockDelay`` (ns), ``Behavior, TTL`` (``"15s"``),
  ``NodeChecks, ServiceChecks, CreateIndex, ModifyIndex``. Reads block on the session set and
  end when their own answer changes (another session's create does not end a watch of one).
- ACLs: raftreg's session rules name the session's ``Name`` (``session_prefix``); reads are
  filtered to readable sessions, renew needs ``session:write`` on it, create and destroy are
  checked when their command is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from raftreg.consul.acl import decider, require
from raftreg.consul.listing import find_instance
from raftreg.consul.model import check_ids, check_kinds
from raftreg.consul.registration import normalize
from raftreg.consul.routes import ConsulRoutes
from raftreg.consul.wire import (
    ConsulError,
    bad_request,
    blocking_content,
    check_scope,
    json_response,
    parse_query,
    read_response,
)
from raftreg.durations import parse_duration
from raftreg.errors import NotFound
from raftreg.http.kv_validation import MAX_LOCK_DELAY, MAX_SESSION_INSTANCES, MAX_SESSION_NAME, SESSION_ID_RE
from raftreg.http.permissions import BY_COMMAND
from raftreg.http.wire import read_raw_body
from raftreg.models import Session, SessionBehavior, SessionInstance
from raftreg.node.hosts import host_node
from raftreg.node.reads import CATALOG, SESSIONS, ReadOptions
from raftreg.node.registry_node import RegistryNode

MIN_SESSION_TTL, MAX_SESSION_TTL = 10.0, 86400.0
SERF_HEALTH = "serfHealth"
CREATE_FIELDS = frozenset({"name", "node", "lockdelay", "behavior", "ttl", "checks", "nodechecks",
                           "servicechecks", "namespace", "partition"})
IGNORED_FIELDS = frozenset({"id", "createindex", "modifyindex"})  # a whole SessionEntry sent back: Consul ignores them
MAX_CREATE_BODY = 64 * 1024


def go_duration(seconds: float) -> str:
    """``seconds`` as Go prints a duration: ``15s``, ``1m30s``, ``1h0m0s``, ``1.5s``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def _duration(value: Any, field: str, low: float, high: float, *, numbers_in_ns: bool = False) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and numbers_in_ns and value >= 1000:
        value = value / 1e9  # Consul's LockDelay: a number of nanoseconds (below 1000: seconds)
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise bad_request(field, str(exc)) from None
    if not low <= seconds <= high:
        raise bad_request(field, f"must be between {go_duration(low)} and {go_duration(high)}, "
                          f"got {go_duration(seconds)}")
    return seconds


def req_keys(doc: Any) -> list[str]:
    """The field names of a decoded body (none when it is not an object)."""
    return [str(key) for key in doc] if isinstance(doc, dict) else []


def _str_list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(field, "must be an array")
    return value


class UnknownCheck(ConsulError):
    """A check ID that names no instance this node knows (yet)."""


class SessionApi:
    def __init__(self, node: RegistryNode) -> None:
        self.node = node
        self.dc = node.config.datacenter

    # ---- translation --------------------------------------------------------------------
    def _tie(self, check_id: Any, field: str) -> SessionInstance:
        """The instance whose check is ``check_id`` (``service:<id>`` or ``service:<id>:<n>``)."""
        if not isinstance(check_id, str) or not check_id.startswith("service:"):
            raise bad_request(field, f"{check_id!r} is not a service check of this cluster (raftreg ties "
                              "sessions to service checks only; node checks other than serfHealth do not exist)")
        rest = check_id.removeprefix("service:")
        head, sep, tail = rest.rpartition(":")
        for service_id in ([rest, head] if sep and tail.isdigit() else [rest]):  # ids may contain ':'
            inst = find_instance(self.node, service_id) if service_id else None
            if inst is not None and check_id in check_ids(inst.id, max(1, len(check_kinds(inst)))):
                return SessionInstance(inst.service, inst.id)
        raise UnknownCheck(400, f"Invalid {field}: unknown check {check_id!r} (no instance has it)")

    def parse_create(self, body: bytes) -> tuple[Session, str]:
        """The session a create asks for, and the ``Node`` it named (``""``: none)."""
        try:
            doc = msgspec.json.decode(body) if body.strip() else {}
        except msgspec.DecodeError as exc:
            raise ConsulError(400, f"Request decode failed: {exc}") from None
        req = normalize(doc, "body")
        known = CREATE_FIELDS | IGNORED_FIELDS
        unknown = [key for key in req_keys(doc) if key.lower().replace("_", "").replace("-", "") not in known]
        if unknown:
            raise bad_request(unknown[0], "unknown field of a session (fields: Name, Node, LockDelay, Behavior, TTL, "
                              "Checks, NodeChecks, ServiceChecks)")
        for scope in ("namespace", "partition"):
            if req.get(scope) not in (None, "", "default"):
                raise bad_request(scope.capitalize(), "only 'default' (a Consul Enterprise feature)")
        if req.get("ttl") in (None, "", "0", "0s", 0):
            raise bad_request("TTL", "required: raftreg sessions always have a TTL (10s to 24h) and end unless "
                              "renewed (PUT /v1/session/renew/:id)")
        ttl = _duration(req["ttl"], "TTL", MIN_SESSION_TTL, MAX_SESSION_TTL)
        delay = 15.0 if req.get("lockdelay") is None else _duration(
            req["lockdelay"], "LockDelay", 0.0, MAX_LOCK_DELAY, numbers_in_ns=True)
        raw_behavior = req.get("behavior") or "release"
        if raw_behavior not in ("release", "delete"):
            raise bad_request("Behavior", f"must be release or delete, got {raw_behavior!r}")
        behavior: SessionBehavior = "delete" if raw_behavior == "delete" else "release"
        name = req.get("name") or ""
        if not isinstance(name, str) or len(name) > MAX_SESSION_NAME:
            raise bad_request("Name", f"must be a string of at most {MAX_SESSION_NAME} characters")
        ties: list[SessionInstance] = []
        for field in ("checks", "nodechecks"):
            label = "Checks" if field == "checks" else "NodeChecks"
            for i, check in enumerate(_str_list(req.get(field), label)):
                if check != SERF_HEALTH:
                    ties.append(self._tie(check, f"{label}[{i}]"))
        for i, item in enumerate(_str_list(req.get("servicechecks"), "ServiceChecks")):
            check = normalize(item, f"ServiceChecks[{i}]")
            if check.get("namespace") not in (None, "", "default"):
                raise bad_request(f"ServiceChecks[{i}].Namespace", "only 'default' (a Consul Enterprise feature)")
            ties.append(self._tie(check.get("id"), f"ServiceChecks[{i}].ID"))
        ties = list(dict.fromkeys(ties))
        if len(ties) > MAX_SESSION_INSTANCES:
            raise bad_request("ServiceChecks", f"at most {MAX_SESSION_INSTANCES} instances")
        node = req.get("node") or ""
        if not isinstance(node, str):
            raise bad_request("Node", "must be a string")
        session = Session(id="", name=name, ttl=ttl, behavior=behavior, lock_delay=delay, instances=tuple(ties))
        return session, node

    def _check_node(self, node: str, session: Session) -> None:
        servers = {n.name for n in self.node.config.nodes}
        if not node or node in servers or node == self._node_of(session):
            return
        raise bad_request("Node", f"{node!r} is neither a raftreg server nor the node of the instances the session "
                          "is tied to (raftreg sessions belong to the hosts of their ServiceChecks)")

    def _node_of(self, session: Session) -> str:
        if not session.instances:
            return ""
        tie = session.instances[0]
        inst = self.node.get_instance(tie.service, tie.id)[1]
        return host_node(inst.address).name if inst is not None else ""

    def view(self, session: Session) -> dict[str, Any]:
        service_checks = []
        for tie in session.instances:
            inst = self.node.get_instance(tie.service, tie.id)[1]
            count = 1 if inst is None else max(1, len(check_kinds(inst)))
            check_id = check_ids(tie.id, count)[0]
            service_checks.append({"ID": check_id, "Namespace": ""})
        return {"ID": session.id, "Name": session.name, "Node": self._node_of(session),
                "LockDelay": round(session.lock_delay * 1e9), "Behavior": session.behavior,
                "TTL": go_duration(session.ttl), "NodeChecks": [], "ServiceChecks": service_checks or None,
                "CreateIndex": session.create_index, "ModifyIndex": session.modify_index}

    def _session_id(self, request: web.Request) -> str:
        session_id = request.match_info["id"]
        if not SESSION_ID_RE.match(session_id):
            raise bad_request("session id", "must be a lowercase UUID")
        return session_id

    # ---- handlers -----------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.dc)
        self.node.check_write_capacity()
        body = await read_raw_body(request, MAX_CREATE_BODY)
        try:
            session, node = self.parse_create(body)
        except UnknownCheck:  # maybe registered through another node a moment ago: catch up, then decide
            await self.node.prepare_read(ReadOptions(consistent=True), CATALOG)
            session, node = self.parse_create(body)
        self._check_node(node, session)
        _, stored = await self.node.session_create(session)
        return json_response({"ID": stored.id})

    async def renew(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.dc)
        session_id = self._session_id(request)
        session = self.node.session_get(session_id)[1]
        if session is None:  # maybe created through another node a moment ago: catch up through the leader
            await self.node.prepare_read(ReadOptions(consistent=True), SESSIONS)
            session = self.node.session_get(session_id)[1]
        if session is None:
            raise ConsulError(404, f"Session id '{session_id}' not found")
        require(self.node, "session", session.name, "write")
        try:
            await self.node.session_renew(session_id)
        except NotFound:
            raise ConsulError(404, f"Session id '{session_id}' not found") from None
        return json_response([self.view(session)])

    async def destroy(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.dc)
        session_id = self._session_id(request)
        self.node.check_write_capacity()
        await self.node.session_destroy(session_id)
        return json_response(True)

    async def _read(self, request: web.Request, keep: Callable[[Session], bool]) -> web.Response:
        """The sessions ``keep`` picks that the token may read, after any blocking wait."""
        def build() -> tuple[int, tuple[list[dict[str, Any]], bool]]:
            index, sessions = self.node.session_list()
            picked = [s for s in sessions if keep(s)]
            allows = decider(self.node)
            readable = [s for s in picked if allows("session", s.name, "read")]
            return index, ([self.view(s) for s in readable], len(readable) != len(picked))

        # the session set's index moves with every session: a watch of one session (or one
        # node's) ends only when its own answer changes
        query = parse_query(request.query, self.dc)
        index, (views, filtered) = await blocking_content(self.node, query, SESSIONS, build)
        return read_response(self.node, index, views, filtered=filtered)

    async def info(self, request: web.Request) -> web.Response:
        session_id = self._session_id(request)
        return await self._read(request, lambda s: s.id == session_id)

    async def list(self, request: web.Request) -> web.Response:
        return await self._read(request, lambda _s: True)

    async def by_node(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        return await self._read(request, lambda s: self._node_of(s) == node)


def add_session_routes(routes: ConsulRoutes) -> None:
    """Sessions are named by their ``Name`` in raftreg's ACL rules, which the route cannot see:
    handlers decide (module docstring)."""
    api = SessionApi(routes.node)
    routes.add("PUT", "/v1/session/create", api.create, BY_COMMAND)
    routes.add("PUT", "/v1/session/renew/{id}", api.renew, BY_COMMAND)
    routes.add("PUT", "/v1/session/destroy/{id}", api.destroy, BY_COMMAND)
    routes.add("GET", "/v1/session/info/{id}", api.info, BY_COMMAND)
    routes.add("GET", "/v1/session/list", api.list, BY_COMMAND)
    routes.add("GET", "/v1/session/node/{node}", api.by_node, BY_COMMAND)
