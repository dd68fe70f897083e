"""Active health checks and status by hand on real 3-node clusters (issue 5): HTTP and TCP checks
with their thresholds, ``?passing``, ``deregister_critical_after``, only transitions committed, the
checking share moving off a killed node, and a manual status winning over checks.

The check targets run in this test process (an HTTP server whose answer can be flipped, a TCP
listener); the nodes probe them over loopback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cluster_helpers import cluster_snapshot
from health_helpers import (
    CheckTarget,
    TcpListener,
    cluster_info,
    deregister,
    get_instance,
    gone_everywhere,
    leader_info,
    listing,
    logs_on_failure,
    register,
    running_cluster,
    set_status,
)

from raftreg.node.checks import owner_of
from raftreg.testing import LocalCluster, http_json, wait_for

pytestmark = pytest.mark.cluster

ADDR = {"address": "127.0.0.1", "port": 8080}


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalCluster]:
    """One cluster for the tests of this module that kill no node."""
    with running_cluster(name="checks") as cluster:
        yield cluster


@pytest.fixture
def c(shared: LocalCluster, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    with logs_on_failure(request, shared):
        yield shared


@pytest.fixture
def target() -> Iterator[CheckTarget]:
    t = CheckTarget()
    yield t
    t.close()


def http_check(url: str, interval: float, **more: Any) -> dict[str, Any]:
    return {"http": url, "interval": f"{interval:g}s", "timeout": "1s", **more}


def next_change(c: LocalCluster, node: str, service: str, instance_id: str, after: int,
                timeout: float = 15.0) -> dict[str, Any]:
    """The instance at its first change after index ``after``, polling ``node`` every 20 ms (the
    leader applies a transition first). Not a blocking query: those are tested on their own
    (``test_blocking_queries_wake_on_health_changes``)."""
    deadline = time.monotonic() + timeout
    while True:
        code, inst = get_instance(c, node, service, instance_id, timeout=2.0)
        assert code == 200, (code, inst)
        if inst["modify_index"] > after:
            return dict(inst)
        assert time.monotonic() < deadline, f"no change of {service}/{instance_id} within {timeout}s: {inst}"
        time.sleep(0.02)


def wait_status(c: LocalCluster, service: str, instance_id: str, field: str, value: Any,
                timeout: float = 15.0, nodes: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Wait until every node shows ``field == value`` for the instance; returns it per node."""
    def seen() -> dict[str, dict[str, Any]] | None:
        out = {}
        for n in nodes or c.running():
            code, inst = get_instance(c, n, service, instance_id, timeout=2.0)
            if code != 200 or inst.get(field) != value:
                return None
            out[n] = inst
        return out

    try:
        return wait_for(seen, timeout, f"{service}/{instance_id} {field}={value!r} on every node")
    except TimeoutError:
        now = {n: get_instance(c, n, service, instance_id, timeout=2.0) for n in nodes or c.running()}
        raise AssertionError(f"{service}/{instance_id} {field} did not become {value!r} within {timeout}s: "
                             f"{now}; {cluster_snapshot(c)}") from None


def passing_ids(c: LocalCluster, node: str, service: str) -> set[str]:
    return set(listing(c, node, service, "?passing"))


def wait_passing_filter(c: LocalCluster, service: str, instance_id: str, *, listed: bool) -> None:
    """Wait until ``GET /v1/services/{service}?passing`` on every node lists the instance (or not)."""
    for n in c.names:
        def ok(n: str = n) -> bool:
            return (instance_id in passing_ids(c, n, service)) == listed

        wait_for(ok, 10.0, f"{instance_id} {'in' if listed else 'out of'} ?passing on {n}")


# ---- 7. an HTTP check: thresholds, ?passing, deregister_critical_after ----------------------------------

