"""The pysyncobj guards of ``raftreg.raft`` as units: the version guard, the snapshot-install
commit-index guard fed message by message through a fake follower, and the status reader that
keeps its last good sample."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from pysyncobj import journal, serializer, syncobj, tcp_connection, transport
from pysyncobj.version import VERSION

from raftreg.raft.compat import PINNED_VERSION, find_problems
from raftreg.raft.status import STOPPED, StatusReader
from raftreg.raft.transport import deliver_without_commit_advance, is_unchecked_append, skip_entries_already_held

REAL = {"syncobj": syncobj, "transport": transport, "journal": journal, "serializer": serializer,
        "tcp_connection": tcp_connection}


# ---- the version guard -----------------------------------------------------------------------
def test_the_installed_pysyncobj_passes_the_guard() -> None:
    assert VERSION == PINNED_VERSION
    assert find_problems(VERSION, REAL) == []


def test_another_version_is_refused_by_name() -> None:
    problems = find_problems("0.3.18", REAL)
    assert problems == ["pysyncobj 0.3.17 is required, 0.3.18 is installed (pip install pysyncobj==0.3.17)"]


def _fake_syncobj_without(attribute: str) -> Any:
    """A stand-in ``syncobj`` module whose SyncObj.__init__ no longer assigns ``attribute``."""
    source = syncobj.SyncObj.__init__.__code__
    names = tuple("_SyncObj__renamed" if n == attribute else n for n in source.co_names)

    class FakeSyncObj(syncobj.SyncObj):  # type: ignore[misc]
        pass

    def init(self: Any) -> None:
        pass

    init.__code__ = init.__code__.replace(co_names=names)
    FakeSyncObj.__init__ = init  # type: ignore[method-assign]
    return SimpleNamespace(SyncObj=FakeSyncObj)


@pytest.mark.parametrize("attribute", ["_SyncObj__raftCommitIndex", "_SyncObj__leaderCommitIndex",
                                       "_SyncObj__raftElectionDeadline", "_SyncObj__votedForNodeId"])
def test_a_missing_private_attribute_is_named(attribute: str) -> None:
    problems = find_problems(PINNED_VERSION, {**REAL, "syncobj": _fake_syncobj_without(attribute)})
    assert len(problems) == 1
    assert attribute in problems[0] and "SyncObj.__init__" in problems[0], problems


def test_a_missing_method_is_named() -> None:
    class NoMeta:
        def getMeta(self) -> dict[str, Any]:
            return {}

    fake_journal = SimpleNamespace(MetaStorer=NoMeta, FileJournal=journal.FileJournal,
                                   ResizableFile=journal.ResizableFile)
    problems = find_problems(PINNED_VERSION, {**REAL, "journal": fake_journal})
    assert problems == ["pysyncobj lacks journal.MetaStorer.storeMeta (used by keeping term and vote across a resync)"]


# ---- the snapshot-install commit-index guard, message by message ------------------------------
class FakeFollower:
    """The part of pysyncobj's follower that matters here: AppendEntries of the current or a
    higher term set the leader's commit index and advance the commit index to
    ``min(commit_index, last log index)``; older terms are ignored. Private names as pysyncobj's."""

    def __init__(self, *, term: int, commit: int, last_index: int) -> None:
        self._SyncObj__raftCurrentTerm = term
        self._SyncObj__raftCommitIndex = commit
        self._SyncObj__leaderCommitIndex: int | None = None
        self.last_index = last_index
        self.delivered: list[dict[str, Any]] = []

    def deliver(self, node: Any, message: dict[str, Any]) -> None:
        self.delivered.append(dict(message))
        if message["type"] != "append_entries" or message["term"] < self._SyncObj__raftCurrentTerm:
            return
        self._SyncObj__raftCurrentTerm = message["term"]
        self._SyncObj__leaderCommitIndex = message["commit_index"]
        if message["commit_index"] > self._SyncObj__raftCommitIndex:
            self._SyncObj__raftCommitIndex = min(message["commit_index"], self.last_index)

    def receive(self, message: dict[str, Any]) -> None:
        """What the guarded transport does with one incoming message."""
        if is_unchecked_append(message):
            deliver_without_commit_advance(self, self.deliver, "leader", message)
        else:
            self.deliver("leader", message)


