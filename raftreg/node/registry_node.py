"""``RegistryNode``: one cluster member, and the one facade the servers (HTTP API) talk to.

It wires the parts, each in its own module: the Raft bridge (``raftreg.raft``), the cluster view
and status sampler (``view``), writes with group commit and backpressure (``writes``), the
read-consistency rules and queries (``reads``), the key/value store (``kv``), blocking-query
wake-ups (``watches``), leases and checks (``health``), and the watchdog's recovery
(``recovery``). Servers call only the methods below; they never reach into the parts.

Errors come from the one table (``raftreg.errors``): ``Unavailable`` (503, nothing applied),
``OutcomeUnknown`` (504, a write may still apply), ``Timeout`` (504 on a ``min_index`` read),
``NotFound``, ``InvalidArgument``, ``Conflict`` (409, a compare-and-set that did not hold).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from raftreg.backup.archive import Manifest
from raftreg.config import ClusterConfig, NodeConfig
from raftreg.errors import InvalidArgument
from raftreg.models import Instance, KVEntry, KVVersion, ServiceSummary, Session, Status, TxnOp
from raftreg.node.acl import AclManager
from raftreg.node.acl_agreement import AclAgreement, settings_view
from raftreg.node.backup import Backups
from raftreg.node.cluster_watch import ClusterWatch
from raftreg.node.disk_watch import DiskWatch
from raftreg.node.gc_tuning import tune_collector
from raftreg.node.health import Health
from raftreg.node.identity_check import LocalIdentity
from raftreg.node.identity_recorder import IdentityRecorder
from raftreg.node.incarnation import BOOT_ID
from raftreg.node.kv import KeyValue, TxnResult
from raftreg.node.leases import Clock, LeaseKey, SystemClock
from raftreg.node.member_changes import MemberChanges
from raftreg.node.membership import Membership
from raftreg.node.memory import trim_periodically
from raftreg.node.metrics import NodeMetrics
from raftreg.node.peers import Peers
from raftreg.node.quotas import Quotas
from raftreg.node.read_index import ReadIndex
from raftreg.node.reads import Reader, ReadOptions
from raftreg.node.recovery import Recovery
from raftreg.node.removal import RemovalWatch
from raftreg.node.replicas import ReplicaLag
from raftreg.node.sessions import SessionManager
from raftreg.node.tasks import cancel_and_wait
from raftreg.node.view import ClusterView, ReadContext
from raftreg.node.watches import WatchHub, changed_topics
from raftreg.node.writes import Writer
from raftreg.raft import RaftNode
from raftreg.raft.membership import transfer_to
from raftreg.state.commands import Command
from raftreg.state.machine import Result
from raftreg.state.restore_staging import StagedResult

__all__ = ["LocalIdentity", "ReadContext", "ReadOptions", "RegistryNode"]

log = logging.getLogger("raftreg.node")


class RegistryNode:
    """A running cluster member (create, then ``await start()``; ``await stop()`` at the end)."""

    def __init__(self, config: ClusterConfig, name: str, *, data_dir: Path, secret: str, peers: Peers,
                 clock: Clock | None = None, identity: LocalIdentity | None = None) -> None:
        self.config = config
        self.me: NodeConfig = config.node(name)
        self._peers = peers
        self._watches = WatchHub(lambda: self._raft.applied_index)
        self._raft = RaftNode(
            self_addr=self.me.raft,
            peer_addrs=[n.raft for n in config.voters if n.name != name],  # replicas: never a peer
            data_dir=data_dir,
            secret=secret,
            tuning=config.raft,
            on_applied=self._on_applied,
            on_restored=self._on_restored,
            readonly=self.me.role == "replica",
        )
        self._view = ClusterView(config, self.me, self._raft)
        self._view.add_listener(lambda st, _usable: self._watches.advance_applied(st.applied_index))
        self.membership = Membership(config, data_dir)  # keeps config.nodes = the live members
        self._view.add_listener(lambda _st, _usable: self.membership.follow(self._raft))
        self._cluster_watch = ClusterWatch(also=lambda: self._health.leases.guard_on)
        self._view.add_listener(self._cluster_watch.on_status)
        self._writer = Writer(self._raft, self._view, config.raft, Quotas(config.quotas))
        self._kv = KeyValue(self._raft, self._writer, config.kv.history)
        self._read_index = ReadIndex(config, self._raft, self._view)
        self._reader = Reader(self._view, self._raft, self._watches, self._read_index)
        self._health = Health(config, self.me, clock or SystemClock(), view=self._view, reader=self._reader,
                              writer=self._writer, peers=peers)
        self.members = MemberChanges(self._raft, self._writer, self._view, self.membership, config.raft.commit_timeout)
        self._removal = RemovalWatch(config, name, self._view, peers)
        self._sessions = SessionManager(self._raft, self._writer, self._health)
        self._recovery = Recovery(config, self.me, self._raft, self._view, peers)
        self._replicas = ReplicaLag(config, self.me, peers)
        self.acl = AclManager(config.acl, self._raft, self._writer, data_dir)
        self._disk_watch = DiskWatch(data_dir)  # a failed disk write makes the node exit loudly
        self._acl_agreement = AclAgreement(config.acl, name, self._view, peers)
        self._backups = Backups(config, self._raft, self._reader, self._writer)
        self._tasks: list[asyncio.Task[None]] = []
        # Records this data directory's incarnation once caught up (raftreg.node.identity_recorder).
        self._identity = (IdentityRecorder(name, identity, raft=self._raft, view=self._view, writer=self._writer)
                          if identity is not None else None)
        # Prometheus metrics (``[metrics] enabled``); None: no collectors, nothing counted.
        self.metrics = (NodeMetrics(self.cluster_info, raft=self._raft, proposer=self._writer.proposer,
                                    view=self._view) if config.metrics.enabled else None)

    @property
    def name(self) -> str:
        return self.me.name

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._watches.bind(loop)
        await loop.run_in_executor(None, self._raft.start, loop)
        tune_collector()  # what is alive now is never scanned again; fewer full collections
        self._view.refresh()
        self._tasks = [asyncio.create_task(self._view.run(), name="status-sampler"),
                       asyncio.create_task(self._recovery.watchdog.run(), name="watchdog"),
                       asyncio.create_task(trim_periodically(), name="malloc-trim"),
                       asyncio.create_task(self._acl_agreement.run(), name="acl-agreement"),
                       asyncio.create_task(self._removal.run(), name="removal-watch"),
                       asyncio.create_task(self._replicas.run(), name="replica-lag")]
        if self._identity is not None:
            self._tasks.append(asyncio.create_task(self._identity.run(), name="identity-recorder"))
        self._health.start()
        self._disk_watch.start()

    async def hand_over_leadership(self, timeout: float = 3.0) -> bool:
        """Graceful stop of the leader: hand leadership to a caught-up follower first, so a planned
        restart costs no election timeout. Returns once another member leads (True; at once for a
        follower), or False after ``timeout``. Under a steady write load a follower may lag by an
        entry: the request is retried."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._view.refresh().state != "leader":
            return True
        # Stop the log from growing, so the chosen follower is caught up when it campaigns (a
        # candidate behind the others' logs loses the election: one more election timeout).
        self._writer.proposer.pause(True)
        self._raft.hold_commands(True)
        try:
            return await self._hand_over(deadline)
        finally:
            self._raft.hold_commands(False)
            self._writer.proposer.pause(False)

    async def _hand_over(self, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            if self._view.refresh().state == "leader" and await transfer_to(self._raft, None) != "SUCCESS":
                await asyncio.sleep(0.02)
                continue
            settle = loop.time() + self.config.raft.raft_max_timeout
            while loop.time() < min(settle, deadline):
                await asyncio.sleep(0.01)
                st = self._view.refresh()
                if st.state == "follower" and st.leader is not None and st.leader != self.me.raft:
                    log.info("event=leadership_handed_over to=%s", self._view.leader_name())
                    return True
        return False

    def release_waiters(self) -> None:
        """Shutting down: parked blocking queries answer now instead of holding the shutdown."""
        self._watches.release_all()
        self._cluster_watch.release_all()

    async def stop(self) -> None:
        self._disk_watch.stop()
        await self._health.stop()
        await self._recovery.stop()
        await self._peers.close()
        await cancel_and_wait(self._tasks)
        await asyncio.get_running_loop().run_in_executor(None, self._raft.stop)

    def _on_applied(self, index: int, cmds: list[Command], results: list[Result]) -> None:
        """Tick thread, after each applied entry: wake the watchers of what changed, and tell the
        lease keeper what happened to leased instances."""
        self._watches.notify_threadsafe(index, frozenset(changed_topics(cmds, results)))
        self._health.on_applied(cmds, results)
        if any(isinstance(r, StagedResult) and r.restored for r in results):  # an online restore
            self._watches.restored_threadsafe()
            self._health.on_log_restore()

    def _on_restored(self) -> None:
        self._watches.restored_threadsafe()
        self._health.on_restored()

    # ---- writes -------------------------------------------------------------------------
    def admit_write_at_once(self) -> None:
        """The HTTP layer's read-time admission of a write (``raftreg.http.shed``): ``Unavailable``
        when the queue is full, else a slot is held for it until ``release_write_slot``."""
        self._writer.proposer.admit_at_once()

    def release_write_slot(self) -> None:
        self._writer.proposer.release()

    def check_write_capacity(self) -> None:
        """``Unavailable`` at once when this node's write queue is full: a handler calls it before
        it reads and validates a write's body, so an overloaded node refuses as cheaply as it can."""
        self._writer.proposer.check_capacity()

    async def register(self, instance: Instance) -> tuple[int, Instance]:
        return await self._writer.register(instance)

    async def deregister(self, service: str, instance_id: str) -> tuple[int, bool]:
        return await self._writer.deregister(service, instance_id)

    async def set_manual_status(
        self, service: str, instance_id: str, status: Status, note: str
    ) -> tuple[int, Instance]:
        return await self._writer.set_manual_status(service, instance_id, status, note)

    async def heartbeat(self, service: str, instance_id: str) -> float:
        return await self._health.heartbeat(service, instance_id)

    async def kv_set(self, key: str, value: bytes, flags: int = 0, cas: int | None = None, *,
                     lock: Literal["", "acquire", "release"] = "", session: str = "") -> tuple[int, bool]:
        return await self._kv.set(key, value, flags, cas, lock=lock, session=session)

    async def kv_delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> tuple[int, int]:
        return await self._kv.delete(key, recurse=recurse, cas=cas)

    async def kv_txn(self, ops: list[TxnOp]) -> tuple[int, list[TxnResult]]:
        return await self._kv.txn(ops)

    async def session_create(self, session: Session) -> tuple[int, Session]:
        return await self._sessions.create(session)

    async def session_destroy(self, session_id: str) -> tuple[int, bool]:
        return await self._sessions.destroy(session_id)

    async def session_renew(self, session_id: str) -> float:
        return await self._sessions.renew(session_id)

    async def snapshot_save(self) -> tuple[Manifest, bytes]:
        """``GET /v1/snapshot``: the manifest and the archive (``raftreg.node.backup``)."""
        return await self._backups.save()

    async def snapshot_restore(self, archive: bytes) -> tuple[int, Manifest]:
        """``PUT /v1/snapshot``: restore through the log; the commit index (``raftreg.node.backup``)."""
        return await self._backups.restore(archive)

    # ---- node-to-node -------------------------------------------------------------------
    def renew_forwarded(self, keys: list[LeaseKey]) -> list[dict[str, Any]]:
        """A follower's batch of heartbeats (leader only)."""
        return self._health.renew_forwarded(keys)

    def note_renewals(self, keys: list[LeaseKey]) -> None:
        """The leader's gossip: these leases were renewed."""
        self._health.note_renewals(keys)

    # ---- reads --------------------------------------------------------------------------
    def check_readable(self) -> None:
        """``Unavailable`` unless this node has caught up with the cluster since it started: the
        check of a default read, for servers that answer without ``prepare_read`` (DNS)."""
        self._view.check_readable()

    async def prepare_read(self, opts: ReadOptions, topic: str) -> None:
        await self._reader.prepare(opts, topic)

    def query_index(self, topic: str) -> int:
        return self._reader.query_index(topic)

    def get_instance(self, service: str, instance_id: str) -> tuple[int, Instance | None]:
        return self._reader.get_instance(service, instance_id)

    def list_instances(self, service: str, *, passing_only: bool = False, tags: Iterable[str] = (),
                       meta: Iterable[tuple[str, str]] = ()) -> tuple[int, list[Instance]]:
        return self._reader.list_instances(service, passing_only=passing_only, tags=tags, meta=meta)

    def lease_remaining(self, service: str) -> tuple[int, bool, dict[str, float]]:
        """``(index, exact, {instance id: seconds left})`` for the instances of ``service`` that
        have a ttl: exact (``True``) on the node holding the leases, estimated from the last
        renewal seen elsewhere (``LeaseKeeper.remaining``); an instance this node saw no renewal
        of is left out. Heartbeats are not log entries, so this changes without the index."""
        index, instances = self._reader.list_instances(service)
        keeper = self._health.leases
        left = {}
        for inst in instances:
            if inst.ttl is not None and (seconds := keeper.remaining((service, inst.id), inst.ttl)) is not None:
                left[inst.id] = round(seconds, 3)
        return index, keeper.holds_leases, left

    def list_services(self) -> tuple[int, list[ServiceSummary]]:
        return self._reader.list_services()

    def kv_get(self, key: str) -> tuple[int, KVEntry | None]:
        return self._kv.get(key)

    def kv_list(self, prefix: str) -> tuple[int, list[KVEntry]]:
        return self._kv.list_prefix(prefix)

    def kv_keys(self, prefix: str, separator: str = "") -> tuple[int, list[str]]:
        return self._kv.keys(prefix, separator)

    def kv_history(self, key: str) -> tuple[int, list[KVVersion]]:
        return self._kv.history(key)

    def session_get(self, session_id: str) -> tuple[int, Session | None]:
        return self._sessions.get(session_id)

    def session_list(self) -> tuple[int, list[Session]]:
        return self._sessions.list()

    def read_context(self, index: int) -> ReadContext:
        return self._view.read_context(index)

    # ---- status -------------------------------------------------------------------------
    def is_ready(self) -> tuple[bool, str]:
        conflict = self.acl_conflict or self._removal.removed
        return (False, conflict) if conflict is not None else self._view.is_ready()

    @property
    def acl_conflict(self) -> str | None:
        """Why this node refuses to serve: its ``[acl]`` differs from the leader's
        (``raftreg.node.acl_agreement``); ``None`` when it does not."""
        return self._acl_agreement.conflict

    async def wait_cluster_change(self, after: int, timeout: float) -> bool:
        """Blocking ``GET /v1/cluster``: True once this node's applied index exceeds ``after`` or
        its role, leader, term or connected peers change; False after ``timeout``
        (``raftreg.node.cluster_watch``)."""
        return await self._cluster_watch.wait(after, timeout)

    def cluster_info(self) -> dict[str, Any]:
        """``GET /v1/cluster``: this node's Raft view, its members and its counters."""
        st = self._view.refresh()
        return {
            "name": self.config.name,
            "node": self.me.name,
            "pid": os.getpid(),
            "boot_id": BOOT_ID,
            "state": st.state,
            "role": self.me.role,
            "leader": self._view.leader_name(),
            "leader_usable": self._view.usable_leader(st) is not None,
            "term": st.term,
            "commit_index": st.commit_index,
            "applied_index": st.applied_index,
            "leader_commit_index": st.leader_commit_index,
            "log_len": st.log_len,
            "has_quorum": st.has_quorum,
            "last_contact_ms": self._view.read_context(0).last_contact_ms,
            "members": self._view.members() + self._replicas.rows(st),
            "identities": self.recorded_identities(),
            "acl": settings_view(self.config.acl),
            "acl_conflict": self.acl_conflict or "",
            "group_commit": self._writer.proposer.counters(),
            "watchdog_recoveries": self._recovery.recoveries,
            "watchdog": {"wedges": self._recovery.watchdog.wedges, "recoveries": self._recovery.recoveries,
                         "resync_refused": self._recovery.refused},
            "led_terms": self._raft.led_terms,
            "read_index_rounds": self._read_index.rounds,
            "watches": {**dataclasses.asdict(self._watches.stats), "cluster_waiting": self._cluster_watch.waiting},
            "kv": self._kv.stats(),
            **self._health.stats(),
        }

    def recorded_identities(self) -> dict[str, str]:
        """The members' recorded incarnations, ``{name: incarnation}`` (raftreg.state.identities)."""
        with self._raft.lock:
            return self._raft.state.identities.as_dict()

    # ---- debug hooks (tests and chaos runs; signed, and only when enabled) --------------
    async def resync(self) -> None:
        """Wipe this node's Raft data and state (keeping term and vote) and rejoin."""
        await self._recovery.resync()

    def block_peers(self, names: Iterable[str]) -> list[str]:
        """Drop Raft traffic with these members (``[]`` heals); ``InvalidArgument`` naming
        unknown ones. Returns the names blocked."""
        by_name = {n.name: n.raft for n in self.config.voters if n.name != self.me.name}
        names = sorted(set(names))
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise InvalidArgument(f"not peers of this node: {unknown}", field="block")
        self._raft.block_peers(by_name[name] for name in names)
        return names

    def inject_wedge(self) -> None:
        """Put this replica into pysyncobj's empty-log candidate wedge (the watchdog repairs it)."""
        self._raft.inject_wedge()

    def force_snapshot(self) -> None:
        self._raft.force_snapshot()

    def state_digest(self) -> dict[str, object]:
        return self._reader.state_digest()
