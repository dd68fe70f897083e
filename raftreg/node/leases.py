"""TTL leases held by the leader (the etcd lessor / Consul session design, DESIGN.md "Leases and health").

Contract:
- Only the leader keeps deadlines, in memory. Heartbeats renew a deadline and never touch the
  Raft log; the leader commits only ``Expire`` commands (compare-and-delete on ``modify_index``).
- ``LeaseTable`` is pure bookkeeping: time comes from a ``Clock`` (monotonic: a wall-clock jump
  moves no deadline), no I/O, no asyncio, so unit tests drive it with a fake clock.
- A node that becomes leader calls ``arm_all``: every leased instance gets ``now + ttl + grace``
  (grace = one election timeout), so a failover, and the heartbeats lost while there was no
  leader, never expire a live instance; an instance whose last renewal this node saw (the old
  leader gossips renewals every ``gossip_period``) gets ``last_seen + ttl + margin`` instead when
  that is earlier (never before ``now + grace``), so a failover does not delay the expiry of a
  dead instance by a whole ttl.
- A registration counts as a heartbeat (``track(..., renew=True)``).
- Mass-expiry guard (Eureka's self-preservation, bounded): when more than ``mass_expiry_share`` of
  the leased instances, and at least ``mass_expiry_min``, would expire within one ttl (overdue now
  plus expired during the last ttl), ``due()`` hands out expiries at ``mass_expiry_rate`` per
  second, oldest deadline first. A held instance is released anyway once it is ``ttl +
  mass_expiry_hold_extra`` past its deadline, so every expiry completes within
  ``2 x ttl + mass_expiry_hold_extra`` of its last heartbeat. Heartbeats that come back take their
  instances out of the overdue set, which ends the guard.
"""

from __future__ import annotations

import collections
import heapq
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from raftreg.config import LeaseTuning

LeaseKey = tuple[str, str]  # (service, instance id)


class Clock(Protocol):
    """Where lease and check code read time: monotonic seconds only."""

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock: ``time.monotonic`` (unaffected by wall-clock jumps)."""

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class Lease:
    ttl: float
    deadline: float
    modify_index: int  # the version of the instance an Expire must name
    proposed: bool = False  # an Expire for it is in flight


@dataclass
class LeaseStats:
    """Reported in ``GET /v1/cluster`` under ``leases``."""

    active: bool = False  # this node is the leader and holds the deadlines
    leases: int = 0
    overdue: int = 0
    throttled: bool = False  # the mass-expiry guard is holding expiries
    held: int = 0  # overdue instances the guard is holding back now
    expired: int = 0  # Expire commands that removed an instance (while this node led)
    renewals: int = 0
    armed_at_term: int = 0
    guard_trips: int = 0


@dataclass
class _Window:
    """Expiries handed out recently (monotonic times), for the guard's one-ttl window."""

    times: collections.deque[float] = field(default_factory=collections.deque)

    def count_since(self, since: float) -> int:
        while self.times and self.times[0] < since:
            self.times.popleft()
        return len(self.times)


