"""The self-registration and the discovery cache against real 3-process clusters: a TTL
registration stays visible through three leader kills; a discovery keeps its last good list while
every node is down and recovers when they return; failing health is protected while an explicit
deregistration empties the list; the blocking client's registration and discovery work from a
thread while another thread runs an event loop with the async client; and the blocking registration
deregisters at interpreter exit."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import sys
import threading
import time

import pytest
from cluster_helpers import in_thread

from raftreg.client import AsyncRegistryClient, Instance, NotFound, RegistryClient
from raftreg.testing import LocalCluster, http_json, wait_for

pytestmark = pytest.mark.cluster


def addresses(cluster: LocalCluster) -> list[str]:
    return [cluster.config.node(n).http for n in cluster.names]


def ids(found: tuple[Instance, ...]) -> set[str]:
    return {i.id for i in found}


class VisibilityProbe:
    """Polls ``GET /v1/services/{service}/instances/{id}`` every ~100 ms on a running node other
    than ``avoid`` and measures the longest time between two sightings (an unanswered poll counts
    as unseen)."""

    def __init__(self, cluster: LocalCluster, service: str, instance_id: str) -> None:
        self.cluster = cluster
        self.path = f"/v1/services/{service}/instances/{instance_id}"
        self.avoid: str | None = None
        self.last_seen: float | None = None
        self.longest_gap = 0.0
        self.polls = 0
        self.absent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _seen_now(self) -> bool | None:
        for name in self.cluster.names:
            if name == self.avoid or name not in self.cluster.running():
                continue
            code, _ = http_json(self.cluster.url(name) + self.path, timeout=0.5)
            if code in (200, 404):
                return code == 200
        return None

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            seen = self._seen_now()
            now = time.monotonic()
            self.polls += 1
            if seen:
                if self.last_seen is not None:
                    self.longest_gap = max(self.longest_gap, now - self.last_seen)
                self.last_seen = now
            else:
                self.absent += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.last_seen is not None:  # the gap still open at the end counts too
            self.longest_gap = max(self.longest_gap, time.monotonic() - self.last_seen)


async def test_a_ttl_registration_survives_three_leader_kills(cluster: LocalCluster,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="raftreg.client")
    ttl = 3.0
    probe = VisibilityProbe(cluster, "web", "w1")
    async with AsyncRegistryClient(addresses(cluster), deadline=10.0) as client:
        async with client.registration("web", "w1", address="10.0.0.9", port=8080, ttl="3s") as reg:
            assert reg.registered and reg.index is not None
            probe.start()
            await in_thread(wait_for, lambda: probe.last_seen is not None, 10.0, "the probe to see w1")
            for _ in range(3):
                leader = await in_thread(cluster.leader)
                probe.avoid = leader
                await in_thread(cluster.kill, leader)
                others = [n for n in cluster.names if n != leader]
                await in_thread(cluster.leader, 20.0, others)
                elected = time.monotonic()
                await in_thread(cluster.start_node, leader)
                await in_thread(cluster.wait_node_ready, leader, 30.0)
                probe.avoid = None
                # Past the new leader's re-armed deadline (ttl + grace of one election timeout,
                # at most 1.5 s): the lease lives on heartbeats that reached the new leader.
                await asyncio.sleep(max(0.0, elected + ttl + 2.0 - time.monotonic()))
            await in_thread(wait_for, lambda: reg.registered, 10.0, "the registration to be registered")
            probe.stop()
        assert reg.state == "stopped"
        gone = await client.instances("web", consistent=True)
        assert gone.items == ()
    print(f"w1: {probe.polls} polls, longest gap between sightings {probe.longest_gap:.2f}s (ttl {ttl}s)")
    assert probe.polls > 50 and probe.absent == 0, (probe.polls, probe.absent)
    assert probe.longest_gap < ttl, f"w1 was invisible for {probe.longest_gap:.2f}s (ttl {ttl}s)"
    lines = [r.getMessage() for r in caplog.records if r.name == "raftreg.client"]
    assert len(lines) <= 2 + 2 * 3, lines  # one line per change of state, not per attempt


def test_discovery_keeps_the_last_good_list_while_every_node_is_down(cluster: LocalCluster) -> None:
    with RegistryClient(addresses(cluster), deadline=5.0) as client:
        client.register("api", "a1", {"address": "10.0.0.1", "port": 80})
        found = client.discovery("api")
        found.wait_for(lambda items: ids(items) == {"a1"}, 15.0)
        assert not found.stale and found.stale_events == 0
        for name in cluster.names:
            cluster.kill(name)
        t0 = time.monotonic()
        found.wait_for(lambda items: found.stale, 20.0)
        went_stale = time.monotonic() - t0
        assert ids(found.instances) == {"a1"} and found.stale_events == 1
        for name in cluster.names:
            cluster.start_node(name)
        cluster.wait_ready(timeout=45.0)
        stored = client.register("api", "a2", {"address": "10.0.0.2", "port": 80})
        found.wait_for(lambda items: ids(items) == {"a1", "a2"} and not found.stale, 20.0)
        assert found.index >= stored.index and found.stale_events == 1
    print(f"stale {went_stale:.2f}s after every node was killed")
    assert went_stale < 10.0, f"stale only after {went_stale:.1f}s"


async def test_failing_health_is_protected_but_a_deregistration_empties_the_list(cluster: LocalCluster) -> None:
    async with AsyncRegistryClient(addresses(cluster)) as client:
        await client.register("pay", "p1", {"address": "10.0.0.1", "port": 80})
        found = client.discovery("pay")
        await found.wait_for(lambda items: ids(items) == {"p1"}, 15.0)
        await client.set_status("pay", "p1", "critical", "maintenance")  # every instance fails at once
        await found.wait_for(lambda items: found.stale, 15.0)
        assert ids(found.instances) == {"p1"} and found.stale_events == 1
        await client.set_status("pay", "p1", "passing")
        await found.wait_for(lambda items: not found.stale, 15.0)
        version = found.version
        gone = await client.deregister("pay", "p1")
        await found.wait_for(lambda items: items == (), 15.0)
        assert not found.stale and found.stale_events == 1 and found.index >= gone.index
        assert found.version > version
        cart = client.service("pay")
        assert await cart.get_instance() is None
        await cart.register({"id": "p2", "address": "10.0.0.2", "port": 81})
        await found.wait_for(lambda items: ids(items) == {"p2"}, 15.0)
        picked = await cart.get_instance()
        assert picked is not None and picked.id == "p2"

        async def which(instance: Instance) -> str:
            return instance.id

        assert await client.call("pay", which, balancer="p2c_peak_ewma") == "p2"
        assert await cart.deregister("p2") is not None and await cart.deregister("p2") is None


async def count_ticks(ticks: list[int]) -> None:
    """Counts turns of the loop: proof that it ran while the other thread made blocking calls."""
    for turn in itertools.count(1):
        ticks[0] = turn
        await asyncio.sleep(0.01)


def test_the_blocking_client_from_a_thread_beside_a_running_loop(cluster: LocalCluster) -> None:
    addrs = addresses(cluster)
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    ticks = [0]

    async def async_side() -> list[set[str]]:
        ticking = asyncio.create_task(count_ticks(ticks))
        seen: list[set[str]] = []
        try:
            async with AsyncRegistryClient(addrs) as aio:
                async for answer in aio.watch_service("shop"):
                    seen.append({i.id for i in answer.items})
                    if seen[-1] == {"s1"} and {"s1", "a1"} not in seen:
                        async with aio.registration("shop", "a1", address="10.0.0.3", port=90, ttl="5s"):
                            found = aio.discovery("shop")
                            both = await found.wait_for(lambda items: ids(items) == {"s1", "a1"}, 15.0)
                            seen.append(ids(both))  # the watch itself waits while this block runs
                    if "s1" in seen[-1] or {"s1"} not in seen:
                        continue
                    return seen  # s1 is gone again: the worker's registration ended
        finally:
            ticking.cancel()
        return seen

    try:
        pending = asyncio.run_coroutine_threadsafe(async_side(), loop)
        results: dict[str, object] = {}

        def worker() -> None:  # "a thread": the blocking client, while the loop runs in another
            with RegistryClient(addrs) as client:
                found = client.discovery("shop")
                found.wait_ready(15.0)
                with client.registration("shop", "s1", address="10.0.0.4", port=91, ttl="5s") as reg:
                    results["registered"] = reg.registered
                    found.wait_for(lambda items: "s1" in ids(items), 15.0)
                    found.wait_for(lambda items: ids(items) == {"s1", "a1"}, 20.0)  # the loop's registration
                    found.wait_for(lambda items: ids(items) == {"s1"}, 20.0)  # ... and its exit
                    results["called"] = client.call("shop", lambda instance: instance.id)
                found.wait_for(lambda items: items == (), 15.0)
                results["stale"] = found.stale

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(60)
        assert not thread.is_alive()
        seen = pending.result(timeout=30)
        assert results == {"registered": True, "called": "s1", "stale": False}
        assert seen[0] == set() and seen[1] == {"s1"} and seen[2] == {"s1", "a1"} and seen[-1] == set(), seen
        assert ticks[0] > 1, "the loop did not run beside the blocking client"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


def test_the_blocking_registration_deregisters_at_interpreter_exit(cluster: LocalCluster) -> None:
    script = (
        "import sys\n"
        "from raftreg.client import RegistryClient\n"
        "client = RegistryClient(sys.argv[1:])\n"
        "reg = client.registration('exit', 'e1', address='10.0.0.7', port=70, ttl='30s')\n"
        "reg.start()\n"
        "print(reg.state, reg.index, flush=True)\n"  # no stop(), no close(): the atexit hook deregisters
    )
    done = subprocess.run([sys.executable, "-c", script, *addresses(cluster)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    state, index = done.stdout.split()
    assert state == "registered"
    with RegistryClient(addresses(cluster)) as client:
        with pytest.raises(NotFound):  # a ttl of 30 s: only a deregistration can have removed it so soon
            client.instance("exit", "e1", consistent=True)
        assert client.instances("exit", consistent=True).index > int(index)
