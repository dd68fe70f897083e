"""``LeaseKeeper``: runs the leader's ``LeaseTable`` on a node's event loop.

Contract:
- ``on_status(status, ready)`` is called by the node's status sampler (every 50 ms). When this
  node is a leader with a quorum that has applied the first entry of its term, it arms every
  lease (``LeaseTable.arm_all`` with grace = one maximum election timeout, and this node's
  ``seen`` times with margin = grace + gossip period) from the applied state; when it stops being
  leader it drops them.
- ``on_applied(events)`` receives, on the loop of every node, what applied entries did to leased
  instances; ``saw(keys)`` records renewals this node learned of (gossip, forwarded heartbeats).
- The leader gossips the renewed leases to the followers every ``gossip_period``.
- ``renew(service, id)`` (leader only) renews a lease: returns the ttl, raises ``NotFound`` when
  the applied state has no such instance (the client registers again), ``InvalidArgument`` when
  it has no ttl, ``Unavailable`` when this node does not hold the leases (not leader, or not armed
  yet: the client retries, possibly elsewhere).
- Sessions are leases in the same table, keyed ``(SESSION_LEASE, id)`` (no service has an empty
  name): renewed, forwarded, gossiped, armed and expired exactly like instances.
- The expiry loop proposes ``Expire`` for what ``LeaseTable.due`` hands out, every
  ``check_period`` seconds, and logs the mass-expiry guard's transitions as warnings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from raftreg.config import LeaseTuning
from raftreg.errors import InvalidArgument, NotFound, RaftregError, Unavailable
from raftreg.models import SESSION_LEASE, Instance, Session
from raftreg.node.leases import Clock, LeaseKey, LeaseTable
from raftreg.node.tasks import cancel_and_wait
from raftreg.raft import RaftStatus
from raftreg.state.commands import Command, Deregister, Expire
from raftreg.state.machine import Result
from raftreg.state.registry import Deregistered, Registered, StatusSet
from raftreg.state.sessions import SessionCreated, SessionsEnded

log = logging.getLogger("raftreg.leases")

# What an applied command did to a leased object, for the lease holder: ("track", (key, ttl,
# modify_index), renew) after a register or a session creation (renew=True) or a status change
# (ttl None: not leased); ("forget", key, False) once it is gone.
LeaseEvent = tuple[str, Any, bool]
Leased = Instance | Session


def lease_events(cmds: list[Command], results: list[Result]) -> list[LeaseEvent]:
    """What one applied entry means for the lease holder (computed in the Raft tick)."""
    events: list[LeaseEvent] = []
    for cmd, result in zip(cmds, results, strict=True):
        if isinstance(result, Registered | StatusSet) and result.instance is not None:
            if isinstance(result, StatusSet) and not result.changed:
                continue
            inst = result.instance
            events.append(("track", ((inst.service, inst.id), inst.ttl, inst.modify_index),
                           isinstance(result, Registered)))
        elif isinstance(result, Deregistered) and result.existed and isinstance(cmd, Deregister | Expire):
            events.append(("forget", (cmd.service, cmd.id), False))
        elif isinstance(result, SessionCreated) and result.session is not None:
            session = result.session
            events.append(("track", ((SESSION_LEASE, session.id), session.ttl, session.modify_index), True))
        elif isinstance(result, SessionsEnded):
            events.extend(("forget", (SESSION_LEASE, session_id), False) for session_id in result.ids)
    return events


class LeaseKeeper:
    def __init__(
        self,
        tuning: LeaseTuning,
        clock: Clock,
        *,
        grace: float,
        read_instance: Callable[[str, str], Leased | None],
        read_leased: Callable[[], list[tuple[LeaseKey, float, int]]],
        propose_expire: Callable[[str, str, int], Awaitable[bool]],
        gossip: Callable[[list[LeaseKey]], Awaitable[None]],
    ) -> None:
        self.table = LeaseTable(tuning, clock)
        self.tuning = tuning
        self.clock = clock
        self.grace = grace
        self._read_instance = read_instance
        self._read_leased = read_leased
        self._propose_expire = propose_expire
        self._gossip = gossip
        # When this node last saw each leased instance renewed (every node keeps it: registrations
        # it applied, heartbeats it forwarded or renewed, the leader's gossip). Used by arm_all.
        self.seen: dict[LeaseKey, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._expiry_loop(), name="lease-expiry"),
                       asyncio.create_task(self._gossip_loop(), name="lease-gossip")]

    async def stop(self) -> None:
        await cancel_and_wait([*self._tasks, *self._inflight])

    # ---- leadership -------------------------------------------------------------------------
    def on_status(self, st: RaftStatus, holds_leadership: bool) -> None:
        """``holds_leadership``: leader with a quorum that has applied its own term's first entry
        (so its state holds every write acknowledged before it was elected, and a heartbeat it
        answers 404 is really for an unknown instance)."""
        table = self.table
        if holds_leadership and not table.active:
            leased = self._read_leased()
            table.arm_all(leased, self.grace, st.term, self.seen, self.grace + self.tuning.gossip_period)
            log.info("event=leases_armed term=%d leases=%d seen=%d grace_s=%.2f", st.term, len(leased),
                     sum(1 for key, _, _ in leased if key in self.seen), self.grace)
        elif table.active and (st.state != "leader" or st.term != table.stats.armed_at_term):
            log.info("event=leases_dropped term=%d state=%s", st.term, st.state)
            table.clear()

    def rearm_after_restore(self) -> None:
        """An online restore replaced the state: renewals seen before it say nothing about the
        restored leases; the lease holder re-arms every one at now + ttl + grace."""
        self.seen.clear()
        if self.table.active:
            leased = self._read_leased()
            self.table.arm_all(leased, self.grace, self.table.stats.armed_at_term)
            log.info("event=leases_rearmed_after_restore leases=%d grace_s=%.2f", len(leased), self.grace)

    @property
    def holds_leases(self) -> bool:
        return self.table.active

    @property
    def guard_on(self) -> bool:
        """The mass-expiry guard is holding expiries back (on the lease holder only)."""
        return self.table.stats.throttled

    # ---- applied entries --------------------------------------------------------------------
    def on_applied(self, events: list[LeaseEvent]) -> None:
        """Every node: remember registrations as renewals; the lease holder also tracks them."""
        active = self.table.active
        now = self.clock.monotonic()
        for kind, what, renew in events:
            if kind == "track":
                key, ttl, modify_index = what
                if ttl is None:
                    self.seen.pop(key, None)
                    if active:
                        self.table.forget(key)
                    continue
                if renew:
                    self.seen[key] = now
                if active:
                    self.table.track(key, ttl, modify_index, renew=renew)
            else:
                self.seen.pop(what, None)
                if active:
                    self.table.forget(what)

    def remaining(self, key: LeaseKey, ttl: float) -> float | None:
        """Seconds left on a lease as this node knows it: from the deadline when this node holds
        the leases (the leader); else ``ttl`` minus the time since the last renewal this node saw
        (registration, gossip: at most one ``gossip_period`` late, so the estimate errs short).
        ``None`` when this node knows of no renewal."""
        now = self.clock.monotonic()
        if self.table.active:
            deadline = self.table.deadline_of(key)
            return None if deadline is None else max(0.0, deadline - now)
        at = self.seen.get(key)
        return None if at is None else max(0.0, ttl - (now - at))

    def saw(self, keys: list[LeaseKey]) -> None:
        """These leases were renewed just now (gossip from the leader, or forwarded heartbeats).
        The caller passes only instances that exist with a ttl (``seen`` must not grow with
        whatever a peer names)."""
        now = self.clock.monotonic()
        seen = self.seen
        for key in keys:
            seen[key] = now

    def keep_seen(self, existing: Callable[[list[LeaseKey]], list[LeaseKey]]) -> None:
        """Drop from ``seen`` every instance ``existing`` does not return (after a snapshot
        replaced the state, deletions were not seen one by one)."""
        keep = set(existing(list(self.seen)))
        self.seen = {key: at for key, at in self.seen.items() if key in keep}

    # ---- heartbeats -------------------------------------------------------------------------
    def renew(self, service: str, instance_id: str) -> float:
        """Renew one lease on the leader (see the module docstring for the errors)."""
        if not self.table.active:
            raise Unavailable("this node does not hold the leases (not the leader, or just elected); "
                              "retry", retry_after=0.5)
        inst = self._read_instance(service, instance_id)
        if inst is None and service == SESSION_LEASE:
            raise NotFound(f"no session {instance_id!r} (expired, destroyed or never created)")
        if inst is None:
            raise NotFound(f"no instance {instance_id!r} in service {service!r} (expired or never "
                           "registered): register it again")
        if inst.ttl is None:
            raise InvalidArgument(f"instance {instance_id!r} of service {service!r} has no ttl: "
                                  "register it with a ttl to send heartbeats")
        key = (service, instance_id)
        if self.table.expiring(key):
            # The Expire already proposed will apply (a heartbeat does not change modify_index):
            # never answer 200 for an instance about to vanish. The retry gets 404 (register
            # again) or, if the Expire did not apply, a renewal.
            raise Unavailable(f"instance {instance_id!r} of service {service!r} is being expired; retry",
                              retry_after=0.2)
        self.table.renew(key, inst.ttl, inst.modify_index)
        self.seen[key] = self.clock.monotonic()
        return inst.ttl

    def renew_many(self, keys: list[LeaseKey]) -> list[dict[str, Any]]:
        """Forwarded heartbeats: one result per key, ``{"ttl": x}`` or ``{"error": {...}}``."""
        out: list[dict[str, Any]] = []
        for service, instance_id in keys:
            try:
                out.append({"ttl": self.renew(service, instance_id)})
            except RaftregError as err:
                out.append(err.to_body())
        return out

    # ---- expiry -----------------------------------------------------------------------------
    async def _expiry_loop(self) -> None:
        throttled = False
        while True:
            await asyncio.sleep(self.tuning.check_period)
            if not self.table.active:
                throttled = False
                continue
            try:
                for key, modify_index in self.table.due():
                    task = asyncio.create_task(self._expire(key, modify_index))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            except Exception:
                log.exception("event=lease_expiry_failed")
            stats = self.table.stats
            if stats.throttled != throttled:
                throttled = stats.throttled
                if throttled:
                    log.warning("event=mass_expiry_guard state=on overdue=%d leases=%d held=%d rate_per_s=%g: "
                                "more than %.0f%% of the leased instances would expire within one ttl; "
                                "expiring slowly (heartbeats may be failing on the clients' side)",
                                stats.overdue, stats.leases, stats.held, self.tuning.mass_expiry_rate,
                                self.tuning.mass_expiry_share * 100)
                else:
                    log.warning("event=mass_expiry_guard state=off overdue=%d leases=%d",
                                stats.overdue, stats.leases)

    async def _gossip_loop(self) -> None:
        """Leader: every ``gossip_period``, tell the followers which leases were renewed (best
        effort, not through the log: a lost message only makes a later leader more lenient)."""
        while True:
            await asyncio.sleep(self.tuning.gossip_period)
            if not self.table.active:
                continue
            renewed = self.table.take_renewed()
            if renewed:
                try:
                    await self._gossip(renewed)
                except Exception:
                    log.exception("event=lease_gossip_failed")

    async def _expire(self, key: LeaseKey, modify_index: int) -> None:
        removed = False
        try:
            removed = await self._propose_expire(key[0], key[1], modify_index)
            if removed:
                log.info("event=lease_expired service=%s id=%s", key[0], key[1])
        except RaftregError as err:
            log.info("event=lease_expire_retry service=%s id=%s reason=%s", key[0], key[1], err.code)
        finally:
            self.table.expire_done(key, removed)

    def stats(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.table.current_stats()), "seen": len(self.seen)}