def test_http_check_thresholds_passing_filter_and_deregistration(c: LocalCluster, target: CheckTarget) -> None:
    service, iid, path = "web", "a", "/a"
    leader = c.leader()
    check = http_check(target.url(path), 0.5, failures_before_critical=3, successes_before_passing=2)
    try:
        stored = register(c, leader, service, iid, {**ADDR, "check": check})
        assert stored["status"] == "critical" and stored["check_status"] == "critical", stored
        assert iid not in passing_ids(c, leader, service)

        t0 = time.monotonic()
        inst = next_change(c, leader, service, iid, stored["modify_index"])
        ok_probes = target.count(path, since=t0, code=200)
        assert inst["status"] == "passing" and inst["check_status"] == "passing", inst
        assert ok_probes >= 2, f"passing after {ok_probes} successful probe(s); successes_before_passing is 2"
        wait_passing_filter(c, service, iid, listed=True)

        t_flip = time.monotonic()
        target.set_code(path, 500)
        inst = next_change(c, leader, service, iid, inst["modify_index"])
        failing = target.count(path, since=t_flip, code=500)
        print(f"\n[http check] critical {time.monotonic() - t_flip:.2f}s after the flip, after {failing} failing "
              f"probes; note {inst['status_note']!r}")
        assert inst["status"] == "critical" and inst["check_status"] == "critical", inst
        assert failing >= 3, f"critical after {failing} failing probe(s); failures_before_critical is 3"
        assert "HTTP 500" in inst["status_note"], inst
        wait_passing_filter(c, service, iid, listed=False)
        for n in c.names:
            assert listing(c, n, service)[iid]["status"] == "critical", n  # still listed without ?passing

        t_back = time.monotonic()
        target.set_code(path, 200)
        inst = next_change(c, leader, service, iid, inst["modify_index"])
        ok_probes = target.count(path, since=t_back, code=200)
        assert inst["status"] == "passing", inst
        assert ok_probes >= 2, f"passing again after {ok_probes} successful probe(s); successes_before_passing is 2"
        wait_passing_filter(c, service, iid, listed=True)

        # deregister_critical_after: a changed check starts critical; the target keeps failing.
        target.set_code(path, 500)
        t_sent = time.monotonic()
        stored = register(c, leader, service, iid, {**ADDR, "check": {**check, "deregister_critical_after": "2s"}})
        assert stored["check_status"] == "critical", stored
        gone_at = wait_for(lambda: time.monotonic() if gone_everywhere(c, service, iid) else None, 15.0,
                           f"{iid} deregistered after staying critical", interval=0.05)
        print(f"[http check] deregistered {gone_at - t_sent:.2f}s after registering with "
              f"deregister_critical_after=2s")
        assert gone_at - t_sent >= 2.0, f"deregistered after {gone_at - t_sent:.2f}s of critical; expected >= 2s"
        assert gone_at - t_sent <= 2.0 + 0.5 + 0.5 + 3.0, f"deregistered only after {gone_at - t_sent:.2f}s"
    finally:
        deregister(c, service, iid)


# ---- 8. a TCP check ---------------------------------------------------------------------------------------

def test_tcp_check_passes_while_listening_and_fails_once_closed(c: LocalCluster) -> None:
    service, iid = "tcpsvc", "t1"
    leader = c.leader()
    listener = TcpListener()
    try:
        stored = register(c, leader, service, iid,
                          {**ADDR, "check": {"tcp": f"127.0.0.1:{listener.port}", "interval": "0.5s",
                                             "timeout": "0.5s"}})
        assert stored["status"] == "critical", stored
        inst = next_change(c, leader, service, iid, stored["modify_index"])
        assert inst["status"] == "passing" and inst["check_status"] == "passing", inst
        assert listener.accepted >= 1
        wait_status(c, service, iid, "status", "passing")

        t_close = time.monotonic()
        listener.close()
        inst = next_change(c, leader, service, iid, inst["modify_index"])
        assert inst["status"] == "critical" and inst["check_status"] == "critical", inst
        assert inst["status_note"], inst
        print(f"\n[tcp check] critical {time.monotonic() - t_close:.2f}s after closing: {inst['status_note']!r}")
        wait_status(c, service, iid, "status", "critical")
    finally:
        listener.close()
        deregister(c, service, iid)


