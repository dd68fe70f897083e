"""LeaseTable (leader-held TTL deadlines and the mass-expiry guard) on a fake clock, and the
lease events an applied entry produces."""

from __future__ import annotations

import time

import pytest

from raftreg.config import LeaseTuning
from raftreg.models import SESSION_LEASE, Instance, Session
from raftreg.node.lease_keeper import lease_events
from raftreg.node.leases import LeaseTable, SystemClock
from raftreg.state.commands import Deregister, Expire, Noop, Register, SessionCreate, SessionDestroy, SetManualStatus
from raftreg.state.registry import Deregistered, Registered, StatusSet
from raftreg.state.sessions import SessionCreated, SessionsEnded


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def table(clock: FakeClock, **tuning: float) -> LeaseTable:
    return LeaseTable(LeaseTuning(**tuning), clock)  # type: ignore[arg-type]


def keys(due: list[tuple[tuple[str, str], int]]) -> set[str]:
    return {key[1] for key, _ in due}


def test_a_lease_expires_after_its_ttl_and_a_heartbeat_pushes_it_back() -> None:
    clock = FakeClock()
    t = table(clock)
    t.arm_all([], grace=0.0)
    t.track(("web", "a"), 10.0, 5, renew=True)
    clock.advance(9.9)
    assert t.due() == []
    t.renew(("web", "a"), 10.0, 5)
    clock.advance(9.9)
    assert t.due() == []
    clock.advance(0.2)
    assert t.due() == [(("web", "a"), 5)]
    assert t.due() == []  # in flight: handed out once until expire_done
    t.expire_done(("web", "a"), removed=True)
    assert len(t) == 0 and t.stats.expired == 1


def test_a_failed_expire_is_retried_and_a_version_change_is_followed() -> None:
    clock = FakeClock()
    t = table(clock)
    t.arm_all([(("web", "a"), 5.0, 7)], grace=0.0)
    clock.advance(5.1)
    assert t.due() == [(("web", "a"), 7)]
    t.track(("web", "a"), 5.0, 9, renew=False)  # a status change committed meanwhile
    t.expire_done(("web", "a"), removed=False)  # so the Expire naming version 7 did nothing
    assert t.due() == [(("web", "a"), 9)]


def test_becoming_leader_rearms_every_lease_with_the_grace() -> None:
    """A failover never expires a live instance: deadlines restart at now + ttl + grace."""
    clock = FakeClock()
    t = table(clock)
    t.arm_all([(("web", "a"), 3.0, 1), (("web", "b"), 10.0, 2)], grace=1.5)
    clock.advance(4.4)
    assert t.due() == []
    clock.advance(0.2)
    assert keys(t.due()) == {"a"}
    clock.advance(7.0)
    assert keys(t.due()) == {"b"}


def test_clear_drops_every_lease_when_leadership_is_lost() -> None:
    clock = FakeClock()
    t = table(clock)
    t.arm_all([(("web", "a"), 1.0, 1)], grace=0.0)
    t.clear()
    clock.advance(100.0)
    assert t.due() == [] and not t.active


def test_a_registration_renews_and_forget_removes() -> None:
    clock = FakeClock()
    t = table(clock)
    t.arm_all([(("web", "a"), 2.0, 1), (("web", "b"), 2.0, 1)], grace=0.0)
    clock.advance(1.5)
    t.track(("web", "a"), 2.0, 3, renew=True)  # re-registered: counts as a heartbeat
    t.forget(("web", "b"))  # deregistered
    clock.advance(1.0)
    assert t.due() == []
    clock.advance(1.1)
    assert t.due() == [(("web", "a"), 3)]


