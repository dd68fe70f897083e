"""Preflight of a membership change: the rules, as pure functions over what the leader knows.

Each check raises the error of the one table (``raftreg.errors``) with a message an operator can
act on, or returns normally when the change may go ahead:
- ``Unavailable`` (503, retry): this node is not the leader (the message names the leader), or
  it leads but has not yet applied its own term's first entry (then every membership entry of
  earlier terms is committed too: the one-change-at-a-time rule across leader changes).
- ``Conflict`` (409): a previous membership change is not committed yet; the change would leave
  the voters without a quorum of live members (adding a 4th voter while one of 3 is down,
  removing a live voter while another is down); removing the leader ("transfer leadership
  first"); a name or address some member already has; adding a voter while a voter added
  earlier has not received any entry yet (start it with ``raftreg serve --join`` first: two
  adds in a row, or at once, never leave two empty voters).
- ``NotFound`` (404): removing a name that is not a member.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftreg.config import NodeConfig
from raftreg.errors import Conflict, NotFound, Unavailable

_ADDRESS_FIELDS = ("raft", "http", "consul_http", "dns")


@dataclass(frozen=True)
class ChangeFacts:
    """The leader's view when a change arrives."""

    me: str  # this node's name
    is_leader: bool
    leader: str | None  # the leader's name, if known
    term_started: bool  # this leader applied its term's no-op
    change_pending: bool  # a membership change this leader proposed is not committed yet
    members: tuple[NodeConfig, ...]  # the live membership (voters and replicas)
    live: frozenset[str]  # names of the voters that are up (the leader and its connected peers)
    joining: frozenset[str] = frozenset()  # voters added at run time that hold no entry yet


def majority(voters: int) -> int:
    return voters // 2 + 1


def check_can_change(facts: ChangeFacts) -> None:
    """The rules every change (and a leadership transfer) shares."""
    if not facts.is_leader:
        where = f"the leader is {facts.leader}" if facts.leader else "there is no leader right now"
        raise Unavailable(f"membership changes are made on the leader; {where}", retry_after=0.2)
    if not facts.term_started:
        raise Unavailable("the leader has not committed its term's first entry yet; retry", retry_after=0.2)
    if facts.change_pending:
        raise Conflict("a previous membership change is not committed yet; retry once it is")


def check_add(facts: ChangeFacts, new: NodeConfig) -> None:
    """May ``new`` join (voter: a Raft member; replica: recorded only)?"""
    check_can_change(facts)
    for member in facts.members:
        if member.name == new.name:
            raise Conflict(f"a member is already named {new.name!r}", field="name")
        for field in _ADDRESS_FIELDS:
            value = getattr(new, field)
            if value is not None and value in {member.raft, member.http, member.consul_http, member.dns}:
                raise Conflict(f"{field} {value} is already used by member {member.name!r}", field=field)
    if new.role != "voter":
        return
    if facts.joining:
        raise Conflict(f"{', '.join(sorted(facts.joining))} was added but has not caught up yet: start it "
                       "(raftreg serve --join) before adding another voter")
    voters = [m for m in facts.members if m.role == "voter"]
    live = sum(1 for m in voters if m.name in facts.live)
    need = majority(len(voters) + 1)
    if live < need:
        raise Conflict(f"adding a voter makes {len(voters) + 1} voters, whose quorum is {need}, but only {live} "
                       f"of the {len(voters)} current voters are up: bring the others back first")


def check_remove(facts: ChangeFacts, name: str) -> NodeConfig:
    """May member ``name`` leave? Returns its entry."""
    check_can_change(facts)
    found = [m for m in facts.members if m.name == name]
    if not found:
        raise NotFound(f"no member named {name!r}", field="name")
    target = found[0]
    if target.role != "voter":
        return target
    if name == facts.me:
        raise Conflict(f"{name} is the leader: transfer leadership first (POST /v1/cluster/transfer-leader)")
    remaining = [m for m in facts.members if m.role == "voter" and m.name != name]
    live = sum(1 for m in remaining if m.name in facts.live)
    need = majority(len(remaining))
    if live < need:
        raise Conflict(f"removing {name} leaves {len(remaining)} voters, whose quorum is {need}, but only {live} "
                       f"of them are up: bring the others back first")
    return target