# ---- 9. only transitions are committed ---------------------------------------------------------------------

def test_a_passing_check_commits_nothing_while_it_keeps_passing(c: LocalCluster, target: CheckTarget) -> None:
    service, iid, path = "quiet", "q1", "/q1"
    leader = c.leader()
    try:
        stored = register(c, leader, service, iid, {**ADDR, "check": http_check(target.url(path), 0.2)})
        passing = next_change(c, leader, service, iid, stored["modify_index"])
        assert passing["status"] == "passing", passing
        wait_status(c, service, iid, "status", "passing")
        c.wait_converged(timeout=30.0)
        before = leader_info(c, leader)
        probes_before = {n: cluster_info(c, n)["checks"]["probes"] for n in c.names}
        t0 = time.monotonic()
        wait_for(lambda: target.count(path, since=t0) >= 12, 15.0, "12 more probes")
        after = leader_info(c, leader)
        assert (after["commit_index"], after["log_len"]) == (before["commit_index"], before["log_len"]), (
            f"{target.count(path, since=t0)} passing probes moved the leader's commit index "
            f"{before['commit_index']} -> {after['commit_index']} (log {before['log_len']} -> {after['log_len']})")
        probes_after = {n: cluster_info(c, n)["checks"]["probes"] for n in c.names}
        assert sum(probes_after.values()) - sum(probes_before.values()) >= 12, (probes_before, probes_after)
        for n in c.names:
            code, inst = get_instance(c, n, service, iid)
            assert code == 200 and inst["modify_index"] == passing["modify_index"], (n, code, inst)
    finally:
        deregister(c, service, iid)


# ---- 11. status by hand -----------------------------------------------------------------------------------

def test_manual_status_wins_over_the_check_and_survives_reregistration(c: LocalCluster,
                                                                        target: CheckTarget) -> None:
    service, iid, path = "maint", "m1", "/m1"
    leader = c.leader()
    follower = c.followers()[0]
    body = {**ADDR, "check": http_check(target.url(path), 0.3)}
    try:
        stored = register(c, leader, service, iid, body)
        next_change(c, leader, service, iid, stored["modify_index"])
        wait_status(c, service, iid, "status", "passing")

        inst = set_status(c, follower, service, iid, "warning", "swapping a disk")
        assert (inst["status"], inst["manual_status"], inst["status_note"], inst["check_status"]) == (
            "warning", "warning", "swapping a disk", "passing"), inst
        t0 = time.monotonic()
        wait_for(lambda: target.count(path, since=t0, code=200) >= 4, 10.0, "4 more passing probes")
        for n, seen in wait_status(c, service, iid, "manual_status", "warning").items():
            assert seen["status"] == "warning" and seen["status_note"] == "swapping a disk", (n, seen)
            assert iid not in passing_ids(c, n, service), n

        # The check fails meanwhile: its verdict is recorded, the status set by hand still shows.
        target.set_code(path, 500)
        for n, seen in wait_status(c, service, iid, "check_status", "critical").items():
            assert seen["status"] == "warning" and seen["manual_status"] == "warning", (n, seen)
            assert seen["status_note"] == "swapping a disk", (n, seen)

        inst = set_status(c, leader, service, iid, "passing")
        assert (inst["status"], inst["manual_status"], inst["check_status"]) == ("critical", None, "critical"), inst
        target.set_code(path, 200)
        wait_status(c, service, iid, "status", "passing")
        wait_passing_filter(c, service, iid, listed=True)

        # Re-registering (same body, then a changed one) keeps the status set by hand.
        set_status(c, leader, service, iid, "critical", "draining")
        again = register(c, follower, service, iid, body)
        assert (again["status"], again["manual_status"], again["status_note"]) == ("critical", "critical", "draining")
        moved = register(c, follower, service, iid, {**body, "port": 9090})
        assert moved["port"] == 9090
        assert (moved["status"], moved["manual_status"], moved["status_note"]) == ("critical", "critical", "draining")
        wait_status(c, service, iid, "port", 9090)
        for n, seen in wait_status(c, service, iid, "manual_status", "critical").items():
            assert seen["status"] == "critical", (n, seen)

        code, err = http_json(f"{c.url(follower)}/v1/services/{service}/instances/ghost/status", method="PUT",
                              body={"status": "warning", "note": ""}, timeout=20.0)
        assert code == 404 and err["error"]["code"] == "not_found", (code, err)
    finally:
        deregister(c, service, iid)


