"""The Python client: one sans-I/O core (``core``, ``policy``), two shells.

- ``RegistryClient``: blocking (stdlib ``http.client``), thread-safe; ``with`` / ``close()``.
- ``AsyncRegistryClient``: asyncio (aiohttp); ``async with`` / ``aclose()``.

Both take node addresses and/or a cluster config file, spread reads over the nodes, fail over on
connection errors and 503 (honouring ``Retry-After``), retry idempotent writes with full-jitter
backoff under a total deadline, and never silently re-send a write whose outcome is unknown
(``raftreg.client.policy`` states the rules). Results are typed (``raftreg.client.results``) and
carry the index. Errors are the classes of ``raftreg.errors`` (re-exported here).
"""

from raftreg.client.async_client import AsyncRegistryClient
from raftreg.client.keepalive import keep_alive, keep_alive_blocking
from raftreg.client.results import (
    Check,
    ClusterStatus,
    Instance,
    InstanceResult,
    Instances,
    Lease,
    Member,
    Registration,
    Services,
    ServiceSummary,
    WriteResult,
)
from raftreg.client.sync_client import RegistryClient
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
    "AsyncRegistryClient",
    "Check",
    "ClusterStatus",
    "Conflict",
    "Instance",
    "InstanceResult",
    "Instances",
    "InvalidArgument",
    "Lease",
    "Member",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "RaftregError",
    "Registration",
    "RegistryClient",
    "ServiceSummary",
    "Services",
    "Timeout",
    "Unavailable",
    "WriteResult",
    "keep_alive",
    "keep_alive_blocking",
]