def snapshot_chunk(term: int, commit: int) -> dict[str, Any]:
    return {"type": "append_entries", "term": term, "commit_index": commit, "serialized": b"chunk"}


def regular_append(term: int, commit: int) -> dict[str, Any]:
    return {"type": "append_entries", "term": term, "commit_index": commit, "prevLogIdx": 9, "prevLogTerm": term,
            "entries": []}


def test_only_snapshot_transfer_appends_are_unchecked() -> None:
    assert is_unchecked_append(snapshot_chunk(3, 50))
    assert not is_unchecked_append(regular_append(3, 50))
    assert not is_unchecked_append({"type": "request_vote", "term": 3, "commit_index": 1})
    assert not is_unchecked_append({"type": "append_entries", "term": 3})
    assert not is_unchecked_append(["append_entries"])


def test_a_deposed_leader_fed_a_snapshot_does_not_commit_its_own_stale_entries() -> None:
    # The old leader of term 2 holds entries up to 40, committed only up to 20.
    node = FakeFollower(term=2, commit=20, last_index=40)
    node.receive(snapshot_chunk(term=3, commit=35))
    assert node.delivered[-1]["commit_index"] == 20, "the snapshot chunk was delivered with its commit index"
    assert node._SyncObj__raftCommitIndex == 20, "entries 21..35 of the old term were taken for committed"
    assert node._SyncObj__leaderCommitIndex == 35, "readiness must still see the leader's real commit index"
    assert node._SyncObj__raftCurrentTerm == 3


def test_a_regular_append_still_advances_the_commit_index() -> None:
    node = FakeFollower(term=3, commit=20, last_index=40)
    node.receive(regular_append(term=3, commit=30))
    assert node.delivered[-1]["commit_index"] == 30
    assert node._SyncObj__raftCommitIndex == 30


def test_a_stale_terms_snapshot_chunk_changes_nothing() -> None:
    node = FakeFollower(term=5, commit=20, last_index=40)
    node._SyncObj__leaderCommitIndex = 25
    node.receive(snapshot_chunk(term=4, commit=90))
    assert node._SyncObj__leaderCommitIndex == 25, "a deposed leader's commit index was recorded"
    assert node._SyncObj__raftCommitIndex == 20
    assert node._SyncObj__raftCurrentTerm == 5


def test_a_sequence_of_chunks_then_a_checked_append() -> None:
    node = FakeFollower(term=3, commit=10, last_index=12)
    for commit in (50, 60, 70):
        node.receive(snapshot_chunk(term=3, commit=commit))
        assert node._SyncObj__raftCommitIndex == 10
        assert node._SyncObj__leaderCommitIndex == commit
    node.last_index = 70  # the snapshot landed: the log now reaches the leader's
    node.receive(regular_append(term=3, commit=70))
    assert node._SyncObj__raftCommitIndex == 70


def test_other_messages_pass_untouched() -> None:
    node = FakeFollower(term=3, commit=10, last_index=12)
    vote = {"type": "request_vote", "term": 4, "last_log_index": 12, "last_log_term": 3}
    node.receive(vote)
    assert node.delivered == [vote]


# ---- the status reader -----------------------------------------------------------------------
class FlakySyncObj:
    """getStatus answers, then raises the way pysyncobj does when a dict changes size under it."""

    def __init__(self) -> None:
        self.fail = False
        self._SyncObj__noopIDx = 5
        self.raftLastApplied = 9

    def getStatus(self) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("dictionary changed size during iteration")
        return {"state": 2, "leader": SimpleNamespace(address="127.0.0.1:7001"), "has_quorum": True, "log_len": 9,
                "last_applied": 9, "commit_idx": 9, "raft_term": 4, "leader_commit_idx": 9,
                "match_idx_server_127.0.0.1:7002": 9, "partner_node_status_server_127.0.0.1:7002": 2,
                "partner_node_status_server_127.0.0.1:7003": 0}


