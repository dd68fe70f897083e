"""ReadChannel (ReadIndex in the tick thread) against a fake pysyncobj, message by message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from raftreg.raft import read_channel
from raftreg.raft.read_channel import CHECK, CHECK_ACK, INDEX, INDEX_ACK, ReadChannel


class Node:
    def __init__(self, address: str) -> None:
        self.address = address


N1, N2, N3 = (Node(f"127.0.0.1:700{i}") for i in (1, 2, 3))


class FakeSyncObj:
    """The private state the channel reads, named as pysyncobj names it."""

    def __init__(self, *, state: int, term: int = 5, commit: int = 40, applied: int = 40, noop: int | None = 30,
                 leader: Any = None, peers: tuple[Any, ...] = (N2, N3)) -> None:
        self._SyncObj__raftState = state
        self._SyncObj__raftCurrentTerm = term
        self.raftCommitIndex = commit
        self.raftLastApplied = applied
        self._SyncObj__noopIDx = noop
        self._SyncObj__raftLeader = leader
        self._SyncObj__otherNodes = set(peers)


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, node: Any, message: dict[str, Any]) -> bool:
        self.sent.append((node.address, dict(message)))
        return True

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.sent = self.sent, []
        return out


async def answers() -> None:
    for _ in range(5):  # let the channel's call_soon_threadsafe drain run
        await asyncio.sleep(0)


@pytest.fixture
async def channel() -> ReadChannel:
    ch = ReadChannel()
    ch.bind(asyncio.get_running_loop())
    return ch


async def test_a_leader_round_answers_with_the_commit_index_once_a_majority_confirms(channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=2, commit=40), Wire()
    fut = channel.read_index()
    channel.on_tick(so, wire)
    checks = wire.take()
    assert sorted(a for a, _ in checks) == [N2.address, N3.address]
    seq = checks[0][1]["seq"]
    assert checks[0][1] == {"type": CHECK, "term": 5, "seq": seq}
    so.raftCommitIndex = 45  # writes committed after the round began do not change its answer
    channel.receive(so, wire, N2, {"type": CHECK_ACK, "seq": seq, "ok": True})
    await answers()
    assert await asyncio.wait_for(fut, 1) == 40


async def test_enough_refusals_answer_none_at_once(channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=2), Wire()
    fut = channel.read_index()
    channel.on_tick(so, wire)
    seq = wire.take()[0][1]["seq"]
    channel.receive(so, wire, N2, {"type": CHECK_ACK, "seq": seq, "ok": False})
    channel.receive(so, wire, N3, {"type": CHECK_ACK, "seq": seq, "ok": False})
    await answers()
    assert await asyncio.wait_for(fut, 1) is None


async def test_a_term_change_during_the_round_answers_none(channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=2), Wire()
    fut = channel.read_index()
    channel.on_tick(so, wire)
    seq = wire.take()[0][1]["seq"]
    so._SyncObj__raftCurrentTerm = 6
    channel.receive(so, wire, N2, {"type": CHECK_ACK, "seq": seq, "ok": True})
    await answers()
    assert await asyncio.wait_for(fut, 1) is None


async def test_a_leader_whose_term_has_not_started_gives_no_index(channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=2, noop=50, applied=45), Wire()
    fut = channel.read_index()
    channel.on_tick(so, wire)
    assert wire.take() == []
    await answers()
    assert await asyncio.wait_for(fut, 1) is None


async def test_a_read_arriving_during_a_round_waits_for_the_next_one(channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=2, commit=40), Wire()
    first = channel.read_index()
    channel.on_tick(so, wire)
    seq1 = wire.take()[0][1]["seq"]
    second = channel.read_index()
    channel.on_tick(so, wire)
    assert wire.take() == [], "a second round started while one is in flight"
    so.raftCommitIndex = 41
    channel.receive(so, wire, N3, {"type": CHECK_ACK, "seq": seq1, "ok": True})  # round 1 done: round 2 starts
    checks = wire.take()
    assert len(checks) == 2 and checks[0][1]["seq"] != seq1
    channel.receive(so, wire, N2, {"type": CHECK_ACK, "seq": seq1, "ok": True})  # a late ack of round 1: ignored
    await answers()
    assert await asyncio.wait_for(first, 1) == 40 and not second.done()
    channel.receive(so, wire, N2, {"type": CHECK_ACK, "seq": checks[0][1]["seq"], "ok": True})
    await answers()
    assert await asyncio.wait_for(second, 1) == 41


async def test_a_round_without_answers_times_out(channel: ReadChannel, monkeypatch: pytest.MonkeyPatch) -> None:
    so, wire = FakeSyncObj(state=2), Wire()
    fut = channel.read_index()
    channel.on_tick(so, wire)
    clock = read_channel.time.monotonic() + read_channel.ROUND_TIMEOUT + 0.1
    monkeypatch.setattr(read_channel.time, "monotonic", lambda: clock)
    channel.on_tick(so, wire)
    await answers()
    assert await asyncio.wait_for(fut, 1) is None


async def test_a_follower_confirms_only_its_own_term_and_leader(channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=0, term=5, leader=N1, peers=(N1, N3)), Wire()
    channel.receive(so, wire, N1, {"type": CHECK, "term": 5, "seq": 9})
    channel.receive(so, wire, N1, {"type": CHECK, "term": 4, "seq": 10})
    channel.receive(so, wire, N3, {"type": CHECK, "term": 5, "seq": 11})  # not its leader
    so._SyncObj__raftState = 1  # a candidate confirms nobody
    channel.receive(so, wire, N1, {"type": CHECK, "term": 5, "seq": 12})
    assert [m["ok"] for _, m in wire.take()] == [True, False, False, False]


async def test_a_follower_asks_the_leader_once_for_its_waiting_reads(channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=0, leader=N1, peers=(N1, N3)), Wire()
    reads = [channel.read_index() for _ in range(3)]
    channel.on_tick(so, wire)
    (to, ask), = wire.take()
    assert to == N1.address and ask["type"] == INDEX
    later = channel.read_index()
    channel.on_tick(so, wire)
    assert wire.take() == []
    channel.receive(so, wire, N1, {"type": INDEX_ACK, "seq": ask["seq"], "index": 77})
    await answers()
    assert [await asyncio.wait_for(r, 1) for r in reads] == [77, 77, 77] and not later.done()
    (to, again), = wire.take()  # the read that arrived meanwhile is asked for at once, not at the next tick
    assert to == N1.address and again["type"] == INDEX and again["seq"] != ask["seq"]
    channel.receive(so, wire, N1, {"type": INDEX_ACK, "seq": again["seq"], "index": 78})
    await answers()
    assert await asyncio.wait_for(later, 1) == 78 and wire.take() == []


async def test_a_follower_without_a_leader_answers_none(channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=0, leader=None), Wire()
    fut = channel.read_index()
    channel.on_tick(so, wire)
    await answers()
    assert await asyncio.wait_for(fut, 1) is None and wire.take() == []


async def test_the_leader_answers_a_followers_request_after_its_round(channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=2, commit=40), Wire()
    channel.receive(so, wire, N2, {"type": INDEX, "seq": 3})
    checks = wire.take()
    assert {m["type"] for _, m in checks} == {CHECK}
    channel.receive(so, wire, N3, {"type": CHECK_ACK, "seq": checks[0][1]["seq"], "ok": True})
    assert wire.take() == [(N2.address, {"type": INDEX_ACK, "seq": 3, "index": 40})]


N4, N5 = (Node(f"127.0.0.1:700{i}") for i in (4, 5))


class ReplicaNode:
    """How a voter's pysyncobj knows a read replica: a bare ``Node`` with a counter id, no address."""

    id = "0"


