"""Self-registration without a cluster: the spec builder, the state machine and its log lines, and
both handles driven against fake clients (register, heartbeats, re-registration after a 404,
retrying through an outage, refusal at start, deregistration on exit, the atexit hook)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from raftreg.client import registration as reg_module
from raftreg.client.registration import (
    AsyncRegistration,
    RegistrationStatus,
    SyncRegistration,
    build_spec,
    parse_ttl,
)
from raftreg.client.results import Check, InstanceResult, Lease, Registration, WriteResult
from raftreg.durations import parse_duration
from raftreg.errors import InvalidArgument, NotFound, RaftregError, Unavailable
from raftreg.models import Instance


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


async def await_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class FakeRegistry:
    """Records calls; ``down`` makes every call fail with Unavailable, ``refuse`` every register
    with the given error; ``expire()`` drops the lease (the next heartbeat answers NotFound)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.index = 0
        self.down = False
        self.refuse: RaftregError | None = None
        self.present = False
        self.deadline = 0.3
        self.lock = threading.Lock()

    def _op(self, name: str) -> int:
        with self.lock:
            self.calls.append(name)
            if self.down:
                raise Unavailable("every node is unreachable")
            self.index += 1
            return self.index

    def register(self, service: str, instance_id: str, spec: Any, **kw: Any) -> InstanceResult:
        if self.refuse is not None:
            raise self.refuse
        index = self._op("register")
        self.present = True
        return InstanceResult(index, Instance(service=service, id=instance_id, address="10.0.0.1", port=80))

    def heartbeat(self, service: str, instance_id: str, **kw: Any) -> Lease:
        self._op("heartbeat")
        if not self.present:
            raise NotFound("no such instance")
        return Lease(1.0)

    def deregister(self, service: str, instance_id: str, **kw: Any) -> WriteResult:
        index = self._op("deregister")
        if not self.present:
            raise NotFound("no such instance")
        self.present = False
        return WriteResult(index)

    def count(self, name: str) -> int:
        with self.lock:
            return self.calls.count(name)


class AsyncFake:
    def __init__(self, registry: FakeRegistry) -> None:
        self.r = registry
        self.deadline = registry.deadline

    async def register(self, *a: Any, **kw: Any) -> InstanceResult:
        return self.r.register(*a, **kw)

    async def heartbeat(self, *a: Any, **kw: Any) -> Lease:
        return self.r.heartbeat(*a, **kw)

    async def deregister(self, *a: Any, **kw: Any) -> WriteResult:
        return self.r.deregister(*a, **kw)


SPEC = Registration(address="10.0.0.1", port=80, ttl=0.6)


def test_build_spec_parses_durations_like_the_server() -> None:
    spec, ttl = build_spec(address="10.0.0.1", port=80, ttl="1m30s", tags=["a"], meta={"z": "1"}, weight=5)
    assert ttl == 90.0 and isinstance(spec, Registration)
    assert spec == Registration(address="10.0.0.1", port=80, tags=("a",), meta={"z": "1"}, weight=5, ttl=90.0)
    assert build_spec(address="h", port=1, ttl=3)[1] == 3.0
    assert build_spec(address="h", port=1, ttl="500ms")[1] == 0.5
    typed, _ = build_spec(address="h", port=1, ttl="10s", check=Check(http="http://h:1/health"))
    assert isinstance(typed, Registration) and typed.check == Check(http="http://h:1/health")
    body, _ = build_spec(address="h", port=1, ttl="10s", check={"http": "http://h:1/health", "interval": "5s"})
    assert isinstance(body, dict) and body["check"] == {"http": "http://h:1/health", "interval": "5s"}
    assert body["ttl"] == 10.0 and body["address"] == "h"
    for bad in ("ten", "0s", -1):
        with pytest.raises(ValueError):
            build_spec(address="h", port=1, ttl=bad)


@pytest.mark.parametrize("text", ["10", "0.5", "10s", "500ms", "1m30s", "1h", "2m", ".5s", "1.5h", "250us",
                                  " 3s ", "1m30", "10x", "", "s", "-1s", "1e3", "inf", "nan", "1s1"])
def test_ttl_strings_parse_as_the_server_parses_durations(text: str) -> None:
    try:
        expected: float | None = parse_duration(text)
    except ValueError:
        expected = None
    try:
        got: float | None = parse_ttl(text)
    except ValueError:
        got = None
    assert got == (expected if expected else None)  # a ttl must also be positive


def test_the_status_logs_one_line_per_change_of_state(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="raftreg.client")
    status = RegistrationStatus("cart", "c1")
    assert (status.state, status.index) == ("registering", None)
    status.on_event(("registered", 7))
    assert (status.state, status.index) == ("registered", 7)
    status.on_renewed()
    for _ in range(5):
        status.on_event(("retrying", "no leader"))
    assert status.state == "retrying"
    status.on_renewed()
    status.on_renewed()
    assert status.state == "registered"
    status.on_event(("reregistered", 9))
    assert (status.state, status.index) == ("registered", 9)
    assert status.start_failed(Unavailable("down")) and status.state == "retrying"
    assert not status.start_failed(InvalidArgument("bad port", field="port"))
    assert status.state == "stopped" and isinstance(status.error, InvalidArgument)
    lines = [r.getMessage() for r in caplog.records if r.name == "raftreg.client"]
    assert len(lines) == 6, lines  # registered, retrying, back, re-registered, retrying, refused
    assert "registered at index 7" in lines[0] and "retrying" in lines[1] and "accepted again" in lines[2]
    assert "expired" in lines[3] and "refused" in lines[5]


