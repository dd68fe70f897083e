"""raftreg.client.calls: retries on another instance, outlier ejection (threshold, growing backoff,
at most half, recovery after the backoff or on a success), balancer feedback, and both shells."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterable

import pytest

from raftreg.client.adaptive import LeastConnectionsBalancer, PeakEwmaBalancer
from raftreg.client.balancers import Balancer, NoInstances, RoundRobinBalancer, make_balancer
from raftreg.client.calls import AsyncServiceCaller, OutlierEjector, ServiceCaller
from raftreg.errors import Unavailable
from raftreg.models import Instance

SEED = 20261205


def inst(instance_id: str, weight: int = 100) -> Instance:
    return Instance(service="cart", id=instance_id, address="10.0.0.1", port=8080, weight=weight)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A discovery stand-in: ``instances`` and a ``version`` bumped on each change."""

    def __init__(self, instances: Iterable[Instance]) -> None:
        self.instances = tuple(instances)
        self.version = 1
        self.reads = 0

    def set(self, instances: Iterable[Instance]) -> None:
        self.instances = tuple(instances)
        self.version += 1

    def get(self) -> tuple[Instance, ...]:
        self.reads += 1
        return self.instances


class Flaky:
    """``fn`` for a call: fails (ConnectionError) on the ids in ``down``, else returns the id."""

    def __init__(self, *down: str) -> None:
        self.down = set(down)
        self.seen: list[str] = []

    def __call__(self, instance: Instance) -> str:
        self.seen.append(instance.id)
        if instance.id in self.down:
            raise ConnectionError(f"{instance.id} refused")
        return instance.id


def caller(source: Source, balancer: Balancer | None = None, ejector: OutlierEjector | None = None) -> ServiceCaller:
    return ServiceCaller(source.get, lambda: source.version, balancer or RoundRobinBalancer(seed=SEED), ejector)


# ---- retries ------------------------------------------------------------------------------------
def test_a_failure_is_retried_on_another_instance() -> None:
    source = Source(inst(n) for n in "abc")
    fn = Flaky("a")
    call = caller(source, RoundRobinBalancer(seed=0))  # seed 0: the turn starts at a
    assert call.call(fn) == "b"
    assert fn.seen == ["a", "b"]


@pytest.mark.parametrize("name", ["random", "round_robin", "weighted_random", "smooth_weighted_round_robin",
                                  "least_connections", "p2c_peak_ewma"])
def test_every_attempt_goes_to_a_different_instance(name: str) -> None:
    source = Source(inst(n) for n in "abcde")
    for retries in range(5):
        fn = Flaky(*"abcde")
        with pytest.raises(ConnectionError) as raised:
            caller(source, make_balancer(name, seed=SEED)).call(fn, retries=retries)
        assert len(fn.seen) == retries + 1 == len(set(fn.seen))
        assert f"{retries + 1} attempt(s) failed" in "".join(raised.value.__notes__)


def test_the_last_exception_is_raised_and_no_instance_is_tried_twice() -> None:
    source = Source([inst("a"), inst("b")])
    fn = Flaky("a", "b")
    with pytest.raises(ConnectionError, match="refused") as raised:
        caller(source).call(fn, retries=5)
    assert sorted(fn.seen) == ["a", "b"]  # two instances: two attempts, not six
    assert raised.value.args[0] == f"{fn.seen[-1]} refused"


def test_no_retry_with_retries_zero() -> None:
    fn = Flaky("a", "b", "c")
    with pytest.raises(ConnectionError):
        caller(Source(inst(n) for n in "abc")).call(fn, retries=0)
    assert len(fn.seen) == 1
    with pytest.raises(ValueError):
        caller(Source([inst("a")])).call(fn, retries=-1)


def test_no_instance_raises_no_instances() -> None:
    source = Source([])
    with pytest.raises(NoInstances):
        caller(source).call(Flaky())
    assert issubclass(NoInstances, Unavailable)
    source.set([inst("a")])
    assert caller(source).call(Flaky()) == "a"


