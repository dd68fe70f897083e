"""One exception tree and one error table, shared by the server, the node-to-node clients and the
Python client.

Each class carries the stable ``code`` and HTTP ``status`` of API.md's table. The server turns an
error into ``{"error": {"code", "message", "field"?}}`` (``to_body``); whoever reads such a body
turns it back into the same class with ``error_from_body``. Only errors that cross the wire live
here (a bad config file is ``raftreg.config.ConfigError``).
"""

from __future__ import annotations

from typing import Any


class RaftregError(Exception):
    """Base of every error raftreg reports to a client."""

    code = "internal"
    status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_body(self) -> dict[str, dict[str, str]]:
        """The JSON error body: ``{"error": {"code", "message", "field"?}}``."""
        err = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        return {"error": err}


class InvalidArgument(RaftregError):
    """Malformed JSON, a wrong type, a bad name or an out-of-range value (``field`` names it)."""

    code = "invalid_argument"
    status = 400


class Unauthenticated(RaftregError):
    """ACLs are on and the request has no token, or one the cluster does not know."""

    code = "unauthenticated"
    status = 401


class PermissionDenied(RaftregError):
    """The request is not allowed (an unsigned or badly signed node-to-node request, or a token
    that lacks the permission the message names)."""

    code = "permission_denied"
    status = 403


class NotFound(RaftregError):
    code = "not_found"
    status = 404


class Conflict(RaftregError):
    """A compare-and-set mismatch or a held lock."""

    code = "conflict"
    status = 409


class PayloadTooLarge(RaftregError):
    code = "payload_too_large"
    status = 413


class QuotaExceeded(RaftregError):
    """507: the write would create an object past one of the store's caps (``[quotas]``, named in
    the message); nothing was applied. Retrying does not help until objects are deleted or expire;
    reads and writes to existing objects still work (etcd's NOSPACE alarm, per object kind)."""

    code = "quota_exceeded"
    status = 507


class Unavailable(RaftregError):
    """Nothing was applied: no leader known, the node is not ready or is overloaded, or no node
    could be reached. Retry after ``retry_after`` seconds (``Retry-After``), here or elsewhere."""

    code = "unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: float = 1.0, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class RateLimited(Unavailable):
    """429: this client sent too many requests or holds too many connections or blocking queries
    (``raftreg.http.limits``); nothing was applied. Retry after ``retry_after`` seconds."""

    code = "rate_limited"
    status = 429


class Timeout(RaftregError):
    """The operation did not finish in time (a ``min_index`` read waited out its ``wait``)."""

    code = "timeout"
    status = 504


class OutcomeUnknown(Timeout):
    """A write was not confirmed in time, or its connection broke after it was sent: it may or
    may not apply. Never "failed": retry only if the write is idempotent."""


class InternalError(RaftregError):
    """A bug on the server's side (e.g. the state machine answered a command with a result that
    does not fit it). Never caused by what a client sent; logged on the server."""

    code = "internal"
    status = 500


# The table: code -> class. A 504 "timeout" answering a write is an ``OutcomeUnknown``.
ERRORS_BY_CODE: dict[str, type[RaftregError]] = {
    cls.code: cls for cls in (InvalidArgument, Unauthenticated, PermissionDenied, NotFound, Conflict,
                              PayloadTooLarge, QuotaExceeded, Unavailable, RateLimited, Timeout, InternalError)
}


def error_from_body(status: int, body: Any, *, write: bool = False, retry_after: float = 1.0) -> RaftregError:
    """The exception an error answer stands for. ``body`` may be anything a peer sent (a
    non-dict or a missing code gives the class of the HTTP status, or ``RaftregError``)."""
    detail = body.get("error") if isinstance(body, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    code, message, field = detail.get("code"), detail.get("message"), detail.get("field")
    cls = ERRORS_BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None:
        cls = next((c for c in ERRORS_BY_CODE.values() if c.status == status), RaftregError)
    if write and cls is Timeout:
        cls = OutcomeUnknown
    text = message if isinstance(message, str) and message else f"HTTP {status}"
    name = field if isinstance(field, str) else None
    if issubclass(cls, Unavailable):
        return cls(text, retry_after=retry_after, field=name)
    err = cls(text, field=name)
    if cls is RaftregError:
        err.status = status
        err.code = code if isinstance(code, str) else "unknown"
    return err
