"""The Python client: talks to any node and fails over to the others.

Errors are the classes of ``raftreg.errors`` (re-exported here): ``NotFound``, ``Conflict``,
``InvalidArgument``, ``PermissionDenied``, ``Unavailable``, ``Timeout``, ``OutcomeUnknown``.
"""

from raftreg.client.http_client import RegistryClient
from raftreg.client.keepalive import keep_alive
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

__all__ = [
    "Conflict",
    "InvalidArgument",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "RaftregError",
    "RegistryClient",
    "Timeout",
    "Unavailable",
    "keep_alive",
]
