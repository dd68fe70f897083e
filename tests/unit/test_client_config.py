"""``client.config(prefix)``: the live decoded view's rules (``ConfigCore``) and both shells against
the in-process fake of the KV API."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from raftreg.client import AsyncRegistryClient, RegistryClient
from raftreg.client.kv_results import KVEntry, KVList
from raftreg.client.recipes import config
from raftreg.client.recipes.config import ConfigCore
from raftreg.errors import PermissionDenied, Unavailable
from tests.unit.kv_fake import FakeKV

Change = tuple[dict[str, Any], dict[str, Any]]


def listing(index: int, **values: bytes) -> KVList:
    return KVList(index, tuple(KVEntry(f"app/{k}", v, modify_index=index) for k, v in sorted(values.items())))


@pytest.fixture
def view() -> tuple[ConfigCore, list[Change]]:
    changes: list[Change] = []
    core = ConfigCore("app/", json.loads, lambda: None)
    core.add_listener(lambda old, new: changes.append((dict(old), dict(new))))
    return core, changes


def test_values_are_decoded_by_suffix_and_listeners_hear_each_change_once(
        view: tuple[ConfigCore, list[Change]]) -> None:
    core, changes = view
    assert core.query()["index"] is None  # a plain read first
    core.answered(listing(5, port=b"80", **{"db/url": b'"pg://x"'}))
    assert core.ready and dict(core.values) == {"db/url": "pg://x", "port": 80} and core["port"] == 80
    assert core.query()["index"] == 5
    core.answered(listing(5, port=b"80"))  # same index: not news
    core.answered(listing(6, port=b"81", **{"db/url": b'"pg://x"'}))
    assert changes == [({}, {"db/url": "pg://x", "port": 80}),
                       ({"db/url": "pg://x", "port": 80}, {"db/url": "pg://x", "port": 81})]
    core.answered(listing(7, port=b"81"))  # db/url deleted
    assert dict(core.values) == {"port": 81} and len(changes) == 3 and not core.stale


def test_a_value_that_does_not_decode_keeps_its_last_good_value(view: tuple[ConfigCore, list[Change]],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    core, changes = view
    core.answered(listing(5, port=b"80"))
    with caplog.at_level(logging.INFO, logger="raftreg.client"):
        core.answered(listing(6, port=b"{broken", new=b"nope"))
        core.answered(listing(7, port=b"{still broken", new=b"nope"))
        assert dict(core.values) == {"port": 80} and core.stale and set(core.undecodable) == {"port", "new"}
        assert core.stale_events == 1 and len([r for r in caplog.records if "[stale]" in r.message]) == 1
        core.answered(listing(8, port=b"90"))
    assert dict(core.values) == {"port": 90} and not core.stale and not core.undecodable
    assert len(changes) == 2 and "fresh again" in caplog.text


def test_an_unreachable_registry_keeps_the_values_and_reports_stale_once(
        view: tuple[ConfigCore, list[Change]]) -> None:
    core, _ = view
    core.answered(listing(5, port=b"80"))
    assert core.failed(Unavailable("down")) == 0.0
    assert core.failed(Unavailable("down")) >= 0.0
    assert core.stale and core.stale_events == 1 and dict(core.values) == {"port": 80}
    assert core.query()["index"] is None  # a plain read notices the return at once
    core.answered(listing(5, port=b"80"))  # same index, but it clears stale
    assert not core.stale and core.query()["index"] == 5


def test_another_api_error_ends_the_watch(view: tuple[ConfigCore, list[Change]]) -> None:
    core, _ = view
    assert core.failed(PermissionDenied("key:read app/")) == -1.0
    with pytest.raises(PermissionDenied):
        core.satisfied(lambda: True)


def test_the_blocking_view_follows_the_prefix_and_keeps_values_while_down(fake: FakeKV,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "WATCH_WAIT", 0.5)
    monkeypatch.setattr(config, "QUERY_DEADLINE", 0.5)
    fake.put("cfg/port", b"80")
    with RegistryClient([f"127.0.0.1:{fake.port}"], deadline=2.0) as client, client.config("cfg/") as cfg:
        cfg.wait_ready(5)
        assert dict(cfg.values) == {"port": 80}
        fake.put("cfg/port", b"81")
        cfg.wait_for(lambda v: v.get("port") == 81, 5)
        fake.down = True  # the query in flight ends after its wait; the next ones find every node refusing
        cfg.wait_for(lambda v: cfg.stale, 10)
        assert dict(cfg.values) == {"port": 81}
        fake.down = False
        fake.put("cfg/port", b"82")
        cfg.wait_for(lambda v: not cfg.stale and v.get("port") == 82, 10)


async def test_the_async_view_calls_its_listener_with_old_and_new(fake: FakeKV) -> None:
    seen: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    async with AsyncRegistryClient([f"127.0.0.1:{fake.port}"], deadline=2.0) as client, \
            client.config("cfg/") as cfg:
        cfg.add_listener(lambda old, new: seen.append((old, new)))
        await cfg.wait_ready(5)
        await client.kv_put("cfg/name", json.dumps("a"))
        await cfg.wait_for(lambda v: v.get("name") == "a", 5)
    assert [(dict(o), dict(n)) for o, n in seen] == [({}, {"name": "a"})]