def test_sync_registration_heartbeats_reregisters_and_deregisters(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks: list[Callable[[], None]] = []
    monkeypatch.setattr(reg_module.atexit, "register", hooks.append)
    monkeypatch.setattr(reg_module.atexit, "unregister", hooks.remove)
    fake = FakeRegistry()
    handle = SyncRegistration(fake, "cart", "c1", SPEC, 0.6, start_timeout=2.0)  # type: ignore[arg-type]
    with handle as reg:
        assert reg.registered and reg.state == "registered" and reg.index == 1
        assert hooks == [reg.stop]
        wait_until(lambda: fake.count("heartbeat") >= 3)  # every ttl/3 = 0.2 s
        fake.present = False  # the lease expired: the next heartbeat answers 404
        wait_until(lambda: fake.count("register") == 2)
        wait_until(lambda: reg.index is not None and reg.index > 1 and reg.registered)
        fake.down = True
        wait_until(lambda: reg.state == "retrying")
        fake.down = False
        wait_until(lambda: reg.state == "registered")
    assert reg.state == "stopped" and not fake.present and fake.calls[-1] == "deregister"
    assert hooks == []
    beats = fake.count("heartbeat")
    time.sleep(0.4)
    assert fake.count("heartbeat") == beats, "heartbeats went on after stop()"
    handle.stop()  # a second stop does nothing
    assert fake.calls.count("deregister") == 1


def test_sync_registration_refused_at_start_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks: list[Callable[[], None]] = []
    monkeypatch.setattr(reg_module.atexit, "register", hooks.append)
    monkeypatch.setattr(reg_module.atexit, "unregister", hooks.remove)
    fake = FakeRegistry()
    fake.refuse = InvalidArgument("port out of range", field="port")
    handle = SyncRegistration(fake, "cart", "c1", SPEC, 0.6, start_timeout=5.0)  # type: ignore[arg-type]
    t0 = time.monotonic()
    with pytest.raises(InvalidArgument):
        handle.start()
    assert time.monotonic() - t0 < 1.0 and handle.state == "stopped" and hooks == []


def test_sync_registration_does_not_fail_start_up_when_the_registry_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reg_module.atexit, "register", lambda fn: None)
    monkeypatch.setattr(reg_module.atexit, "unregister", lambda fn: None)
    fake = FakeRegistry()
    fake.down = True
    handle = SyncRegistration(fake, "cart", "c1", SPEC, 0.6, start_timeout=0.3)  # type: ignore[arg-type]
    t0 = time.monotonic()
    handle.start()
    assert time.monotonic() - t0 < 1.0
    assert not handle.registered and handle.state == "retrying"
    fake.down = False
    wait_until(lambda: handle.registered)
    handle.stop()
    assert handle.state == "stopped" and not fake.present


async def test_async_registration_rides_through_an_outage_and_deregisters(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="raftreg.client")
    fake = FakeRegistry()
    async with AsyncRegistration(AsyncFake(fake), "cart", "c1", SPEC, 0.6,  # type: ignore[arg-type]
                                 start_timeout=2.0) as reg:
        assert reg.registered and reg.index == 1
        await await_until(lambda: fake.count("heartbeat") >= 2)
        fake.down = True
        await await_until(lambda: fake.count("heartbeat") >= 8)  # many failed attempts ...
        assert reg.state == "retrying"
        fake.down = False
        await await_until(lambda: reg.state == "registered")
        fake.present = False
        await await_until(lambda: fake.count("register") == 2 and reg.registered)
    assert reg.state == "stopped" and not fake.present
    lines = [r.getMessage() for r in caplog.records if r.name == "raftreg.client"]
    assert len(lines) == 5, lines  # ... but one line each: registered, retrying, back, expired, stopped


async def test_async_registration_start_waits_at_most_the_deadline_then_goes_on_in_the_background() -> None:
    fake = FakeRegistry()
    fake.down = True
    reg = AsyncRegistration(AsyncFake(fake), "cart", "c1", SPEC, 0.6, start_timeout=0.3)  # type: ignore[arg-type]
    t0 = time.monotonic()
    await reg.start()
    assert time.monotonic() - t0 < 1.0 and reg.state == "retrying" and not reg.registered
    fake.down = False
    await await_until(lambda: reg.registered)
    await reg.stop()
    assert reg.state == "stopped" and fake.calls[-1] == "deregister"
    with pytest.raises(RuntimeError):
        await reg.start()  # a handle is used once


async def test_async_registration_refused_at_start_raises() -> None:
    fake = FakeRegistry()
    fake.refuse = InvalidArgument("bad address", field="address")
    reg = AsyncRegistration(AsyncFake(fake), "cart", "c1", SPEC, 0.6, start_timeout=5.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        async with reg:
            pass
    assert reg.state == "stopped"


def test_the_clients_build_registrations_from_their_arguments() -> None:
    from raftreg.client import AsyncRegistryClient, RegistryClient

    with RegistryClient(["127.0.0.1:1"], deadline=4.0) as client:
        handle = client.registration("cart", "c1", address="10.0.0.1", port=80, ttl="3s", tags=("v1",))
        assert isinstance(handle, SyncRegistration) and handle.ttl == 3.0 and handle.state == "registering"
        assert handle.spec == Registration(address="10.0.0.1", port=80, tags=("v1",), ttl=3.0)
    aio = AsyncRegistryClient(["127.0.0.1:1"])
    assert isinstance(aio.registration("cart", "c1", address="h", port=1), AsyncRegistration)
