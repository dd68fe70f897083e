"""Recovery's policy with fake members: it asks the members who leads when this node knows no
leader, wipes only when a majority without this node holds every committed entry, and counts
refusals apart from recoveries."""

from __future__ import annotations

import asyncio
from typing import Any

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.node.recovery import Recovery

CONFIG = ClusterConfig(name="t", nodes=[NodeConfig(name=f"n{i}", http=f"127.0.0.1:{8500 + i}",
                                                   raft=f"127.0.0.1:{7000 + i}") for i in (1, 2, 3)])


class FakeRaft:
    def __init__(self) -> None:
        self.wipes = 0

    def wipe_and_restart(self) -> None:
        self.wipes += 1

    def status(self) -> Any:
        raise AssertionError("not sampled in these tests")


class FakeView:
    def __init__(self, believed_leader: str | None) -> None:
        self.believed_leader = believed_leader
        self.restarts = 0

    def usable_leader_name(self) -> str | None:
        return self.believed_leader

    def restarted(self) -> None:
        self.restarts += 1


class FakePeers:
    def __init__(self, answers: dict[str, dict[str, Any] | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def cluster_status(self, member: str) -> dict[str, Any] | None:
        self.asked.append(member)
        return self.answers.get(member)


def leader_doc(term: int, commit: int, matches: dict[str, int], *, quorum: bool = True) -> dict[str, Any]:
    return {"state": "leader", "has_quorum": quorum, "term": term, "commit_index": commit,
            "members": [{"name": name, "match_index": match} for name, match in matches.items()]}


FOLLOWER = {"state": "follower", "has_quorum": True, "term": 9, "commit_index": 0, "members": []}


def recovery(believed: str | None, answers: dict[str, dict[str, Any] | None]) -> tuple[Recovery, FakeRaft, FakePeers]:
    raft, peers = FakeRaft(), FakePeers(answers)
    rec = Recovery(CONFIG, CONFIG.node("n1"), raft, FakeView(believed), peers)  # type: ignore[arg-type]
    return rec, raft, peers


async def run_recovery(rec: Recovery) -> None:
    rec.recover("candidate with quorum for 16s, term 40")
    assert rec._task is not None
    await asyncio.wait_for(rec._task, 5)


async def test_a_wedged_candidate_that_knows_no_leader_asks_the_members() -> None:
    rec, raft, peers = recovery(None, {"n2": FOLLOWER, "n3": leader_doc(9, 120, {"n1": 80, "n2": 120, "n3": 120})})
    await run_recovery(rec)
    assert sorted(peers.asked) == ["n2", "n3"]
    assert raft.wipes == 1 and rec.recoveries == 1 and rec.refused == 0


async def test_the_believed_leader_is_asked_first() -> None:
    rec, raft, peers = recovery("n2", {"n2": leader_doc(4, 50, {"n1": 10, "n2": 50, "n3": 50}), "n3": FOLLOWER})
    await run_recovery(rec)
    assert peers.asked == ["n2"]
    assert raft.wipes == 1


async def test_no_member_leading_is_a_refusal_not_a_recovery() -> None:
    rec, raft, _ = recovery(None, {"n2": FOLLOWER, "n3": None})
    await run_recovery(rec)
    assert raft.wipes == 0 and rec.recoveries == 0 and rec.refused == 1


async def test_a_leader_without_quorum_is_not_trusted() -> None:
    rec, raft, _ = recovery(None, {"n2": leader_doc(9, 10, {"n2": 10, "n3": 10}, quorum=False), "n3": FOLLOWER})
    await run_recovery(rec)
    assert raft.wipes == 0 and rec.refused == 1


async def test_no_wipe_while_only_the_leader_holds_the_committed_entries() -> None:
    # Committed at 120 with this node's vote: n3 has only 100, so wiping n1 could lose 101..120.
    rec, raft, _ = recovery(None, {"n2": leader_doc(9, 120, {"n1": 120, "n2": 120, "n3": 100}), "n3": FOLLOWER})
    await run_recovery(rec)
    assert raft.wipes == 0 and rec.refused == 1


async def test_the_highest_terms_leader_wins_when_two_say_they_lead() -> None:
    stale = leader_doc(5, 300, {"n2": 300, "n3": 0})  # a deposed leader that has not noticed yet
    current = leader_doc(7, 200, {"n2": 200, "n3": 200})
    rec, raft, _ = recovery(None, {"n2": stale, "n3": current})
    await run_recovery(rec)
    assert raft.wipes == 1


async def test_a_malformed_answer_is_a_refusal() -> None:
    rec, raft, _ = recovery(None, {"n2": {"state": "leader", "has_quorum": True, "term": 3, "members": "?"},
                                   "n3": None})
    await run_recovery(rec)
    assert raft.wipes == 0 and rec.refused == 1


async def test_read_replicas_neither_hold_entries_for_the_majority_nor_are_asked_who_leads() -> None:
    # n3 lacks 101..120; the replicas r1, r2 have everything, but they count in no quorum.
    config = ClusterConfig(name="t", nodes=[*CONFIG.nodes, *(NodeConfig(name=f"r{i}", http=f"127.0.0.1:{8510 + i}",
                                                                       raft=f"127.0.0.1:{7010 + i}", role="replica")
                                                            for i in (1, 2))])
    doc = leader_doc(9, 120, {"n1": 120, "n2": 120, "n3": 100})
    doc["members"] += [{"name": f"r{i}", "role": "replica", "match_index": 120} for i in (1, 2)]
    peers = FakePeers({"n2": doc, "n3": FOLLOWER, "r1": doc, "r2": doc})
    raft = FakeRaft()
    rec = Recovery(config, config.node("n1"), raft, FakeView(None), peers)  # type: ignore[arg-type]
    await run_recovery(rec)
    assert sorted(peers.asked) == ["n2", "n3"]
    assert raft.wipes == 0 and rec.refused == 1
