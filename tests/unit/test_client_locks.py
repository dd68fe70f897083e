"""Units of the session/lock core and of the lock and election recipes over an in-memory fake
(``lock_fake``): the key is read after an unknown outcome instead of guessing, waits are blocking
reads (bounded by ``retry`` only during a lock delay), timeouts destroy the session, a session
gone at renewal sets ``lost`` and is then not released, leadership is the key's holder."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest

from raftreg.client import LockTimeout, RegistryClient, session_core
from raftreg.client.core import Headers, Response
from raftreg.client.kv_results import KVEntry, KVList
from raftreg.client.recipes.election import Election, leader_of
from raftreg.client.recipes.lock import MAX_WAIT, Lock, held_fence, next_wait
from raftreg.errors import OutcomeUnknown
from tests.unit.lock_fake import FakeLocks


def make_lock(fake: FakeLocks, **kwargs: Any) -> Lock:
    kwargs.setdefault("ttl", 3.0)
    return Lock(cast(RegistryClient, fake), "locks/x", **kwargs)


def test_lock_requests_are_never_retried_and_answers_parse() -> None:
    acquire = session_core.acquire("locks/a b", "sid", b"me")
    assert (acquire.method, acquire.path, acquire.query, acquire.body) == ("PUT", "/v1/kv/locks/a%20b",
                                                                           (("acquire", "sid"),), b"me")
    assert not acquire.idempotent and not session_core.release("k", "sid").idempotent
    assert not session_core.create(5, lock_delay=0).idempotent and session_core.renew("sid").idempotent
    assert b'"ttl":"5s"' in (session_core.create(5).body or b"")
    gone = Response(404, Headers([("X-Raftreg-Index", "9")]), b'{"error": {"code": "not_found"}}')
    assert session_core.parse_destroyed(gone) == session_core.SessionDestroyed(False, 9)
    assert session_core.parse_session(gone) is None
    created = Response(200, Headers([("X-Raftreg-Index", "4")]), b'{"id": "s1", "index": 4}')
    assert session_core.parse_created(created) == session_core.SessionCreated("s1", 4)


def test_fence_and_wait_rules() -> None:
    mine = KVList(7, (KVEntry("k", lock_index=3, session="s1"),))
    free = KVList(8, (KVEntry("k", lock_index=3),))
    assert held_fence(mine, "s1") == 3 and held_fence(mine, "s2") is None and held_fence(free, "s1") is None
    assert next_wait(mine, None, 0.5) == MAX_WAIT and next_wait(mine, 2.0, 0.5) == 2.0
    assert next_wait(free, None, 0.5) == 0.5 and next_wait(KVList(1, ()), 0.1, 0.5) == 0.1
    assert leader_of(KVList(1, (KVEntry("k", b"a", session="s"),))) == "a" and leader_of(free) is None


def test_an_unknown_outcome_is_resolved_by_reading_the_key() -> None:
    fake = FakeLocks()
    fake.fail_acquire = lambda: OutcomeUnknown("504")  # applied, then the answer is lost
    with make_lock(fake) as held:
        assert held.fence == 1 and fake.calls.count(f"acquire {held.session}") == 1
        sid = held.session
    assert fake.calls[-2:] == [f"release {sid}", f"destroy {sid}"]


def test_a_waiter_blocks_on_the_key_and_wakes_at_the_release() -> None:
    fake = FakeLocks()
    first = make_lock(fake)
    assert first.acquire() == 1
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(make_lock(fake).acquire()))
    waiter.start()
    deadline = time.monotonic() + 5
    while not fake.waits and time.monotonic() < deadline:  # the waiter is in its blocking read
        time.sleep(0.01)
    assert fake.waits == [MAX_WAIT]
    first.release()
    waiter.join(5)
    assert got == [2]  # the fence went up
    assert fake.waits == [MAX_WAIT], "woken by the release, not by polling"


def test_a_lock_delay_is_waited_out_with_bounded_reads() -> None:
    fake = FakeLocks()
    fake.keys["locks/x"] = KVEntry("locks/x", lock_index=4)  # released by a dead session
    fake.delayed = 2
    with make_lock(fake, retry=0.05) as held:
        assert held.fence == 5 and fake.waits == [0.05, 0.05]


def test_timeout_raises_lock_timeout_and_destroys_the_session() -> None:
    fake = FakeLocks()
    fake.keys["locks/x"] = KVEntry("locks/x", lock_index=1, session="other")
    start = time.monotonic()
    with pytest.raises(LockTimeout), make_lock(fake, timeout=0.3):
        pass
    assert 0.3 <= time.monotonic() - start < 2.0
    assert fake.calls[-1].startswith("destroy") and not fake.sessions


def test_a_session_gone_at_renewal_sets_lost_and_is_not_released() -> None:
    fake = FakeLocks()
    held = make_lock(fake, ttl=0.3)
    held.acquire()
    assert held.session is not None
    fake.sessions.discard(held.session)  # expired on the registry's side
    assert held.lost.wait(2.0)
    sid = held.session
    held.release()
    assert f"release {sid}" not in fake.calls and fake.calls[-1] == f"destroy {sid}"


def test_election_leader_is_the_holder_and_resign_frees_it() -> None:
    fake = FakeLocks()
    a = Election(cast(RegistryClient, fake), "election/x", "a", ttl=3.0)
    assert a.leader() is None
    assert a.campaign() == 1 and a.is_leader and a.leader() == "a"
    assert a.campaign() == 1  # already leader: nothing sent
    a.resign()
    assert a.leader() is None and not a.is_leader
