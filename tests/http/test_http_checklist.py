"""The bad-input checklist of research §4.2 (reliability-and-faults.md): each row, its answer, and
the test that shows it. Rows already covered elsewhere are only mapped here; this module adds the
tests for the rows nothing covered yet (marked *here*).

Row 1 (body over the limit): 413 ``payload_too_large`` before the body is read (1 MiB). Tests:
    test_http_transport: ``test_body_over_1mib_*``, ``test_chunked_body_over_1mib_is_413``,
    ``test_huge_claimed_length_is_refused_before_the_body_arrives``.
Row 2 (lying Content-Length, endless chunked body): short length: only the claimed bytes are parsed; body then
    EOF: nothing changes; a stalled body (length or chunked) is 408 and closed after ``[limits]
    body_timeout``. Tests: test_http_transport: ``test_short_content_length_*``, ``test_body_shorter_than_*``,
    ``test_stalled_body_does_not_block_other_requests``; test_http_limits: ``test_a_stalled_body_is_408_*``;
    *here*: ``test_a_chunked_body_without_end_is_408``.
Row 3 (malformed JSON, wrong top-level type, NaN/Infinity, duplicate keys, depth): 400 ``invalid_argument``;
    duplicate keys are refused (a parser differential otherwise; was: last wins). Tests: test_http_errors:
    ``test_bad_body_is_rejected_and_changes_nothing``; test_http_fuzz; *here*:
    ``test_duplicate_keys_are_400``.
Row 4 (wrong Content-Type): 400 ``invalid_argument`` field ``Content-Type`` (API.md's table has one code for
    bad input; no 415). Tests: test_http_errors: ``test_wrong_content_type_is_400``.
Row 5 (names and ids): 400; names are ASCII-only (a DNS label; ids ``[A-Za-z0-9._:-]``), so there is one form
    and nothing to normalize. Tests: test_http_errors: ``test_bad_service_name_in_url``,
    ``test_bad_instance_id_in_url``, ``test_trailing_newline_is_rejected``.
Row 6 (traversal via ``%2f``): 400 (``%2F`` stays part of the name) or 404. Tests: test_http_errors:
    ``test_bad_service_name_in_url[encoded-traversal]``, ``test_unknown_route_is_404_json``.
Row 7 (metadata abuse): 400 past 64 tags/pairs, key 128, value 512 (API.md); these bound a record (under 64
    KiB), so there is no separate 16 KB cap. Tests: test_http_errors: ``BAD_BODIES`` (65-meta-pairs,
    meta-key-129, meta-value-513, 65-tags); *here*: ``test_the_largest_record_is_bounded``.
Row 8 (bad numbers): 400; a TTL outside [1 s, 24 h] is refused rather than clamped (a silently changed TTL
    would surprise its client). Tests: test_http_errors: ``BAD_BODIES`` (port-*, weight-*, ttl-*, 2^53+1).
Row 9 (huge number of objects): store quotas per node (``[quotas]``: services, instances per service and in
    all, keys, sessions): a write that would create an object past a cap is 507 ``quota_exceeded`` (the
    checklist's store quota; a 429 would be retried by clients as a rate limit) and proposes nothing, while
    reads, re-registrations and deletions work. No per-client quota and no pagination: the caps bound every
    list answer. Tests: test_http_quotas.
Row 10 (request flood): 429 ``rate_limited`` + ``Retry-After`` per client (the validated token's accessor
    with ACLs on, else the address: invented tokens share their address's bucket). Tests: test_http_limits:
    ``test_a_flooding_client_gets_429_*``, ``test_the_bucket_refills``; cluster/test_secure_cluster:
    ``test_random_bogus_tokens_share_one_bucket_*``; unit/test_limits; benchmarks/abuse_bench.py.
Row 11 (slowloris, idle hoarding): header timeout (request head within ``header_timeout`` of opening or of the
    last answer), body timeout, connections per address. Tests: test_http_limits:
    ``test_a_request_head_sent_byte_by_byte_is_cut_off``, ``test_an_idle_connection_is_closed``,
    ``test_a_stalled_body_*``, ``test_connections_over_the_per_address_cap_are_refused``.
Row 12 (long-poll abuse): ``wait`` clamped to 10 min; parked blocking queries per client capped, 429 beyond.
    Tests: test_http_watches: ``test_wait_over_the_maximum_is_accepted``; test_http_limits:
    ``test_a_blocking_query_over_the_cap_is_429``.
Row 13, 14, 16, 17 (ACL tokens): the ACL work of issue 13 (its own branch). Tests: -.
Row 15 (identity spoofing): grants nothing: node-to-node routes need the cluster-secret signature; the
    limiter's identity ignores them. Tests: test_http_signed:
    ``test_unsigned_requests_are_refused_and_change_nothing``; unit/test_limits: ``test_without_a_token_*``;
    *here*: ``test_spoofed_identity_headers_grant_nothing``.
Row 18 (token leakage): the limiter keeps accessor ids only; tokens are never logged or echoed. Tests:
    *here*: ``test_a_canary_token_is_never_logged_or_echoed``; the whole suite: tests/conftest.py scans every
    LocalCluster's node logs after each test for every secret minted so far (tests/secret_watch.py).
Row 19 (writes to a follower): forwarded to the leader; 503 + Retry-After without one. Tests:
    cluster/test_replication: ``test_register_through_follower_*``; cluster/test_failover
    (EXPECTED_WRITE_STATUSES).
Row 20 (replayed write): registration is idempotent by its client-chosen id; KV ``?cas``. Tests:
    test_http_watches: ``test_idempotent_writes_wake_nobody_*``; test_http_kv: ``test_cas_*``.
Row 21 (oversized or too many headers): 431/400 with the JSON error body (aiohttp: 8190 bytes a line, 128
    headers). Tests: test_http_transport: ``test_oversized_header_is_refused_without_traceback``; *here*:
    ``test_too_many_headers_is_400``.
Row 22 (method confusion): 405 + ``Allow``; TRACE/OPTIONS 405, CONNECT 404 (its target is no path); a GET's
    body is ignored. Tests: test_http_errors: ``test_wrong_method_is_405_json``; *here*:
    ``test_method_confusion``.
Row 23 (no internals in errors): 500 ``{"error": {"code": "internal", "message": "internal error"}}``, the
    traceback only in the log. Tests: *here*: ``test_an_unexpected_exception_is_a_bare_500``.
Row 24 (admin endpoints): debug routes exist only with ``RAFTREG_DEBUG_ENDPOINTS=1`` and need the signature.
    Tests: test_http_signed; *here*: ``test_debug_endpoints_are_absent_by_default``.
Row 25 (TLS): the TLS work of issue 13 (its own branch). Tests: -.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from raftreg.config import LimitsTuning
from raftreg.http.wire import error_middleware
from raftreg.testing import LocalCluster
from tests.conftest import START_TIMEOUT
from tests.http.conftest import Http
from tests.secret_watch import remember_secret

LIMITS = LimitsTuning(header_timeout=1.5, body_timeout=1.5)
MARGIN = 3.0
CANARY = "canary-4f1d-do-not-log"
remember_secret(CANARY)
GOOD = {"address": "10.0.0.5", "port": 8080}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(1, limits=LIMITS, debug_endpoints=False)
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


def raw_exchange(api: Http, data: bytes, deadline: float) -> bytes:
    """Send ``data``, then read until the server closes (fails past ``deadline`` seconds)."""
    with socket.create_connection((api.host, api.port), timeout=deadline) as sock:
        sock.sendall(data)
        out, end = b"", time.monotonic() + deadline
        while time.monotonic() < end:
            sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                return out
            out += chunk
    pytest.fail(f"the server did not close the connection within {deadline}s; got {out[:200]!r}")


def test_a_chunked_body_without_end_is_408(api: Http) -> None:
    with api.unchanged("/v1/services/chunky"):
        answer = raw_exchange(api, b"PUT /v1/services/chunky/instances/i1 HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   b"5\r\n{\"add\r\n", LIMITS.body_timeout + MARGIN)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"invalid_argument"' in answer


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/v1/services/dup/instances/i1", b'{"address": "10.0.0.5", "port": 1, "port": 8080}'),
    ("PUT", "/v1/services/dup/instances/i1", b'{"address": "10.0.0.5", "port": 8080, "meta": {"k": "a", "k": "b"}}'),
    ("PUT", "/v1/services/dup/instances/i1/status", b'{"status": "warning", "status": "critical"}'),
    ("PUT", "/v1/txn", b'{"ops": [{"op": "set", "key": "a", "key": "b", "value": ""}]}'),
    ("PUT", "/v1/sessions", b'{"ttl": "15s", "ttl": "1h"}'),
], ids=["instance-field", "meta-key", "status", "txn-op", "session"])
def test_duplicate_keys_are_400(api: Http, method: str, path: str, body: bytes) -> None:
    with api.unchanged("/v1/services/dup", "/v1/kv/a", "/v1/kv/b"):
        resp = api.request(method, path, body)
        err = api.assert_error(resp, 400, "invalid_argument")
        assert "twice" in err["message"]


def test_the_largest_record_is_bounded(api: Http) -> None:
    body = {**GOOD, "tags": [f"{i:03}" + "t" * 125 for i in range(64)],
            "meta": {f"{i:03}" + "k" * 125: "v" * 512 for i in range(64)}}
    stored = api.put_ok("big", "i1", body)
    assert len(json.dumps(stored)) < 64 * 1024
    api.delete_ok("big", "i1")


@pytest.mark.parametrize("headers", [
    {"User-Agent": "raftreg-node"}, {"X-Forwarded-For": "127.0.0.1"}, {"X-Raftreg-Internal": "1"},
    {"X-Raftreg-Node": "n1", "X-Real-Ip": "10.0.0.1"},
])
def test_spoofed_identity_headers_grant_nothing(api: Http, headers: dict[str, str]) -> None:
    with api.unchanged():
        resp = api.request("POST", "/v1/internal/heartbeats", b"{}", headers=headers)
        api.assert_error(resp, 403, "permission_denied", None)


def test_a_canary_token_is_never_logged_or_echoed(api: Http, cluster: LocalCluster) -> None:
    for headers in ({"Authorization": f"Bearer {CANARY}"}, {"X-Raftreg-Token": CANARY}):
        for method, path, body in (("GET", "/v1/services", None), ("PUT", "/v1/services/Bad/instances/i", b"{"),
                                   ("POST", "/v1/internal/heartbeats", b"{}"), ("GET", "/v1/nope", None)):
            resp = api.request(method, path, body, headers=headers)
            assert CANARY.encode() not in resp.body and CANARY not in str(resp.headers)
    assert CANARY not in cluster.log_text("n1")


def test_too_many_headers_is_400(api: Http) -> None:
    answer = raw_exchange(api, b"GET /v1/services HTTP/1.1\r\nHost: x\r\n"
                               + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n", MARGIN + 5)
    assert answer.split(b" ", 2)[1] in (b"400", b"431"), answer[:200]
    assert b'"invalid_argument"' in answer and b"Traceback" not in answer
    assert api.get("/v1/health").status == 200


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "OPTIONS"])
def test_method_confusion(api: Http, method: str) -> None:
    with api.unchanged("/v1/services/mc"):
        resp = api.request(method, "/v1/services/mc/instances/i1", json.dumps(GOOD).encode())
        assert resp.status in (400, 404, 405), resp.body  # CONNECT's target is an authority: no route
        codes = {400: "invalid_argument", 404: "not_found", 405: "method_not_allowed"}
        api.assert_error(resp, resp.status, codes[resp.status])


def test_a_get_with_a_body_is_a_plain_get(api: Http) -> None:
    with api.unchanged("/v1/services/mc"):
        plain = api.get("/v1/services")
        with_body = api.request("GET", "/v1/services", json.dumps(GOOD).encode())
        assert (with_body.status, with_body.json()) == (plain.status, plain.json())


def test_debug_endpoints_are_absent_by_default(api: Http) -> None:
    for path in ("/v1/debug/snapshot", "/v1/debug/wedge", "/v1/debug/partition"):
        api.assert_error(api.signed("POST", path, {}), 404, "not_found")
    api.assert_error(api.signed("GET", "/v1/debug/digest"), 404, "not_found")


async def test_an_unexpected_exception_is_a_bare_500(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals /etc/raftreg")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/boom", broken)
    async with TestClient(TestServer(app)) as client:
        with caplog.at_level(logging.ERROR, logger="raftreg.http"):
            resp = await client.get("/boom")
            assert resp.status == 500
            assert await resp.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "secret internals" in caplog.text  # in the server's log only
