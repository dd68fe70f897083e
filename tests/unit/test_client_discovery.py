"""Discovery without a cluster: the stale rules of ``DiscoveryCore`` step by step, both shells
against a fake registry (shared per client, wait_ready / wait_for, stale through an outage, an
explicit deregistration honoured), ``watch_service``'s de-duplication, and ``client.service``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from raftreg.client import AsyncRegistryClient, RegistryClient
from raftreg.client.balancers import NoInstances
from raftreg.client.discovery import (
    AsyncDiscoveries,
    Discoveries,
    DiscoveryCore,
    Query,
    achanges,
    changes,
)
from raftreg.client.results import Instances, Registration
from raftreg.client.service import AsyncCallers, Callers, ServiceHandle, registration_of
from raftreg.errors import PermissionDenied, Timeout, Unavailable
from raftreg.models import Instance


def inst(instance_id: str, status: str = "passing", **kw: Any) -> Instance:
    return Instance(service="cart", id=instance_id, address="10.0.0.1", port=80, status=status, **kw)  # type: ignore[arg-type]


def listing(index: int, *items: Instance) -> Instances:
    return Instances(index, "cart", items)


class Recorder:
    def __init__(self) -> None:
        self.changes = 0

    def __call__(self) -> None:
        self.changes += 1


def core() -> tuple[DiscoveryCore, Recorder]:
    seen = Recorder()
    return DiscoveryCore("cart", True, seen), seen


def watch(d: DiscoveryCore, result: Instances) -> Query:
    query = d.query()
    assert not query.confirm
    d.answered(query, result)
    return query


def test_first_answer_makes_it_ready_and_later_answers_bump_the_version() -> None:
    d, seen = core()
    first = d.query()
    assert first == Query(False, None, {"passing": True, "index": None, "wait": None, "deadline": 3.0})
    watch(d, listing(5, inst("a")))
    assert d.ready and d.instances == (inst("a"),) and (d.index, d.version, d.stale) == (5, 1, False)
    assert seen.changes == 1
    blocking = d.query()
    assert blocking.at == 5 and blocking.params["wait"] == 5.0
    watch(d, listing(5, inst("a")))  # the same index: nothing new
    assert (d.version, seen.changes) == (1, 1)
    watch(d, listing(7, inst("a"), inst("b")))
    assert d.instances == (inst("a"), inst("b")) and (d.index, d.version) == (7, 2)


def test_an_empty_first_answer_is_a_ready_empty_list() -> None:
    d, _ = core()
    watch(d, listing(3))
    assert d.ready and d.instances == () and not d.stale and d.query().at == 3


def test_unreachable_keeps_the_last_good_list_and_reports_it_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="raftreg.client")
    d, _ = core()
    watch(d, listing(5, inst("a")))
    assert d.failed(Unavailable("all nodes down")) == 0.0  # the call already tried every node
    assert d.stale and d.stale_events == 1 and d.instances == (inst("a"),)
    for _ in range(3):
        assert 0.0 <= d.failed(Timeout("timed out")) <= 2.0
    assert d.stale_events == 1
    back = d.query()  # a plain read, answered at once, tells when the registry is back
    assert back.at is None and back.params["wait"] is None
    d.answered(back, listing(5, inst("a")))
    assert not d.stale and d.version == 1 and d.query().at == 5
    lines = [r.getMessage() for r in caplog.records if r.name == "raftreg.client"]
    assert len(lines) == 2 and "unreachable" in lines[0] and "[stale]" in lines[0] and "fresh again" in lines[1]


def test_an_emptying_answer_of_failing_instances_is_not_believed() -> None:
    d, _ = core()
    watch(d, listing(5, inst("a"), inst("b")))
    watch(d, listing(8))  # every instance failed its check at once
    check = d.query()
    assert check.confirm and check.params == {"consistent": True, "deadline": 3.0}
    assert d.instances == (inst("a"), inst("b")) and not d.stale  # nothing decided before the check
    d.answered(check, listing(8, inst("a", "critical"), inst("b", "critical")))
    assert d.stale and d.stale_events == 1 and d.instances == (inst("a"), inst("b")) and d.version == 1
    assert d.query().at == 8 and not d.query().confirm
    watch(d, listing(9, inst("b")))  # b passes again: a fresh non-empty answer ends it
    assert not d.stale and d.instances == (inst("b"),) and d.version == 2


def test_deregistered_instances_are_dropped_from_the_kept_list() -> None:
    d, _ = core()
    watch(d, listing(5, inst("a"), inst("b")))
    watch(d, listing(8))
    d.answered(d.query(), listing(8, inst("b", "critical")))  # a was deregistered, b is failing
    assert d.stale and d.instances == (inst("b"),) and d.version == 2


def test_an_explicit_deregistration_of_the_last_instance_empties_the_list() -> None:
    d, seen = core()
    watch(d, listing(5, inst("a")))
    watch(d, listing(9))
    d.answered(d.query(), listing(9))  # the linearizable read has none of them: honoured
    assert d.instances == () and not d.stale and d.stale_events == 0 and d.version == 2 and d.index == 9
    assert seen.changes == 2


def test_an_emptying_read_from_a_lagging_node_is_caught_without_passing_too() -> None:
    d = DiscoveryCore("cart", False, lambda: None)
    watch(d, listing(5, inst("a")))
    watch(d, listing(6))
    d.answered(d.query(), listing(6, inst("a")))
    assert d.stale and d.instances == (inst("a"),)


def test_a_failed_check_counts_as_unreachable_and_is_made_again() -> None:
    d, _ = core()
    watch(d, listing(5, inst("a")))
    watch(d, listing(9))
    assert d.query().confirm
    d.failed(Unavailable("no quorum"))
    assert d.stale and d.stale_events == 1 and d.instances == (inst("a"),)
    again = d.query()
    assert again.confirm
    d.answered(again, listing(9))
    assert d.instances == () and not d.stale


def test_other_api_errors_end_the_watch() -> None:
    d, seen = core()
    assert d.failed(PermissionDenied("no read on cart")) < 0
    assert isinstance(d.error, PermissionDenied) and seen.changes == 1 and not d.stale


class FakeRegistry:
    """A registry with blocking queries (answered at most ``hold`` seconds late)."""

    def __init__(self, *items: Instance) -> None:
        self.items = list(items)
        self.index = 10
        self.down = False
        self.calls = 0
        self.cond = threading.Condition()

    def set(self, *items: Instance) -> None:
        with self.cond:
            self.items = list(items)
            self.index += 1
            self.cond.notify_all()

    def snapshot(self, passing: bool) -> Instances:
        if self.down:
            raise Unavailable("every node is unreachable")
        return listing(self.index, *[i for i in self.items if not passing or i.status == "passing"])

    def sync_instances(self, service: str, *, passing: bool = False, index: int | None = None,
                       hold: float = 0.3, **kw: Any) -> Instances:
        with self.cond:
            self.calls += 1
            if index is not None:
                self.cond.wait_for(lambda: self.index > index or self.down, hold)
            return self.snapshot(passing)

    async def async_instances(self, service: str, *, passing: bool = False, index: int | None = None,
                              **kw: Any) -> Instances:
        self.calls += 1
        deadline = time.monotonic() + 0.3
        while index is not None and self.index <= index and not self.down and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return self.snapshot(passing)


class SyncFakeClient:
    def __init__(self, registry: FakeRegistry) -> None:
        self.instances = registry.sync_instances


class AsyncFakeClient:
    def __init__(self, registry: FakeRegistry) -> None:
        self.instances = registry.async_instances


def test_the_blocking_discovery_is_shared_and_follows_the_registry() -> None:
    registry = FakeRegistry(inst("a"))
    shared = Discoveries(SyncFakeClient(registry))  # type: ignore[arg-type]
    d = shared.get("cart", True)
    assert shared.get("cart", True) is d and shared.get("cart", False) is not d
    d.wait_ready(5)
    assert d.instances == (inst("a"),) and d.ready
    registry.set(inst("a"), inst("b"))
    assert d.wait_for(lambda found: len(found) == 2, 5) == (inst("a"), inst("b"))
    with pytest.raises(TimeoutError):
        d.wait_for(lambda found: len(found) == 3, 0.2)
    registry.down = True
    d.wait_for(lambda found: d.stale, 5)
    assert d.instances == (inst("a"), inst("b")) and d.stale_events == 1
    registry.down = False
    d.wait_for(lambda found: not d.stale, 10)
    registry.set()  # both deregistered
    assert d.wait_for(lambda found: found == (), 5) == () and not d.stale
    shared.close()
    assert shared.get("cart", True) is not d  # closed: the next caller gets a new one


async def test_the_async_discovery_is_shared_and_keeps_the_list_through_failing_health() -> None:
    registry = FakeRegistry(inst("a"))
    shared = AsyncDiscoveries(AsyncFakeClient(registry))  # type: ignore[arg-type]
    d = shared.get("cart", True)
    assert shared.get("cart", True) is d
    await d.wait_ready(5)
    assert d.instances == (inst("a"),)
    registry.set(inst("a", "critical"))
    await d.wait_for(lambda found: d.stale, 5)
    assert d.instances == (inst("a"),) and d.stale_events == 1
    registry.set(inst("a"), inst("b"))
    assert await d.wait_for(lambda found: len(found) == 2, 5) == (inst("a"), inst("b"))
    assert not d.stale
    registry.set()
    await d.wait_for(lambda found: found == (), 5)
    with pytest.raises(TimeoutError):
        await d.wait_for(lambda found: bool(found), 0.1)
    await shared.aclose()
    assert not d._watch.running


async def test_an_api_error_is_raised_by_the_waiters() -> None:
    async def refuse(service: str, **kw: Any) -> Instances:
        raise PermissionDenied("no read on cart")

    class Refusing:
        instances = staticmethod(refuse)

    d = AsyncDiscoveries(Refusing()).get("cart", True)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied):
        await d.wait_ready(5)


def test_changes_skip_answers_whose_instances_did_not_change() -> None:
    answers = [listing(1, inst("a")), listing(2, inst("a")), listing(3, inst("a"), inst("b")), listing(4, inst("b"))]
    assert [a.index for a in changes(iter(answers))] == [1, 3, 4]

    async def source() -> AsyncIterator[Instances]:
        for answer in answers:
            yield answer

    async def collect() -> list[int]:
        return [a.index async for a in achanges(source())]

    assert asyncio.run(collect()) == [1, 3, 4]


def test_registration_of_accepts_instances_registrations_and_mappings() -> None:
    spec = Registration(address="10.0.0.1", port=80, tags=("v1",), ttl=10.0)
    full = Instance(service="cart", id="c1", address="10.0.0.1", port=80, tags=("v1",), ttl=10.0, status="critical",
                    modify_index=4)
    assert registration_of("cart", full) == ("c1", spec)
    assert registration_of("cart", spec, "c2") == ("c2", spec)
    body = {"id": "c3", "service": "cart", "address": "h", "port": 1, "ttl": "5s", "status": "passing", "index": 3}
    assert registration_of("cart", body) == ("c3", {"address": "h", "port": 1, "ttl": "5s"})
    with pytest.raises(ValueError):
        registration_of("cart", spec)
    with pytest.raises(ValueError):
        registration_of("other", full)
    with pytest.raises(ValueError):
        registration_of("cart", {"address": "h", "port": 1})


def test_service_handle_get_instance_balances_over_the_shared_discovery() -> None:
    registry = FakeRegistry(inst("a"), inst("b"), inst("c", "critical"))

    class Client:
        deadline = 5.0
        shared = Discoveries(SyncFakeClient(registry))  # type: ignore[arg-type]

        def discovery(self, name: str, *, passing: bool = True) -> Any:
            return self.shared.get(name, passing)

    cart = ServiceHandle(Client(), "cart")  # type: ignore[arg-type]
    picks = [cart.get_instance() for _ in range(4)]
    assert {p.id for p in picks if p is not None} == {"a", "b"} and all(p is not None for p in picks)
    assert picks[0] != picks[1] and picks[0] == picks[2]  # round robin
    registry.set()
    Client.shared.get("cart", True).wait_for(lambda found: found == (), 5)
    assert cart.get_instance() is None
    Client.shared.close()


def test_the_clients_share_one_discovery_per_service_and_close_it() -> None:
    with RegistryClient(["127.0.0.1:1"], deadline=1.0) as client:
        d = client.discovery("cart")
        assert client.discovery("cart") is d and client.discovery("cart", passing=False) is not d
    assert d.closed

    async def on_a_loop() -> None:
        async with AsyncRegistryClient(["127.0.0.1:1"], deadline=1.0) as aio:
            found = aio.discovery("cart")
            assert aio.discovery("cart") is found
        assert not found._watch.running

    asyncio.run(on_a_loop())


def test_blocking_calls_share_a_caller_and_retry_on_another_instance() -> None:
    registry = FakeRegistry(inst("a"), inst("b"))
    shared = Discoveries(SyncFakeClient(registry))  # type: ignore[arg-type]
    callers = Callers(shared, ready_timeout=5.0)
    tried: list[str] = []

    def fn(instance: Instance) -> str:
        tried.append(instance.id)
        if instance.id == "a":
            raise ConnectionError("a is down")
        return instance.id

    assert [callers.call("cart", fn, "round_robin", 2, True) for _ in range(4)] == ["b"] * 4
    assert "a" in tried and len(callers._all) == 1
    callers.call("cart", fn, "random", 2, True)
    assert len(callers._all) == 2
    shared.close()


async def test_async_calls_wait_for_the_first_list_and_raise_no_instances_when_empty() -> None:
    registry = FakeRegistry(inst("a"))
    shared = AsyncDiscoveries(AsyncFakeClient(registry))  # type: ignore[arg-type]
    callers = AsyncCallers(shared, ready_timeout=5.0)

    async def fn(instance: Instance) -> str:
        return instance.id

    assert await callers.call("cart", fn, "round_robin", 2, True) == "a"
    registry.set()
    await shared.get("cart", True).wait_for(lambda found: found == (), 5)
    with pytest.raises(NoInstances):
        await callers.call("cart", fn, "round_robin", 2, True)
    await shared.aclose()