def test_a_failed_status_read_keeps_the_last_good_sample() -> None:
    reader, so = StatusReader(), FlakySyncObj()
    good = reader.sample(so)
    assert good.state == "leader" and good.term == 4 and good.term_started
    assert good.connected == frozenset({"127.0.0.1:7002"}) and good.match_index == {"127.0.0.1:7002": 9}
    so.fail = True
    assert reader.sample(so) == good, "a failed read must not turn the leader into a leaderless follower"
    assert reader.failed_samples == 1


def test_an_unreadable_status_keeps_the_last_good_sample() -> None:
    reader, so = StatusReader(), FlakySyncObj()
    good = reader.sample(so)
    so.getStatus = lambda: {"state": 2}  # type: ignore[method-assign]  # keys missing
    assert reader.sample(so) == good


def test_no_syncobj_reads_as_stopped() -> None:
    assert StatusReader().sample(None) == STOPPED


class TickedSyncObj:
    """What ``StatusReader.on_tick`` reads of a SyncObj."""

    def __init__(self) -> None:
        self._SyncObj__raftState = 0  # follower
        self._SyncObj__raftCurrentTerm = 3
        self._SyncObj__raftElectionDeadline = 1.0


def test_an_election_this_node_starts_is_logged_with_how_long_the_leader_was_silent(
        caplog: pytest.LogCaptureFixture) -> None:
    reader, so = StatusReader(), TickedSyncObj()
    reader.on_tick(so)
    so._SyncObj__raftElectionDeadline = 2.0  # the leader was heard: contact now
    reader.on_tick(so)
    assert "election_started" not in caplog.text
    so._SyncObj__raftState, so._SyncObj__raftCurrentTerm, so._SyncObj__raftElectionDeadline = 1, 4, 3.0
    with caplog.at_level(logging.WARNING, logger="raftreg.raft"):
        reader.on_tick(so)
        reader.on_tick(so)  # still a candidate: logged once
    lines = [r.getMessage() for r in caplog.records if "election_started" in r.getMessage()]
    assert len(lines) == 1 and "term=4 since_contact_s=" in lines[0] and "since_previous_tick_s=" in lines[0]


# ---- no truncation without a conflict --------------------------------------------------------------
class FakeLog:
    """pysyncobj's log as the guard reads it: entries (command, index, term) from ``first`` on."""

    def __init__(self, first: int, terms: list[int]) -> None:
        self.entries = [(b"c%d" % (first + n), first + n, term) for n, term in enumerate(terms)]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> tuple[bytes, int, int]:
        return self.entries[i]


def follower_with(first: int, terms: list[int]) -> Any:
    return SimpleNamespace(_SyncObj__raftLog=FakeLog(first, terms))


def append(prev: int, prev_term: int, entries: list[tuple[int, int]]) -> dict[str, Any]:
    return {"type": "append_entries", "term": 3, "commit_index": 0, "prevLogIdx": prev, "prevLogTerm": prev_term,
            "entries": [(b"c%d" % i, i, t) for i, t in entries]}


def test_entries_already_held_are_not_cut_and_rewritten() -> None:
    so = follower_with(10, [2, 2, 3, 3, 3])  # holds 10..14
    msg = append(11, 2, [(12, 3), (13, 3), (14, 3)])  # a re-send of what it holds
    skip_entries_already_held(so, msg)
    assert (msg["prevLogIdx"], msg["prevLogTerm"], msg["entries"]) == (14, 3, [])


def test_only_the_held_prefix_is_skipped() -> None:
    so = follower_with(10, [2, 2, 3])  # holds 10..12
    msg = append(10, 2, [(11, 2), (12, 3), (13, 3), (14, 3)])
    skip_entries_already_held(so, msg)
    assert (msg["prevLogIdx"], msg["prevLogTerm"]) == (12, 3)
    assert [e[1] for e in msg["entries"]] == [13, 14]


def test_a_conflict_still_cuts_from_the_conflicting_entry() -> None:
    so = follower_with(10, [2, 2, 2, 2])  # holds 10..13, 12 and 13 from a deposed term-2 leader
    msg = append(10, 2, [(11, 2), (12, 3), (13, 3)])
    skip_entries_already_held(so, msg)
    assert (msg["prevLogIdx"], msg["prevLogTerm"]) == (11, 2)  # pysyncobj cuts 12.. and appends 12, 13
    assert [(e[1], e[2]) for e in msg["entries"]] == [(12, 3), (13, 3)]


