"""The one table of what every HTTP route needs when ACLs are on (fail closed).

``ROUTES`` maps ``(method, route template)`` (aiohttp's canonical form, e.g.
``/v1/services/{service}/instances/{id}``; HEAD is decided as GET) to a ``Need``:
- ``OPEN``: anyone (health, ready, bootstrap: the command itself applies only once; the web
  UI's static files).
- ``SIGNED``: node-to-node and debug routes; their handlers accept only requests signed with the
  cluster secret (``raftreg.http.internal``), tokens play no part.
- ``TOKEN``: any valid token (``/v1/acl/token/self``).
- ``Need(resource, access, name=...)``: ``access`` on ``resource``, named by the match-info
  field ``name`` (``key`` comes from the raw path, as the handler reads it; ``session_id``:
  the named session's name); ``name=None`` for ``operator`` and ``acl``. ``lock_session``: a
  request with ``?acquire=`` or ``?release=`` also needs ``session:write`` on that session's
  name (Consul's rule for locks; the command is re-checked at apply the same way).
- ``BY_COMMAND``: a write whose resources are in its body (``/v1/txn``, ``PUT /v1/sessions``):
  the token must be valid (or the default policy allow anonymous requests); the command's
  permissions are checked when it is written (``raftreg.node.writes``) and again at apply.
- ``filter``: a list route answers only the items the token may read (``ListFilter``); a
  route with ``filter_modes`` filters only with those query flags (``?recurse``, ``?keys``)
  and needs the plain permission otherwise.

A route missing from the table is refused (``raftreg.http.auth``), and
``tests/http/test_http_acl_table.py`` fails on any route of the application without an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["open", "signed", "token", "command", "resource"]


@dataclass(frozen=True)
class ListFilter:
    """Keep the items of ``field`` whose ``item_key`` (``""``: the item itself, a string) names a
    ``resource`` the token may read."""

    field: str
    resource: Literal["service", "key", "session"]
    item_key: str


@dataclass(frozen=True)
class Need:
    kind: Kind
    resource: Literal["service", "key", "session", "operator", "acl", ""] = ""
    access: Literal["read", "write"] = "read"
    name: str | None = None
    filters: tuple[ListFilter, ...] = ()
    filter_modes: tuple[str, ...] = ()
    lock_session: bool = False

    def describe(self) -> str:
        if self.kind != "resource":
            return self.kind
        lock = " (+ session:write with ?acquire/?release)" if self.lock_session else ""
        return f"{self.resource}:{self.access}" + (f" on {{{self.name}}}" if self.name else "") + lock


OPEN = Need("open")
SIGNED = Need("signed")
TOKEN = Need("token")
BY_COMMAND = Need("command")


def _svc(access: Literal["read", "write"]) -> Need:
    return Need("resource", "service", access, "service")


INST = "/v1/services/{service}/instances/{id}"
KV = "/v1/kv/{key}"
_KV_LISTS = (ListFilter("entries", "key", "key"), ListFilter("keys", "key", ""))
_OPERATOR_READ = Need("resource", "operator", "read")
_OPERATOR_WRITE = Need("resource", "operator", "write")
_ACL_READ = Need("resource", "acl", "read")
_ACL_WRITE = Need("resource", "acl", "write")

ROUTES: dict[tuple[str, str], Need] = {
    ("GET", "/v1/health"): OPEN,
    ("GET", "/v1/ready"): OPEN,
    ("GET", "/metrics"): OPEN,  # Prometheus scrapes (raftreg.http.metrics): counters, no names or secrets
    ("GET", "/v1/openapi.json"): OPEN,  # the API's description (main's openapi branch) tells no secrets
    # The web UI's static files hold no data: its pages call the API with the user's token.
    ("GET", "/"): OPEN,
    ("GET", "/ui"): OPEN,
    ("GET", "/ui/"): OPEN,
    ("GET", "/ui/{file}"): OPEN,
    ("PUT", INST): _svc("write"),
    ("GET", INST): _svc("read"),
    ("DELETE", INST): _svc("write"),
    ("PUT", INST + "/heartbeat"): _svc("write"),
    ("PUT", INST + "/status"): _svc("write"),
    ("GET", "/v1/services/{service}"): _svc("read"),
    ("GET", "/v1/services/{service}/leases"): _svc("read"),
    ("GET", "/v1/services"): Need("resource", "service", "read", "", (ListFilter("services", "service", "name"),)),
    ("GET", "/v1/cluster"): _OPERATOR_READ,
    ("GET", "/v1/cluster/config"): _OPERATOR_READ,  # run-time membership (raftreg.http.members_api)
    ("POST", "/v1/cluster/members"): _OPERATOR_WRITE,
    ("DELETE", "/v1/cluster/members/{name}"): _OPERATOR_WRITE,
    ("POST", "/v1/cluster/transfer-leader"): _OPERATOR_WRITE,
    ("GET", KV): Need("resource", "key", "read", "key", _KV_LISTS, ("recurse", "keys")),
    ("PUT", KV): Need("resource", "key", "write", "key", lock_session=True),
    ("DELETE", KV): Need("resource", "key", "write", "key"),
    ("PUT", "/v1/txn"): BY_COMMAND,
    ("PUT", "/v1/sessions"): BY_COMMAND,
    ("GET", "/v1/sessions"): Need("resource", "session", "read", "", (ListFilter("sessions", "session", "name"),)),
    ("GET", "/v1/sessions/{id}"): Need("resource", "session", "read", "session_id"),
    ("DELETE", "/v1/sessions/{id}"): Need("resource", "session", "write", "session_id"),
    ("PUT", "/v1/sessions/{id}/renew"): Need("resource", "session", "write", "session_id"),
    ("PUT", "/v1/acl/bootstrap"): OPEN,
    ("GET", "/v1/acl/token/self"): TOKEN,
    ("PUT", "/v1/acl/tokens"): _ACL_WRITE,
    ("GET", "/v1/acl/tokens"): _ACL_READ,
    ("GET", "/v1/acl/tokens/{accessor_id}"): _ACL_READ,
    ("PUT", "/v1/acl/tokens/{accessor_id}"): _ACL_WRITE,
    ("DELETE", "/v1/acl/tokens/{accessor_id}"): _ACL_WRITE,
    ("PUT", "/v1/acl/policies"): _ACL_WRITE,
    ("GET", "/v1/acl/policies"): _ACL_READ,
    ("GET", "/v1/acl/policies/{name}"): _ACL_READ,
    ("PUT", "/v1/acl/policies/{name}"): _ACL_WRITE,
    ("DELETE", "/v1/acl/policies/{name}"): _ACL_WRITE,
    ("GET", "/v1/snapshot"): _OPERATOR_READ,  # and acl:read, checked by the handler (http/snapshot_api.py)
    ("PUT", "/v1/snapshot"): _OPERATOR_WRITE,  # and acl:write, likewise
    ("POST", "/v1/internal/heartbeats"): SIGNED,
    ("POST", "/v1/internal/lease-digest"): SIGNED,
    ("POST", "/v1/debug/resync"): SIGNED,
    ("POST", "/v1/debug/snapshot"): SIGNED,
    ("POST", "/v1/debug/partition"): SIGNED,
    ("POST", "/v1/debug/wedge"): SIGNED,
    ("GET", "/v1/debug/digest"): SIGNED,
}


def need_for(method: str, template: str) -> Need | None:
    """The table's entry for a route (HEAD as GET), or ``None``: refuse."""
    return ROUTES.get(("GET" if method == "HEAD" else method, template))
