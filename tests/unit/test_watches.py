"""WatchHub (per-topic wake-ups, applied-index waits), changed_topics and BodyCache as units."""

from __future__ import annotations

import asyncio
import threading

from raftreg.http.body_cache import BodyCache
from raftreg.models import Instance
from raftreg.node.watches import CATALOG, WAKE_BATCH, WatchHub, changed_topics, service_topic
from raftreg.state.commands import Deregister, Expire, Noop, Register, SetCheckStatus, SetManualStatus
from raftreg.state.registry import Deregistered, Nothing, Registered, StatusSet

A, B = service_topic("a"), service_topic("b")


def inst(service: str, instance_id: str = "i1") -> Instance:
    return Instance(service=service, id=instance_id, address="10.0.0.1", port=80)


async def settle() -> None:
    """Let call_soon_threadsafe drains and woken waiters run."""
    for _ in range(5):
        await asyncio.sleep(0)


def bound_hub(applied: list[int] | None = None) -> WatchHub:
    applied = applied if applied is not None else [0]
    hub = WatchHub(lambda: applied[0])
    hub.bind(asyncio.get_running_loop())
    return hub


def test_changed_topics_only_real_changes() -> None:
    a, b = inst("a"), inst("b")
    assert changed_topics([Register(a)], [Registered(a, changed=True)]) == {A, CATALOG}
    assert changed_topics([Register(a)], [Registered(a, changed=False)]) == set()
    assert changed_topics([Deregister("b", "i1")], [Deregistered(existed=True)]) == {B, CATALOG}
    assert changed_topics([Deregister("b", "i1")], [Deregistered(existed=False)]) == set()
    assert changed_topics([Noop()], [Nothing()]) == set()
    assert changed_topics([Expire("b", "i1", 4)], [Deregistered(existed=True)]) == {B, CATALOG}
    assert changed_topics([Expire("b", "i1", 4)], [Deregistered(existed=False)]) == set()
    changed = StatusSet(inst("b"), changed=True)
    assert changed_topics([SetManualStatus("b", "i1", "warning")], [changed]) == {B, CATALOG}
    assert changed_topics([SetCheckStatus("b", "i1", 1, "passing")], [changed]) == {B, CATALOG}
    assert changed_topics([SetCheckStatus("b", "i1", 1, "passing")], [StatusSet(None, changed=False)]) == set()
    assert changed_topics([Register(a), Register(b)], [Registered(a, changed=True), Registered(b, changed=False)]) == {
        A,
        CATALOG,
    }


async def test_change_wakes_only_watchers_of_that_topic() -> None:
    hub = bound_hub()
    watchers_a = [asyncio.create_task(hub.wait_changed(A, 5.0)) for _ in range(10)]
    watcher_b = asyncio.create_task(hub.wait_changed(B, 5.0))
    await settle()
    assert hub.stats.waiting == 11

    hub.notify_threadsafe(7, frozenset({B, CATALOG}))
    await settle()
    assert watcher_b.done() and watcher_b.result() is True
    assert not any(t.done() for t in watchers_a)
    assert hub.stats.wakeups == 1

    hub.notify_threadsafe(8, frozenset({A}))
    results = await asyncio.wait_for(asyncio.gather(*watchers_a), 2.0)
    assert results == [True] * 10
    assert hub.stats.wakeups == 11 and hub.stats.waiting == 0


async def test_a_big_fan_out_is_woken_in_passes_so_other_requests_get_turns() -> None:
    hub = bound_hub()
    n = 2 * WAKE_BATCH + 1
    watchers = [asyncio.create_task(hub.wait_changed(A, 5.0)) for _ in range(n)]
    await settle()
    hub.notify_threadsafe(3, frozenset({A, CATALOG}))
    seen = []
    for _ in range(50):
        await asyncio.sleep(0)
        seen.append(sum(t.done() for t in watchers))
        if seen[-1] == n:
            break
    assert seen[-1] == n
    partial = sorted({c for c in seen if 0 < c < n})
    assert partial and all(c % WAKE_BATCH == 0 for c in partial), seen
    assert hub.stats.wakeups == n


async def test_wait_times_out_without_change() -> None:
    hub = bound_hub()
    assert await hub.wait_changed(A, 0.05) is False
    assert hub.stats.timeouts == 1 and hub.stats.wakeups == 0


async def test_restore_wakes_every_topic() -> None:
    hub = bound_hub()
    waiters = [asyncio.create_task(hub.wait_changed(t, 5.0)) for t in (A, B, CATALOG)]
    await settle()
    hub.restored_threadsafe()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 2.0) == [True, True, True]
    assert hub.stats.wake_all == 1


async def test_notifications_from_another_thread_are_drained_on_the_loop() -> None:
    hub = bound_hub()
    waiter = asyncio.create_task(hub.wait_changed(A, 5.0))
    await settle()

    def tick_thread() -> None:
        for index in range(1, 501):
            hub.notify_threadsafe(index, frozenset({A} if index == 500 else set()))

    thread = threading.Thread(target=tick_thread)
    thread.start()
    thread.join()
    assert await asyncio.wait_for(waiter, 2.0) is True
    assert hub.applied_index == 500


async def test_wait_applied() -> None:
    applied = [3]
    hub = bound_hub(applied)
    assert await hub.wait_applied(3, 0.01) is True  # already applied: no wait

    later = asyncio.create_task(hub.wait_applied(10, 5.0))
    much_later = asyncio.create_task(hub.wait_applied(20, 5.0))
    await settle()
    assert hub.stats.applied_waiting == 2
    hub.notify_threadsafe(10, frozenset())
    assert await asyncio.wait_for(later, 2.0) is True
    assert not much_later.done()
    hub.advance_applied(25)  # pysyncobj's own entries advance the index through the sampler
    assert await asyncio.wait_for(much_later, 2.0) is True
    assert await hub.wait_applied(1000, 0.02) is False
    assert hub.stats.applied_waiting == 0


async def test_restore_resets_applied_index_to_the_raft_value() -> None:
    applied = [50]
    hub = bound_hub(applied)
    hub.notify_threadsafe(60, frozenset())
    await settle()
    assert hub.applied_index == 60
    applied[0] = 0  # the replica was wiped: it has applied nothing any more
    hub.restored_threadsafe()
    await settle()
    assert hub.applied_index == 0
    assert await hub.wait_applied(60, 0.02) is False


async def test_abandoned_applied_waits_are_pruned() -> None:
    hub = bound_hub()
    for _ in range(200):
        assert await hub.wait_applied(10**9, 0) is False
    assert len(hub._applied_heap) <= 64 + 1


def test_body_cache_hits_only_at_the_same_index() -> None:
    cache = BodyCache(capacity=2)
    cache.put(("s", "a"), 5, b"five")
    assert cache.get(("s", "a"), 5) == b"five"
    assert cache.get(("s", "a"), 6) is None
    cache.put(("s", "b"), 1, b"b")
    cache.get(("s", "a"), 5)  # a is now the most recent
    cache.put(("s", "c"), 1, b"c")  # evicts b, the least recently used
    assert cache.get(("s", "b"), 1) is None
    assert cache.get(("s", "a"), 5) == b"five"
    assert cache.hits == 3 and cache.misses == 2
