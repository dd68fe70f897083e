"""The run-time membership routes of the OpenAPI document (``raftreg.http.openapi``): their reply
types and one line per operation (``raftreg.http.members_api`` serves them)."""

from __future__ import annotations

from typing import Any

import msgspec

from raftreg.http.members_api import CLUSTER_CONFIG, MEMBER, MEMBERS, TRANSFER_LEADER, AddMemberBody, TransferBody


class MemberAdded(msgspec.Struct):
    added: str
    role: str
    index: int


class MemberRemoved(msgspec.Struct):
    removed: str
    index: int


class LeaderNow(msgspec.Struct):
    leader: str


class LiveConfig(msgspec.Struct):
    """The live membership (``?format=toml``: the same as a cluster config file)."""

    name: str
    nodes: list[dict[str, Any]]
    toml: str


# (method, path, summary, 2xx types, body type, extra error statuses); tag "cluster"
MEMBER_OPS: tuple[tuple[str, str, str, tuple[type, ...], type | None, tuple[int, ...]], ...] = (
    ("POST", MEMBERS, "Add a member (one change at a time; preflight refusals are 409)", (MemberAdded,),
     AddMemberBody, (400, 403, 409, 503, 504)),
    ("DELETE", MEMBER, "Remove a member (never the leader: transfer leadership first)", (MemberRemoved,), None,
     (400, 403, 404, 409, 503, 504)),
    ("POST", TRANSFER_LEADER, "Hand leadership to a member (or the most caught-up one)", (LeaderNow,),
     TransferBody, (400, 403, 404, 409, 503)),
    ("GET", CLUSTER_CONFIG, "The live membership as a cluster config (JSON, or TOML with ?format=toml)",
     (LiveConfig,), None, (400, 403)),
)
