"""``Health``: leases (TTL heartbeats) and active checks of one node, wired to the rest of it.

Contract:
- ``heartbeat(service, id)`` renews a lease: on the leader directly (``LeaseKeeper.renew``), on a
  follower through the leader (``HeartbeatForwarder``). Returns the ttl; ``NotFound`` means
  "register again"; ``Unavailable`` means "retry" (no leader yet, or overloaded).
- ``renew_forwarded(keys)`` serves a follower's batch (leader only, else ``Unavailable``);
  ``note_renewals(keys)`` takes the leader's gossip, keeping only instances that exist here.
- ``on_status`` (from ``ClusterView``) arms or drops the lease table; ``on_applied`` (from the
  Raft tick, thread-safe) tells the lease keeper what applied entries did to leased
  instances; ``on_restored`` (Raft tick) prunes renewals of instances that no longer exist.
- Expiries and check verdicts are committed through ``Writer`` without the client queue bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.errors import Unavailable
from raftreg.node.checks import CheckRunner, NetworkProber
from raftreg.node.heartbeat_forwarder import HeartbeatForwarder
from raftreg.node.lease_keeper import LeaseKeeper, lease_events
from raftreg.node.leases import Clock, LeaseKey
from raftreg.node.peers import Peers
from raftreg.node.reads import Reader
from raftreg.node.view import STATUS_PERIOD, ClusterView
from raftreg.node.writes import Writer
from raftreg.raft import RaftStatus
from raftreg.raft.loop_tick import call_soon_any_thread
from raftreg.state.commands import Command
from raftreg.state.machine import Result


class Health:
    def __init__(self, config: ClusterConfig, me: NodeConfig, clock: Clock, *, view: ClusterView, reader: Reader,
                 writer: Writer, peers: Peers) -> None:
        self._view = view
        self._reader = reader
        self._loop: asyncio.AbstractEventLoop | None = None
        leases, tuning = config.leases, config.raft
        self.leases = LeaseKeeper(
            leases, clock,
            grace=leases.grace if leases.grace is not None else tuning.raft_max_timeout,
            read_instance=reader.get_leased,
            read_leased=reader.leased_instances,
            propose_expire=writer.expire,
            gossip=peers.share_renewals,
        )
        self.forwarder = HeartbeatForwarder(view.usable_leader_name, peers, max_batch=leases.forward_batch,
                                            max_queued=leases.forward_queue)
        self.prober = NetworkProber(config.checks.max_concurrent)
        self.checks = CheckRunner(
            me.name, config.checks, clock,
            list_checked=reader.checked_instances,
            live_members=view.live_members,
            propose_status=writer.set_check_status,
            propose_expire=lambda inst: writer.expire(inst.service, inst.id, inst.modify_index, "critical"),
            prober=self.prober,
        )
        view.add_listener(self.on_status)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.leases.start()
        self.checks.start()

    async def stop(self) -> None:
        await self.checks.stop()
        await self.leases.stop()
        await self.forwarder.close()
        await self.prober.close()

    # ---- events -------------------------------------------------------------------------
    def on_status(self, st: RaftStatus, leader_usable: bool) -> None:
        self.leases.on_status(st, leader_usable and st.term_started)

    def on_applied(self, cmds: list[Command], results: list[Result]) -> None:
        """Tick thread. Every node: followers remember registrations as renewals; an event made
        before a new leader's ``arm_all`` read the state reaches the loop after it, so no
        registration slips between the two."""
        events = lease_events(cmds, results)
        if events and self._loop is not None and not self._loop.is_closed():
            call_soon_any_thread(self._loop, self.leases.on_applied, events)

    def on_restored(self) -> None:
        """Tick thread: the state was replaced."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.leases.keep_seen, self._reader.leased_exist)

    def on_log_restore(self) -> None:
        """Tick thread: an online restore (a ``RestoreCommit``) replaced the state."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.leases.rearm_after_restore)

    # ---- heartbeats ---------------------------------------------------------------------
    def holds_leases(self) -> bool:
        """This node is the leader, with a quorum, and holds the lease deadlines: it may renew.
        (A leader cut off from the majority must not: its renewals would be lost.)"""
        return self.leases.holds_leases and self._view.is_usable_leader()

    async def heartbeat(self, service: str, instance_id: str) -> float:
        if self.holds_leases():
            return self.leases.renew(service, instance_id)
        await self._view.await_leader(self._view.config.raft.commit_timeout)
        if self._view.is_usable_leader():
            if not self.leases.holds_leases:  # just elected: arming waits until it applied its log
                await asyncio.sleep(STATUS_PERIOD * 2)
            return self.leases.renew(service, instance_id)
        ttl = await self.forwarder.renew(service, instance_id)
        self.leases.saw([(service, instance_id)])
        return ttl

    def renew_forwarded(self, keys: list[LeaseKey]) -> list[dict[str, Any]]:
        if not self.holds_leases():
            raise Unavailable("this node does not hold the leases (not the leader)", retry_after=0.5)
        return self.leases.renew_many(keys)

    def note_renewals(self, keys: list[LeaseKey]) -> None:
        self.leases.saw(self._reader.leased_exist(keys))

    def stats(self) -> dict[str, Any]:
        return {
            "leases": self.leases.stats(),
            "heartbeats_forwarded": {"batches": self.forwarder.batches, "heartbeats": self.forwarder.forwarded,
                                     "refused": self.forwarder.refused},
            "checks": {**dataclasses.asdict(self.checks.stats), "lag_ms": self.checks.lag_ms()},
        }
