"""The client's key/value calls and ``client.config`` against a real 3-node cluster: reads of a
write on every node (``min_index``), conditional writes and transactions whose failed condition is
``ok=False``, history and rollback, a prefix watch that sees a change under its prefix only, and a
live config view that follows changes through the kill of the node it watches."""

from __future__ import annotations

import asyncio
import json

import pytest

from raftreg.client import AsyncRegistryClient, NotFound, RegistryClient, txn
from raftreg.testing import LocalCluster

pytestmark = pytest.mark.cluster


def addresses(cluster: LocalCluster) -> list[str]:
    return [cluster.config.node(n).http for n in cluster.names]


def test_writes_are_read_on_every_node_and_conditions_fail_cleanly(cluster: LocalCluster) -> None:
    addrs = addresses(cluster)
    with RegistryClient(addrs) as c:
        first = c.kv_put("app/db/url", "pg://a", flags=3)
        assert first.ok and first.index > 0
        for addr in addrs:
            with RegistryClient([addr]) as one:
                got = one.kv_get("app/db/url", min_index=first.index)
                assert got is not None and (got.value, got.flags, got.modify_index) == (b"pg://a", 3, first.index)
        assert c.kv_get("app/none", consistent=True) is None
        assert c.kv_put("app/db/url", "pg://b", cas=first.index - 1).ok is False
        assert c.kv_put("app/db/url", "pg://x", cas=0).ok is False  # exists
        second = c.kv_put("app/db/url", "pg://b", cas=first.index)
        assert second.ok and second.index > first.index
        assert c.kv_delete("app/db/url", cas=first.index).ok is False
        done = c.txn([txn.check_index("app/db/url", second.index), txn.put("app/a", "1"), txn.get("app/db/url"),
                      txn.delete("app/none")])
        assert done.ok and done.index > second.index
        checked, written, read, deleted = done.entries()
        assert checked is not None and checked.modify_index == second.index
        assert written is not None and (written.key, written.modify_index) == ("app/a", done.index)
        assert read is not None and read.value == b"pg://b" and deleted is None
        assert done.results[3] == {"deleted": 0}
        refused = c.txn([txn.put("app/b", "2"), txn.cas("app/a", "x", index=1)])
        assert (refused.ok, refused.failed) == (False, 1) and c.kv_get("app/b", consistent=True) is None
        listing = c.kv_list("app/", consistent=True)
        assert [e.key for e in listing.entries] == ["app/a", "app/db/url"] and listing.index >= done.index
        assert c.kv_keys("app/", "/").keys == ("app/a", "app/db/")
        assert c.kv_delete("app/", recurse=True).deleted == 2
        assert c.kv_delete("app/a").deleted == 0


def test_history_and_rollback(cluster: LocalCluster) -> None:
    with RegistryClient(addresses(cluster)) as c:
        v1 = c.kv_put("cfg/x", b"one", flags=1).index
        c.kv_put("cfg/x", b"two", flags=2)
        history = c.kv_history("cfg/x", consistent=True)
        assert [(v.value, v.modify_index) for v in history.versions] == [(b"one", v1)]
        back = c.kv_rollback("cfg/x", v1)
        got = c.kv_get("cfg/x", consistent=True)
        assert back.ok and got is not None and (got.value, got.flags, got.modify_index) == (b"one", 1, back.index)
        with pytest.raises(NotFound):
            c.kv_rollback("cfg/x", 1)


async def test_a_prefix_watch_yields_changes_under_its_prefix_only(cluster: LocalCluster) -> None:
    async with AsyncRegistryClient(addresses(cluster)) as c:
        await c.kv_put("w/a", b"1")
        watch = c.watch_kv("w/", recurse=True, wait=30)
        first = await anext(watch)
        assert [e.key for e in first.entries] == ["w/a"]
        await c.kv_put("other/key", b"unrelated")
        await c.kv_put("w/b", b"2")
        second = await asyncio.wait_for(anext(watch), 20)
        assert [e.key for e in second.entries] == ["w/a", "w/b"] and second.index > first.index
        key_watch = c.watch_kv("w/c", wait=30)
        assert (await anext(key_watch)).entries == ()  # absent, yet watchable
        await c.kv_put("w/c", b"3")
        assert [e.value for e in (await asyncio.wait_for(anext(key_watch), 20)).entries] == [b"3"]
        await watch.aclose()
        await key_watch.aclose()


def test_a_config_view_follows_changes_through_a_node_kill(cluster: LocalCluster) -> None:
    addrs = addresses(cluster)
    changes: list[tuple[dict[str, object], dict[str, object]]] = []
    with RegistryClient(addrs) as writer:
        writer.kv_put("svc/cfg/limits", json.dumps({"rps": 10}))
        with RegistryClient(addrs) as client, client.config("svc/cfg/") as view:
            view.wait_ready(20)
            view.add_listener(lambda old, new: changes.append((dict(old), dict(new))))
            assert dict(view.values) == {"limits": {"rps": 10}} and not view.stale
            writer.kv_put("svc/cfg/limits", "{not json")
            view.wait_for(lambda v: view.stale, 20)
            assert dict(view.values) == {"limits": {"rps": 10}} and "limits" in view.undecodable
            cluster.kill(cluster.names[0])  # the first address: the node the watch talks to
            writer.kv_put("svc/cfg/limits", json.dumps({"rps": 20}))
            view.wait_for(lambda v: v.get("limits") == {"rps": 20} and not view.stale, 30)
    assert changes == [({"limits": {"rps": 10}}, {"limits": {"rps": 20}})]
