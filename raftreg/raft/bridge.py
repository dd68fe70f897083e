"""The only module that imports pysyncobj.

``RaftNode`` owns one ``SyncObj`` with a single replicated method, ``apply(raw: bytes)``, whose
argument is our versioned command envelope (raftreg.state.commands). It bridges pysyncobj's
tick-thread callbacks into asyncio futures and exposes the Raft status the rest of the node needs.

pysyncobj guard-rails applied here (research/pysyncobj.md §4, §8):
- ``journalFile`` and ``fullDumpFile`` are always set together (either alone loses data or stalls).
- The Raft port binds the configured address, and a cluster ``password`` is mandatory.
- ``apply`` never raises: registry failures come back as values; an entry we cannot decode stops
  the process loudly (skipping it would make this replica diverge).
- Snapshots hold the registry's own msgpack encoding; pysyncobj pickles only a thin wrapper, and
  the encoding runs in its forked snapshot child, not in the tick thread.
- The forked snapshot child closes nothing of ours but dies with its parent
  (``PR_SET_PDEATHSIG``), so it cannot hold ports or rename a stale dump after a kill -9.
- Every proposal has a caller-side deadline (pysyncobj's async mode has none).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated

from raftreg.config import RaftTuning
from raftreg.state.commands import Command, UnsupportedEntry, decode_entry
from raftreg.state.registry import Registry, Result

log = logging.getLogger("raftreg.raft")

EXIT_UNSUPPORTED_ENTRY = 70


class ProposalFailed(Exception):
    """pysyncobj reported a failure. ``applied`` is False when the command certainly did not apply,
    None when the outcome is unknown (it may have applied)."""

    def __init__(self, reason: str, applied: bool | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.applied = applied


_LEADER_STATE = 2  # pysyncobj's _RAFT_STATE.LEADER
_NOT_APPLIED = {FAIL_REASON.QUEUE_FULL, FAIL_REASON.MISSING_LEADER, FAIL_REASON.DISCARDED, FAIL_REASON.NOT_LEADER}
_REASON_NAMES = {v: k for k, v in vars(FAIL_REASON).items() if isinstance(v, int) and not k.startswith("_")}


@dataclass(frozen=True)
class RaftStatus:
    """A consistent-enough sample of this node's Raft view."""

    state: str  # "leader" | "follower" | "candidate"
    leader: str | None  # raft address of the leader this node believes in
    term: int
    commit_index: int
    applied_index: int
    leader_commit_index: int | None
    log_len: int
    has_quorum: bool
    match_index: dict[str, int]
    connected: frozenset[str]  # raft addresses of peers with an open connection
    last_contact: float  # seconds since this node last heard from the leader (0 on the leader)
    # Leader only: the no-op pysyncobj appends on election is applied, so this leader has applied
    # every entry committed before its term (its commit index may lag until then).
    term_started: bool = False


class _SnapshotBlob:
    """Pickled by pysyncobj's snapshot writer: carries ``Registry.snapshot()`` bytes.

    ``__reduce__`` runs where the pickling happens, i.e. in pysyncobj's forked child, so the
    (potentially large) encoding never blocks the tick thread.
    """

    def __init__(self, registry: Registry | None = None, data: bytes | None = None) -> None:
        self.registry = registry
        self.data = data

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        data = self.data if self.data is not None else self.registry.snapshot()  # type: ignore[union-attr]
        return (_blob_from_bytes, (data,))


def _blob_from_bytes(data: bytes) -> _SnapshotBlob:
    return _SnapshotBlob(data=data)


class _RegistryConsumer(SyncObjConsumer):  # type: ignore[misc]
    """The replicated part: one method, ``apply``, over the registry."""

    def __init__(self, owner: RaftNode) -> None:
        super().__init__()
        self._owner = owner

    @replicated  # type: ignore[untyped-decorator]
    def apply(self, raw: bytes) -> tuple[int, list[Result]]:
        index = self._syncObj.raftLastApplied + 1
        return self._owner._apply_entry(index, raw)

    def _serialize(self) -> dict[str, Any]:
        return {"registry": _SnapshotBlob(self._owner.registry)}

    def _deserialize(self, data: dict[str, Any]) -> None:
        blob = data.get("registry")
        if isinstance(blob, _SnapshotBlob) and blob.data is not None:
            self._owner._restore(blob.data)


