"""The client's sans-I/O core: request building, answer parsing, error mapping, and the failover
policy (which outcomes retry, backoff bounds, deadline, Retry-After), with a fake clock."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest

from raftreg.client import core
from raftreg.client.core import Headers, Malformed, Request, Response
from raftreg.client.policy import CallPlan, Failure, NodeSelector, Pause, RetryPolicy, Send, WatchCursor
from raftreg.client.results import Check, Registration
from raftreg.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    RaftregError,
    Timeout,
    Unavailable,
)

NODES = ["http://n1:1", "http://n2:2", "http://n3:3"]
INSTANCE = {"service": "cart", "id": "c1", "address": "10.0.0.5", "port": 8080, "tags": ["v2"], "meta": {"z": "a"},
            "weight": 100, "ttl": 10.0, "check": None, "status": "passing", "check_status": None,
            "manual_status": None, "status_note": "", "create_index": 12, "modify_index": 40}


def answer(status: int, body: Any = None, **headers: str) -> Response:
    raw = b"" if body is None else json.dumps(body).encode()
    return Response(status, Headers((k.replace("_", "-"), v) for k, v in headers.items()), raw)


def error(status: int, code: str, message: str = "m", **headers: str) -> Response:
    return answer(status, {"error": {"code": code, "message": message}}, **headers)


# ---- building requests ----------------------------------------------------------------------------

def test_register_builds_an_idempotent_put_with_the_registration_body() -> None:
    spec = Registration(address="10.0.0.5", port=8080, tags=("v2",), ttl=10.0, check=Check(tcp="10.0.0.5:8080"))
    req = core.put_instance("cart", "c-1", spec)
    assert (req.method, req.path, req.query, req.idempotent, req.is_read) == (
        "PUT", "/v1/services/cart/instances/c-1", (), True, False)
    assert json.loads(req.body or b"") == {"address": "10.0.0.5", "port": 8080, "tags": ["v2"], "ttl": 10.0,
                                           "check": {"tcp": "10.0.0.5:8080"}}
    raw = core.put_instance("cart", "c-1", {"address": "h", "port": 1, "ttl": "10s"})
    assert json.loads(raw.body or b"") == {"address": "h", "port": 1, "ttl": "10s"}


def test_paths_quote_every_segment() -> None:
    assert core.delete_instance("a/b", "../x").path == "/v1/services/a%2Fb/instances/..%2Fx"
    assert core.get_instance("s", "i?x=1").target == "/v1/services/s/instances/i%3Fx%3D1"


@pytest.mark.parametrize(("req", "method", "path", "is_read"), [
    (core.delete_instance("s", "i"), "DELETE", "/v1/services/s/instances/i", False),
    (core.heartbeat("s", "i"), "PUT", "/v1/services/s/instances/i/heartbeat", False),
    (core.set_status("s", "i", "warning", "n"), "PUT", "/v1/services/s/instances/i/status", False),
    (core.get_instance("s", "i"), "GET", "/v1/services/s/instances/i", True),
    (core.list_instances("s"), "GET", "/v1/services/s", True),
    (core.list_services(), "GET", "/v1/services", True),
    (core.cluster_status(), "GET", "/v1/cluster", True),
])
def test_every_endpoint_of_today_is_idempotent(req: Request, method: str, path: str, is_read: bool) -> None:
    assert (req.method, req.path, req.is_read, req.idempotent) == (method, path, is_read, True)


def test_filters_and_read_options_become_the_query() -> None:
    req = core.list_instances("web", passing=True, tags=["v1", "blue"], meta={"zone": "a"}, consistent=True,
                              min_index=7)
    assert req.query == (("tag", "v1"), ("tag", "blue"), ("meta", "zone:a"), ("passing", "true"),
                         ("consistent", "true"), ("min_index", "7"))
    assert req.spread and not req.blocking and req.hold == core.DEFAULT_MIN_INDEX_WAIT
    pairs = core.list_instances("web", meta=[("zone", "a"), ("zone", "b")])
    assert pairs.query == (("meta", "zone:a"), ("meta", "zone:b"))


def test_a_blocking_query_holds_for_its_wait_plus_the_servers_jitter() -> None:
    req = core.list_services(index=41, wait=30.0)
    assert req.query == (("index", "41"), ("wait", "30s"))
    assert req.blocking and not req.spread
    assert req.hold == pytest.approx(30.0 * 17 / 16)
    assert core.list_services(index=1).hold == pytest.approx(core.DEFAULT_BLOCKING_WAIT * 17 / 16)
    assert core.get_instance("s", "i", index=3, wait=0.25).query == (("index", "3"), ("wait", "0.25s"))
    assert core.list_services().hold == 0.0


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/v1/anything", (), True),
    ("PUT", "/v1/services/s/instances/i", (), True),
    ("DELETE", "/v1/kv/a", (), False),
    ("PUT", "/v1/kv/a", (), False),
    ("PUT", "/v1/kv/a", (("cas", "3"),), False),
    ("DELETE", "/v1/kv/a", (("cas", "3"),), False),
    ("PUT", "/v1/sessions", (), False),
    ("PUT", "/v1/txn", (), False),
    ("POST", "/v1/cluster/transfer-leader", (), False),
    ("PATCH", "/v1/x", (), False),
])
def test_idempotency_is_inferred_conservatively(method: str, path: str, query: core.Query, expected: bool) -> None:
    assert core.infer_idempotent(method, path, query) is expected
    assert core.custom(method, path, params=query).idempotent is expected


def test_a_custom_request_encodes_json_and_params() -> None:
    req = core.custom("get", "/v1/services/x", params={"passing": True, "index": 5, "wait": "500ms"})
    assert (req.method, req.is_read, req.body) == ("GET", True, None)
    assert req.query == (("passing", "true"), ("index", "5"), ("wait", "500ms"))
    assert req.hold == pytest.approx(0.5 * 17 / 16)
    put = core.custom("PUT", "/v1/x", json={"a": [1]}, idempotent=False)
    assert (put.body, put.idempotent) == (b'{"a":[1]}', False)


# ---- parsing answers ------------------------------------------------------------------------------

def test_headers_ignore_case() -> None:
    headers = Headers([("X-Raftreg-Index", "9"), ("content-type", "application/json")])
    assert headers["x-raftreg-index"] == headers.get("X-RAFTREG-INDEX") == "9"
    assert set(headers) == {"X-Raftreg-Index", "content-type"} and len(headers) == 2


def test_instances_carry_the_index_of_the_header() -> None:
    body = {"index": 40, "service": "cart", "instances": [INSTANCE]}
    got = core.parse_instances(answer(200, body, X_Raftreg_Index="41"))
    assert (got.index, got.service, [i.id for i in got.items]) == (41, "cart", ["c1"])
    assert core.parse_instances(answer(200, body)).index == 40  # no header: the body's index
    assert got.to_wire() == {"index": 41, "service": "cart", "instances": [INSTANCE]}


def test_instance_services_write_lease_and_cluster_results() -> None:
    stored = core.parse_instance(answer(200, {**INSTANCE, "index": 40}, X_Raftreg_Index="40"))
    assert (stored.index, stored.instance.tags, stored.instance.ttl) == (40, ("v2",), 10.0)
    assert stored.to_wire() == {**INSTANCE, "index": 40}
    services = core.parse_services(answer(200, {"index": 3, "services": [{"name": "a", "instances": 2,
                                                                           "passing": 1}]}))
    assert (services.index, services.items[0].name, services.items[0].passing) == (3, "a", 1)
    deleted = core.parse_write(answer(200, {"deleted": True, "index": 9}, X_Raftreg_Index="9"))
    assert deleted.index == 9 and deleted.to_wire() == {"deleted": True, "index": 9}
    assert core.parse_lease(answer(200, {"ttl": 10.0})).ttl == 10.0
    raw = {"name": "c", "node": "n1", "state": "leader", "leader": "n1", "term": 2, "commit_index": 8,
           "applied_index": 8, "last_contact_ms": 0, "watchdog": {"wedges": 0},
           "members": [{"name": "n1", "raft": "r", "http": "h", "status": "leader", "match_index": 8}]}
    status = core.parse_cluster_status(answer(200, raw, X_Raftreg_Index="8"))
    assert (status.index, status.state, status.members[0].match_index) == (8, "leader", 8)
    assert status.to_wire() == raw
    replica_view = {**raw, "node": "r1", "state": "follower", "role": "replica", "members": [
        *raw["members"], {"name": "r1", "raft": "r", "http": "h", "role": "replica", "status": "replica",
                          "match_index": 7, "lag": 1}]}
    status = core.parse_cluster_status(answer(200, replica_view, X_Raftreg_Index="7"))
    assert status.role == "replica" and status.members[0].role == "voter"
    assert (status.members[1].role, status.members[1].match_index, status.members[1].lag) == ("replica", 7, 1)


@pytest.mark.parametrize("response", [
    answer(200, {"index": 1, "service": "s", "instances": [{"id": "x"}]}),
    answer(200, {"instances": []}),
    Response(200, Headers(), b"<html>proxy</html>"),
    answer(200, {"service": "s", "instances": []}),  # no index anywhere
])
def test_an_unreadable_answer_is_malformed(response: Response) -> None:
    with pytest.raises(Malformed):
        core.parse_instances(response)


@pytest.mark.parametrize(("response", "read", "cls"), [
    (error(404, "not_found"), False, NotFound),
    (error(409, "conflict"), False, Conflict),
    (error(403, "permission_denied"), True, PermissionDenied),
    (error(504, "timeout"), False, OutcomeUnknown),
    (Response(502, Headers(), b"Bad Gateway"), True, RaftregError),
])
def test_error_answers_map_to_the_shared_table(response: Response, read: bool, cls: type[RaftregError]) -> None:
    req = core.list_services() if read else core.delete_instance("s", "i")
    assert type(core.error_of(req, response)) is cls


def test_a_read_timeout_is_not_an_unknown_outcome_and_503_keeps_retry_after() -> None:
    err = core.error_of(core.list_services(), error(504, "timeout"))
    assert type(err) is Timeout
    unavailable = core.error_of(core.list_services(), error(503, "unavailable", Retry_After="7"))
    assert isinstance(unavailable, Unavailable) and unavailable.retry_after == 7.0
    bad = core.error_of(core.delete_instance("s", "i"), answer(400, {"error": {"code": "invalid_argument",
                                                                               "message": "m", "field": "port"}}))
    assert isinstance(bad, InvalidArgument) and bad.field == "port"
    assert error(503, "unavailable", Retry_After="soon").retry_after == 1.0


# ---- the failover policy --------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0


def plan(request: Request, *, nodes: list[str] = NODES, seed: int = 1, deadline: float = 10.0,
         timeout: float = 3.0, selector: NodeSelector | None = None, clock: Clock | None = None) -> CallPlan:
    policy = RetryPolicy(timeout=timeout, deadline=deadline)
    rng = random.Random(seed)
    selector = selector or NodeSelector(nodes, policy, rng)
    return CallPlan(request, selector, policy, rng, (clock or Clock()).now)


def send(p: CallPlan, now: float = 100.0) -> Send:
    step = p.next(now)
    assert isinstance(step, Send), step
    return step


WRITE = core.put_instance("s", "i", Registration(address="h", port=1))
NON_IDEMPOTENT = core.custom("POST", "/v1/cluster/transfer-leader", json={})
READ = core.list_instances("s")


@pytest.mark.parametrize("request_", [WRITE, NON_IDEMPOTENT, READ])
def test_a_request_that_never_reached_a_node_moves_on_for_any_method(request_: Request) -> None:
    p = plan(request_)
    first = send(p)
    p.failed(first, Failure.NOT_SENT, "refused", 100.0)
    second = send(p)
    assert second.node != first.node
    assert p.answered(second, answer(200, {}), 100.0)


@pytest.mark.parametrize("request_", [WRITE, NON_IDEMPOTENT, READ])
def test_a_503_moves_on_to_the_next_node(request_: Request) -> None:
    p = plan(request_)
    first = send(p)
    assert not p.answered(first, error(503, "unavailable", Retry_After="1"), 100.0)
    assert send(p).node != first.node


def test_retry_after_is_honoured_between_rounds() -> None:
    p = plan(WRITE, deadline=30.0)
    for _ in NODES:
        assert not p.answered(send(p), error(503, "unavailable", Retry_After="4"), 100.0)
    pause = p.next(100.0)
    assert isinstance(pause, Pause) and pause.seconds >= 4.0


def test_a_503_node_goes_to_the_back_of_the_line_for_its_retry_after() -> None:
    policy = RetryPolicy()
    selector = NodeSelector(NODES, policy, random.Random(1))
    selector.failed(0, now=100.0, at_least=5.0)
    assert selector.order(WRITE, 104.0) == [1, 2, 0]
    assert selector.order(WRITE, 106.0) == [0, 1, 2]


@pytest.mark.parametrize("how", ["504", "lost", "malformed"])
def test_a_non_idempotent_write_with_an_unknown_outcome_is_never_sent_again(how: str) -> None:
    p = plan(NON_IDEMPOTENT)
    first = send(p)
    with pytest.raises(OutcomeUnknown, match="not sent again"):
        if how == "504":
            p.answered(first, error(504, "timeout"), 100.0)
        else:
            p.failed(first, Failure.LOST if how == "lost" else Failure.MALFORMED, "reset", 100.0)
    assert p.attempts == 1


def test_an_idempotent_write_is_retried_after_an_unknown_outcome() -> None:
    p = plan(WRITE)
    assert not p.answered(send(p), error(504, "timeout"), 100.0)
    p.failed(send(p), Failure.LOST, "reset", 100.0)
    assert p.answered(send(p), answer(200, {}), 100.0)
    assert p.attempts == 3


def test_an_idempotent_write_that_never_succeeds_again_is_an_unknown_outcome() -> None:
    clock = Clock()
    p = plan(WRITE, deadline=2.0, clock=clock)
    p.failed(send(p, clock.now), Failure.LOST, "reset", clock.now)
    with pytest.raises(OutcomeUnknown, match="outcome is unknown"):
        while True:
            step = p.next(clock.now)
            if isinstance(step, Pause):
                clock.now += step.seconds
            else:
                p.failed(step, Failure.NOT_SENT, "refused", clock.now)


def test_a_delete_retried_after_an_unknown_outcome_says_it_may_have_been_done() -> None:
    p = plan(core.delete_instance("s", "i"))
    p.failed(send(p), Failure.LOST, "reset", 100.0)
    with pytest.raises(NotFound, match="outcome was unknown"):
        p.answered(send(p), error(404, "not_found"), 100.0)


def test_a_lost_read_moves_on_and_a_read_timeout_is_raised() -> None:
    p = plan(READ)
    p.failed(send(p), Failure.LOST, "timed out", 100.0)
    with pytest.raises(Timeout) as caught:
        p.answered(send(p), error(504, "timeout"), 100.0)
    assert type(caught.value) is Timeout


@pytest.mark.parametrize(("status", "code", "cls"), [(400, "invalid_argument", InvalidArgument),
                                                     (404, "not_found", NotFound), (409, "conflict", Conflict),
                                                     (500, "internal", RaftregError)])
def test_other_errors_are_raised_at_once(status: int, code: str, cls: type[RaftregError]) -> None:
    p = plan(WRITE)
    with pytest.raises(cls):
        p.answered(send(p), error(status, code), 100.0)
    assert p.attempts == 1


def test_the_deadline_bounds_every_attempt_and_pause() -> None:
    clock = Clock()
    start = clock.now
    p = plan(READ, deadline=5.0, timeout=3.0, clock=clock)
    sends = 0
    with pytest.raises(Unavailable, match="unreachable"):
        while True:
            step = p.next(clock.now)
            if isinstance(step, Pause):
                clock.now += step.seconds
                continue
            sends += 1
            assert step.timeout <= start + 5.0 - clock.now + 1e-9
            assert step.connect_timeout <= step.timeout
            clock.now += min(step.timeout, 0.4)  # each refused connect takes a while
            p.failed(step, Failure.NOT_SENT, "refused", clock.now)
    assert clock.now <= start + 5.0
    assert sends >= len(NODES)


def test_a_pause_that_would_pass_the_deadline_gives_up_at_once() -> None:
    clock = Clock()
    p = plan(WRITE, deadline=3.0, clock=clock)
    for _ in NODES:
        p.answered(send(p, clock.now), error(503, "unavailable", Retry_After="5"), clock.now)
    with pytest.raises(Unavailable):
        p.next(clock.now)


def test_a_blocking_query_gets_its_hold_on_top_of_timeout_and_deadline() -> None:
    p = plan(core.list_services(index=3, wait=20.0), deadline=1.0, timeout=1.0)
    assert send(p).timeout == pytest.approx(1.0 + 20.0 * 17 / 16)


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_is_full_jitter_within_its_bound(attempt: int) -> None:
    policy = RetryPolicy(backoff_base=0.1, backoff_cap=2.0)
    rng = random.Random(attempt)
    bound = min(2.0, 0.1 * 2 ** attempt)
    samples = [policy.backoff(attempt, rng) for _ in range(500)]
    assert all(0.0 <= s <= bound for s in samples)
    assert max(samples) > 0.9 * bound and min(samples) < 0.1 * bound
    again = random.Random(attempt)
    assert samples == [policy.backoff(attempt, again) for _ in range(500)]


def test_plain_reads_rotate_and_writes_follow_the_last_node_that_answered() -> None:
    selector = NodeSelector(NODES, RetryPolicy(), random.Random(3))
    starts = [selector.order(READ, 0.0)[0] for _ in range(6)]
    assert sorted(starts[:3]) == [0, 1, 2] and starts[3:] == starts[:3]
    assert selector.order(WRITE, 0.0)[0] == 0  # the first node given until one answered
    selector.succeeded(2)
    assert selector.order(WRITE, 0.0) == [2, 0, 1]
    sticky = msgspec.structs.replace(READ, sticky=True)
    assert selector.order(sticky, 0.0)[0] == 2
    assert selector.order(core.list_instances("s", index=4), 0.0)[0] == 2


def test_a_failing_node_stays_at_the_back_longer_each_time_until_it_answers() -> None:
    selector = NodeSelector(NODES, RetryPolicy(suspect_for=1.0, suspect_cap=8.0), random.Random(1))
    until = []
    for _k in range(5):
        selector.failed(1, now=0.0)
        until.append(next(t for t in (x / 10 for x in range(200)) if not selector.suspected(1, t)))
    assert until == [1.0, 2.0, 4.0, 8.0, 8.0]
    selector.succeeded(1)
    assert not selector.suspected(1, 0.0)


def test_a_watch_cursor_reads_then_blocks_and_resets_when_the_index_goes_back() -> None:
    cursor = WatchCursor()
    assert cursor.blocking_index is None
    assert cursor.answered(0)  # an empty registry: the first answer is shown at once
    assert cursor.blocking_index == 0
    assert not cursor.answered(0)
    assert cursor.answered(5) and cursor.blocking_index == 5
    assert not cursor.answered(5)
    assert not cursor.answered(2) and cursor.blocking_index == 0  # went backwards: start over
    assert cursor.answered(2)
    resumed = WatchCursor(9)
    assert resumed.blocking_index == 9 and not resumed.answered(9) and resumed.answered(10)


def test_a_watch_cursor_backs_off_after_repeated_failures() -> None:
    cursor = WatchCursor(max_backoff=1.0)
    rng = random.Random(5)
    pauses = [cursor.failed(rng) for _ in range(10)]
    assert pauses[0] == 0.0 and all(0.0 <= p <= 1.0 for p in pauses)
    cursor.answered(1)
    assert cursor.failed(rng) == 0.0
