"""Both client shells against a real 3-node cluster: typed results that carry the index, the
blocking client beside and inside a running event loop, and reads and writes that go on through
a leader kill and a graceful leader stop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from cluster_helpers import in_thread

from raftreg.client import AsyncRegistryClient, NotFound, Registration, RegistryClient
from raftreg.testing import LocalCluster, http_json, wait_for

pytestmark = pytest.mark.cluster


def addresses(cluster: LocalCluster) -> list[str]:
    return [cluster.config.node(n).http for n in cluster.names]


def spec(port: int = 80) -> Registration:
    return Registration(address="10.0.0.1", port=port, tags=("v1",))


def test_both_shells_register_and_read_with_the_index(cluster: LocalCluster) -> None:
    addrs = addresses(cluster)
    with RegistryClient(addrs) as client:
        first = client.register("cart", "c1", spec())
        assert first.index > 0 and first.instance.modify_index == first.index

        async def through_async() -> tuple[list[str], int, int]:
            async with AsyncRegistryClient(addrs) as aio:
                seen = await aio.instances("cart", min_index=first.index)  # any node: reads its writer's write
                second = await aio.register("cart", "c2", {"address": "10.0.0.2", "port": 81, "ttl": "1h"})
                return [i.id for i in seen.items], seen.index, second.index

        ids, seen_index, second = asyncio.run(through_async())
        assert ids == ["c1"] and seen_index >= first.index
        assert second > first.index

        for addr in addrs:  # every node, once it applied the write
            with RegistryClient([addr]) as one:
                listing = one.instances("cart", min_index=second)
                assert ([i.id for i in listing.items], listing.index) == (["c1", "c2"], second)
        got = client.instance("cart", "c2", consistent=True)
        assert got.index == got.instance.modify_index == second and got.instance.ttl == 3600.0
        assert client.services(min_index=second).items[0].instances == 2
        status = client.cluster_status()
        assert status.leader == cluster.leader() and status.index >= second and len(status.members) == 3
        gone = client.deregister("cart", "c1")
        assert gone.index > second
        with pytest.raises(NotFound):
            client.instance("cart", "c1", min_index=gone.index)
        assert client.instances("cart", min_index=gone.index).index == gone.index


async def test_the_blocking_client_inside_a_coroutine_and_from_a_thread_beside_the_loop(
        cluster: LocalCluster) -> None:
    addrs = addresses(cluster)
    with RegistryClient(addrs) as client:
        # Called right here, in a coroutine of the running loop: no asyncio.run, no nested loop.
        inside = client.register("loop", "inside", spec())
        assert [i.id for i in client.instances("loop", min_index=inside.index).items] == ["inside"]

        # From a worker thread while this thread's loop keeps running its tasks.
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        def worker() -> list[int]:
            return [client.register("loop", f"t{k}", spec(100 + k)).index for k in range(20)]

        task = asyncio.create_task(ticker())
        try:
            indexes = await asyncio.to_thread(worker)
        finally:
            task.cancel()
        assert indexes == sorted(indexes) and len(set(indexes)) == 20
        assert ticks > 1, "the loop did not run while the thread made blocking calls"

        # The async shell on this loop sees what the thread wrote.
        async with AsyncRegistryClient(addrs) as aio:
            listing = await aio.instances("loop", min_index=indexes[-1])
        assert len(listing.items) == 21 and listing.index == indexes[-1]


def test_the_blocking_client_beside_a_loop_running_in_another_thread(cluster: LocalCluster) -> None:
    addrs = addresses(cluster)
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        async def async_writes() -> list[int]:
            async with AsyncRegistryClient(addrs) as aio:
                return [(await aio.register("beside", f"a{k}", spec(200 + k))).index for k in range(10)]

        pending = asyncio.run_coroutine_threadsafe(async_writes(), loop)
        with RegistryClient(addrs) as client:
            sync_indexes = [client.register("beside", f"s{k}", spec(300 + k)).index for k in range(10)]
            async_indexes = pending.result(timeout=60)
            last = max(sync_indexes + async_indexes)
            listing = client.instances("beside", min_index=last)
        assert len(listing.items) == 20 and listing.index == last
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


def test_reads_and_writes_go_on_through_a_leader_kill_and_a_leader_stop(cluster: LocalCluster) -> None:
    addrs = addresses(cluster)
    acked: list[tuple[float, int]] = []  # (time, index) of every write, each read back at once
    errors: list[BaseException] = []
    stop = threading.Event()

    def load(client: RegistryClient) -> None:
        k = 0
        while not stop.is_set():
            k += 1
            try:
                written = client.register("ha", f"i{k}", spec(1 + k % 60000))
                listing = client.instances("ha", min_index=written.index)  # spread over the nodes
                if f"i{k}" not in {i.id for i in listing.items}:
                    raise AssertionError(f"i{k} written at {written.index} (modify_index "
                                         f"{written.instance.modify_index}) missing from a read at "
                                         f"min_index: {listing.index}; every node: {views(k, written.index)}")
                # A re-registration that changed nothing (a retried attempt already applied) is
                # acknowledged at its own entry's index but leaves the instance's modify_index,
                # which is what the listing's index reflects.
                assert listing.index >= written.instance.modify_index
                acked.append((time.monotonic(), written.index))
            except BaseException as exc:
                errors.append(exc)
                return

    def views(k: int, index: int) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in cluster.names:
            code, body = http_json(f"{cluster.url(name)}/v1/services/ha?min_index={index}")
            found = [i for i in (body or {}).get("instances", []) if i["id"] == f"i{k}"]
            out[name] = (code, (body or {}).get("index"), found[0]["modify_index"] if found else None,
                         cluster.status(name))
        return out

    def acked_since(t: float) -> int:
        return sum(1 for at, _ in acked if at > t)

    with RegistryClient(addrs, deadline=20.0) as client:
        worker = threading.Thread(target=load, args=(client,), daemon=True)
        worker.start()
        try:
            wait_for(lambda: len(acked) >= 20 or errors, 30.0, "20 writes before the kill")
            first = cluster.leader()
            t_kill = time.monotonic()
            cluster.kill(first)
            wait_for(lambda: acked_since(t_kill) >= 20 or errors, 60.0, "20 writes after the kill")
            assert not errors, errors

            cluster.start_node(first)
            cluster.wait_node_ready(first, 60.0)
            second = cluster.leader(30.0)
            t_stop = time.monotonic()
            cluster.stop_node(second)  # graceful: hands leadership over first
            wait_for(lambda: acked_since(t_stop) >= 20 or errors, 60.0, "20 writes after the stop")
        finally:
            stop.set()
            worker.join(60)
    assert not errors, errors
    indexes = [index for _, index in acked]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)

    async def after() -> int:
        async with AsyncRegistryClient(addrs) as aio:  # one node of three is down
            written = await aio.register("ha", "async-after", spec())
            return len((await aio.instances("ha", min_index=written.index)).items)

    assert asyncio.run(after()) == len(acked) + 1


async def test_an_async_watch_follows_changes_across_a_leader_kill(cluster: LocalCluster) -> None:
    addrs = addresses(cluster)
    async with AsyncRegistryClient(addrs) as aio:
        stream = aio.watch_instances("watched", wait=5.0)
        first = await asyncio.wait_for(stream.__anext__(), 20.0)
        assert first.items == ()
        leader = await in_thread(cluster.leader)
        await in_thread(cluster.kill, leader)
        written = await aio.register("watched", "w1", spec())
        seen = await asyncio.wait_for(stream.__anext__(), 30.0)
        assert [i.id for i in seen.items] == ["w1"] and seen.index == written.index
        await stream.aclose()
