"""Client-side load balancers: which instance of a service the next call goes to.

Every balancer is a ``Balancer``: ``update(instances)`` replaces the set, ``pick(key)`` chooses an
instance, ``on_result(instance, latency_s, ok)`` reports how a call to it went, and
``acquire(key)`` wraps the three in a ``with`` block (a ``Lease``, which times the call).
``make_balancer(name, seed=..., **options)`` builds one by name (``BALANCER_NAMES``).

Rules every balancer follows:

* Health: a ``critical`` instance is never picked unless every instance is critical (then all of
  them are candidates: a call to an instance reported failing beats no call, and the status may be
  stale). Weight-aware balancers multiply the weight of a ``warning`` instance by
  ``warning_weight`` (default 0.5, in [0, 1]).
* Weights: weight-aware balancers (weighted random, smooth weighted round robin, least connections,
  source hash, rendezvous, P2C peak EWMA, and the ring with ``weighted=True``) use
  ``Instance.weight``; an instance whose effective weight is 0 gets no traffic, unless every
  candidate's is 0 (then all count as equal). The others (random, round robin, the unweighted ring)
  ignore weights and treat ``warning`` like ``passing``.
* Identity: an instance is its ``(service, id)``. ``update`` keeps per-instance state (in-flight
  count, latency average, round-robin credit) for the instances that stay, also through status
  changes, and drops it for those that go. A result reported for an instance no longer in the set
  is ignored. Two instances with the same identity in one update raise ``ValueError``.
* Order: instances are sorted by identity on update, so picks depend only on the set, the seed and
  the calls made, never on the order the server listed the instances in.
* Determinism: a balancer that draws random numbers owns a ``random.Random(seed)``: the same seed
  and the same calls give the same picks (``seed=None`` seeds from the OS).
* Empty set: ``pick`` raises ``NoInstances`` (an ``Unavailable``: retry later).
* Not thread-safe: guard a balancer shared by threads with a lock. No method awaits, so asyncio
  code needs none.

The key-affine balancers (source hash, ring, rendezvous) need ``pick(key=...)``; they live in
``raftreg.client.hashing``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, ClassVar

from raftreg.errors import Unavailable
from raftreg.models import Instance

InstanceKey = tuple[str, str]
_DEFAULT_WEIGHT = 100  # Instance.weight's default


def identity(instance: Instance) -> InstanceKey:
    """``(service, id)``: what balancer state is keyed by."""
    return (instance.service, instance.id)


class NoInstances(Unavailable):
    """``pick`` found no instance to choose from: the set given to ``update`` was empty."""


class Lease:
    """One call to a picked instance: ``with balancer.acquire(key) as lease: call(lease.instance)``.

    On leaving the block the call's duration (since ``acquire``) is reported with ``on_result``;
    ``ok`` is whether the block raised, unless ``lease.ok`` was set (e.g. ``True`` for a NotFound
    that says nothing about the instance's health).
    """

    __slots__ = ("_balancer", "_started", "instance", "ok")

    def __init__(self, balancer: Balancer, instance: Instance) -> None:
        self._balancer = balancer
        self._started = time.perf_counter()
        self.instance = instance
        self.ok: bool | None = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        ok = exc_type is None if self.ok is None else self.ok
        self._balancer.on_result(self.instance, time.perf_counter() - self._started, ok)


class Balancer(ABC):
    """The interface, and the candidate bookkeeping shared by every balancer (see the module)."""

    name: ClassVar[str]
    randomized: ClassVar[bool] = False  # draws random numbers: takes ``seed``

    def __init__(self) -> None:
        self._instances: tuple[Instance, ...] = ()
        self._candidates: list[Instance] = []

    @property
    def instances(self) -> tuple[Instance, ...]:
        """Every instance of the last ``update``, sorted by identity."""
        return self._instances

    @property
    def candidates(self) -> tuple[Instance, ...]:
        """The instances ``pick`` may return: the non-critical ones, or all if all are critical."""
        return tuple(self._candidates)

    def update(self, instances: Iterable[Instance]) -> None:
        """Replace the set of instances (see the module for what is kept)."""
        ordered = sorted(instances, key=identity)
        for before, after in itertools.pairwise(ordered):
            if identity(before) == identity(after):
                raise ValueError(f"instance {identity(after)} appears twice")
        self._instances = tuple(ordered)
        self._candidates = [i for i in ordered if i.status != "critical"] or ordered
        self._rebuild()

    def pick(self, key: str | None = None) -> Instance:
        """The instance for the next call (``key`` matters only to the key-affine balancers).

        Raises ``NoInstances`` when the set is empty."""
        if not self._candidates:
            raise NoInstances("no instance to pick from: the balancer's set is empty")
        return self._choose(key)

    def on_result(self, instance: Instance, latency_s: float, ok: bool) -> None:  # noqa: B027 - optional
        """Report a call to ``instance`` (a pick's result) that took ``latency_s`` and succeeded or
        not. Balancers that count calls in flight end one here; the others ignore it."""

    def acquire(self, key: str | None = None) -> Lease:
        """``pick(key)`` as a ``Lease`` that reports ``on_result`` when its ``with`` block ends."""
        return Lease(self, self.pick(key))

    def _rebuild(self) -> None:  # noqa: B027 - a hook: most balancers keep nothing per set
        """Recompute what ``_choose`` needs after ``_candidates`` changed."""

    @abstractmethod
    def _choose(self, key: str | None) -> Instance:
        """Choose among ``_candidates`` (never empty here)."""


class WeightAwareBalancer(Balancer):
    """A balancer using ``Instance.weight``, scaled down for ``warning`` instances: subclasses choose
    among ``_pool`` (the candidates of positive effective weight) weighted by ``_weights``."""

    def __init__(self, *, warning_weight: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= warning_weight <= 1.0:
            raise ValueError("warning_weight must be in [0, 1]")
        self.warning_weight = warning_weight
        self._pool: list[Instance] = []  # candidates of positive effective weight
        self._weights: list[float] = []  # their effective weights, parallel to _pool

    def effective_weight(self, instance: Instance) -> float:
        """``instance.weight``, times ``warning_weight`` if its status is ``warning``."""
        return instance.weight * (self.warning_weight if instance.status == "warning" else 1.0)

    def _rebuild(self) -> None:
        weighted = [(i, self.effective_weight(i)) for i in self._candidates]
        if not any(weight > 0 for _, weight in weighted):
            weighted = [(i, 1.0) for i in self._candidates]
        self._pool = [i for i, weight in weighted if weight > 0]
        self._weights = [weight for _, weight in weighted if weight > 0]


class RandomBalancer(Balancer):
    """A uniformly random candidate per pick (weights ignored)."""

    name = "random"
    randomized = True

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__()
        self._rng = random.Random(seed)

    def _choose(self, key: str | None) -> Instance:
        return self._rng.choice(self._candidates)


class RoundRobinBalancer(Balancer):
    """Each candidate in turn, in identity order (weights ignored).

    The first pick is at a seeded random position, so clients started together do not all begin
    with the same instance. After ``update`` the turn goes on with the first instance after the
    last one picked."""

    name = "round_robin"
    randomized = True

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__()
        self._next = random.Random(seed).randrange(1 << 30)
        self._last: Instance | None = None

    def _rebuild(self) -> None:
        if self._last is not None:
            keys = [identity(i) for i in self._candidates]
            self._next = bisect.bisect_right(keys, identity(self._last))

    def _choose(self, key: str | None) -> Instance:
        index = self._next % len(self._candidates)
        self._next = index + 1
        self._last = self._candidates[index]
        return self._last


class WeightedRandomBalancer(WeightAwareBalancer):
    """A random candidate with probability proportional to its effective weight: a bisect over the
    cumulative weights, O(log n) per pick."""

    name = "weighted_random"
    randomized = True

    def __init__(self, *, seed: int | None = None, warning_weight: float = 0.5) -> None:
        super().__init__(warning_weight=warning_weight)
        self._rng = random.Random(seed)
        self._cumulative: list[float] = []

    def _rebuild(self) -> None:
        super()._rebuild()
        self._cumulative = list(itertools.accumulate(self._weights))

    def _choose(self, key: str | None) -> Instance:
        point = self._rng.random() * self._cumulative[-1]
        # hi: a product rounded up to the total still lands on the last instance.
        return self._pool[bisect.bisect_right(self._cumulative, point, hi=len(self._pool) - 1)]


class SmoothWeightedRoundRobinBalancer(WeightAwareBalancer):
    """nginx's smooth weighted round robin: deterministic, proportional to the effective weights,
    and spread out (weights a=5, b=1, c=1 give a a b a c a a, not a a a a a b c). O(n) per pick.

    Each pick adds every instance's weight to its credit, picks the highest credit (the first in
    identity order on a tie) and takes the total weight off the winner's credit. Credits of
    instances that stay are kept across ``update``."""

    name = "smooth_weighted_round_robin"

    def __init__(self, *, warning_weight: float = 0.5) -> None:
        super().__init__(warning_weight=warning_weight)
        self._credits: list[float] = []
        self._total = 0.0

    def _rebuild(self) -> None:
        previous = dict(zip((identity(i) for i in self._pool), self._credits, strict=True))
        super()._rebuild()
        self._credits = [previous.get(identity(i), 0.0) for i in self._pool]
        self._total = sum(self._weights)

    def _choose(self, key: str | None) -> Instance:
        credits = self._credits
        best, best_credit = 0, -math.inf
        for index, weight in enumerate(self._weights):
            credit = credits[index] + weight
            credits[index] = credit
            if credit > best_credit:
                best, best_credit = index, credit
        credits[best] -= self._total
        return self._pool[best]


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


# The names, in the order the docs list them; ``make_balancer`` maps each to its class.
BALANCER_NAMES = (
    "random", "round_robin", "weighted_random", "smooth_weighted_round_robin", "least_connections",
    "p2c_peak_ewma", "source_hash", "ring_hash", "rendezvous",
)


def balancer_classes() -> dict[str, type[Balancer]]:
    """Name -> class for every balancer of ``BALANCER_NAMES``."""
    # Imported here: the key-affine balancers of ``hashing`` subclass this module's classes.
    from raftreg.client import hashing

    classes: list[type[Balancer]] = [
        RandomBalancer, RoundRobinBalancer, WeightedRandomBalancer, SmoothWeightedRoundRobinBalancer,
        LeastConnectionsBalancer, PeakEwmaBalancer, hashing.SourceHashBalancer, hashing.RingHashBalancer,
        hashing.RendezvousBalancer,
    ]
    return {cls.name: cls for cls in classes}


def make_balancer(name: str, *, seed: int | None = None, **options: Any) -> Balancer:
    """The balancer called ``name`` (one of ``BALANCER_NAMES``) with its keyword ``options``.

    ``seed`` goes to the balancers that draw random numbers; the others are deterministic and ignore
    it. An unknown name raises ``ValueError``, an option the balancer does not take ``TypeError``."""
    cls = balancer_classes().get(name)
    if cls is None:
        raise ValueError(f"unknown balancer {name!r}; known: {', '.join(BALANCER_NAMES)}")
    if cls.randomized:
        options["seed"] = seed
    return cls(**options)