@pytest.mark.parametrize("msg", [
    append(9, 1, [(10, 2)]),  # prev before the log's start (compacted)
    append(20, 3, [(21, 3)]),  # prev beyond the log's end
    append(11, 7, [(12, 3)]),  # prev's term does not match: pysyncobj rejects it
    append(11, 2, []),  # a heartbeat
    {**append(11, 2, [(12, 3)]), "transmission": "start"},
])
def test_other_appends_are_untouched(msg: dict[str, Any]) -> None:
    so = follower_with(10, [2, 2, 3, 3])
    before = dict(msg)
    skip_entries_already_held(so, msg)
    assert msg == before


# ---- fast failover when the connection to the leader drops -------------------------------------------
def fake_follower(leader: Any, *, state: int = 0, deadline: float = 101.0) -> Any:
    return SimpleNamespace(_SyncObj__raftLeader=leader, _SyncObj__raftState=state,
                           _SyncObj__raftElectionDeadline=deadline)


def test_losing_the_leaders_connection_brings_the_election_near() -> None:
    from raftreg.raft.transport import elect_soon_after_leader_loss

    leader = SimpleNamespace(address="127.0.0.1:7001")
    so = fake_follower(leader)
    assert elect_soon_after_leader_loss(so, leader, now=100.0, delay=0.1)
    assert so._SyncObj__raftElectionDeadline == pytest.approx(100.1)


@pytest.mark.parametrize("case", ["other peer", "no leader", "candidate", "leader", "deadline already near"])
def test_other_disconnections_change_nothing(case: str) -> None:
    from raftreg.raft.transport import elect_soon_after_leader_loss

    leader, other = SimpleNamespace(address="127.0.0.1:7001"), SimpleNamespace(address="127.0.0.1:7003")
    so = {"other peer": fake_follower(leader), "no leader": fake_follower(None),
          "candidate": fake_follower(leader, state=1), "leader": fake_follower(leader, state=2),
          "deadline already near": fake_follower(leader, deadline=100.05)}[case]
    before = so._SyncObj__raftElectionDeadline
    lost = other if case == "other peer" else leader
    assert not elect_soon_after_leader_loss(so, lost, now=100.0, delay=0.1)
    assert so._SyncObj__raftElectionDeadline == before


def test_survivors_campaign_in_rank_order_so_the_first_collects_the_votes() -> None:
    from raftreg.raft.transport import LOST_LEADER_RANK_STEP, lost_leader_delay

    members = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005"]
    leader = "127.0.0.1:7002"
    delays = {me: lost_leader_delay(me, [m for m in members if m != me], leader, jitter=0.999)
              for me in members if me != leader}
    order = sorted(delays, key=delays.__getitem__)
    assert order == ["127.0.0.1:7001", "127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005"]
    earliest_next = [lost_leader_delay(me, [m for m in members if m != me], leader, jitter=0.0) for me in order]
    for rank in range(len(order) - 1):  # even the largest jitter keeps a full step between two ranks
        assert earliest_next[rank + 1] - delays[order[rank]] >= LOST_LEADER_RANK_STEP - 0.05 - 1e-9
    assert delays[order[0]] < 0.11


def test_every_node_ranks_the_survivors_alike_whatever_order_it_knows_them_in() -> None:
    from raftreg.raft.transport import lost_leader_delay

    a = lost_leader_delay("n3:1", ["n1:1", "n2:1"], "n1:1", jitter=0.0)
    b = lost_leader_delay("n3:1", ["n2:1", "n1:1"], "n1:1", jitter=0.0)
    c = lost_leader_delay("n2:1", ["n3:1", "n1:1"], "n1:1", jitter=0.0)
    assert a == b > c


def fake_new_node(me: str, others: list[str], *, term: int = 0, leader: object = None,
                  deadline: float = 101.0) -> SimpleNamespace:
    return SimpleNamespace(_SyncObj__raftCurrentTerm=term, _SyncObj__raftLeader=leader,
                           _SyncObj__selfNode=SimpleNamespace(address=me),
                           _SyncObj__otherNodes=[SimpleNamespace(address=a) for a in others],
                           _SyncObj__raftElectionDeadline=deadline)