def _die_with_parent() -> None:
    """In pysyncobj's forked snapshot child: get SIGKILL when the parent dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, 9)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
    except OSError:
        pass


_fork_hook_installed = False


def _install_fork_hook() -> None:
    global _fork_hook_installed
    if not _fork_hook_installed:
        os.register_at_fork(after_in_child=_die_with_parent)
        _fork_hook_installed = True


def _noop_applied(so: Any) -> bool:
    noop = so._SyncObj__noopIDx
    return noop is not None and so.raftLastApplied >= noop


def _is_unchecked_append(message: Any) -> bool:
    """An AppendEntries that does not check the receiver's log against the leader's: the
    snapshot-transfer messages (``serialized``), which carry no ``prevLogIdx``."""
    return (isinstance(message, dict) and message.get("type") == "append_entries"
            and "prevLogIdx" not in message and "commit_index" in message)


def _deliver_without_commit_advance(so: Any, deliver: Callable[[Any, Any], None], node: Any, message: Any) -> None:
    """Guard for a pysyncobj defect (tests/cluster/test_snapshot_install_safety.py).

    pysyncobj's follower sets ``commit index = min(leader's commit_index, own last index)`` after
    *every* AppendEntries from the leader, including the snapshot-transfer ones that never
    compared the follower's log with the leader's. A deposed leader that still holds entries of
    its old term (proposed while it was cut off) then takes them for committed, applies them and
    reports them to their callers as successful: acknowledged writes the cluster never committed,
    wiped when the snapshot lands. The chaos test found it.

    Here such a message is delivered with ``commit_index`` lowered to this node's own commit index,
    so it cannot advance it; the leader's real commit index is put back into pysyncobj's
    ``leader_commit_idx`` afterwards (readiness reads it). Only the regular, log-checked
    AppendEntries advance the commit index, as in Raft.
    """
    leader_commit = message["commit_index"]
    message["commit_index"] = min(leader_commit, so._SyncObj__raftCommitIndex)
    deliver(node, message)
    so._SyncObj__leaderCommitIndex = leader_commit


class RaftNode:
    """One Raft member replicating a ``Registry``.

    Threading: pysyncobj's tick thread applies entries (under ``lock``) and calls back; the
    asyncio loop given to ``start`` receives results. Readers on other threads must hold ``lock``
    while they read the registry.

    ``on_applied(index, cmds, results)`` runs in the tick thread after each entry, under no lock;
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
    ) -> None:
        if not secret:
            raise ValueError("a cluster secret is required (the Raft port accepts pickles otherwise)")
        self.self_addr = self_addr
        self.peer_addrs = list(peer_addrs)
        self.data_dir = Path(data_dir)
        self._secret = secret
        self._tuning = tuning
        self._on_applied = on_applied
        self._on_restored = on_restored
        self.registry = Registry()
        self.lock = threading.Lock()
        self._syncobj: Any = None
        self._consumer: _RegistryConsumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: collections.deque[tuple[asyncio.Future[Any], Any, int]] = collections.deque()
        self._drain_pending = False
        self._drain_lock = threading.Lock()
        self._last_deadline = 0.0
        self._last_contact_at = time.monotonic()
        self._blocked: frozenset[str] = frozenset()  # peers cut off by fault injection
        self.led_terms: collections.deque[int] = collections.deque(maxlen=256)  # see _on_tick
        # Held while the SyncObj is being destroyed or replaced; ``submit`` fails fast meanwhile.
        self._swap_lock = threading.Lock()
        # Futures handed out by ``submit`` and not yet resolved (touched on the loop only).
        self._outstanding: set[asyncio.Future[Any]] = set()

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the SyncObj (binds the Raft port; replays journal and dump)."""
        self._loop = loop
        _install_fork_hook()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        t = self._tuning
        conf = SyncObjConf(
            bindAddress=self.self_addr,
            password=self._secret,
            appendEntriesUseBatch=t.append_entries_use_batch,
            appendEntriesPeriod=t.append_entries_period,
            raftMinTimeout=t.raft_min_timeout,
            raftMaxTimeout=t.raft_max_timeout,
            connectionTimeout=t.connection_timeout,
            connectionRetryTime=1.0,
            tcp_keepalive=(5, 2, 3),
            leaderFallbackTimeout=t.leader_fallback_timeout,
            logCompactionMinEntries=t.log_compaction_min_entries,
            logCompactionMinTime=t.log_compaction_min_time,
            logCompactionSplit=False,
            commandsQueueSize=t.commands_queue_size,
            dynamicMembershipChange=False,
            journalFile=str(self.data_dir / "raft.journal") if t.journal else None,
            fullDumpFile=str(self.data_dir / "raft.dump") if t.journal else None,
        )
        self._consumer = _RegistryConsumer(self)
        self._syncobj = SyncObj(self.self_addr, self.peer_addrs, conf=conf, consumers=[self._consumer])
        self._syncobj.addOnTickCallback(self._on_tick)
        self._install_transport_hooks()

    def stop(self) -> None:
        """Stop the tick thread and close the Raft port (blocks until the thread is gone).

        Proposals still in flight fail with ``ProposalFailed("DESTROYED", applied=None)``: their
        outcome is unknown (they may have committed)."""
        with self._swap_lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._syncobj is not None:
            self._syncobj.destroy_synchronous()
            self._syncobj = None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fail_outstanding)

    def _fail_outstanding(self) -> None:
        for fut in list(self._outstanding):
            if not fut.done():
                fut.set_exception(ProposalFailed("DESTROYED", None))
        self._outstanding.clear()

    def wipe_and_restart(self) -> None:
        """Recover a wedged replica: drop its Raft data and state, rejoin empty.

        The leader then sends a snapshot (or the whole log), so the node ends with the cluster's
        state. Safe only while a majority of other nodes holds every committed entry.
        """
        assert self._loop is not None
        log.warning("event=wipe_and_resync data_dir=%s", self.data_dir)
        with self._swap_lock:
            self._wipe_and_restart_locked(self._loop)

    def _wipe_and_restart_locked(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop_locked()
        for name in ("raft.journal", "raft.journal.meta", "raft.dump", "raft.dump.tmp"):
            path = self.data_dir / name
            if path.exists():
                path.unlink()
        shutil.rmtree(self.data_dir / "tmp", ignore_errors=True)
        with self.lock:
            self.registry = Registry()
        if self._on_restored is not None:
            self._on_restored()
        self.start(loop)

    # ---- fault injection (chaos runs and tests only) -----------------------------------
    def block_peers(self, peers: Iterable[str]) -> None:
        """Drop every Raft message to and from these peer raft addresses (empty: heal).

        A network partition as the Raft layer sees it: TCP connections stay up, messages vanish,
        so elections, leader fallback and catch-up run exactly as they would behind a dead link.
        Chaos runs call it on both sides of a cut through ``POST /v1/debug/partition``."""
        blocked = frozenset(peers)
        unknown = blocked - set(self.peer_addrs)
        if unknown:
            raise ValueError(f"not peers of this node: {sorted(unknown)}")
        self._blocked = blocked
        log.warning("event=fault_partition blocked=%s", sorted(self._blocked) or "none")

    def _install_transport_hooks(self) -> None:
        """Wrap the transport's send and receive callbacks: the fault hook (both read ``_blocked``
        per message: one attribute read, the hot path is unchanged while nothing is blocked) and
        the snapshot-transfer commit-index guard (``_deliver_without_commit_advance``)."""
        transport = self._syncobj._SyncObj__transport
        send, deliver = transport.send, transport._onMessageReceivedCallback

        def guarded_send(node: Any, message: Any) -> bool:
            if self._blocked and node.address in self._blocked:
                return True  # "sent": lost on the way, as on a dead link
            return bool(send(node, message))

        def guarded_deliver(node: Any, message: Any) -> None:
            if self._blocked and node.address in self._blocked:
                return
            if _is_unchecked_append(message):
                _deliver_without_commit_advance(self._syncobj, deliver, node, message)
                return
            deliver(node, message)

        transport.send = guarded_send
        transport._onMessageReceivedCallback = guarded_deliver

    # ---- proposing ----------------------------------------------------------------------
    def submit(self, raw: bytes) -> asyncio.Future[tuple[int, list[Result]]]:
        """Propose one encoded entry. Call on the loop. The future resolves once the entry is
        applied on *this* node, to ``(index, results)``, or fails with ``ProposalFailed``.
        It may never resolve (pysyncobj has no deadline): the caller must bound the wait."""
        assert self._loop is not None and self._consumer is not None
        fut: asyncio.Future[tuple[int, list[Result]]] = self._loop.create_future()
        if not self._swap_lock.acquire(blocking=False):
            fut.set_exception(ProposalFailed("NOT_RUNNING", False))  # being wiped or stopped
            return fut

        def callback(result: Any, error: int) -> None:  # tick thread (or this thread on QUEUE_FULL)
            self._done.append((fut, result, error))
            with self._drain_lock:
                if self._drain_pending:
                    return
                self._drain_pending = True
            self._loop.call_soon_threadsafe(self._drain)  # type: ignore[union-attr]

        try:
            if self._syncobj is None:
                fut.set_exception(ProposalFailed("NOT_RUNNING", False))
                return fut
            self._outstanding.add(fut)
            fut.add_done_callback(self._outstanding.discard)
            self._consumer.apply(raw, callback=callback)
        finally:
            self._swap_lock.release()
        return fut

    def _drain(self) -> None:
        with self._drain_lock:
            self._drain_pending = False
        while self._done:
            fut, result, error = self._done.popleft()
            if fut.done():
                continue
            if error == FAIL_REASON.SUCCESS:
                fut.set_result(result)
            else:
                applied = False if error in _NOT_APPLIED else None
                fut.set_exception(ProposalFailed(_REASON_NAMES.get(error, str(error)), applied))

    # ---- tick-thread side ---------------------------------------------------------------
    def _apply_entry(self, index: int, raw: bytes) -> tuple[int, list[Result]]:
        try:
            cmds = decode_entry(raw)
        except UnsupportedEntry as exc:
            log.critical("event=unsupported_log_entry index=%d error=%r: stopping this node", index, str(exc))
            logging.shutdown()
            os._exit(EXIT_UNSUPPORTED_ENTRY)
        with self.lock:
            results = [self.registry.apply(index, cmd) for cmd in cmds]
        if self._on_applied is not None:
            try:
                self._on_applied(index, cmds, results)
            except Exception:  # never let a notification wedge the log
                log.exception("event=on_applied_failed index=%d", index)
        return index, results

    def _restore(self, data: bytes) -> None:
        registry = Registry()
        try:
            registry.restore(data)
        except Exception:
            log.critical("event=snapshot_unreadable: stopping this node", exc_info=True)
            logging.shutdown()
            os._exit(EXIT_UNSUPPORTED_ENTRY)
        with self.lock:
            self.registry = registry
        log.info("event=snapshot_restored index=%d instances=%d", registry.index, registry.instance_count())
        if self._on_restored is not None:
            try:
                self._on_restored()
            except Exception:
                log.exception("event=on_restored_failed")

    def _on_tick(self) -> None:
        # pysyncobj resets a follower's election deadline on every AppendEntries from its leader;
        # a change in it is our "last contact" signal (pysyncobj exposes no such timestamp).
        so = self._syncobj
        deadline = so._SyncObj__raftElectionDeadline
        if deadline != self._last_deadline:
            self._last_deadline = deadline
            self._last_contact_at = time.monotonic()
        # The terms this node led, read together in the tick thread (the only thread that changes
        # them): getStatus() reads state and term at different moments from another thread, so a
        # leader stepping down into a higher term can look like a leader of that term.
        if so._SyncObj__raftState == _LEADER_STATE:
            term = so._SyncObj__raftCurrentTerm
            if not self.led_terms or self.led_terms[-1] != term:
                self.led_terms.append(term)

    # ---- status -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._syncobj is not None

    def status(self) -> RaftStatus:
        """Sample the Raft state (safe from any thread)."""
        so = self._syncobj
        if so is None:
            return RaftStatus("follower", None, 0, 0, 0, None, 0, False, {}, frozenset(), float("inf"))
        for _ in range(3):
            try:
                st = so.getStatus()
                break
            except RuntimeError:  # a dict changed size under us in the tick thread
                continue
        else:
            st = {}
        state = {0: "follower", 1: "candidate", 2: "leader"}.get(st.get("state", 0), "follower")
        leader = st.get("leader")
        match = {k.removeprefix("match_idx_server_"): v for k, v in st.items() if k.startswith("match_idx_server_")}
        connected = frozenset(
            k.removeprefix("partner_node_status_server_")
            for k, v in st.items()
            if k.startswith("partner_node_status_server_") and v == 2
        )
        last_contact = 0.0 if state == "leader" else time.monotonic() - self._last_contact_at
        return RaftStatus(
            state=state,
            leader=leader.address if leader is not None else None,
            term=st.get("raft_term", 0),
            commit_index=st.get("commit_idx", 0),
            applied_index=st.get("last_applied", 0),
            leader_commit_index=st.get("leader_commit_idx"),
            log_len=st.get("log_len", 0),
            has_quorum=bool(st.get("has_quorum", False)),
            match_index=match,
            connected=connected,
            last_contact=last_contact,
            term_started=state == "leader" and _noop_applied(so),
        )

    @property
    def applied_index(self) -> int:
        so = self._syncobj
        return int(so.raftLastApplied) if so is not None else 0

    def is_leader(self) -> bool:
        so = self._syncobj
        return bool(so is not None and so._isLeader())

    def leader_addr(self) -> str | None:
        so = self._syncobj
        if so is None:
            return None
        leader = so._getLeader()
        return leader.address if leader is not None else None

    def force_snapshot(self) -> None:
        """Ask pysyncobj to compact its log at the next tick."""
        if self._syncobj is not None:
            self._syncobj.forceLogCompaction()
