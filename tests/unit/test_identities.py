"""Node identity (issue 16 item 2): the replicated identities table, its place in snapshots, the
incarnation file, and the start-up decision of ``raftreg serve`` on an empty data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.models import Instance
from raftreg.node.identity_check import IdentityRefused, check_identity, decide, recorded_incarnation
from raftreg.node.incarnation import create_incarnation, has_raft_data, read_incarnation
from raftreg.node.leases import LeaseKey
from raftreg.raft.storage import RaftFiles
from raftreg.state.commands import ForgetIdentity, RecordIdentity, Register, decode_entry, encode_entry
from raftreg.state.identities import Identities, IdentityRecorded
from raftreg.state.machine import SNAPSHOT_VERSION, StateMachine

A, B = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"


# ---- the pure table -----------------------------------------------------------------------
def test_a_record_is_created_replaced_and_idempotent() -> None:
    table = Identities()
    assert table.apply(5, RecordIdentity("n1", A)) == IdentityRecorded(changed=True)
    assert table.apply(6, RecordIdentity("n1", A)) == IdentityRecorded(changed=False, previous=A)
    assert table.apply(7, RecordIdentity("n1", B)) == IdentityRecorded(changed=True, previous=A)
    table.apply(8, RecordIdentity("n0", A))
    assert table.get("n1") == B and table.get("n9") is None
    assert table.as_dict() == {"n0": A, "n1": B}
    assert table.apply(9, ForgetIdentity("n0")) == IdentityRecorded(changed=True, previous=A)
    assert table.apply(10, ForgetIdentity("n0")) == IdentityRecorded(changed=False)
    assert table.as_dict() == {"n1": B}


def test_the_command_survives_the_log_encoding() -> None:
    assert decode_entry(encode_entry([RecordIdentity("n2", A)])) == [RecordIdentity("n2", A)]


def test_snapshots_keep_the_identities_and_restore_byte_identical() -> None:
    machine = StateMachine()
    machine.apply(1, RecordIdentity("n1", A))
    assert isinstance(machine.apply(2, RecordIdentity("n2", B)), IdentityRecorded)
    data = machine.snapshot()
    assert msgspec.msgpack.decode(data)[0] == SNAPSHOT_VERSION
    copy = StateMachine()
    copy.restore(data)
    assert copy.identities.as_dict() == {"n1": A, "n2": B}
    assert copy.snapshot() == data


def test_a_version_3_snapshot_without_identities_still_decodes() -> None:
    old = StateMachine()
    old.apply(1, Register(Instance(service="cart", id="c1", address="10.0.0.1", port=80)))
    v3 = msgspec.msgpack.encode([3, old.registry.snapshot_struct(), old.kv.snapshot_struct(),
                                 old.sessions.snapshot_struct(), old.acl.snapshot_struct()])
    machine = StateMachine()
    machine.apply(1, RecordIdentity("n1", A))
    machine.restore(v3)
    assert machine.identities.as_dict() == {}
    assert machine.registry.get_instance("cart", "c1") is not None


# ---- the incarnation file -----------------------------------------------------------------
def test_the_incarnation_file_is_created_once_and_replaced_atomically(tmp_path: Path) -> None:
    data_dir = tmp_path / "n1"
    assert read_incarnation(data_dir) is None and not has_raft_data(data_dir)
    first = create_incarnation(data_dir)
    assert read_incarnation(data_dir) == first
    second = create_incarnation(data_dir)
    assert second != first and read_incarnation(data_dir) == second
    assert sorted(p.name for p in data_dir.iterdir()) == ["incarnation"]  # no temporary left behind
    (data_dir / "raft.journal").write_bytes(b"")
    assert has_raft_data(data_dir)
    RaftFiles(data_dir).wipe_keeping_vote()  # the watchdog's resync: still the same member
    assert read_incarnation(data_dir) == second and not has_raft_data(data_dir)


# ---- the decision -------------------------------------------------------------------------
def _decide(**kwargs: Any) -> Any:
    args: dict[str, Any] = {"name": "n2", "raft_data": False, "local": None, "recorded": None, "replace": False,
                            "confirmation": None}
    return decide(**{**args, **kwargs})


def test_an_empty_dir_whose_name_the_cluster_holds_is_refused_with_the_replacement_flow() -> None:
    decision = _decide(recorded=A)
    assert not decision.start
    assert "already holds 'n2'" in decision.message and "--replace-identity" in decision.message
    assert "raftreg cluster remove" in decision.message
    assert not _decide(recorded=A, local=B).start  # another directory's incarnation: refused too


def test_a_fresh_cluster_or_an_unrecorded_name_starts_with_a_new_incarnation() -> None:
    decision = _decide(recorded=None)
    assert decision.start and decision.new_incarnation and not decision.may_replace
    assert _decide(recorded=None, local=A).start and not _decide(recorded=None, local=A).new_incarnation


def test_the_same_incarnation_or_raft_data_starts_without_asking_more() -> None:
    assert _decide(recorded=A, local=A).start  # the watchdog's wipe keeps the incarnation
    decision = _decide(raft_data=True, local=None, recorded=A)
    assert decision.start and decision.new_incarnation  # an upgraded node gets its file


def test_the_flag_with_a_confirmed_majority_starts_and_may_replace() -> None:
    decision = _decide(recorded=A, replace=True, confirmation=(True, "leader n1 commit 9: 2 ..."))
    assert decision.start and decision.new_incarnation and decision.may_replace


def test_the_flag_without_confirmation_is_refused() -> None:
    refused = _decide(recorded=A, replace=True, confirmation=(False, "leader n1 commit 9: 1 of the other members"))
    assert not refused.start and "--replace-identity refused" in refused.message and "1 of the other" in refused.message
    assert not _decide(recorded=A, replace=True, confirmation=None).start  # no leader to ask


def test_the_record_is_taken_from_the_member_that_applied_most() -> None:
    answers: dict[str, dict[str, Any] | None] = {
        "n1": {"applied_index": 10, "identities": {"n2": A}},
        "n3": {"applied_index": 12, "identities": {"n2": B}},
        "n4": None, "n5": {"applied_index": 99},  # no answer; an older build without the table
    }
    assert recorded_incarnation("n2", answers) == B
    assert recorded_incarnation("n7", answers) is None


# ---- the check with members answering (a fake Peers) --------------------------------------
class _Peers:
    def __init__(self, answers: dict[str, dict[str, Any] | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def cluster_status(self, member: str) -> dict[str, Any] | None:
        self.asked.append(member)
        return self.answers.get(member)

    async def renew_leases(self, leader: str, keys: list[LeaseKey]) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def share_renewals(self, keys: list[LeaseKey]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


CONFIG = ClusterConfig(name="t", data_dir="unused", nodes=[
    NodeConfig(name=f"n{i}", http=f"127.0.0.1:{9000 + i}", raft=f"127.0.0.1:{9100 + i}") for i in (1, 2, 3)])


def _leader(match_n3: int) -> dict[str, Any]:
    return {"state": "leader", "has_quorum": True, "term": 4, "commit_index": 20, "applied_index": 20,
            "identities": {"n1": B, "n2": A},
            "members": [{"name": "n1", "match_index": 20}, {"name": "n2", "match_index": 20},
                        {"name": "n3", "match_index": match_n3}]}


async def test_check_refuses_an_empty_dir_and_accepts_the_flag_once_confirmed(tmp_path: Path) -> None:
    peers = _Peers({"n1": _leader(match_n3=20), "n3": {"state": "follower", "applied_index": 20}})
    with pytest.raises(IdentityRefused, match="already holds 'n2'"):
        await check_identity(CONFIG, "n2", tmp_path / "n2", peers)
    assert read_incarnation(tmp_path / "n2") is None  # a refusal writes nothing
    identity = await check_identity(CONFIG, "n2", tmp_path / "n2", peers, replace=True)
    assert identity.may_replace and identity.incarnation not in (A, B)
    assert read_incarnation(tmp_path / "n2") == identity.incarnation


async def test_check_refuses_the_flag_when_the_other_follower_lags(tmp_path: Path) -> None:
    peers = _Peers({"n1": _leader(match_n3=19), "n3": None})
    with pytest.raises(IdentityRefused, match="1 of the other members hold it, 2 needed"):
        await check_identity(CONFIG, "n2", tmp_path / "n2", peers, replace=True)


async def test_check_starts_a_new_cluster_when_nobody_answers(tmp_path: Path) -> None:
    identity = await check_identity(CONFIG, "n2", tmp_path / "n2", _Peers({}))
    assert not identity.may_replace and read_incarnation(tmp_path / "n2") == identity.incarnation


async def test_check_asks_nobody_when_the_dir_holds_raft_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "n2"
    data_dir.mkdir()
    (data_dir / "raft.dump").write_bytes(b"x")
    peers = _Peers({"n1": _leader(match_n3=20)})
    identity = await check_identity(CONFIG, "n2", data_dir, peers)
    assert peers.asked == [] and read_incarnation(data_dir) == identity.incarnation
