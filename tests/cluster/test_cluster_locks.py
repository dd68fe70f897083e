"""Sessions and locks on a real 3-process cluster: a session renewed through a follower keeps its
lock past its ttl; once its holder stops renewing, the lock is lost after ttl + lock delay and
never earlier, and the next holder's lock index (the fence) is higher."""

from __future__ import annotations

import time
from typing import Any

import pytest

from raftreg.testing import LocalCluster, http_json

pytestmark = pytest.mark.cluster

TTL = 2.0
LOCK_DELAY = 1.0


def session(cluster: LocalCluster, node: str, **body: Any) -> str:
    code, doc = http_json(f"{cluster.url(node)}/v1/sessions", method="PUT", body=body, timeout=10.0)
    assert code == 200, doc
    return str(doc["id"])


def acquire(cluster: LocalCluster, node: str, key: str, sid: str) -> bool:
    code, doc = http_json(f"{cluster.url(node)}/v1/kv/{key}?acquire={sid}", method="PUT", data=sid.encode(),
                          timeout=10.0)
    assert code == 200, (code, doc)
    return bool(doc["ok"])


def renew(cluster: LocalCluster, node: str, sid: str) -> int:
    return http_json(f"{cluster.url(node)}/v1/sessions/{sid}/renew", method="PUT", timeout=10.0)[0]


def test_a_dead_holder_loses_its_lock_after_ttl_plus_lock_delay_never_earlier(cluster: LocalCluster) -> None:
    follower = cluster.followers()[0]
    holder = session(cluster, follower, ttl=f"{TTL}s", lock_delay=f"{LOCK_DELAY}s")
    other = session(cluster, cluster.leader(), ttl="60s", lock_delay="0s")
    assert acquire(cluster, follower, "election", holder)

    # Renewed through a follower (forwarded to the leader) for twice its ttl: still the holder.
    until = time.monotonic() + 2 * TTL
    last_renewal = time.time()
    while time.monotonic() < until:
        sent = time.time()  # the lease runs from when the leader renews it: no earlier than this
        assert renew(cluster, follower, holder) == 200
        last_renewal = sent
        time.sleep(TTL / 4)
    assert not acquire(cluster, cluster.leader(), "election", other)

    # The holder stops renewing: the other candidate tries every 50 ms.
    deadline = time.monotonic() + TTL + LOCK_DELAY + 15.0
    won_at = None
    while time.monotonic() < deadline:
        if acquire(cluster, cluster.names[0], "election", other):
            won_at = time.time()
            break
        time.sleep(0.05)
    assert won_at is not None, "the lock was never released"
    waited = won_at - last_renewal
    assert waited >= TTL + LOCK_DELAY, f"the lock moved {waited:.2f}s after the last renewal"
    code, entry = http_json(f"{cluster.url(follower)}/v1/kv/election?consistent", timeout=10.0)
    assert code == 200 and entry["session"] == other and entry["lock_index"] == 2, entry
    assert renew(cluster, follower, holder) == 404  # the session is gone
    print(f"\n[lock] released {waited:.2f}s after the last renewal (ttl {TTL}s + lock delay {LOCK_DELAY}s)")


def test_a_renewed_session_keeps_its_lock_through_kill_9_of_the_leader(cluster: LocalCluster) -> None:
    """The new leader re-arms every session's lease (with a grace), as it does for instances."""
    leader = cluster.leader()
    follower = cluster.followers()[0]
    holder = session(cluster, follower, ttl=f"{TTL}s", lock_delay="0s")
    assert acquire(cluster, follower, "failover-lock", holder)
    cluster.kill(leader)
    until = time.monotonic() + 4 * TTL  # through the election and well past the ttl
    while time.monotonic() < until:
        code = renew(cluster, follower, holder)
        assert code in (200, 503), code  # 503 while no leader is known: retry
        time.sleep(TTL / 5)
    assert renew(cluster, follower, holder) == 200
    code, entry = http_json(f"{cluster.url(follower)}/v1/kv/failover-lock?consistent", timeout=10.0)
    assert code == 200 and entry["session"] == holder and entry["lock_index"] == 1, entry
