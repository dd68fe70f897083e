"""Calls that survive failures: pick an instance, run the caller's function on it, retry a failure on
another instance, and eject instances that keep failing (outlier ejection).

    caller = ServiceCaller(lambda: found.instances, lambda: found.version, make_balancer("p2c_peak_ewma"),
                           OutlierEjector())
    cart = caller.call(lambda i: fetch(f"http://{i.address}:{i.port}/cart/ann"))

``AsyncServiceCaller`` is the same with ``await caller.call(async_fn)``. ``source`` gives the current
instances (e.g. a discovery cache's ``instances``), ``version`` a number that changes whenever they
change (its ``version``): the balancer is updated only when it does (or when the ejected set
changes), so a call costs one ``version()`` and one pick, not a rebuild.

Contract of ``call(fn, retries=2, *, key=None)``:

* Each attempt takes a lease from the balancer (``acquire(key)``: load-aware balancers count the
  call in flight until it ends), runs ``fn(instance)`` and reports the outcome and latency to the
  balancer (``on_result``) and to the ejector. A return is a success; any ``Exception`` is a failure
  of that instance. Make ``fn`` return (not raise) answers that say nothing about the instance's
  health, such as an application-level "not found".
* A failure is retried at once on a *different* instance, up to ``retries`` more attempts, each on
  an instance this call has not tried yet. The next instance is the balancer's pick; picks that
  return an instance already tried are held (so least connections and P2C see them as load and turn
  elsewhere) and released, and a keyed call retries with the keys ``f"{key}#1"``, ``f"{key}#2"``...
  (another hash, so another instance for the hashing balancers); when no bounded number of picks
  finds an untried instance, the first untried candidate in identity order is used. When every
  attempt failed, or no untried instance is left, the last exception is re-raised (with a note
  listing the attempts).
* No instance at all (after ejection, which never takes more than half): ``NoInstances`` (an
  ``Unavailable``). A ``BaseException`` that is not an ``Exception`` (cancellation, ``KeyboardInterrupt``)
  ends the lease without a result (``release``) and propagates; it is not retried.

The decisions are made by ``CallPlan`` (sans I/O, shared by both shells): a shell only runs ``fn``.
``ServiceCaller`` is thread-safe (one lock around the plan steps; balancers and the ejector are not
thread-safe, and ``fn`` runs outside the lock, so calls run concurrently). ``AsyncServiceCaller``
needs no lock (no plan step awaits) but belongs to one event loop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from raftreg.client.balancers import Balancer, InstanceKey, Lease, NoInstances, identity
from raftreg.models import Instance

T = TypeVar("T")

__all__ = ["AsyncServiceCaller", "CallPlan", "CallTarget", "NoInstances", "OutlierEjector", "ServiceCaller"]


@dataclass(slots=True)
class _Health:
    """What the ejector knows of one instance."""

    failures: int = 0  # consecutive failures
    level: int = 0  # ejections so far, forgiven after ``forgive_after_s`` without one
    until: float | None = None  # ejected until then (clock seconds); None: not ejected
    probation: bool = False  # back after its backoff: the next failure ejects it again at once
    last_end: float = -math.inf  # when its last ejection ended


class OutlierEjector:
    """Outlier ejection by consecutive failures, with a growing backoff (Envoy's "consecutive 5xx",
    made deterministic and clocked by an injectable ``clock``).

    * ``consecutive_failures`` (default 3) failures in a row eject an instance.
    * The k-th ejection (k = 1, 2, ...) lasts ``min(max_ejection_s, base_ejection_s * 2**(k-1))``:
      1, 2, 4, 8, 16, 30, 30... s by default. The count is forgiven (back to 0) once the instance
      went ``forgive_after_s`` (default ``max_ejection_s``) since its last ejection ended without
      another one.
    * At most ``floor(max_ejected_fraction * n)`` of the ``n`` instances of the set are ejected at
      once (default half: 1 of 2 or 3, none of 1): a failing instance beyond that stays in use (and
      is ejected at a later failure if there is room then). If the set shrinks below what the
      ejected ones allow, those whose ejection ends soonest come back first.
    * An instance comes back when its backoff ends, on probation: its next failure ejects it again
      (for the next, longer backoff) without waiting for ``consecutive_failures``; its next success
      ends the probation. A success reported for an ejected instance (a call that was in flight)
      brings it back at once. Any success resets the consecutive failures.

    ``update(instances)`` sets the instances (keeping the state of those that stay, by
    ``(service, id)``); results for instances outside the set are ignored, so call it first.
    ``generation`` changes whenever the ejected set does. Not thread-safe (``ServiceCaller`` holds
    its lock around it).
    """

    def __init__(self, *, consecutive_failures: int = 3, base_ejection_s: float = 1.0, max_ejection_s: float = 30.0,
                 max_ejected_fraction: float = 0.5, forgive_after_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if consecutive_failures < 1:
            raise ValueError("consecutive_failures must be >= 1")
        if not 0 < base_ejection_s <= max_ejection_s:
            raise ValueError("need 0 < base_ejection_s <= max_ejection_s")
        if not 0.0 <= max_ejected_fraction <= 1.0:
            raise ValueError("max_ejected_fraction must be in [0, 1]")
        self.consecutive_failures = consecutive_failures
        self.base_ejection_s = base_ejection_s
        self.max_ejection_s = max_ejection_s
        self.max_ejected_fraction = max_ejected_fraction
        self.forgive_after_s = max_ejection_s if forgive_after_s is None else forgive_after_s
        self._clock = clock
        self._health: dict[InstanceKey, _Health] = {}
        self._ejected: dict[InstanceKey, float] = {}  # key -> ejected until
        self.generation = 0
        self.ejections = 0  # ejections so far, in total

    @property
    def max_ejected(self) -> int:
        """How many instances of the current set may be ejected at once."""
        return math.floor(self.max_ejected_fraction * len(self._health))

    def update(self, instances: Iterable[Instance]) -> None:
        """Set the instances: state is kept for those that stay, dropped for those that go."""
        old = self._health
        self._health = {key: old.get(key) or _Health() for key in map(identity, instances)}
        gone = [key for key in self._ejected if key not in self._health]
        for key in gone:
            del self._ejected[key]
        now = self._clock()
        excess = len(self._ejected) - self.max_ejected
        for key in sorted(self._ejected, key=self._ejected.__getitem__)[:max(0, excess)]:
            self._return(key, now, probation=True)
        if gone or excess > 0:
            self.generation += 1

    def ejected(self) -> frozenset[InstanceKey]:
        """The identities ejected now (those whose backoff ended come back first)."""
        now = self._clock()
        for key in [key for key, until in self._ejected.items() if until <= now]:
            self._return(key, now, probation=True)
        return frozenset(self._ejected)

    def is_ejected(self, instance: Instance) -> bool:
        return identity(instance) in self.ejected()

    def eligible(self, instances: Iterable[Instance]) -> list[Instance]:
        """``instances`` without the ejected ones."""
        out = self.ejected()
        return [i for i in instances if identity(i) not in out]

    def ejection_s(self, ejection: int) -> float:
        """How long the ``ejection``-th ejection (1, 2, ...) of an instance lasts."""
        return min(self.max_ejection_s, self.base_ejection_s * 2.0 ** min(ejection - 1, 64))

    def on_result(self, instance: Instance, latency_s: float, ok: bool) -> None:
        """Count a call's outcome (the latency is not used: slowness is P2C's business)."""
        key = identity(instance)
        health = self._health.get(key)
        if health is None:
            return
        now = self._clock()
        self.ejected()  # backoffs that ended: the instance is on probation now
        if ok:
            health.failures = 0
            health.probation = False
            if health.until is not None:
                self._return(key, now, probation=False)
            return
        health.failures += 1
        if health.until is None and (health.probation or health.failures >= self.consecutive_failures) \
                and len(self._ejected) < self.max_ejected:
            if now - health.last_end >= self.forgive_after_s:
                health.level = 0
            health.level += 1
            health.until = now + self.ejection_s(health.level)
            health.probation = False
            self._ejected[key] = health.until
            self.ejections += 1
            self.generation += 1

    def _return(self, key: InstanceKey, now: float, *, probation: bool) -> None:
        health = self._health[key]
        health.until, health.last_end, health.probation, health.failures = None, now, probation, 0
        del self._ejected[key]
        self.generation += 1


class CallTarget:
    """What a caller shares between its calls: the instance source, the balancer (fed with the
    instances not ejected) and the ejector. Not thread-safe: the shells guard it."""

    def __init__(self, source: Callable[[], Iterable[Instance]], version: Callable[[], int], balancer: Balancer,
                 ejector: OutlierEjector | None) -> None:
        self.source = source
        self.version = version
        self.balancer = balancer
        self.ejector = ejector
        self._instances: tuple[Instance, ...] = ()  # the source's, as of ``_version``
        self._version: int | None = None
        self._generation = 0  # the ejector's generation the balancer's set reflects

    def refresh(self) -> None:
        """Update the balancer (and the ejector's set) if the version or the ejected set changed."""
        version = self.version()
        ejector = self.ejector
        changed = self._version is None or version != self._version
        if changed:
            self._instances = tuple(self.source())
            self._version = version
            if ejector is not None:
                ejector.update(self._instances)
        if ejector is None:
            if changed:
                self.balancer.update(self._instances)
            return
        ejector.ejected()  # ends the backoffs that are over (a change of the ejected set)
        if changed or ejector.generation != self._generation:
            self.balancer.update(ejector.eligible(self._instances))
            self._generation = ejector.generation

    def report(self, lease: Lease, ok: bool) -> None:
        """End ``lease`` with its outcome: the balancer and the ejector hear of it."""
        latency = lease.end(ok)
        if self.ejector is not None:
            self.ejector.on_result(lease.instance, latency, ok)


_PICK_BUDGET = 64  # picks a retry may spend looking for an untried instance (see the module)


class CallPlan:
    """One ``call``: which instance each attempt goes to, and whether a failure is retried (the
    sans-I/O core of both shells; each method runs under the shell's lock and never blocks).

    ``first()`` -> the lease of the first attempt (or raises ``NoInstances``); after the attempt,
    exactly one of ``succeeded(lease)``, ``failed(lease, exc)`` (-> the next attempt's lease, or None:
    re-raise ``exc``) or ``abandoned(lease)`` (cancelled: no result)."""

    def __init__(self, target: CallTarget, retries: int = 2, key: str | None = None) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self._target = target
        self._key = key
        self._attempts_left = retries + 1
        self._tried: set[InstanceKey] = set()
        self.failures: list[str] = []  # "service/id: error" per failed attempt

    def first(self) -> Lease:
        self._target.refresh()
        lease = self._target.balancer.acquire(self._key)
        self._tried.add(identity(lease.instance))
        return lease

    def succeeded(self, lease: Lease) -> None:
        self._target.report(lease, True)

    def abandoned(self, lease: Lease) -> None:
        lease.release()

    def failed(self, lease: Lease, exc: BaseException) -> Lease | None:
        """Report the failure; the lease of the retry, or None when the call has failed."""
        self._target.report(lease, False)
        instance = lease.instance
        self.failures.append(f"{instance.service}/{instance.id}: {type(exc).__name__}: {exc}")
        self._attempts_left -= 1
        if self._attempts_left <= 0:
            return None
        self._target.refresh()
        return self._untried()

    def note(self) -> str:
        """A summary of the failed attempts, for the exception re-raised at the end."""
        return f"{len(self.failures)} attempt(s) failed: " + "; ".join(self.failures)

    def _untried(self) -> Lease | None:
        balancer, tried = self._target.balancer, self._tried
        untried = [i for i in balancer.candidates if identity(i) not in tried]
        if not untried:
            return None
        held: list[Lease] = []
        chosen: Lease | None = None
        for n in range(1, min(_PICK_BUDGET, 2 * len(balancer.candidates) + 2) + 1):
            lease = balancer.acquire(None if self._key is None else f"{self._key}#{n}")
            if identity(lease.instance) not in tried:
                chosen = lease
                break
            held.append(lease)  # keep it counted while looking further: load-aware balancers turn away
        for lease in held:
            lease.release()
        if chosen is None:  # weight-0 instances last: they get traffic only as the last resort
            chosen = balancer.acquire_instance(min(untried, key=lambda i: (i.weight == 0, identity(i))))
        self._tried.add(identity(chosen.instance))
        return chosen


class _Caller:
    """What both callers hold: the call target over the instance source, balancer and ejector."""

    def __init__(self, source: Callable[[], Iterable[Instance]], version: Callable[[], int], balancer: Balancer,
                 ejector: OutlierEjector | None = None) -> None:
        self._target = CallTarget(source, version, balancer, ejector)

    @property
    def balancer(self) -> Balancer:
        return self._target.balancer

    @property
    def ejector(self) -> OutlierEjector | None:
        return self._target.ejector


class ServiceCaller(_Caller):
    """Blocking calls over a balancer with retries and outlier ejection (see the module); thread-safe."""

    def __init__(self, source: Callable[[], Iterable[Instance]], version: Callable[[], int], balancer: Balancer,
                 ejector: OutlierEjector | None = None) -> None:
        super().__init__(source, version, balancer, ejector)
        self._lock = threading.Lock()

    def call(self, fn: Callable[[Instance], T], retries: int = 2, *, key: str | None = None) -> T:
        """``fn(instance)`` on a picked instance, retried on other instances (see the module)."""
        with self._lock:
            plan = CallPlan(self._target, retries, key)
            lease = plan.first()
        while True:
            try:
                result = fn(lease.instance)
            except Exception as exc:
                with self._lock:
                    retry = plan.failed(lease, exc)
                if retry is None:
                    exc.add_note(plan.note())
                    raise
                lease = retry
                continue
            except BaseException:
                with self._lock:
                    plan.abandoned(lease)
                raise
            with self._lock:
                plan.succeeded(lease)
            return result


class AsyncServiceCaller(_Caller):
    """``ServiceCaller`` for coroutines: ``await caller.call(async_fn)``; one event loop only."""

    async def call(self, fn: Callable[[Instance], Awaitable[T]], retries: int = 2, *, key: str | None = None) -> T:
        """``await fn(instance)`` on a picked instance, retried on other instances (see the module)."""
        plan = CallPlan(self._target, retries, key)
        lease = plan.first()
        while True:
            try:
                result = await fn(lease.instance)
            except Exception as exc:
                retry = plan.failed(lease, exc)
                if retry is None:
                    exc.add_note(plan.note())
                    raise
                lease = retry
                continue
            except BaseException:
                plan.abandoned(lease)
                raise
            plan.succeeded(lease)
            return result
