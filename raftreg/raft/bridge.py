"""``RaftNode``: one pysyncobj ``SyncObj`` replicating a ``StateMachine``, bridged into asyncio.

The SyncObj has one replicated method, ``apply(raw: bytes)``: our versioned command envelope
(raftreg.state.commands), maybe compressed; pysyncobj's tick callbacks become asyncio futures.

pysyncobj guard-rails applied here (research/pysyncobj.md §4, §8):
- ``journalFile`` and ``fullDumpFile`` are always set together (either alone loses data or stalls).
- The Raft port binds the configured address, and a cluster ``password`` is mandatory.
- ``apply`` never raises: state-machine failures come back as values; an entry we cannot decode stops
  the process loudly (skipping it would make this replica diverge).
- Snapshots hold the state machine's own msgpack encoding, written by the forked child, which dies
  with its parent (raftreg.raft.snapshot).
- The transport is guarded from the first message on (raftreg.raft.transport).
- No entry is ever sent in chunks (``APPEND_ENTRIES_BYTES``): pysyncobj's chunked transfer
  corrupts entries whose size lies just under a multiple of the chunk size.
- A wipe-and-resync keeps the persisted term and vote (raftreg.raft.storage).
- Loading a dump or a snapshot starts no election (``QuietAfterRestore``, raftreg.raft.transport).
- The journal's mapped pages are dropped from RSS once written (raftreg.raft.journal_pages).
- Every proposal has a caller-side deadline (pysyncobj's async mode has none).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.monotonic import monotonic

from raftreg.config import RaftTuning
from raftreg.raft.compaction import CompactionPolicy
from raftreg.raft.data_format import prepare_data_dir
from raftreg.raft.entry_compression import expand_entry
from raftreg.raft.faults import FaultHooks
from raftreg.raft.identity import raft_password
from raftreg.raft.journal_pages import JournalPages
from raftreg.raft.loop_tick import EpollPoller, LoopTicker
from raftreg.raft.proposals import Proposals, failed_proposal
from raftreg.raft.read_channel import ReadChannel
from raftreg.raft.replica import syncobj_self_node
from raftreg.raft.snapshot import SnapshotBlob, prepare_snapshot_child
from raftreg.raft.status import RaftStatus, StatusReader
from raftreg.raft.storage import RaftFiles
from raftreg.raft.transport import CONNECTION_RETRY_S, QuietAfterRestore, elect_soon_in_a_new_cluster, transport_factory
from raftreg.state.commands import Command, Noop, UnsupportedEntry, decode_envelope, unwrap
from raftreg.state.kv import KVStore
from raftreg.state.machine import Result, StateMachine
from raftreg.state.registry import Registry

log = logging.getLogger("raftreg.raft")

EXIT_UNSUPPORTED_ENTRY = 70
# pysyncobj sends an entry at least ``appendEntriesBatchSizeBytes`` long in chunks and marks the
# last chunk wrongly when the entry's raw length lies just under a multiple of that size (the
# follower fails to unpickle it, again at every retry: tests/cluster/test_large_entries.py).
# Entries are far smaller (``raft.max_entry_bytes``; one command at most ~the 1 MiB body limit).
APPEND_ENTRIES_BYTES = 16 * 1024 * 1024


class _RegistryConsumer(SyncObjConsumer):  # type: ignore[misc]
    """The replicated part: one method, ``apply``, over the state machine."""

    def __init__(self, owner: RaftNode) -> None:
        super().__init__()
        self._owner = owner

    @replicated  # type: ignore[untyped-decorator]
    def apply(self, raw: bytes) -> tuple[int, list[Result]]:
        index = self._syncObj.raftLastApplied + 1
        return self._owner._apply_entry(index, raw)

    def _serialize(self) -> dict[str, Any]:
        return {"registry": SnapshotBlob(self._owner.state)}  # the key predates the KV store

    def _deserialize(self, data: dict[str, Any]) -> None:
        blob = data.get("registry")
        if isinstance(blob, SnapshotBlob) and blob.data is not None:
            self._owner._restore(blob.data)


class RaftNode:
    """One Raft member replicating a ``StateMachine``.

    Threading: the Raft tick (on the loop, or on a thread: raftreg.raft.loop_tick) applies
    entries (under ``lock``) and calls back; the asyncio loop given to ``start`` receives
    results. Readers on other threads must hold ``lock`` while they read the state
    (``registry``, ``kv``).

    ``on_applied(index, cmds, results)`` runs in the Raft tick after each entry, under no lock
    (sessions the entry ended through the registry come last, each as a ``Noop`` with its result);
    ``on_restored()`` after a snapshot replaced the state. Both must be quick and must not raise.
    """

    def __init__(
        self,
        *,
        self_addr: str,
        peer_addrs: list[str],
        data_dir: Path,
        secret: str,
        tuning: RaftTuning,
        on_applied: Callable[[int, list[Command], list[Result]], None] | None = None,
        on_restored: Callable[[], None] | None = None,
        readonly: bool = False,
    ) -> None:
        if not secret:
            raise ValueError("a cluster secret is required (the Raft port accepts pickles otherwise)")
        self.self_addr = self_addr
        self.readonly = readonly  # a read replica: pysyncobj's read-only mode (raftreg.raft.replica)
        self.peer_addrs = list(peer_addrs)
        self.files = RaftFiles(Path(data_dir))
        self._secret = secret
        self._tuning = tuning
        self._on_applied = on_applied
        self._on_restored = on_restored
        self.state = StateMachine()
        self.lock = threading.Lock()
        self._syncobj: Any = None
        self._ticker: LoopTicker | None = None  # with tuning.tick_on_loop: the loop runs the ticks
        self._consumer: _RegistryConsumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proposals: Proposals | None = None  # made once the loop is known
        self.faults = FaultHooks()
        self.reads = ReadChannel()
        self.compaction = CompactionPolicy(lambda: self.state.item_count(),
                                           min_bytes=tuning.log_compaction_min_bytes, ratio=tuning.log_compaction_ratio)
        self.journal_pages = JournalPages()  # the journal's written pages leave this process's RSS
        self._quiet_after_restore = QuietAfterRestore(*tuning.election_timeouts)
        # Work the loop hands to the Raft tick (pysyncobj calls that must run there).
        self._tick_actions: collections.deque[Callable[[Any], None]] = collections.deque()
        self._wake_pending = False  # the loop woke the Raft tick and it has not ticked since
        self._status = StatusReader()
        self.apply_observer: Callable[[float], None] | None = None  # metrics: each entry's time in the state
        self.restores, self.restore_seconds = 0, 0.0  # metrics: snapshots installed, and their time
        # Held while the SyncObj is being destroyed or replaced; ``submit`` fails fast meanwhile.
        self._swap_lock = threading.Lock()

    @property
    def registry(self) -> Registry:
        """The services part of the state (read under ``lock``)."""
        return self.state.registry

    @property
    def kv(self) -> KVStore:
        """The key/value part of the state (read under ``lock``)."""
        return self.state.kv

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the SyncObj (binds the Raft port; replays journal and dump)."""
        self._loop = loop
        if self._proposals is None:
            self._proposals = Proposals(loop)
        self.reads.bind(loop)
        prepare_snapshot_child()
        prepare_data_dir(self.files.data_dir)  # refuses a directory written in a newer format
        t = self._tuning
        poller = EpollPoller() if t.tick_on_loop else None
        conf = SyncObjConf(
            autoTick=poller is None,
            bindAddress=self.self_addr,
            password=raft_password(self._secret, self.files.data_dir),
            appendEntriesUseBatch=t.append_entries_use_batch,
            appendEntriesPeriod=t.append_entries_period,
            appendEntriesBatchSizeBytes=APPEND_ENTRIES_BYTES,
            raftMinTimeout=t.raft_min_timeout, raftMaxTimeout=t.raft_max_timeout,
            connectionTimeout=t.connection_timeout,
            connectionRetryTime=CONNECTION_RETRY_S,
            tcp_keepalive=(5, 2, 3),
            leaderFallbackTimeout=t.leader_fallback_timeout,
            logCompactionMinEntries=t.log_compaction_min_entries,
            logCompactionMinTime=t.log_compaction_min_time,
            logCompactionSplit=False,
            commandsQueueSize=t.commands_queue_size,
            dynamicMembershipChange=True,  # run-time membership (raftreg.raft.membership)
            journalFile=str(self.files.journal) if t.journal else None,
            fullDumpFile=str(self.files.dump) if t.journal else None,
        )
        self._consumer = _RegistryConsumer(self)
        self._status.reset_contact()
        self._syncobj = SyncObj(syncobj_self_node(self), self.peer_addrs, conf=conf, consumers=[self._consumer],
                                transportClass=transport_factory(self.faults, self.reads, poller))
        self._syncobj.addOnTickCallback(self._on_tick)
        elect_soon_in_a_new_cluster(self._syncobj, monotonic(), random.random())
        if poller is not None:
            self._ticker = LoopTicker(loop, poller, t.tick_period)
            loop.call_soon_threadsafe(self._ticker.attach, self._syncobj)

    def stop(self) -> None:
        """Stop ticking and close the Raft port (blocks until no tick runs: pysyncobj's thread is
        gone, or the loop's ticker is detached).

        Proposals still in flight fail with ``ProposalFailed("DESTROYED", applied=None)``: their
        outcome is unknown (they may have committed)."""
        with self._swap_lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._syncobj is not None:
            ticker, self._ticker = self._ticker, None
            if ticker is None:
                self._syncobj.destroy_synchronous()
            else:  # no tick may run once the SyncObj is being destroyed
                ticker.detach_and_wait()
                self._syncobj.destroy()
                ticker.close()
            self._syncobj = None
        if self._proposals is not None:
            self._proposals.fail_all_threadsafe()

    def wipe_and_restart(self) -> None:
        """Recover a wedged replica: drop its log, snapshot and state, keep its term and vote,
        rejoin empty. The leader then sends a snapshot (or the whole log), so the node ends with
        the cluster's state. Safe only while a majority of other nodes holds every committed entry.
        """
        assert self._loop is not None
        log.warning("event=wipe_and_resync data_dir=%s", self.files.data_dir)
        with self._swap_lock:
            self._stop_locked()
            self.files.wipe_keeping_vote()
            with self.lock:
                self.state = StateMachine()
            if self._on_restored is not None:
                self._on_restored()
            self.start(self._loop)

    # ---- fault injection (chaos runs and tests only) -----------------------------------
    def block_peers(self, peers: Iterable[str]) -> None:
        """Drop every Raft message to and from these peer raft addresses (empty: heal).
        Call it on both sides of a cut (``POST /v1/debug/partition``)."""
        blocked = frozenset(peers)
        unknown = blocked - set(self.peer_addrs)
        if unknown:
            raise ValueError(f"not peers of this node: {sorted(unknown)}")
        self.faults.block(blocked)

    def inject_wedge(self) -> None:
        """Put this node into pysyncobj's empty-log candidate wedge (raftreg.raft.faults)."""
        self.faults.request_wedge()

    # ---- proposing ----------------------------------------------------------------------
    def submit(self, raw: bytes) -> asyncio.Future[tuple[int, list[Result]]]:
        """Propose one encoded entry. Call on the loop. The future resolves once the entry is
        applied on *this* node, to ``(index, results)``, or fails with ``ProposalFailed``.
        It may never resolve (pysyncobj has no deadline): the caller must bound the wait."""
        assert self._loop is not None and self._proposals is not None and self._consumer is not None
        if not self._swap_lock.acquire(blocking=False):
            return failed_proposal(self._loop, "NOT_RUNNING")  # being wiped or stopped
        try:
            if self._syncobj is None:
                return failed_proposal(self._loop, "NOT_RUNNING")
            fut, callback = self._proposals.track()
            self._consumer.apply(raw, callback=callback)
        finally:
            self._swap_lock.release()
        return fut

    # ---- tick-thread side ---------------------------------------------------------------
    def _apply_entry(self, index: int, stored: bytes) -> tuple[int, list[Result]]:
        try:
            raw = expand_entry(stored)
            envelope = decode_envelope(raw)
        except UnsupportedEntry as exc:
            log.critical("event=unsupported_log_entry index=%d error=%r: stopping this node", index, str(exc))
            logging.shutdown()
            os._exit(EXIT_UNSUPPORTED_ENTRY)
        observer, started = self.apply_observer, time.perf_counter()
        cmds = envelope.cmds
        with self.lock:
            admission, results = self.state.apply_entry(index, envelope)
            cascades = self.state.take_cascades()
        applied = admission == "new"
        if not applied:  # applied at an earlier attempt (or maybe): never twice
            log.info("event=entry_repeated index=%d proposer=%s seq=%d admission=%s commands=%d", index,
                     envelope.proposer, envelope.seq, admission, len(cmds))
        if observer is not None:
            observer(time.perf_counter() - started)
        self.compaction.on_entry(len(stored), len(raw), len(cmds))
        if self._on_applied is not None:
            try:
                noops: list[Command] = [Noop() for _ in cascades]
                done_cmds, done_results = (cmds, results) if applied else ([], [])
                self._on_applied(index, [*map(unwrap, done_cmds), *noops], [*done_results, *cascades])
            except Exception:  # never let a notification wedge the log
                log.exception("event=on_applied_failed index=%d", index)
        return index, results

    def _restore(self, data: bytes) -> None:
        started = time.perf_counter()
        state = StateMachine()
        try:
            state.restore(data)
        except Exception:
            log.critical("event=snapshot_unreadable: stopping this node", exc_info=True)
            logging.shutdown()
            os._exit(EXIT_UNSUPPORTED_ENTRY)
        with self.lock:
            self.state = state
        self._quiet_after_restore.on_restore(self._syncobj)  # a long load starts no election
        self.restores += 1
        self.restore_seconds += time.perf_counter() - started
        log.info("event=snapshot_restored index=%d instances=%d keys=%d", state.registry.index,
                 state.registry.instance_count(), state.kv.stats()["keys"])
        if self._on_restored is not None:
            try:
                self._on_restored()
            except Exception:
                log.exception("event=on_restored_failed")

    def _on_tick(self) -> None:
        so = self._syncobj
        self._wake_pending = False
        if so is not None:
            while self._tick_actions:
                action = self._tick_actions.popleft()
                try:
                    action(so)
                except Exception:
                    log.exception("event=tick_action_failed")
            self._status.on_tick(so)
            self.faults.on_tick(so)
            self._quiet_after_restore.on_tick(so)
            if self.compaction.due():
                so.forceLogCompaction()
                self.compaction.requested()
            self.journal_pages.on_tick(so)
            if self.reads.busy():
                self.reads.on_tick(so, so._SyncObj__transport.send)

    # ---- ReadIndex (queued on the loop, run in the Raft tick) ----------------------------
    def read_index(self) -> asyncio.Future[int | None]:
        """A read index for a read arriving now (``raftreg.raft.read_channel``); None: none could
        be had (not leader and no leader to ask, no majority, timeout). The caller bounds the wait."""
        fut = self.reads.read_index()
        self._wake()
        return fut

    def _wake(self) -> None:
        """Make the Raft tick run now rather than at its next poll timeout (once until it ran)."""
        if self._wake_pending:
            return
        so = self._syncobj
        notifier = getattr(so, "_SyncObj__pipeNotifier", None) if so is not None else None
        if notifier is not None:
            self._wake_pending = True
            notifier.notify()

    def hold_commands(self, hold: bool) -> None:
        """During a leadership hand-over: drop the commands followers forward (see FaultHooks)."""
        self.faults.holding_commands = hold

    # ---- status -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._syncobj is not None

    @property
    def snapshots(self) -> tuple[int, float]:
        """Snapshots this node wrote (its forked child finished) and the seconds they took in all."""
        return self._status.snapshots, self._status.snapshot_seconds

    @property
    def led_terms(self) -> list[int]:
        """The terms this node led (recorded in the Raft tick), oldest first."""
        return list(self._status.led_terms)

    def status(self) -> RaftStatus:
        """Sample the Raft state (safe from any thread; the last good sample if pysyncobj's
        status cannot be read right now)."""
        return self._status.sample(self._syncobj)

    @property
    def commit_index(self) -> int:
        """This node's commit index now (pysyncobj's own counter, not a sample)."""
        return int(so.raftCommitIndex) if (so := self._syncobj) is not None else 0

    @property
    def applied_index(self) -> int:
        return int(so.raftLastApplied) if (so := self._syncobj) is not None else 0

    def is_leader(self) -> bool:
        return bool((so := self._syncobj) is not None and so._isLeader())

    def leader_addr(self) -> str | None:
        leader = so._getLeader() if (so := self._syncobj) is not None else None
        return leader.address if leader is not None else None

    def force_snapshot(self) -> None:
        """Ask pysyncobj to compact its log at the next tick."""
        if self._syncobj is not None:
            self._syncobj.forceLogCompaction()