@pytest.mark.parametrize("name", ["ring_hash", "rendezvous", "source_hash"])
def test_keyed_calls_stick_to_one_instance_and_retry_elsewhere(name: str) -> None:
    source = Source(inst(f"i{n}") for n in range(8))
    call = caller(source, make_balancer(name))
    owners = {call.call(Flaky(), key=f"user-{k}") for k in range(3) for _ in range(3)}
    assert len(owners) <= 3  # the same key, the same instance
    owner = call.call(Flaky(), key="user-7")
    fn = Flaky(owner)
    other = call.call(fn, key="user-7")
    assert fn.seen == [owner, other] and other != owner
    assert call.call(Flaky(), key="user-7") == owner  # the retry did not move the key


def test_a_retry_avoids_tried_instances_even_when_the_balancer_insists() -> None:
    class Stubborn(RoundRobinBalancer):
        def _choose(self, key: str | None) -> Instance:
            return self._candidates[0]

    fn = Flaky("a", "b")
    assert caller(Source(inst(n) for n in "abc"), Stubborn(seed=0)).call(fn) == "c"
    assert fn.seen == ["a", "b", "c"]


def test_weight_zero_is_the_last_resort_of_a_retry() -> None:
    class Stubborn(RoundRobinBalancer):
        def _choose(self, key: str | None) -> Instance:
            return self._candidates[0]

    fn = Flaky("a")
    source = Source([inst("a"), inst("b", weight=0), inst("c")])
    assert caller(source, Stubborn(seed=0)).call(fn) == "c"


# ---- balancer feedback -------------------------------------------------------------------------
def test_calls_in_flight_are_counted_and_results_reported() -> None:
    balancer = LeastConnectionsBalancer(seed=SEED)
    source = Source(inst(n) for n in "ab")
    call = caller(source, balancer)

    def inside(instance: Instance) -> int:
        return balancer.in_flight(instance)

    assert call.call(inside) == 1  # counted while fn runs
    assert [balancer.in_flight(i) for i in source.instances] == [0, 0]
    with pytest.raises(ConnectionError):
        call.call(Flaky("a", "b"))
    assert [balancer.in_flight(i) for i in source.instances] == [0, 0]  # held picks released too


def test_peak_ewma_hears_latency_and_failures() -> None:
    clock = Clock()
    balancer = PeakEwmaBalancer(seed=SEED, clock=clock, failure_latency_s=1.0)
    source = Source(inst(n) for n in "ab")
    call = caller(source, balancer)
    fn = Flaky("a")
    call.call(fn)
    first = fn.seen[0]
    costs = {i.id: balancer.cost(i) for i in source.instances}
    if first == "a":  # a failed: charged failure_latency_s; b answered fast
        assert costs["a"] == pytest.approx(1.0) and costs["b"] < 0.01
    else:
        assert costs["b"] < 0.01
    for _ in range(50):
        call.call(fn)
    assert balancer.cost(inst("a")) == pytest.approx(1.0)  # a never tried again while so expensive


def test_the_balancer_is_updated_only_when_the_version_changes() -> None:
    class Counting(RoundRobinBalancer):
        updates = 0

        def update(self, instances: Iterable[Instance]) -> None:
            Counting.updates += 1
            super().update(instances)

    source = Source(inst(n) for n in "abc")
    call = caller(source, Counting(seed=SEED))
    for _ in range(10):
        call.call(Flaky())
    assert Counting.updates == 1 and source.reads == 1
    source.set(inst(n) for n in "abcd")
    assert {call.call(Flaky()) for _ in range(8)} == set("abcd")
    assert Counting.updates == 2 and source.reads == 2


# ---- outlier ejection --------------------------------------------------------------------------
def test_ejection_after_consecutive_failures() -> None:
    clock = Clock()
    ejector = OutlierEjector(clock=clock)
    source = Source(inst(n) for n in "abcd")
    call = caller(source, ejector=ejector)
    fn = Flaky("a")
    for _ in range(12):
        assert call.call(fn) != "a"
    assert fn.seen.count("a") == 3 and ejector.is_ejected(inst("a"))  # the third failure ejects it
    assert ejector.ejections == 1
    seen = len(fn.seen)
    for _ in range(20):
        call.call(fn)
    assert "a" not in fn.seen[seen:] and len(fn.seen) == seen + 20  # no attempt on a while ejected


