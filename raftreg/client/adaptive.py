"""The load-aware balancers: they follow each instance's calls in flight (and, for P2C, its latency).

* ``LeastConnectionsBalancer`` (``least_connections``): the candidate with the fewest calls in flight.
* ``PeakEwmaBalancer`` (``p2c_peak_ewma``): power of two choices over a peak-EWMA latency times the
  calls in flight.

Both count a call from ``pick`` (or ``acquire_instance``) to ``on_result`` (or ``release``), so use
``acquire(key)`` leases, or report every pick. They follow the rules of ``raftreg.client.balancers``
(health, weights, identity, order, determinism); ``make_balancer`` builds them by name.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from raftreg.client.balancers import InstanceKey, WeightAwareBalancer, identity
from raftreg.models import Instance

_DEFAULT_WEIGHT = 100  # Instance.weight's default


class _Load:
    """What the load-aware balancers know of one instance."""

    __slots__ = ("ewma_s", "in_flight", "stamp")

    def __init__(self, ewma_s: float, stamp: float) -> None:
        self.in_flight = 0
        self.ewma_s = ewma_s  # latency estimate, seconds, as of ``stamp``
        self.stamp = stamp


class LoadAwareBalancer(WeightAwareBalancer):
    """A weight-aware balancer counting calls in flight per instance: ``pick`` starts one,
    ``on_result`` or ``release`` ends it."""

    randomized = True

    def __init__(self, *, seed: int | None, warning_weight: float, initial_latency_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(warning_weight=warning_weight)
        self._rng = random.Random(seed)
        self._clock = clock
        self._initial_latency_s = initial_latency_s
        self._loads: dict[InstanceKey, _Load] = {}  # every instance of the set, critical ones too
        self._pool_loads: list[_Load] = []  # parallel to _pool

    def _rebuild(self) -> None:
        super()._rebuild()
        now = self._clock()
        old = self._loads
        self._loads = {key: old.get(key) or _Load(self._initial_latency_s, now)
                       for key in map(identity, self._instances)}
        self._pool_loads = [self._loads[identity(i)] for i in self._pool]

    def in_flight(self, instance: Instance) -> int:
        """Calls to ``instance`` picked and not yet ended (0 for an instance not in the set)."""
        load = self._loads.get(identity(instance))
        return load.in_flight if load else 0

    def release(self, instance: Instance) -> None:
        """End a call to ``instance`` without a result to report (e.g. it was cancelled)."""
        load = self._loads.get(identity(instance))
        if load is not None and load.in_flight > 0:
            load.in_flight -= 1

    def _started_call(self, instance: Instance) -> None:
        load = self._loads.get(identity(instance))
        if load is not None:
            load.in_flight += 1

    def on_result(self, instance: Instance, latency_s: float, ok: bool) -> None:
        """End the call (``release``)."""
        self.release(instance)


class LeastConnectionsBalancer(LoadAwareBalancer):
    """The candidate with the fewest calls in flight; ties go to the higher effective weight, then
    to a seeded random one of the remaining. O(n) per pick.

    A slow instance holds its calls longer, so it is picked less. Outcomes and latencies are not
    used (a fast-failing instance attracts traffic: prefer P2C peak EWMA where that matters)."""

    name = "least_connections"

    def __init__(self, *, seed: int | None = None, warning_weight: float = 0.5) -> None:
        super().__init__(seed=seed, warning_weight=warning_weight)

    def _choose(self, key: str | None) -> Instance:
        loads = self._pool_loads
        fewest = min(load.in_flight for load in loads)
        tied = [index for index, load in enumerate(loads) if load.in_flight == fewest]
        if len(tied) > 1:
            heaviest = max(self._weights[index] for index in tied)
            tied = [index for index in tied if self._weights[index] == heaviest]
        chosen = tied[0] if len(tied) == 1 else self._rng.choice(tied)
        loads[chosen].in_flight += 1
        return self._pool[chosen]


class PeakEwmaBalancer(LoadAwareBalancer):
    """Power of two choices over a peak-EWMA latency (as in Finagle and Linkerd): draw two distinct
    random candidates, pick the one of lower cost (the fewer calls in flight on a tie). O(1).

    ``cost = ewma_s * exp(-(now - stamp) / decay_s) * (in_flight + 1) * 100 / effective_weight``

    (seconds for an instance of the default weight 100 with no call in flight).

    A result of latency ``L`` (at least ``failure_latency_s`` for a failed call, so that an instance
    failing fast does not look fast) at time ``now`` updates the estimate, with
    ``w = exp(-(now - stamp) / decay_s)``: ``ewma_s = L`` if ``L > ewma_s * w`` (the peak: a slowdown
    counts at once), else ``ewma_s = ewma_s * w + L * (1 - w)``; then ``stamp = now``. The decay
    (time constant ``decay_s``, default 10 s as in Finagle and Linkerd) also pulls an unused
    instance's estimate towards 0, so an instance once slow is tried again. New instances start at
    ``initial_latency_s`` (default 1 ms): optimistic on purpose, since a higher first result replaces
    it at once (the peak) while a too high start would take ``decay_s`` to fade. ``clock``
    (seconds, monotonic) is injectable for tests and simulations.
    """

    name = "p2c_peak_ewma"

    def __init__(self, *, seed: int | None = None, warning_weight: float = 0.5, decay_s: float = 10.0,
                 initial_latency_s: float = 0.001, failure_latency_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if decay_s <= 0 or initial_latency_s <= 0 or failure_latency_s < 0:
            raise ValueError("decay_s and initial_latency_s must be > 0, failure_latency_s >= 0")
        super().__init__(seed=seed, warning_weight=warning_weight, initial_latency_s=initial_latency_s, clock=clock)
        self.decay_s = decay_s
        self.failure_latency_s = failure_latency_s

    def cost(self, instance: Instance) -> float:
        """The cost ``pick`` compares now (``inf`` for an instance outside the weighted pool)."""
        key = identity(instance)
        for index, candidate in enumerate(self._pool):
            if identity(candidate) == key:
                return self._cost(index, self._clock())
        return math.inf

    def _cost(self, index: int, now: float) -> float:
        load = self._pool_loads[index]
        estimate = load.ewma_s * math.exp(-max(0.0, now - load.stamp) / self.decay_s)
        return estimate * (load.in_flight + 1) * _DEFAULT_WEIGHT / self._weights[index]

    def _choose(self, key: str | None) -> Instance:
        size = len(self._pool)
        chosen = 0
        if size > 1:
            first = self._rng.randrange(size)
            second = self._rng.randrange(size - 1)
            if second >= first:  # distinct from first, uniform over the others
                second += 1
            now = self._clock()
            first_cost, second_cost = self._cost(first, now), self._cost(second, now)
            if first_cost != second_cost:
                chosen = first if first_cost < second_cost else second
            else:
                loads = self._pool_loads
                chosen = first if loads[first].in_flight <= loads[second].in_flight else second
        self._pool_loads[chosen].in_flight += 1
        return self._pool[chosen]

    def on_result(self, instance: Instance, latency_s: float, ok: bool) -> None:
        """End the call and fold its latency into the instance's estimate (see the class)."""
        load = self._loads.get(identity(instance))
        if load is None:
            return
        self.release(instance)
        latency = max(0.0, latency_s) if ok else max(latency_s, self.failure_latency_s)
        now = self._clock()
        decay = math.exp(-max(0.0, now - load.stamp) / self.decay_s)
        decayed = load.ewma_s * decay
        load.ewma_s = latency if latency > decayed else decayed + latency * (1.0 - decay)
        load.stamp = now