def test_a_wall_clock_jump_expires_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deadlines live on the monotonic clock: time.time() jumping an hour ahead changes nothing."""
    t = LeaseTable(LeaseTuning(), SystemClock())
    t.arm_all([(("web", "a"), 5.0, 1)], grace=0.0)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600.0)
    assert t.due() == []
    assert t.deadline_of(("web", "a")) is not None


def test_mass_expiry_is_throttled_and_still_bounded() -> None:
    """12 of 20 leases (60 % > 50 %, and >= 10) run out together: the guard hands them out at
    the configured rate, and releases every one of them once it is ttl + hold_extra overdue."""
    clock = FakeClock()
    t = table(clock, mass_expiry_rate=2.0, mass_expiry_hold_extra=4.0, mass_expiry_min=10)
    t.arm_all([(("web", f"i{i}"), 2.0, 1) for i in range(20)], grace=0.0)
    clock.advance(1.0)
    for i in range(12, 20):  # these keep heartbeating
        t.renew(("web", f"i{i}"), 2.0, 1)
    clock.advance(1.05)  # i0..i11 overdue
    released: list[float] = []
    for _ in range(200):
        got = t.due()
        for key, _version in got:
            t.expire_done(key, removed=True)
            released.append(clock.now)
        assert all(int(k[1][1:]) < 12 for k, _ in got)
        if len(released) == 12:
            break
        assert t.stats.throttled
        clock.advance(0.1)
        for i in range(12, 20):
            t.renew(("web", f"i{i}"), 2.0, 1)
    assert len(released) == 12
    assert t.stats.guard_trips == 1
    first_overdue = 1000.0 + 2.0
    assert released[1] - released[0] >= 0.4  # throttled: about 2 per second, not all at once
    # Bounded: each is released at most ttl + hold_extra after its deadline (2 x ttl + hold_extra
    # after its last heartbeat).
    assert max(released) <= first_overdue + 2.0 + 4.0 + 0.2
    assert len(t) == 8


def test_returning_heartbeats_end_the_guard() -> None:
    clock = FakeClock()
    t = table(clock, mass_expiry_rate=1.0, mass_expiry_min=10)
    t.arm_all([(("web", f"i{i}"), 2.0, 1) for i in range(10)], grace=0.0)
    clock.advance(2.1)
    first = t.due()
    assert len(first) <= 1 and t.stats.throttled
    for key, _ in first:
        t.expire_done(key, removed=False)
    for i in range(10):  # the clients' network came back
        t.renew(("web", f"i{i}"), 2.0, 1)
    assert t.due() == []
    assert not t.stats.throttled and len(t) == 10


def test_a_few_expiries_are_not_guarded() -> None:
    """Below mass_expiry_min nothing is held, even if it is a large share."""
    clock = FakeClock()
    t = table(clock)
    t.arm_all([(("web", f"i{i}"), 2.0, 1) for i in range(4)], grace=0.0)
    clock.advance(2.1)
    assert len(t.due()) == 4 and not t.stats.throttled


def test_lease_events_of_an_applied_entry() -> None:
    inst = Instance(service="web", id="a", address="10.0.0.1", port=80, ttl=5.0, modify_index=4)
    session = Session("s1", ttl=7.0, modify_index=9)
    cmds = [Register(inst), SetManualStatus("web", "a", "warning"), Deregister("web", "b"), Expire("web", "c", 3),
            Deregister("web", "absent"), SessionCreate(session), SessionDestroy("s0"), Noop()]
    results = [Registered(inst, changed=False), StatusSet(inst, changed=True), Deregistered(existed=True),
               Deregistered(existed=True), Deregistered(existed=False), SessionCreated(True, session),
               SessionsEnded(("s0",)), SessionsEnded(("s2", "s3"), ("k",))]
    assert lease_events(cmds, results) == [  # type: ignore[arg-type]
        ("track", (("web", "a"), 5.0, 4), True),
        ("track", (("web", "a"), 5.0, 4), False),
        ("forget", ("web", "b"), False),
        ("forget", ("web", "c"), False),
        ("track", ((SESSION_LEASE, "s1"), 7.0, 9), True),
        ("forget", (SESSION_LEASE, "s0"), False),
        ("forget", (SESSION_LEASE, "s2"), False),
        ("forget", (SESSION_LEASE, "s3"), False),
    ]


def test_a_new_leader_uses_the_last_renewal_it_saw_but_gives_clients_a_grace() -> None:
    """last_seen + ttl + margin when earlier than now + ttl + grace, never before now + grace."""
    clock = FakeClock()
    t = table(clock)
    seen = {("web", "stopped"): clock.now - 9.0, ("web", "fresh"): clock.now, ("web", "old"): clock.now - 60.0}
    leased = [(("web", name), 10.0, 1) for name in ("stopped", "fresh", "old", "unknown")]
    t.arm_all(leased, grace=1.5, last_seen=seen, margin=1.75)
    assert t.deadline_of(("web", "stopped")) == pytest.approx(clock.now - 9.0 + 10.0 + 1.75)
    assert t.deadline_of(("web", "fresh")) == pytest.approx(clock.now + 10.0 + 1.5)  # capped
    assert t.deadline_of(("web", "old")) == pytest.approx(clock.now + 1.5)  # the floor
    assert t.deadline_of(("web", "unknown")) == pytest.approx(clock.now + 10.0 + 1.5)


def test_renewals_are_collected_for_gossip() -> None:
    clock = FakeClock()
    t = table(clock)
    t.arm_all([(("web", "a"), 5.0, 1), (("web", "b"), 5.0, 1)], grace=0.0)
    t.renew(("web", "a"), 5.0, 1)
    t.track(("web", "c"), 5.0, 2, renew=True)
    t.track(("web", "b"), 5.0, 3, renew=False)  # a status change is no renewal
    assert sorted(t.take_renewed()) == [("web", "a"), ("web", "c")]
    assert t.take_renewed() == []


def test_a_lease_renewed_while_overdue_expires_again_when_it_stops() -> None:
    clock = FakeClock()
    t = table(clock, mass_expiry_min=10**6)  # guard off
    t.arm_all([(("web", "a"), 2.0, 1)], grace=0.0)
    clock.advance(2.1)
    assert keys(t.due()) == {"a"}
    t.expire_done(("web", "a"), removed=False)  # e.g. no leader at that moment
    clock.advance(0.05)
    t.renew(("web", "a"), 2.0, 1)  # the client's heartbeat got through after all
    clock.advance(1.9)
    assert t.due() == []
    clock.advance(0.2)
    assert keys(t.due()) == {"a"}


def test_the_guard_keeps_pacing_while_held_heartbeats_trickle_back() -> None:
    """Half the held instances heartbeat again: the rest are still paced, not released at once."""
    clock = FakeClock()
    t = table(clock, mass_expiry_rate=1.0, mass_expiry_min=10, mass_expiry_hold_extra=30.0)
    t.arm_all([(("web", f"i{i}"), 2.0, 1) for i in range(20)], grace=0.0)
    clock.advance(2.1)
    assert t.due() == [] and t.stats.throttled
    for i in range(12):
        t.renew(("web", f"i{i}"), 2.0, 1)
    clock.advance(0.5)
    assert len(t.due()) <= 1 and t.stats.throttled


def test_an_instance_being_expired_is_not_renewed() -> None:
    clock = FakeClock()
    t = table(clock)
    t.arm_all([(("web", "a"), 2.0, 1)], grace=0.0)
    clock.advance(2.1)
    t.due()
    assert t.expiring(("web", "a"))
    t.expire_done(("web", "a"), removed=False)
    assert not t.expiring(("web", "a"))
