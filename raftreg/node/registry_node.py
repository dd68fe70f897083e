"""``RegistryNode``: one member of the cluster as the HTTP layer sees it.

It owns the Raft glue, the group committer, the status sampler and the watchdog, and offers
reads (from the local applied state) and writes (committed through the leader, answered after
they are applied here). Writes raise ``Unavailable`` (no usable leader: retry) or
``CommitTimeout`` (outcome unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.errors import CommitTimeout, NotFound, Unavailable, WaitTimeout
from raftreg.models import Instance, ServiceSummary, Status
from raftreg.node.checks import CheckRunner, NetworkProber
from raftreg.node.heartbeat_forwarder import HeartbeatForwarder
from raftreg.node.lease_gossip import LeaseGossip
from raftreg.node.lease_keeper import LeaseKeeper, lease_events
from raftreg.node.leases import Clock, LeaseKey, SystemClock
from raftreg.node.proposer import Committed, GroupCommitter
from raftreg.node.tasks import cancel_and_wait
from raftreg.node.watchdog import Watchdog
from raftreg.node.watches import CATALOG, WatchHub, changed_topics, service_topic
from raftreg.raft import RaftNode, RaftStatus
from raftreg.state.commands import Command, Deregister, Expire, Noop, Register, SetCheckStatus, SetManualStatus
from raftreg.state.registry import Deregistered, Failed, Registered, Result, StatusSet

log = logging.getLogger("raftreg.node")

STATUS_PERIOD = 0.05


@dataclass(frozen=True)
class ReadContext:
    """What every read response reports besides its body."""

    index: int
    leader: str
    last_contact_ms: int


class RegistryNode:
    """A running cluster member (create, then ``await start()``; ``await stop()`` at the end)."""

    def __init__(
        self, config: ClusterConfig, name: str, *, data_dir: Path, secret: str, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.me: NodeConfig = config.node(name)
        self._names_by_raft = {n.raft: n.name for n in config.nodes}
        self._urls_by_raft = {n.raft: n.http_url for n in config.nodes}
        self.clock: Clock = clock or SystemClock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.watches = WatchHub(self._raft_applied_index)
        self.raft = RaftNode(
            self_addr=self.me.raft,
            peer_addrs=[n.raft for n in config.nodes if n.name != name],
            data_dir=data_dir,
            secret=secret,
            tuning=config.raft,
            on_applied=self._on_applied,
            on_restored=self.watches.restored_threadsafe,
        )
        tuning = config.raft
        self.commit_timeout = tuning.commit_timeout
        self.proposer = GroupCommitter(
            self.raft, max_batch=tuning.max_batch_commands, stuck_after=max(1.0, tuning.raft_max_timeout * 1.5)
        )
        self._contact_limit = tuning.raft_max_timeout
        self.status: RaftStatus = self.raft.status()
        self._leader_known = asyncio.Event()
        self.watchdog = Watchdog(self.raft.status, self._recover)
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = time.monotonic()
        self.serves_reads = False  # see check_readable
        leases = config.leases
        self.gossip = LeaseGossip([n.http_url for n in config.nodes if n.name != name])
        self.leases = LeaseKeeper(
            leases, self.clock,
            grace=leases.grace if leases.grace is not None else tuning.raft_max_timeout,
            read_instance=lambda service, instance_id: self.get_instance(service, instance_id)[1],
            read_leased=self._leased_instances,
            propose_expire=self._expire,
            gossip=self.gossip.send,
        )
        self.forwarder = HeartbeatForwarder(self._leader_url, timeout=2.0, max_batch=leases.forward_batch)
        self.prober = NetworkProber(config.checks.max_concurrent)
        self.checks = CheckRunner(
            self.me.name, config.checks, self.clock,
            list_checked=self._checked_instances,
            live_members=self._live_members,
            propose_status=self._set_check_status,
            propose_expire=lambda inst: self._expire(inst.service, inst.id, inst.modify_index, "critical"),
            prober=self.prober,
        )

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self.watches.bind(loop)
        await loop.run_in_executor(None, self.raft.start, loop)
        self._refresh_status()
        self._tasks = [
            asyncio.create_task(self._sample_status(), name="status-sampler"),
            asyncio.create_task(self.watchdog.run(), name="watchdog"),
        ]
        self.leases.start()
        self.checks.start()

    async def stop(self) -> None:
        await self.checks.stop()
        await self.leases.stop()
        await self.forwarder.close()
        await self.gossip.close()
        await self.prober.close()
        await cancel_and_wait(self._tasks)
        await asyncio.get_running_loop().run_in_executor(None, self.raft.stop)

    def _recover(self, reason: str) -> None:
        """Watchdog action: wipe and resync, if the rest of the cluster holds every committed entry."""
        task = asyncio.get_running_loop().create_task(self._recover_safely(reason))
        self._tasks.append(task)

    async def _recover_safely(self, reason: str) -> None:
        if not await self._others_hold_committed_log():
            log.error("event=resync_refused reason=%r: no other follower is known to hold every "
                      "committed entry, wiping this replica could lose data", reason)
            return
        await self.resync()

    async def resync(self) -> None:
        """Wipe this replica's Raft data and state and rejoin (the watchdog's recovery action).
        Plain reads answer 503 until it has caught up again."""
        self.serves_reads = False
        await asyncio.get_running_loop().run_in_executor(None, self.raft.wipe_and_restart)

    async def _others_hold_committed_log(self) -> bool:
        """Ask the leader whether a majority *without this node* has every committed entry.

        Wiping a replica is safe only then: an entry committed with this node's vote and not yet
        on any other follower would otherwise exist on the leader alone."""
        st = self.status
        leader = next((n for n in self.config.nodes if n.raft == st.leader), None)
        if leader is None:
            return False
        try:
            timeout = aiohttp.ClientTimeout(total=2.0)
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.get(f"{leader.http_url}/v1/cluster") as resp:
                info = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        commit = info.get("commit_index", 0)
        holders = 1 + sum(  # the leader itself, plus other followers that have everything
            1 for m in info.get("members", [])
            if m.get("name") not in (self.me.name, leader.name) and (m.get("match_index") or 0) >= commit
        )
        return holders > len(self.config.nodes) // 2

    async def _sample_status(self) -> None:
        while True:
            try:
                self._refresh_status()
            except Exception:
                log.exception("event=status_sample_failed")
            await asyncio.sleep(STATUS_PERIOD)

    def _raft_applied_index(self) -> int:
        return self.raft.applied_index

    def _on_applied(self, index: int, cmds: list[Command], results: list[Result]) -> None:
        """Tick thread, after each applied entry: tell the watch hub what changed, and the lease
        keeper what happened to leased instances."""
        self.watches.notify_threadsafe(index, frozenset(changed_topics(cmds, results)))
        # Every node: followers remember registrations as renewals (``LeaseKeeper.seen``); an
        # event generated before a new leader's ``arm_all`` read the state reaches the loop after
        # it, so no registration slips between the two.
        if self._loop is not None:
            events = lease_events(cmds, results)
            if events:
                self._loop.call_soon_threadsafe(self.leases.on_applied, events)

    def _refresh_status(self) -> None:
        st = self.status = self.raft.status()
        self.watches.advance_applied(st.applied_index)
        usable = self.usable_leader(st) is not None
        if usable:
            self._leader_known.set()
        else:
            self._leader_known.clear()
        self.leases.on_status(st, usable and st.term_started)
        if not self.serves_reads and self.is_ready()[0]:
            self.serves_reads = True
            log.info("event=caught_up applied_index=%d: serving reads", self.status.applied_index)

    def check_readable(self) -> None:
        """Reads need a node that has caught up with the cluster at least once since it started.

        pysyncobj applies its journal only once it learns the commit index from a leader, so a
        restarted node holds an empty state until then: answering from it would show an empty
        registry at index 0, even the writes this node acknowledged before it went down. Later,
        a node cut off from the leader keeps answering default reads from its last state (stale,
        as documented; ``X-Raftreg-Last-Contact`` says how stale)."""
        if not self.serves_reads:
            raise Unavailable("this node has not caught up with the cluster since it started; "
                              "retry or read another node", retry_after=1.0)

    def usable_leader(self, st: RaftStatus) -> str | None:
        """The leader's raft address if writes can reach it now, else None.

        A follower that has not heard from its leader within one maximum election timeout does
        not trust it (pysyncobj keeps naming a dead leader forever on an isolated follower); a
        leader without a connected quorum does not trust itself.
        """
        if st.leader is None:
            return None
        if st.state == "leader":
            return st.leader if st.has_quorum or not self.raft.peer_addrs else None
        if st.state == "follower" and st.last_contact <= self._contact_limit:
            return st.leader
        return None

    # ---- writes -------------------------------------------------------------------------
    async def _await_leader(self, deadline: float) -> None:
        """Return once a usable leader is known; wait a little for an election to finish, then
        ``Unavailable``."""
        if not self._leader_known.is_set():
            self._refresh_status()
        if not self._leader_known.is_set():
            loop = asyncio.get_running_loop()
            wait = min(deadline - loop.time(), self.config.raft.raft_max_timeout * 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leader_known.wait(), max(wait, 0))
            if not self._leader_known.is_set():
                raise Unavailable("no leader is reachable from this node; retry later", retry_after=1.0)

    async def _commit(self, cmd: Command, timeout: float | None = None) -> Committed:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout if timeout is not None else self.commit_timeout)
        await self._await_leader(deadline)
        try:
            return await asyncio.wait_for(self.proposer.propose(cmd), max(deadline - loop.time(), 0.001))
        except TimeoutError:
            raise CommitTimeout(
                "the write was not confirmed in time: its outcome is unknown and it may still apply"
            ) from None

    async def register(self, instance: Instance, timeout: float | None = None) -> tuple[int, Instance]:
        """Create or replace ``instance``; returns the commit index and the stored instance."""
        committed = await self._commit(Register(instance), timeout)
        result = committed.result
        if isinstance(result, Failed):
            raise RuntimeError(f"register failed in the state machine: {result.reason}")
        assert isinstance(result, Registered)
        return committed.index, result.instance

    async def deregister(self, service: str, instance_id: str, timeout: float | None = None) -> tuple[int, bool]:
        """Delete an instance; returns the commit index and whether it was deleted.

        When an earlier attempt's outcome was unknown (a failover hit it), "absent" is reported
        as deleted: that attempt most likely deleted it.
        """
        committed = await self._commit(Deregister(service, instance_id), timeout)
        result = committed.result
        if isinstance(result, Failed):
            raise RuntimeError(f"deregister failed in the state machine: {result.reason}")
        assert isinstance(result, Deregistered)
        return committed.index, result.existed or committed.after_unknown_attempt

    async def set_manual_status(
        self, service: str, instance_id: str, status: Status, note: str
    ) -> tuple[int, Instance]:
        """Set (``warning``/``critical``) or clear (``passing``) the status set by hand; returns the
        commit index and the stored instance; ``NotFound`` when there is no such instance."""
        committed = await self._commit(SetManualStatus(service, instance_id, status, note))
        result = committed.result
        if not isinstance(result, StatusSet) or result.instance is None:
            raise NotFound(f"no instance {instance_id!r} in service {service!r}")
        return committed.index, result.instance

    async def _set_check_status(self, inst: Instance, status: Status, output: str) -> Instance | None:
        """Check runner: commit a check verdict for this incarnation of ``inst``."""
        committed = await self._commit(SetCheckStatus(inst.service, inst.id, inst.create_index, status, output[:512]))
        result = committed.result
        return result.instance if isinstance(result, StatusSet) else None

    async def _expire(self, service: str, instance_id: str, modify_index: int, reason: str = "ttl") -> bool:
        """Lease holder / check runner: remove the instance if it is still at ``modify_index``."""
        committed = await self._commit(Expire(service, instance_id, modify_index, reason))
        return isinstance(committed.result, Deregistered) and committed.result.existed

    # ---- leases and checks ----------------------------------------------------------------
    async def heartbeat(self, service: str, instance_id: str) -> float:
        """Renew an instance's lease: on the leader directly, on a follower through the leader
        (see ``LeaseKeeper.renew`` and ``HeartbeatForwarder``). Returns the ttl."""
        if self.holds_leases():
            return self.leases.renew(service, instance_id)
        loop = asyncio.get_running_loop()
        await self._await_leader(loop.time() + self.commit_timeout)
        if self.usable_leader(self.status) == self.me.raft:
            if not self.leases.holds_leases:  # just elected: arming waits until it applied its log
                await asyncio.sleep(STATUS_PERIOD * 2)
            return self.leases.renew(service, instance_id)
        ttl = await self.forwarder.renew(service, instance_id)
        self.leases.saw([(service, instance_id)])
        return ttl

    def holds_leases(self) -> bool:
        """This node is the leader, with a quorum, and holds the lease deadlines: it may renew.
        (A leader cut off from the majority must not: its renewals would be lost.)"""
        return self.leases.holds_leases and self.usable_leader(self.status) == self.me.raft

    def _leader_url(self) -> str | None:
        leader = self.usable_leader(self.status)
        return self._urls_by_raft.get(leader) if leader is not None and leader != self.me.raft else None

    def _leased_instances(self) -> list[tuple[LeaseKey, float, int]]:
        with self.raft.lock:
            leased = self.raft.registry.instances_where(lambda i: i.ttl is not None)
        return [((i.service, i.id), i.ttl or 0.0, i.modify_index) for i in leased]

    def _checked_instances(self) -> list[Instance]:
        with self.raft.lock:
            return self.raft.registry.checked_instances()

    def _live_members(self) -> list[str] | None:
        """Who shares the checks: this node (only while it has a usable leader, else None) and the
        peers its Raft transport is connected to."""
        st = self.status
        if self.usable_leader(st) is None or not self.serves_reads:
            return None
        return [self.me.name, *(self._names_by_raft[a] for a in st.connected if a in self._names_by_raft)]

    async def barrier(self, timeout: float | None = None) -> int:
        """Commit a no-op through the log: afterwards a local read is linearizable. Concurrent
        barriers and writes share one Raft entry (group commit). Returns the barrier's index.

        Raises ``Unavailable`` when the barrier cannot commit in time (no majority reachable): a
        read has no unknown outcome, and it must never be answered from possibly stale state."""
        try:
            return (await self._commit(Noop(), timeout)).index
        except CommitTimeout:
            raise Unavailable(
                "this node could not confirm with a majority that its state is current; retry later",
                retry_after=1.0,
            ) from None

    # ---- waiting (blocking queries, min_index) ------------------------------------------
    async def wait_applied(self, index: int, timeout: float) -> None:
        """Return once this node has applied ``index``; ``WaitTimeout`` after ``timeout``."""
        if not await self.watches.wait_applied(index, timeout):
            raise WaitTimeout(
                f"this node has not applied index {index} within {timeout:g}s "
                f"(applied {self.watches.applied_index}); retry or read another node"
            )

    async def wait_for_change(self, topic: str, after: int, timeout: float) -> bool:
        """Blocking query: return once ``query_index(topic)`` exceeds ``after`` (True) or
        ``timeout`` passes (False).

        Parks on the topic's change future, so writes to other topics never wake this waiter."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.query_index(topic) <= after:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self.watches.wait_changed(topic, remaining):
                return False
        return True

    def query_index(self, topic: str) -> int:
        """The index answering a query on ``topic`` (``CATALOG`` or a ``service_topic``)."""
        with self.raft.lock:
            reg = self.raft.registry
            if topic == CATALOG:
                return reg.index
            return reg.service_index(topic.removeprefix(service_topic("")))

    # ---- reads --------------------------------------------------------------------------
    def read_context(self, index: int) -> ReadContext:
        st = self.status
        leader = self._names_by_raft.get(st.leader, "") if st.leader else ""
        contact = 0 if st.state == "leader" else int(min(st.last_contact, 1e9) * 1000)
        return ReadContext(index=index, leader=leader, last_contact_ms=contact)

    def get_instance(self, service: str, instance_id: str) -> tuple[int, Instance | None]:
        with self.raft.lock:
            reg = self.raft.registry
            inst = reg.get_instance(service, instance_id)
            return reg.service_index(service), inst

    def list_instances(
        self,
        service: str,
        *,
        passing_only: bool = False,
        tags: Iterable[str] = (),
        meta: Iterable[tuple[str, str]] = (),
    ) -> tuple[int, list[Instance]]:
        with self.raft.lock:
            reg = self.raft.registry
            return reg.service_index(service), reg.list_instances(
                service, passing_only=passing_only, tags=tags, meta=meta
            )

    def list_services(self) -> tuple[int, list[ServiceSummary]]:
        with self.raft.lock:
            reg = self.raft.registry
            return reg.index, reg.list_services()

    def state_digest(self) -> dict[str, object]:
        """A fingerprint of the applied state: equal on replicas that applied the same entries."""
        with self.raft.lock:
            reg = self.raft.registry
            data = reg.snapshot()
            return {
                "applied_index": self.raft.applied_index,
                "index": reg.index,
                "instances": reg.instance_count(),
                "digest": hashlib.sha256(data).hexdigest(),
            }

    def is_ready(self) -> tuple[bool, str]:
        """Ready: a usable leader is known and this node has applied up to the leader's commit
        index as last reported."""
        st = self.status
        if self.usable_leader(st) is None:
            return False, "no reachable leader"
        target = st.commit_index if st.state == "leader" else (st.leader_commit_index or 0)
        if st.applied_index < target:
            return False, f"applied {st.applied_index} of {target}"
        return True, "ready"

    def cluster_info(self) -> dict[str, object]:
        self._refresh_status()
        st = self.status
        members = []
        for n in self.config.nodes:
            match: int | None
            if n.name == self.me.name:
                member_status = st.state
                match = st.applied_index
            else:
                if n.raft not in st.connected:
                    member_status = "unreachable"
                else:
                    member_status = "leader" if st.leader == n.raft else "follower"
                match = st.match_index.get(n.raft, 0) if st.state == "leader" else None
            members.append({"name": n.name, "raft": n.raft, "http": n.http, "status": member_status,
                            "match_index": match})
        return {
            "name": self.config.name,
            "node": self.me.name,
            "pid": os.getpid(),
            "state": st.state,
            "leader": self._names_by_raft.get(st.leader, "") if st.leader else "",
            "term": st.term,
            "commit_index": st.commit_index,
            "applied_index": st.applied_index,
            "log_len": st.log_len,
            "has_quorum": st.has_quorum,
            "last_contact_ms": self.read_context(0).last_contact_ms,
            "members": members,
            "group_commit": {
                "entries": self.proposer.stats.entries,
                "commands": self.proposer.stats.commands,
                "retries": self.proposer.stats.retries,
            },
            "watchdog_recoveries": self.watchdog.recoveries,
            "led_terms": list(self.raft.led_terms),
            "watches": dataclasses.asdict(self.watches.stats),
            "leases": self.leases.stats(),
            "heartbeats_forwarded": {"batches": self.forwarder.batches, "heartbeats": self.forwarder.forwarded},
            "checks": {**dataclasses.asdict(self.checks.stats), "lag_ms": self.checks.lag_ms()},
        }