def test_a_new_cluster_campaigns_in_rank_order_at_once() -> None:
    from raftreg.raft.transport import LOST_LEADER_RANK_STEP, elect_soon_in_a_new_cluster

    members = ["127.0.0.1:7003", "127.0.0.1:7001", "127.0.0.1:7002"]
    deadlines = {}
    for me in members:
        so = fake_new_node(me, [m for m in members if m != me])
        assert elect_soon_in_a_new_cluster(so, now=100.0, jitter=0.0)
        deadlines[me] = so._SyncObj__raftElectionDeadline
    assert deadlines["127.0.0.1:7001"] == pytest.approx(100.05)
    assert deadlines["127.0.0.1:7002"] - deadlines["127.0.0.1:7001"] == pytest.approx(LOST_LEADER_RANK_STEP)


@pytest.mark.parametrize("case", ["has a term", "knows a leader", "deadline already near"])
def test_a_node_with_history_keeps_its_election_timeout(case: str) -> None:
    from raftreg.raft.transport import elect_soon_in_a_new_cluster

    so = {"has a term": fake_new_node("a:1", ["b:1"], term=3),
          "knows a leader": fake_new_node("a:1", ["b:1"], leader=SimpleNamespace(address="b:1")),
          "deadline already near": fake_new_node("a:1", ["b:1"], deadline=100.01)}[case]
    before = so._SyncObj__raftElectionDeadline
    assert not elect_soon_in_a_new_cluster(so, now=100.0, jitter=0.0)
    assert so._SyncObj__raftElectionDeadline == before


def test_a_read_replica_never_campaigns_early() -> None:
    from raftreg.raft.transport import elect_soon_in_a_new_cluster

    so = fake_new_node("unused", ["127.0.0.1:7001", "127.0.0.1:7002"])
    so._SyncObj__selfNode = None  # pysyncobj's read-only mode
    assert not elect_soon_in_a_new_cluster(so, now=100.0, jitter=0.0)
    assert so._SyncObj__raftElectionDeadline == 101.0


# ---- no election right after a long dump load ----------------------------------------------------
@pytest.mark.parametrize("state", [0, 1])
def test_a_follower_or_candidate_waits_a_new_timeout_after_loading_a_dump(state: int) -> None:
    from raftreg.raft.transport import hear_from_leader_after_restore

    so = fake_follower(None, state=state, deadline=96.0)  # the deadline set at start passed during the load
    assert hear_from_leader_after_restore(so, 100.0, 0.6, 1.5)
    assert 100.6 <= so._SyncObj__raftElectionDeadline <= 101.5


@pytest.mark.parametrize("case", ["leader", "deadline already later"])
def test_a_leader_or_a_later_deadline_is_left_alone(case: str) -> None:
    from raftreg.raft.transport import hear_from_leader_after_restore

    so = fake_follower(None, state=2, deadline=96.0) if case == "leader" else fake_follower(None, deadline=105.0)
    before = so._SyncObj__raftElectionDeadline
    assert not hear_from_leader_after_restore(so, 100.0, 0.6, 1.5)
    assert so._SyncObj__raftElectionDeadline == before


def test_after_a_restore_the_timeout_starts_again_at_the_end_of_that_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """pysyncobj applies its journal after the dump in the same tick (seconds at 1,000,000
    instances): the deadline given at the restore has passed by then, so the tick's end gives a
    new one, once."""
    from raftreg.raft import transport

    clock = [100.0]
    monkeypatch.setattr(transport, "monotonic", lambda: clock[0])
    quiet = transport.QuietAfterRestore(0.6, 1.5)
    so = fake_follower(None, deadline=96.0)
    quiet.on_restore(so)
    assert 100.6 <= so._SyncObj__raftElectionDeadline <= 101.5
    clock[0] = 103.3  # the journal replayed
    quiet.on_tick(so)
    assert 103.9 <= so._SyncObj__raftElectionDeadline <= 104.8
    clock[0] = 110.0
    quiet.on_tick(so)
    assert so._SyncObj__raftElectionDeadline <= 104.8, "only the tick that restored"
