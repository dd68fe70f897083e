"""The start-up identity check of ``raftreg serve``: a node never silently reuses its name on an
empty data directory.

Contract:
- Runs before the Raft port opens. A data directory that holds Raft data (journal or dump) starts
  as before, without asking anyone (it is the member it was); it only gets an incarnation file
  if it has none yet (``raftreg.node.incarnation``).
- On an empty data directory the other members' ``GET /v1/cluster`` is asked (signed, a short
  deadline). If a member that answers reports a recorded incarnation for this name
  (``identities``) that differs from this directory's (or this directory has none), the node
  refuses to start (``IdentityRefused``, one message naming what happened and the replacement
  flow) unless ``replace`` (``--replace-identity``) is given AND the leader's answer shows that a
  majority of the members other than this one holds every committed entry (the watchdog's rule,
  ``raftreg.node.recovery.majority_without``). Accepted, the node starts with a new incarnation
  and may replace the recorded one (``raftreg.node.identity_recorder``).
- No member reachable, or none reporting a record for this name (a brand-new cluster booting
  at once): the node starts as before. That is the residual window (README, "Node identity").
- ``decide`` is the whole policy, pure; ``check_identity`` gathers its inputs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftreg.config import ClusterConfig
from raftreg.node.incarnation import create_incarnation, has_raft_data, read_incarnation
from raftreg.node.peers import Peers
from raftreg.node.recovery import majority_without, pick_leader

log = logging.getLogger("raftreg.identity")

REPLACEMENT_FLOW = (
    "Replace a node by removing the old member and adding a new one (raftreg cluster remove NAME, then "
    "raftreg cluster add ...; README \"Node identity\"), or start it with --replace-identity, which is "
    "accepted only once the leader confirms that a majority of the other members holds every committed entry."
)


class IdentityRefused(Exception):
    """The node must not start under this name (the message says why and what to do)."""


@dataclass(frozen=True)
class Decision:
    """What ``raftreg serve`` does: start or not (``message`` says why), and with which identity."""

    start: bool
    message: str
    new_incarnation: bool = False  # write a new incarnation id before the node starts
    may_replace: bool = False  # the node may replace a different recorded incarnation


@dataclass(frozen=True)
class LocalIdentity:
    """The identity a started node records: its incarnation, and whether it may replace a
    different record (only after an accepted ``--replace-identity``)."""

    incarnation: str
    may_replace: bool = False


def decide(*, name: str, raft_data: bool, local: str | None, recorded: str | None, replace: bool,
           confirmation: tuple[bool, str] | None) -> Decision:
    """The policy (see the module docstring). ``recorded``: the incarnation a reachable member
    reports for ``name`` (None: no record, or no member reachable); ``confirmation``: the
    leader's verdict on a majority without this node, or None when it could not be asked."""
    if raft_data:
        return Decision(True, "the data directory holds Raft data", new_incarnation=local is None)
    if recorded is None:
        return Decision(True, "no incarnation recorded for this name (a new member or a new cluster)",
                        new_incarnation=local is None)
    if recorded == local:
        return Decision(True, "the recorded incarnation is this data directory's")
    what = (f"node {name!r} starts on an empty data directory, but the cluster already holds {name!r} as "
            f"incarnation {recorded} (this directory's is {local or 'missing'}): its data was lost or this "
            "is another machine. Rejoining under the old identity with an empty log could lose committed entries.")
    if not replace:
        return Decision(False, f"{what} Refusing to start. {REPLACEMENT_FLOW}")
    if confirmation is None:
        return Decision(False, f"{what} --replace-identity refused: no leader could confirm that a majority of "
                               "the other members holds every committed entry; retry once the cluster has a leader.")
    confirmed, why = confirmation
    if not confirmed:
        return Decision(False, f"{what} --replace-identity refused: {why}; retry once the other members have "
                               "caught up.")
    return Decision(True, f"--replace-identity accepted: {why}", new_incarnation=True, may_replace=True)


def recorded_incarnation(name: str, answers: dict[str, dict[str, Any] | None]) -> str | None:
    """The incarnation recorded for ``name`` by the member that has applied the most (None
    when no answer records one)."""
    best: tuple[int, str] | None = None
    for info in answers.values():
        if info is None or not isinstance(info.get("identities"), dict):
            continue
        value = info["identities"].get(name)
        applied = info.get("applied_index")
        if isinstance(value, str) and value and isinstance(applied, int) and (best is None or applied > best[0]):
            best = (applied, value)
    return best[1] if best is not None else None


async def ask_members(config: ClusterConfig, name: str, peers: Peers) -> dict[str, dict[str, Any] | None]:
    """Every other member's ``GET /v1/cluster`` answer (None when it did not answer in time)."""
    others = [n.name for n in config.nodes if n.name != name]
    answers = await asyncio.gather(*(peers.cluster_status(other) for other in others))
    return dict(zip(others, answers, strict=True))


async def check_identity(config: ClusterConfig, name: str, data_dir: Path, peers: Peers, *,
                         replace: bool = False) -> LocalIdentity:
    """Run the check, asking the members through ``peers`` (signed, with a short timeout; the
    caller closes it); returns the identity to start with (writing a new incarnation file when
    the decision says so), or raises ``IdentityRefused``."""
    local = read_incarnation(data_dir)
    raft_data = has_raft_data(data_dir)
    recorded: str | None = None
    confirmation: tuple[bool, str] | None = None
    if not raft_data:
        answers = await ask_members(config, name, peers)
        recorded = recorded_incarnation(name, answers)
        if recorded is not None and recorded != local and replace:
            found = pick_leader(answers)
            if found is not None:
                confirmation = majority_without(name, found[0], found[1], len(config.voters))
    decision = decide(name=name, raft_data=raft_data, local=local, recorded=recorded, replace=replace,
                      confirmation=confirmation)
    if not decision.start:
        log.error("event=identity_refused node=%s reason=%r", name, decision.message)
        raise IdentityRefused(decision.message)
    if replace and not decision.may_replace:
        log.warning("event=replace_identity_ignored node=%s reason=%r", name, decision.message)
    incarnation = local
    if decision.new_incarnation or incarnation is None:
        incarnation = create_incarnation(data_dir)
    log.info("event=identity_checked node=%s incarnation=%s reason=%r", name, incarnation, decision.message)
    return LocalIdentity(incarnation, may_replace=decision.may_replace)
