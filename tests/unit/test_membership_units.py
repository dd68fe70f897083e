"""Units of run-time membership: the replicated members table, snapshot compatibility, the live
membership computation and its file, the preflight rules, the routes' permissions, and the
readiness of a follower installing a snapshot (a new member's first catch-up)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest

from raftreg.config import NodeConfig
from raftreg.errors import Conflict, NotFound, Unavailable
from raftreg.http.permissions import need_for
from raftreg.node.member_rules import ChangeFacts, check_add, check_can_change, check_remove
from raftreg.node.membership import MEMBERS_FILE, live_members, read_members, write_members
from raftreg.raft.status import StatusReader
from raftreg.raft.transport import deliver_without_commit_advance
from raftreg.state.commands import decode_entry, encode_entry
from raftreg.state.machine import StateMachine
from raftreg.state.members import Member, MemberChanged, MemberDelete, MemberSet, MembersTable


def node(name: str, port: int, role: str = "voter") -> NodeConfig:
    return NodeConfig(name=name, http=f"h:{port}", raft=f"r:{port}", role=role)  # type: ignore[arg-type]


THREE = (node("a", 1), node("b", 2), node("c", 3))


# ---- the members table --------------------------------------------------------------------
def test_table_set_replace_delete() -> None:
    table = MembersTable()
    first = table.apply(5, MemberSet(Member("d", "r:4", "h:4")))
    assert first == MemberChanged(Member("d", "r:4", "h:4", added_index=5), existed=False)
    again = table.apply(7, MemberSet(Member("d", "r:9", "h:9")))
    assert again.existed and table.get("d") == Member("d", "r:9", "h:9", added_index=7)
    assert table.apply(8, MemberDelete("d")) == MemberChanged(None, True)
    assert table.apply(9, MemberDelete("d")) == MemberChanged(None, False)
    assert len(table) == 0


def test_commands_round_trip_through_the_envelope() -> None:
    cmds = [MemberSet(Member("d", "r:4", "h:4", role="replica")), MemberDelete("d")]
    assert decode_entry(encode_entry(cmds)) == cmds  # type: ignore[arg-type]


def test_snapshot_keeps_the_table_and_an_old_snapshot_still_decodes() -> None:
    machine = StateMachine()
    machine.apply(3, MemberSet(Member("d", "r:4", "h:4")))
    copy = StateMachine()
    copy.restore(machine.snapshot())
    assert copy.members.rows() == [Member("d", "r:4", "h:4", added_index=3)]
    # A version-3 snapshot (written before the table existed) has no members part.
    raw = msgspec.msgpack.decode(machine.snapshot())
    old = msgspec.msgpack.encode([3, *raw[1:5]])
    older = StateMachine()
    older.restore(old)
    assert older.members.rows() == []


# ---- live membership and members.json ---------------------------------------------------------
def test_live_members_names_voters_from_the_table_and_drops_removed_ones() -> None:
    rows = [Member("d", "r:4", "h:4", added_index=9), Member("ro", "r:5", "h:5", role="replica", added_index=10)]
    out = live_members({"r:1", "r:3", "r:4"}, list(THREE), rows)
    assert [n.name for n in out] == ["a", "c", "d", "ro"]
    assert out[-1].role == "replica"
    # A voter whose row is not applied yet is left out until it is.
    assert [n.name for n in live_members({"r:1", "r:2", "r:3", "r:4"}, list(THREE), [])] == ["a", "b", "c"]


def test_members_file_round_trip_and_unreadable_file(tmp_path: Path) -> None:
    assert read_members(tmp_path) is None
    write_members(tmp_path, [*THREE, node("d", 4)])
    assert [n.name for n in read_members(tmp_path) or []] == ["a", "b", "c", "d"]
    (tmp_path / MEMBERS_FILE).write_text("{not json")
    assert read_members(tmp_path) is None


# ---- preflight ---------------------------------------------------------------------------------
def facts(**overrides: object) -> ChangeFacts:
    base: dict[str, object] = dict(me="a", is_leader=True, leader="a", term_started=True, change_pending=False,
                                   members=THREE, live=frozenset({"a", "b", "c"}))
    base.update(overrides)
    return ChangeFacts(**base)  # type: ignore[arg-type]


def test_shared_rules() -> None:
    with pytest.raises(Unavailable, match="the leader is b"):
        check_can_change(facts(is_leader=False, leader="b"))
    with pytest.raises(Unavailable, match="no leader"):
        check_can_change(facts(is_leader=False, leader=None))
    with pytest.raises(Unavailable, match="first entry"):
        check_can_change(facts(term_started=False))
    with pytest.raises(Conflict, match="not committed"):
        check_can_change(facts(change_pending=True))
    check_can_change(facts())


def test_add_rules() -> None:
    check_add(facts(), node("d", 4))
    with pytest.raises(Conflict, match="already named") as named:
        check_add(facts(), node("b", 9))
    assert named.value.field == "name"
    with pytest.raises(Conflict, match="already used") as used:
        check_add(facts(), NodeConfig(name="d", http="h:9", raft="r:2"))
    assert used.value.field == "raft"
    # a 4th voter while one of three is down: quorum 3 of 4, only 2 up
    with pytest.raises(Conflict, match="only 2"):
        check_add(facts(live=frozenset({"a", "b"})), node("d", 4))
    # a voter added earlier that holds nothing yet: start it first
    with pytest.raises(Conflict, match="has not caught up"):
        check_add(facts(joining=frozenset({"c"})), node("d", 4))
    # a replica is no Raft change: no quorum rule
    check_add(facts(live=frozenset({"a"})), node("ro", 5, role="replica"))


def test_remove_rules() -> None:
    assert check_remove(facts(), "b").name == "b"
    with pytest.raises(NotFound):
        check_remove(facts(), "zz")
    with pytest.raises(Conflict, match="transfer leadership first"):
        check_remove(facts(), "a")
    # removing a live voter while another is down: 2 left, quorum 2, only 1 up
    with pytest.raises(Conflict, match="only 1"):
        check_remove(facts(live=frozenset({"a", "b"})), "b")
    # removing the one that is down is fine
    assert check_remove(facts(live=frozenset({"a", "b"})), "c").name == "c"


def test_membership_routes_need_operator_rights() -> None:
    for method, path in [("POST", "/v1/cluster/members"), ("DELETE", "/v1/cluster/members/{name}"),
                         ("POST", "/v1/cluster/transfer-leader")]:
        need = need_for(method, path)
        assert need is not None and (need.resource, need.access) == ("operator", "write"), (method, path)
    need = need_for("GET", "/v1/cluster/config")
    assert need is not None and (need.resource, need.access) == ("operator", "read")


# ---- readiness while a snapshot installs (a new member's first catch-up) -----------------------
class InstallingFollower:
    """A follower in the middle of a snapshot install: pysyncobj shows the lowered commit index
    the guard delivered (``raftreg.raft.transport``) as the leader's until ``deliver`` returns."""

    def __init__(self) -> None:
        self._SyncObj__raftCurrentTerm = 3
        self._SyncObj__raftCommitIndex = 1
        self._SyncObj__leaderCommitIndex: int | None = 304
        self._SyncObj__noopIDx = None
        self.raftLastApplied = 1
        self.seen_during_install: int | None = None

    def getStatus(self) -> dict[str, object]:
        return {"state": 0, "leader": SimpleNamespace(address="127.0.0.1:7001"), "has_quorum": True, "log_len": 1,
                "last_applied": 1, "commit_idx": 1, "raft_term": 3,
                "leader_commit_idx": self._SyncObj__leaderCommitIndex}

    def deliver(self, node: object, message: dict[str, object]) -> None:
        self._SyncObj__leaderCommitIndex = message["commit_index"]  # type: ignore[assignment]
        sample = StatusReader().sample(self)  # the loop samples while the snapshot loads
        self.seen_during_install = sample.leader_commit_index


def test_a_follower_installing_a_snapshot_never_looks_caught_up() -> None:
    so = InstallingFollower()
    deliver_without_commit_advance(so, so.deliver, "leader", {"type": "append_entries", "term": 3,
                                                              "commit_index": 304, "serialized": b"x"})
    assert so.seen_during_install == 304, "mid-install, readiness saw the lowered commit index (applied 1 of 1)"
    assert so.raftreg_installing_up_to is None
    assert StatusReader().sample(so).leader_commit_index == 304
