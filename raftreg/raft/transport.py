"""``GuardedTransport``: pysyncobj's TCP transport with raftreg's guards in front of it.

pysyncobj builds its transport inside ``SyncObj.__init__``, before its tick thread starts, from
the ``transportClass`` it is given. Passing a factory for this class there puts both guards in
place before the first message can be sent or delivered (wrapping the transport after the
constructor left a window in which the tick thread already ran unguarded).

Guards:
- fault hook: messages to and from the peers in ``FaultHooks.blocked`` vanish (one attribute read
  per message; the hot path is unchanged while nothing is blocked);
- snapshot-install commit guard: ``deliver_without_commit_advance`` (a pysyncobj defect);
- no truncation without a conflict: ``skip_entries_already_held`` (a pysyncobj defect);
- raftreg's own ReadIndex messages go to ``ReadChannel``, not to pysyncobj;
- dead Raft links noticed in seconds (``raftreg.raft.tcp_liveness``);
- fast failover: ``elect_soon_after_leader_loss`` when the connection to the leader drops, and
  ``elect_soon_in_a_new_cluster`` for the first election of a new cluster (called by the bridge);
- no election right after loading a large state: ``QuietAfterRestore`` (a pysyncobj defect,
  called by the bridge).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from pysyncobj.monotonic import monotonic
from pysyncobj.transport import TCPTransport

from raftreg.raft.faults import FaultHooks
from raftreg.raft.read_channel import FOLLOWER_STATE, LEADER_STATE, ReadChannel, is_channel_message
from raftreg.raft.tcp_liveness import connection_socket, tune_outgoing, tune_socket, user_timeout_s

log = logging.getLogger("raftreg.raft")

# Seconds between pysyncobj's attempts to connect to a peer it is not connected to (only one side
# of each pair connects: the one with the greater address). With 1 s, a node whose first attempt
# came before its peer listened (nodes of a new cluster start within a few hundred ms of each
# other) stayed cut off from it for a second, long enough for a vote split or a needless election:
# a new 3-node cluster took 1.2-3.3 s to have a ready leader, now 1.3-1.55 s. An attempt to a
# peer that is down costs one socket; one still in progress is never duplicated.
CONNECTION_RETRY_S = 0.2

Deliver = Callable[[Any, Any], None]


def is_unchecked_append(message: Any) -> bool:
    """An AppendEntries that does not check the receiver's log against the leader's: the
    snapshot-transfer messages (``serialized``), which carry no ``prevLogIdx``."""
    return (isinstance(message, dict) and message.get("type") == "append_entries"
            and "prevLogIdx" not in message and "commit_index" in message)


def deliver_without_commit_advance(so: Any, deliver: Deliver, node: Any, message: dict[str, Any]) -> None:
    """Guard for a pysyncobj 0.3.17 defect (tests/cluster/test_snapshot_install_safety.py).

    pysyncobj's follower sets ``commit index = min(leader's commit_index, own last index)`` after
    *every* AppendEntries from the leader, including the snapshot-transfer ones that never
    compared the follower's log with the leader's. A deposed leader that still holds entries of
    its old term (proposed while it was cut off) then takes them for committed, applies them and
    reports them to their callers as successful: acknowledged writes the cluster never committed,
    wiped when the snapshot lands.

    Here such a message is delivered with ``commit_index`` lowered to this node's own commit
    index, so it cannot advance it. pysyncobj records the message's commit index as the leader's
    (readiness reads it) only when the message's term is current; the real value is put back
    under the same condition: a stale leader's message changes nothing. Only the regular,
    log-checked AppendEntries advance the commit index, as in Raft.
    """
    leader_commit = message["commit_index"]
    message["commit_index"] = min(leader_commit, so._SyncObj__raftCommitIndex)
    # While the snapshot loads (inside ``deliver``; long for a large state), pysyncobj shows the
    # lowered value as the leader's commit index: status samples read this instead, so the node
    # never looks caught up in the middle of an install (``StatusReader.sample``).
    so.raftreg_installing_up_to = leader_commit
    try:
        deliver(node, message)
    finally:
        so.raftreg_installing_up_to = None
    # After delivery the node's term is max(its term, the message's): equal means current.
    if message.get("term", -1) >= so._SyncObj__raftCurrentTerm:
        so._SyncObj__leaderCommitIndex = leader_commit


def skip_entries_already_held(so: Any, message: dict[str, Any]) -> None:
    """Guard for a pysyncobj 0.3.17 defect (research/pysyncobj.md §4.1, finding 2).

    pysyncobj's follower deletes every entry after ``prevLogIdx`` before appending the message's
    entries, even when it already holds exactly those entries; Raft deletes only from the first
    *conflicting* entry. The leader re-sends entries often (it rewinds its next index on every
    success reply while later batches are still in flight), so under load followers keep
    cutting and rewriting their journals ("truncating already-applied log entries ... may have
    diverged" criticals), and for a moment hold less than they acknowledged.

    Here, when the message's ``prevLogIdx`` matches this node's log, the leading entries this
    node already holds with the same term are dropped from the message and ``prevLogIdx`` /
    ``prevLogTerm`` move to the last of them. pysyncobj then appends only what is new (or cuts
    only from the first conflict) and answers with the same next index as before; the log ends
    the same, without deleting and rewriting identical entries. Any other message is untouched.
    """
    entries = message.get("entries")
    if not entries or "transmission" in message:
        return
    log = so._SyncObj__raftLog
    if not len(log):
        return
    first, last = log[0][1], log[-1][1]
    prev = message["prevLogIdx"]
    if not first <= prev <= last or log[prev - first][2] != message["prevLogTerm"]:
        return  # pysyncobj rejects it (and asks the leader to go back): leave that to it
    held = 0
    for _, index, term in entries:
        if index > last or log[index - first][2] != term:
            break
        held += 1
    if held:
        _, index, term = entries[held - 1]
        message["prevLogIdx"], message["prevLogTerm"], message["entries"] = index, term, entries[held:]


LOST_LEADER_FIRST_DELAY = 0.05  # seconds before the first-ranked follower campaigns
LOST_LEADER_RANK_STEP = 0.2  # seconds between the ranks: more than a vote's round trip under load
LOST_LEADER_JITTER = 0.05  # seconds of random spread on top


def lost_leader_delay(self_address: str, member_addresses: Iterable[str], leader_address: str,
                      jitter: float) -> float:
    """How long a follower waits before campaigning after its connection to the leader dropped.

    The surviving members are ranked by address, the same order on every node, and rank ``r``
    waits ``FIRST + r * STEP + jitter``. The first-ranked follower's vote requests normally reach
    the others before their own turn comes, so they vote for it instead of splitting the vote. A
    split vote falls back to pysyncobj's election timeout of 0.6-1.5 s, and with a purely random
    50-250 ms delay it happened in about one failover in five on a loaded machine. If the
    first-ranked node's log is behind, the others refuse its vote. They keep their own deadline
    and win at their turn. ``jitter`` is in [0, 1); it is scaled to ``LOST_LEADER_JITTER``."""
    survivors = sorted({address for address in member_addresses if address != leader_address} | {self_address})
    rank = survivors.index(self_address)
    return LOST_LEADER_FIRST_DELAY + rank * LOST_LEADER_RANK_STEP + jitter * LOST_LEADER_JITTER


def elect_soon_after_leader_loss(so: Any, node: Any, now: float, delay: float) -> bool:
    """A follower whose TCP connection to its leader dropped campaigns after ``delay`` instead of
    waiting out its election timeout (0.6-1.5 s by default). A dropped connection is what a crashed
    or killed leader leaves behind (its kernel closes its sockets), so failover no longer waits for
    the timeout, while the timeout itself stays long enough that a loaded, slow leader is not
    deposed by mistake. Only brings the deadline nearer; a partition that keeps TCP up still waits
    for the timeout. Tick thread. Returns whether the deadline moved."""
    leader = so._SyncObj__raftLeader
    if leader is None or leader.address != node.address or so._SyncObj__raftState != FOLLOWER_STATE:
        return False
    deadline = now + delay
    if deadline >= so._SyncObj__raftElectionDeadline:
        return False
    so._SyncObj__raftElectionDeadline = deadline
    return True


def elect_soon_in_a_new_cluster(so: Any, now: float, jitter: float) -> bool:
    """A node that has never seen a term (term 0: a brand-new cluster, or a brand-new member)
    campaigns at its rank's delay (``lost_leader_delay`` over every member) instead of waiting out
    pysyncobj's first election timeout (0.6-1.5 s): a new cluster elects its first leader in about
    0.1 s. A node with any history (term > 0, restored from its journal) keeps the timeout, so a
    restarted member hears from the current leader before it would disturb it. Only brings the
    deadline nearer; pysyncobj still campaigns only once connected to a peer. Returns whether the
    deadline moved."""
    if so._SyncObj__raftCurrentTerm != 0 or so._SyncObj__raftLeader is not None or so._SyncObj__selfNode is None:
        return False  # a node with history, or a read replica (it never campaigns)
    members = [other.address for other in so._SyncObj__otherNodes]
    deadline = now + lost_leader_delay(so._SyncObj__selfNode.address, members, "", jitter)
    if deadline >= so._SyncObj__raftElectionDeadline:
        return False
    so._SyncObj__raftElectionDeadline = deadline
    return True


def hear_from_leader_after_restore(so: Any, now: float, min_timeout: float, max_timeout: float) -> bool:
    """A node that has just loaded a dump or installed a snapshot waits a new election timeout
    (``min_timeout``-``max_timeout`` seconds, at random) before it may campaign. pysyncobj sets
    the first election deadline when the SyncObj is built and checks it right after loading the
    dump, in the same tick, before it has processed any message: a member restarted on a large
    dump (1,000,000 instances: a 3-4 s load, measured 2026-12-07) campaigned at once and took the
    leadership from a healthy leader. Only pushes the deadline later, and never for a leader.
    Tick side. Returns whether the deadline moved."""
    if so._SyncObj__raftState == LEADER_STATE:
        return False
    deadline = now + random.uniform(min_timeout, max_timeout)
    if deadline <= so._SyncObj__raftElectionDeadline:
        return False
    so._SyncObj__raftElectionDeadline = deadline
    return True


class QuietAfterRestore:
    """Keeps a node that has just loaded a dump (or installed a snapshot) from campaigning before
    the leader can reach it: ``on_restore`` (called by the restore, inside pysyncobj's tick, which
    checks the election deadline right after the load) and ``on_tick`` (at the end of that same
    tick, after pysyncobj applied its journal on top of the dump: 3.3 s more at 1,000,000
    instances, measured 2026-12-07) each give it a new election timeout
    (``hear_from_leader_after_restore``). Tick side."""

    def __init__(self, min_timeout: float, max_timeout: float) -> None:
        self._timeouts = (min_timeout, max_timeout)
        self.pending = False  # a restore happened in the tick now running

    def on_restore(self, so: Any) -> None:
        if so is not None:
            hear_from_leader_after_restore(so, monotonic(), *self._timeouts)
        self.pending = True

    def on_tick(self, so: Any) -> None:
        if self.pending:
            self.pending = False
            hear_from_leader_after_restore(so, monotonic(), *self._timeouts)


class GuardedTransport(TCPTransport):  # type: ignore[misc]
    """TCPTransport with the fault hook and the commit-index guard (see the module docstring)."""

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any, faults: FaultHooks,
                 reads: ReadChannel, poller: Any = None) -> None:
        if poller is not None:  # raftreg.raft.loop_tick: before anything subscribes to the default one
            syncObj._poller = poller
        self._bind_waits = poller is not None
        self._faults = faults
        self._reads = reads
        self._guarded_so = syncObj
        self._user_timeout = user_timeout_s()  # raftreg.raft.tcp_liveness: dead links found in seconds
        super().__init__(syncObj, selfNode, otherNodes)

    def tryGetReady(self) -> None:
        super().tryGetReady()
        if self._bind_waits and not self._ready:  # SyncObj(autoTick=False) retries this in a loop
            time.sleep(0.05)

    def addNode(self, node: Any) -> None:
        super().addNode(node)
        if node in self._connections:
            tune_outgoing(self._connections[node], self._user_timeout)

    def _onNewIncomingConnection(self, conn: Any) -> None:
        tune_socket(connection_socket(conn), self._user_timeout)
        super()._onNewIncomingConnection(conn)

    def send(self, node: Any, message: Any) -> bool:
        if self._faults.blocked and getattr(node, "address", None) in self._faults.blocked:
            return True  # "sent": lost on the way, as on a dead link
        return bool(super().send(node, message))

    def setOnNodeDisconnectedCallback(self, callback: Callable[[Any], None] | None) -> None:
        if callback is None:
            super().setOnNodeDisconnectedCallback(None)
            return
        so = self._guarded_so

        def disconnected(node: Any) -> None:
            callback(node)
            if so._SyncObj__selfNode is None:  # a read replica never campaigns
                return
            members = [other.address for other in so._SyncObj__otherNodes]
            delay = lost_leader_delay(so._SyncObj__selfNode.address, members, node.address, random.random())
            if elect_soon_after_leader_loss(so, node, monotonic(), delay):
                log.info("event=leader_connection_lost leader=%s: campaigning soon", node.address)

        super().setOnNodeDisconnectedCallback(disconnected)

    def setOnMessageReceivedCallback(self, callback: Deliver | None) -> None:
        super().setOnMessageReceivedCallback(None if callback is None else self._guard(callback))

    def _guard(self, deliver: Deliver) -> Deliver:
        faults, so, reads = self._faults, self._guarded_so, self._reads

        def guarded(node: Any, message: Any) -> None:
            if (faults.blocked and getattr(node, "address", None) in faults.blocked) or faults.deaf:
                return
            if is_channel_message(message):
                try:  # ours: a fault in it must not break pysyncobj's reading of this connection
                    reads.receive(so, self.send, node, message)
                except Exception:
                    log.exception("event=read_channel_message_failed type=%s", message.get("type"))
                return
            if faults.holding_commands and isinstance(message, dict) and message.get("type") == "apply_command":
                return
            if is_unchecked_append(message):
                deliver_without_commit_advance(so, deliver, node, message)
                return
            if isinstance(message, dict) and message.get("type") == "append_entries" and "prevLogIdx" in message:
                skip_entries_already_held(so, message)
            deliver(node, message)

        return guarded


def transport_factory(faults: FaultHooks, reads: ReadChannel,
                      poller: Any = None) -> Callable[[Any, Any, Any], GuardedTransport]:
    """The ``transportClass`` to hand to ``SyncObj`` (``poller``: the SyncObj's poller to use
    instead of pysyncobj's own, see raftreg.raft.loop_tick)."""

    def make(sync_obj: Any, self_node: Any, other_nodes: Any) -> GuardedTransport:
        return GuardedTransport(sync_obj, self_node, other_nodes, faults, reads, poller)

    return make