async def test_with_three_voters_the_asking_follower_completes_the_majority_without_a_round(
        channel: ReadChannel) -> None:
    so, wire = FakeSyncObj(state=2, term=5, commit=40), Wire()
    channel.receive(so, wire, N2, {"type": INDEX, "seq": 3, "confirms": True})
    assert wire.take() == [(N2.address, {"type": INDEX_ACK, "seq": 3, "index": 40, "term": 5, "confirm": True})]
    assert channel.rounds == 0 and channel.fast_answers == 1


@pytest.mark.parametrize("case", ["older follower", "five voters", "read replica", "term not started", "not leader"])
async def test_otherwise_the_leader_still_runs_a_round(channel: ReadChannel, case: str) -> None:
    peers: tuple[Node, ...] = (N2, N3, N4, N5) if case == "five voters" else (N2, N3)
    so = FakeSyncObj(state=1 if case == "not leader" else 2, peers=peers,
                     noop=50 if case == "term not started" else 30)
    wire = Wire()
    asker: Any = ReplicaNode() if case == "read replica" else N2  # a replica is no voter
    message: dict[str, Any] = {"type": INDEX, "seq": 3}
    if case != "older follower":
        message["confirms"] = True
    channel.receive(so, wire, asker, message)
    assert all(m["type"] != INDEX_ACK or "confirm" not in m for _, m in wire.take())
    assert channel.fast_answers == 0


async def test_a_follower_uses_an_index_that_needs_its_confirmation_only_if_it_still_follows(
        channel: ReadChannel) -> None:
    for still_follows, expected in ((True, 40), (False, None)):
        so, wire = FakeSyncObj(state=0, term=5, leader=N1, peers=(N1, N3)), Wire()
        fut = channel.read_index()
        channel.on_tick(so, wire)
        (to, ask), = wire.take()
        assert to == N1.address and ask["confirms"] is True
        if not still_follows:
            so._SyncObj__raftCurrentTerm = 6  # it moved on (voted in a newer election) meanwhile
        channel.receive(so, wire, N1, {"type": INDEX_ACK, "seq": ask["seq"], "index": 40, "term": 5,
                                        "confirm": True})
        await answers()
        assert await asyncio.wait_for(fut, 1) == expected
    # ... from another node than its leader, or for another term: not usable either
    for sender, term in ((N3, 5), (N1, 4)):
        so, wire = FakeSyncObj(state=0, term=5, leader=N1, peers=(N1, N3)), Wire()
        fut = channel.read_index()
        channel.on_tick(so, wire)
        (_, ask), = wire.take()
        channel.receive(so, wire, sender, {"type": INDEX_ACK, "seq": ask["seq"], "index": 40, "term": term,
                                            "confirm": True})
        await answers()
        assert await asyncio.wait_for(fut, 1) is None