def test_a_success_resets_the_count() -> None:
    ejector = OutlierEjector(clock=Clock())
    ejector.update([inst("a"), inst("b"), inst("c")])
    for ok in (False, False, True, False, False):
        ejector.on_result(inst("a"), 0.01, ok)
    assert not ejector.is_ejected(inst("a"))
    ejector.on_result(inst("a"), 0.01, False)
    assert ejector.is_ejected(inst("a"))


@pytest.mark.parametrize(("count", "most"), [(1, 0), (2, 1), (3, 1), (4, 2), (5, 2), (10, 5)])
def test_at_most_half_are_ejected(count: int, most: int) -> None:
    clock = Clock()
    ejector = OutlierEjector(clock=clock)
    source = Source(inst(f"i{n}") for n in range(count))
    call = caller(source, ejector=ejector)
    fn = Flaky(*(i.id for i in source.instances))  # every instance fails
    for _ in range(10 * count):
        with pytest.raises(ConnectionError):
            call.call(fn)
    assert len(ejector.ejected()) == most == ejector.max_ejected
    assert len(call.balancer.instances) == count - most


def test_recovery_after_a_growing_backoff() -> None:
    clock = Clock()
    ejector = OutlierEjector(clock=clock, base_ejection_s=1.0, max_ejection_s=30.0)
    a = inst("a")
    ejector.update([a, inst("b"), inst("c")])
    for _ in range(3):
        ejector.on_result(a, 0.01, False)
    durations = []
    for _ in range(7):  # on probation after each backoff: one failure ejects it again, for longer
        assert ejector.is_ejected(a)
        started = clock.now
        while ejector.is_ejected(a):
            clock.now += 0.25
        durations.append(clock.now - started)
        ejector.on_result(a, 0.01, False)
    assert durations == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert [ejector.ejection_s(k) for k in (1, 2, 3, 6, 100)] == [1.0, 2.0, 4.0, 30.0, 30.0]


def test_probation_ends_with_a_success_and_the_level_is_forgiven() -> None:
    clock = Clock()
    ejector = OutlierEjector(clock=clock, forgive_after_s=60.0)
    a = inst("a")
    ejector.update([a, inst("b"), inst("c")])
    for _ in range(3):
        ejector.on_result(a, 0.01, False)
    clock.now += 1.0
    assert not ejector.is_ejected(a)
    ejector.on_result(a, 0.01, True)  # probation over: one failure is not enough any more
    ejector.on_result(a, 0.01, False)
    assert not ejector.is_ejected(a)
    ejector.on_result(a, 0.01, False)
    ejector.on_result(a, 0.01, False)
    assert ejector.is_ejected(a)  # the second ejection: 2 s
    clock.now += 1.5
    assert ejector.is_ejected(a)
    clock.now += 0.5
    assert not ejector.is_ejected(a)
    ejector.on_result(a, 0.01, True)
    clock.now += 60.0  # a minute without an ejection: back to the base
    for _ in range(3):
        ejector.on_result(a, 0.01, False)
    clock.now += 1.0
    assert not ejector.is_ejected(a)


def test_a_success_brings_an_ejected_instance_back_at_once() -> None:
    clock = Clock()
    ejector = OutlierEjector(clock=clock)
    source = Source(inst(n) for n in "abc")
    call = caller(source, ejector=ejector)
    a = inst("a")
    call.call(Flaky())  # the first call hands the set to the ejector
    for _ in range(3):
        ejector.on_result(a, 0.01, False)
    call.call(Flaky())
    assert a not in call.balancer.instances
    ejector.on_result(a, 0.01, True)  # a call that was in flight when it was ejected succeeded
    assert not ejector.is_ejected(a)
    assert {call.call(Flaky()) for _ in range(3)} == set("abc")  # back in the balancer's set


