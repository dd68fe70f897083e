"""One exception tree; each error carries the stable code and HTTP status of API.md's table."""

from __future__ import annotations


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
    code = "invalid_argument"
    status = 400


class NotFound(RaftregError):
    code = "not_found"
    status = 404


class Conflict(RaftregError):
    code = "conflict"
    status = 409


class PayloadTooLarge(RaftregError):
    code = "payload_too_large"
    status = 413


class Unavailable(RaftregError):
    """No leader known, or the node is not ready: retry later (``Retry-After``)."""

    code = "unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CommitTimeout(RaftregError):
    """The write was not confirmed in time: its outcome is unknown and it may still apply."""

    code = "timeout"
    status = 504


class WaitTimeout(RaftregError):
    """A read waited for this node to apply an index (``min_index``) and the wait ran out."""

    code = "timeout"
    status = 504