# ---- blocking queries see health changes ------------------------------------------------------------------

def parked_read(url: str, wait: float) -> tuple[float, int, Any]:
    """A blocking query: (seconds it took, status, body)."""
    t0 = time.monotonic()
    code, body = http_json(f"{url}&wait={wait:g}s", timeout=wait + 10.0)
    return time.monotonic() - t0, code, body


def test_blocking_queries_wake_on_health_changes(c: LocalCluster, target: CheckTarget) -> None:
    """A watcher of a service (API.md "Blocking queries": the response is held until the answering
    index exceeds N) learns of a manual status change, a check transition and a TTL expiry when they
    are applied, not when its wait runs out."""
    leader = c.leader()
    follower = c.followers()[0]
    wait = 8.0
    cases = {"wake-manual": "m", "wake-check": "h", "wake-ttl": "t"}
    try:
        register(c, leader, "wake-manual", "m", ADDR)
        hc = register(c, leader, "wake-check", "h", {**ADDR, "check": http_check(target.url("/h"), 0.3)})
        next_change(c, leader, "wake-check", "h", hc["modify_index"])  # passing
        register(c, leader, "wake-ttl", "t", {**ADDR, "ttl": "2s"})  # no heartbeats: expires in 2 s
        t_ttl = time.monotonic()
        c.wait_converged(timeout=30.0)
        index = {svc: int(listing_index(c, follower, svc)) for svc in cases}
        catalog_index = int(http_json(f"{c.url(follower)}/v1/services")[1]["index"])
        assert "t" in listing(c, follower, "wake-ttl"), "the ttl instance expired before the watch started"
        waiting = int(cluster_info(c, follower)["watches"]["waiting"])
        with ThreadPoolExecutor(max_workers=4) as pool:
            parked = {svc: pool.submit(parked_read, f"{c.url(follower)}/v1/services/{svc}?index={index[svc]}", wait)
                      for svc in cases}
            catalog = pool.submit(parked_read, f"{c.url(follower)}/v1/services?index={catalog_index}", wait)
            wait_for(lambda: int(cluster_info(c, follower)["watches"]["waiting"]) >= waiting + 4, 5.0,
                     "4 parked blocking queries")
            set_status(c, leader, "wake-manual", "m", "warning", "maintenance")
            target.set_code("/h", 500)
            answers = {svc: f.result() for svc, f in parked.items()}
            catalog_answer = catalog.result()
        took = {svc: round(a[0], 2) for svc, a in answers.items()}
        print(f"\n[watch wake-ups] seconds until each parked query answered: {took}, catalog "
              f"{catalog_answer[0]:.2f}s (wait {wait:g}s; ttl instance registered "
              f"{time.monotonic() - t_ttl:.1f}s ago)")
        manual, check, ttl = answers["wake-manual"], answers["wake-check"], answers["wake-ttl"]
        assert [i["status"] for i in manual[2]["instances"]] == ["warning"], manual
        assert [i["status"] for i in check[2]["instances"]] == ["critical"], check
        assert ttl[2]["instances"] == [], ttl
        slow = {svc: s for svc, s in took.items() if s > 4.0}
        assert not slow, (f"blocking queries answered only when their {wait:g}s wait ran out, not at the change: "
                          f"{slow} (all took {took})")
        assert catalog_answer[0] < 4.0, f"the catalog watch did not wake at the TTL expiry: {catalog_answer}"
    finally:
        target.set_code("/h", 200)
        for svc, iid in cases.items():
            deregister(c, svc, iid)