def test_the_ejector_follows_the_set() -> None:
    clock = Clock()
    ejector = OutlierEjector(clock=clock)
    fleet = [inst(f"i{n}") for n in range(4)]
    ejector.update(fleet)
    for victim in fleet[:2]:
        for _ in range(3):
            ejector.on_result(victim, 0.01, False)
    assert ejector.ejected() == {("cart", "i0"), ("cart", "i1")}
    clock.now += 0.5
    generation = ejector.generation
    ejector.update(fleet[:3])  # 3 left: only one may stay ejected
    assert len(ejector.ejected()) == 1 and ejector.generation > generation
    ejector.update(fleet[1:])  # i0 gone: its state with it
    ejector.on_result(fleet[0], 0.01, False)  # outside the set: ignored
    assert len(ejector.ejected()) <= 1
    with pytest.raises(ValueError):
        OutlierEjector(consecutive_failures=0)
    with pytest.raises(ValueError):
        OutlierEjector(base_ejection_s=40.0, max_ejection_s=30.0)


def test_an_ejected_instance_returns_to_the_balancer_after_its_backoff() -> None:
    clock = Clock()
    ejector = OutlierEjector(clock=clock)
    call = caller(Source(inst(n) for n in "abc"), ejector=ejector)
    fn = Flaky("a")
    while not ejector.is_ejected(inst("a")):
        call.call(fn)
    clock.now += 1.0
    fn.down.clear()
    assert "a" in Counter(call.call(fn) for _ in range(6))


# ---- shells ------------------------------------------------------------------------------------
def test_a_cancelled_call_is_released_not_retried_nor_counted() -> None:
    balancer = LeastConnectionsBalancer(seed=SEED)
    ejector = OutlierEjector(consecutive_failures=1, clock=Clock())
    source = Source(inst(n) for n in "abc")
    call = caller(source, balancer, ejector)
    seen: list[str] = []

    def interrupted(instance: Instance) -> None:
        seen.append(instance.id)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call.call(interrupted)
    assert len(seen) == 1 and not ejector.ejected()
    assert all(balancer.in_flight(i) == 0 for i in source.instances)


def test_concurrent_threads_share_one_caller() -> None:
    balancer = LeastConnectionsBalancer(seed=SEED)
    source = Source(inst(n) for n in "abcd")
    call = caller(source, balancer, OutlierEjector())
    barrier = threading.Barrier(8)
    served: Counter[str] = Counter()
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        for _ in range(200):
            got = call.call(Flaky("d"))
            with lock:
                served[got] += 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(served.values()) == 1600 and "d" not in served
    assert all(balancer.in_flight(i) == 0 for i in source.instances)


async def test_async_caller_retries_ejects_and_cancels() -> None:
    clock = Clock()
    ejector = OutlierEjector(clock=clock)
    balancer = LeastConnectionsBalancer(seed=SEED)
    source = Source(inst(n) for n in "abc")
    call = AsyncServiceCaller(source.get, lambda: source.version, balancer, ejector)
    seen: list[str] = []

    async def fn(instance: Instance) -> str:
        seen.append(instance.id)
        await asyncio.sleep(0)
        if instance.id == "a":
            raise ConnectionError("a refused")
        return instance.id

    results = await asyncio.gather(*(call.call(fn) for _ in range(30)))  # 30 at once: all picked first
    assert "a" not in results and seen.count("a") == 10 and ejector.is_ejected(inst("a"))
    assert [await call.call(fn) for _ in range(10)].count("a") == 0 and seen.count("a") == 10

    async def everyone_fails(instance: Instance) -> str:
        raise TimeoutError(instance.id)

    with pytest.raises(TimeoutError) as raised:
        await call.call(everyone_fails)
    assert "2 attempt(s) failed" in raised.value.__notes__[0]  # a is ejected: b and c only

    started = asyncio.Event()

    async def hangs(instance: Instance) -> str:
        started.set()
        await asyncio.Event().wait()
        return instance.id

    task = asyncio.ensure_future(call.call(hangs))
    await started.wait()
    assert sum(balancer.in_flight(i) for i in source.instances) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sum(balancer.in_flight(i) for i in source.instances) == 0

    source.set([])
    with pytest.raises(NoInstances):
        await call.call(fn)
