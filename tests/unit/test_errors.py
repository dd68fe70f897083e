"""The one error table: every code maps back to its class, whatever a peer or a node sends."""

from __future__ import annotations

from typing import Any

import pytest

from raftreg.errors import (
    ERRORS_BY_CODE,
    Conflict,
    InternalError,
    InvalidArgument,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
    RaftregError,
    Timeout,
    Unavailable,
    error_from_body,
)


@pytest.mark.parametrize("cls", [InvalidArgument, PermissionDenied, NotFound, Conflict, PayloadTooLarge, QuotaExceeded,
                                 Unavailable, Timeout, InternalError])
def test_every_error_round_trips_through_its_body(cls: type[RaftregError]) -> None:
    err = cls("what went wrong", field="port") if cls is not Unavailable else Unavailable("busy", field="port")
    back = error_from_body(err.status, err.to_body())
    assert type(back) is cls
    assert (back.code, back.status, back.message, back.field) == (err.code, err.status, err.message, "port")


def test_codes_are_unique_and_match_api_md() -> None:
    assert set(ERRORS_BY_CODE) == {"invalid_argument", "unauthenticated", "permission_denied", "not_found",
                                   "conflict", "payload_too_large", "quota_exceeded", "unavailable", "rate_limited",
                                   "timeout", "internal"}
    assert {cls.status for cls in ERRORS_BY_CODE.values()} == {400, 401, 403, 404, 409, 413, 429, 503, 504, 507, 500}


def test_a_timeout_answering_a_write_is_an_unknown_outcome() -> None:
    body = Timeout("not confirmed in time").to_body()
    assert type(error_from_body(504, body)) is Timeout
    assert type(error_from_body(504, body, write=True)) is OutcomeUnknown
    assert isinstance(error_from_body(504, body, write=True), Timeout)


def test_retry_after_is_kept() -> None:
    err = error_from_body(503, Unavailable("busy").to_body(), retry_after=7.0)
    assert isinstance(err, Unavailable) and err.retry_after == 7.0
    limited = error_from_body(429, {"error": {"code": "rate_limited", "message": "slow down"}}, retry_after=3.0)
    assert type(limited).__name__ == "RateLimited" and isinstance(limited, Unavailable)
    assert limited.status == 429 and limited.retry_after == 3.0


@pytest.mark.parametrize("body", [None, "oops", ["error"], 17, {}, {"error": "text"}, {"error": {"code": 5}},
                                  {"error": {"code": None, "message": ["x"]}}, {"error": {"message": "m", "field": 3}}])
def test_a_malformed_body_falls_back_to_the_status(body: Any) -> None:
    err = error_from_body(404, body)
    assert type(err) is NotFound and err.message and err.field is None
    err = error_from_body(503, body)
    assert type(err) is Unavailable


def test_an_unknown_code_or_status_is_a_plain_error_keeping_both() -> None:
    err = error_from_body(418, {"error": {"code": "teapot", "message": "short and stout"}})
    assert type(err) is RaftregError
    assert (err.status, err.code, err.message) == (418, "teapot", "short and stout")
