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
``raftreg.client.hashing``. The load-aware ones (least connections, P2C peak EWMA), which count
calls in flight, live in ``raftreg.client.adaptive``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from types import TracebackType
from typing import Any, ClassVar

from raftreg.errors import Unavailable
from raftreg.models import Instance

InstanceKey = tuple[str, str]


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
        self.end(exc_type is None if self.ok is None else self.ok)

    @property
    def elapsed_s(self) -> float:
        """Seconds since ``acquire``."""
        return time.perf_counter() - self._started

    def end(self, ok: bool) -> float:
        """Report the call (``on_result`` with the time since ``acquire`` and ``ok``) without a
        ``with`` block; returns that time. Call it once per lease."""
        latency = self.elapsed_s
        self._balancer.on_result(self.instance, latency, ok)
        return latency

    def release(self) -> None:
        """End the lease without a result (the call was cancelled or never made): the balancer's
        ``release``, not ``on_result``. Call it instead of ``end``, once."""
        self._balancer.release(self.instance)


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

    def release(self, instance: Instance) -> None:  # noqa: B027 - optional
        """End a call to ``instance`` without a result to report (cancelled, or picked and not
        made). Balancers that count calls in flight end one here; the others ignore it."""

    def acquire(self, key: str | None = None) -> Lease:
        """``pick(key)`` as a ``Lease`` that reports ``on_result`` when its ``with`` block ends."""
        return Lease(self, self.pick(key))

    def acquire_instance(self, instance: Instance) -> Lease:
        """A ``Lease`` on ``instance``, chosen by the caller instead of ``pick`` (e.g. a retry that
        must avoid the instances already tried). Counted like a pick: a load-aware balancer
        counts the call in flight (if ``instance`` is in its set)."""
        self._started_call(instance)
        return Lease(self, instance)

    def _started_call(self, instance: Instance) -> None:  # noqa: B027 - a hook for the load-aware ones
        """``instance`` was chosen by ``acquire_instance``: count the call if the balancer counts."""

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


# The names, in the order the docs list them; ``make_balancer`` maps each to its class.
BALANCER_NAMES = (
    "random", "round_robin", "weighted_random", "smooth_weighted_round_robin", "least_connections",
    "p2c_peak_ewma", "source_hash", "ring_hash", "rendezvous",
)


def balancer_classes() -> dict[str, type[Balancer]]:
    """Name -> class for every balancer of ``BALANCER_NAMES``."""
    # Imported here: the balancers of ``adaptive`` and ``hashing`` subclass this module's classes.
    from raftreg.client import adaptive, hashing

    classes: list[type[Balancer]] = [
        RandomBalancer, RoundRobinBalancer, WeightedRandomBalancer, SmoothWeightedRoundRobinBalancer,
        adaptive.LeastConnectionsBalancer, adaptive.PeakEwmaBalancer, hashing.SourceHashBalancer,
        hashing.RingHashBalancer, hashing.RendezvousBalancer,
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