class LeaseTable:
    """Deadlines of the leased instances (see the module docstring). Not thread-safe: the node
    uses it from its event loop only."""

    def __init__(self, tuning: LeaseTuning, clock: Clock) -> None:
        self.tuning = tuning
        self.clock = clock
        self._leases: dict[LeaseKey, Lease] = {}
        self._heap: list[tuple[float, LeaseKey]] = []  # (deadline when pushed, key); lazily cleaned
        self._overdue: dict[LeaseKey, Lease] = {}
        self._recent = _Window()
        self._tokens = 0.0
        self._tokens_at = 0.0
        self._renewed: set[LeaseKey] = set()  # renewed since the last take_renewed (gossip)
        self.stats = LeaseStats()

    # ---- leadership -----------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.stats.active

    def arm_all(
        self,
        leased: list[tuple[LeaseKey, float, int]],
        grace: float,
        term: int = 0,
        last_seen: Mapping[LeaseKey, float] | None = None,
        margin: float = 0.0,
    ) -> None:
        """Become the lease holder: every ``(key, ttl, modify_index)`` expires at now + ttl + grace,
        or earlier when this node saw the instance's last renewal (``last_seen``, monotonic: the
        previous leader's gossip, forwarded heartbeats, registrations): at last_seen + ttl +
        ``margin``, but never before now + grace (clients get at least an election timeout to
        find the new leader). So an instance that stopped just before a failover is still gone
        within about ttl + margin of its last heartbeat, and a live one is never expired."""
        self.clear()
        now = self.clock.monotonic()
        seen = last_seen or {}
        for key, ttl, modify_index in leased:
            deadline = now + ttl + grace
            at = seen.get(key)
            if at is not None:
                deadline = min(deadline, max(at + ttl + margin, now + grace))
            self._set(key, Lease(ttl, deadline, modify_index))
        self.stats.active = True
        self.stats.armed_at_term = term

    def clear(self) -> None:
        """Stop holding leases (this node is no longer the leader)."""
        self._leases.clear()
        self._heap.clear()
        self._overdue.clear()
        self._renewed.clear()
        self._recent = _Window()
        self.stats = LeaseStats(expired=self.stats.expired, renewals=self.stats.renewals,
                                guard_trips=self.stats.guard_trips)

    # ---- changes --------------------------------------------------------------------------
    def track(self, key: LeaseKey, ttl: float, modify_index: int, *, renew: bool) -> None:
        """An applied command stored ``key`` with this ttl and version. ``renew``: a registration
        (it counts as a heartbeat); otherwise (a status change) only the version moves."""
        lease = self._leases.get(key)
        if renew:
            self._renewed.add(key)
        if lease is None or renew:
            self._overdue.pop(key, None)
            self._set(key, Lease(ttl, self.clock.monotonic() + ttl, modify_index))
        else:
            lease.ttl = ttl
            lease.modify_index = modify_index
            lease.proposed = False

    def forget(self, key: LeaseKey) -> None:
        """The instance is gone (deregistered, expired) or no longer has a ttl."""
        self._leases.pop(key, None)
        self._overdue.pop(key, None)

    def expiring(self, key: LeaseKey) -> bool:
        """An Expire for ``key`` is in flight: a heartbeat now cannot save the instance."""
        lease = self._leases.get(key)
        return lease is not None and lease.proposed

    def renew(self, key: LeaseKey, ttl: float, modify_index: int) -> None:
        """A heartbeat for an instance the caller found in the applied state with this ttl."""
        lease = self._leases.get(key)
        deadline = self.clock.monotonic() + ttl
        self.stats.renewals += 1
        self._renewed.add(key)
        if lease is None:
            self._set(key, Lease(ttl, deadline, modify_index))
            return
        lease.ttl, lease.modify_index = ttl, modify_index
        lease.deadline = deadline  # the heap keeps the older entry; due() re-pushes it lazily ...
        if self._overdue.pop(key, None) is not None:
            heapq.heappush(self._heap, (deadline, key))  # ... unless due() already popped it

    def take_renewed(self) -> list[LeaseKey]:
        """The leases renewed since the last call (the leader gossips them to the followers)."""
        renewed = [key for key in self._renewed if key in self._leases]
        self._renewed.clear()
        return renewed

    def expire_done(self, key: LeaseKey, removed: bool) -> None:
        """The Expire proposed for ``key`` finished: ``removed`` when it deleted the instance;
        otherwise (a newer version, no leader, timeout) it is judged again at the next ``due``."""
        lease = self._leases.get(key)
        if removed:
            self.stats.expired += 1
            self.forget(key)
        elif lease is not None:
            lease.proposed = False

    def _set(self, key: LeaseKey, lease: Lease) -> None:
        self._leases[key] = lease
        heapq.heappush(self._heap, (lease.deadline, key))

    # ---- expiry ---------------------------------------------------------------------------
    def due(self) -> list[tuple[LeaseKey, int]]:
        """The ``(key, modify_index)`` to expire now (each is then marked in flight until
        ``expire_done``), the mass-expiry guard applied."""
        now = self.clock.monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            lease = self._leases.get(key)
            if lease is None or key in self._overdue:
                continue
            if lease.deadline > now:  # renewed since that entry was pushed
                heapq.heappush(heap, (lease.deadline, key))
                continue
            self._overdue[key] = lease
        ready = [(k, lease) for k, lease in self._overdue.items() if not lease.proposed]
        self.stats.leases = len(self._leases)
        self.stats.overdue = len(self._overdue)
        if not ready:  # nothing, or only expiries in flight: the guard holds its state meanwhile
            self._update_guard(self.stats.throttled and bool(self._overdue), 0)
            return []
        window = max(lease.ttl for lease in self._overdue.values())
        recent = self._recent.count_since(now - window)
        would_expire = len(self._overdue) + recent
        population = len(self._leases) + recent
        t = self.tuning
        guarded = would_expire >= t.mass_expiry_min and would_expire > t.mass_expiry_share * population
        # Once on, the guard stays on until nothing is overdue: when part of the heartbeats come
        # back, the share drops, but the rest may be on their way too (clients at other phases).
        guarded = guarded or self.stats.throttled
        if guarded:
            ready.sort(key=lambda kl: kl[1].deadline)
            self._refill(now)
            allowed = []
            for key, lease in ready:
                if now - lease.deadline >= lease.ttl + t.mass_expiry_hold_extra:
                    allowed.append((key, lease))  # the bound: held at most ttl + hold_extra
                elif self._tokens >= 1.0:
                    self._tokens -= 1.0
                    allowed.append((key, lease))
            ready = allowed
        else:
            self._tokens = 0.0
        self._update_guard(guarded, len(self._overdue) - len(ready) if guarded else 0)
        for _, lease in ready:
            lease.proposed = True
            self._recent.times.append(now)
        return [(key, lease.modify_index) for key, lease in ready]

    def _refill(self, now: float) -> None:
        rate = self.tuning.mass_expiry_rate
        if not self.stats.throttled:
            self._tokens, self._tokens_at = 0.0, now
        self._tokens = min(max(rate, 1.0), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now

    def _update_guard(self, guarded: bool, held: int) -> None:
        if guarded and not self.stats.throttled:
            self.stats.guard_trips += 1
        self.stats.throttled = guarded
        self.stats.held = held

    def current_stats(self) -> LeaseStats:
        """The counters, with the lease and overdue counts as of now."""
        self.stats.leases = len(self._leases)
        self.stats.overdue = len(self._overdue)
        return self.stats

    def next_deadline(self) -> float | None:
        """The earliest pending deadline (may be stale-early: ``due`` re-checks)."""
        return self._heap[0][0] if self._heap else None

    def deadline_of(self, key: LeaseKey) -> float | None:
        lease = self._leases.get(key)
        return lease.deadline if lease is not None else None

    def __len__(self) -> int:
        return len(self._leases)