def listing_index(c: LocalCluster, node: str, service: str) -> int:
    code, body = http_json(f"{c.url(node)}/v1/services/{service}", timeout=5.0)
    assert code == 200, (code, body)
    return int(body["index"])


# ---- 10. the checking share moves off a killed node --------------------------------------------------------

def owned_counts(c: LocalCluster, nodes: list[str]) -> dict[str, int]:
    out = {}
    for n in nodes:
        st = c.status(n)
        out[n] = -1 if st is None else int(st["checks"]["owned"])
    return out


def test_checks_of_a_killed_node_move_to_the_survivors(make_cluster: Callable[..., LocalCluster]) -> None:
    c = make_cluster()
    service, interval = "share", 1.0
    ids = [f"i{k:02d}" for k in range(30)]
    target = CheckTarget()
    try:
        leader = c.leader()
        for k, iid in enumerate(ids):
            register(c, c.names[k % 3], service, iid,
                     {**ADDR, "check": http_check(target.url(f"/c/{iid}"), interval, failures_before_critical=3)})
        wait_for(lambda: len(passing_ids(c, leader, service)) == 30, 20.0, "all 30 passing")

        def expected(members: list[str]) -> dict[str, int]:
            owners = [owner_of(f"{service}/{iid}", sorted(members)) for iid in ids]
            return {m: owners.count(m) for m in members}

        full = expected(c.names)
        wait_for(lambda: owned_counts(c, c.names) == full, 10.0, f"owned counts {full}")
        candidates = [n for n in c.names if n != leader and full[n] > 0]
        assert candidates, f"no follower owns a check: {full}"
        victim = max(candidates, key=lambda n: full[n])
        moved = [iid for iid in ids if owner_of(f"{service}/{iid}", c.names) == victim]
        survivors = [n for n in c.names if n != victim]

        c.kill(victim)
        t_kill = time.monotonic()

        def probed_after_kill() -> bool:
            return all((t := target.last_hit(f"/c/{iid}")) is not None and t > t_kill for iid in moved)

        try:
            wait_for(probed_after_kill, interval + 3.0, f"probes of {victim}'s {len(moved)} checks from the survivors")
        except TimeoutError:
            silent = [iid for iid in moved if (target.last_hit(f"/c/{iid}") or 0.0) <= t_kill]
            raise AssertionError(f"{len(silent)} of {victim}'s {len(moved)} checks not probed within "
                                 f"{interval + 3.0:g}s of the kill: {silent}; owned {owned_counts(c, survivors)}"
                                 ) from None
        t_moved = time.monotonic()
        after = expected(survivors)
        wait_for(lambda: owned_counts(c, survivors) == after, 5.0, f"survivors' owned counts {after}")
        assert sum(after.values()) == 30
        for n in survivors:
            assert cluster_info(c, n)["checks"]["members"] == 2, (n, cluster_info(c, n)["checks"])
        # The ones that did not move are still probed too.
        t_check = time.monotonic()
        wait_for(lambda: all((t := target.last_hit(f"/c/{iid}")) is not None and t > t_check for iid in ids),
                 interval + 3.0, "every check probed again")
        print(f"\n[check share] killed {victim} (owned {full[victim]} of 30: {full}); all its checks probed by the "
              f"survivors {t_moved - t_kill:.2f}s after the kill; survivors own {after}")
        assert passing_ids(c, leader if leader != victim else survivors[0], service) == set(ids)

        c.start_node(victim)
        c.wait_node_ready(victim, timeout=60.0)
        wait_for(lambda: owned_counts(c, c.names) == full, 10.0, f"owned counts back to {full} after the restart")
    finally:
        target.close()
