"""The Python client: one sans-I/O core (``core``, ``policy``), two shells.

- ``RegistryClient``: blocking (stdlib ``http.client``), thread-safe; ``with`` / ``close()``.
- ``AsyncRegistryClient``: asyncio (aiohttp); ``async with`` / ``aclose()``.

Both take node addresses and/or a cluster config file, spread reads over the nodes, fail over on
connection errors and 503 (honouring ``Retry-After``), retry idempotent writes with full-jitter
backoff under a total deadline, and never silently re-send a write whose outcome is unknown
(``raftreg.client.policy`` states the rules). Results are typed (``raftreg.client.results``) and
carry the index. Errors are the classes of ``raftreg.errors`` (re-exported here).

On top of the calls: ``client.registration(...)`` (self-registration with heartbeats,
``registration``), ``client.watch_service``/``client.discovery(name)`` (live instance lists with
stale protection, ``discovery``), ``client.service(name)`` (register / deregister / get_instance,
``service``) and ``client.call(service, fn)`` (balanced calls with retries and outlier ejection,
``calls``, over the ``balancers``).

Key/value: ``kv_get``/``kv_put``/``kv_delete``/``kv_list``/``kv_keys``/``kv_history``/
``kv_rollback``/``txn`` (ops from ``raftreg.client.txn``)/``watch_kv`` (``kv_sync``, ``kv_async``;
types in ``kv_results``), and ``client.config(prefix)``, a live decoded view
(``recipes.config``).
"""

from raftreg.client import txn
from raftreg.client.async_client import AsyncRegistryClient
from raftreg.client.balancers import Balancer, NoInstances, make_balancer
from raftreg.client.calls import AsyncServiceCaller, OutlierEjector, ServiceCaller
from raftreg.client.discovery import AsyncDiscovery, Discovery
from raftreg.client.keepalive import keep_alive, keep_alive_blocking
from raftreg.client.kv_results import (
    KVDeleted,
    KVEntry,
    KVHistory,
    KVKeys,
    KVList,
    KVVersion,
    KVWrite,
    TxnOp,
    TxnResult,
)
from raftreg.client.recipes.config import AsyncConfigView, ConfigView
from raftreg.client.recipes.election import AsyncElection, Election
from raftreg.client.recipes.lock import AsyncLock, Lock, LockTimeout
from raftreg.client.registration import AsyncRegistration, SyncRegistration
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
from raftreg.client.service import AsyncServiceHandle, ServiceHandle
from raftreg.client.session_core import Session, SessionCreated, SessionDestroyed, SessionList, SessionRenewed
from raftreg.client.sync_client import RegistryClient
from raftreg.client.tls import ClientCertificateRequired
from raftreg.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    QuotaExceeded,
    RaftregError,
    Timeout,
    Unavailable,
)

__all__ = [
    "AsyncConfigView",
    "AsyncDiscovery",
    "AsyncElection",
    "AsyncLock",
    "AsyncRegistration",
    "AsyncRegistryClient",
    "AsyncServiceCaller",
    "AsyncServiceHandle",
    "Balancer",
    "Check",
    "ClientCertificateRequired",
    "ClusterStatus",
    "ConfigView",
    "Conflict",
    "Discovery",
    "Election",
    "Instance",
    "InstanceResult",
    "Instances",
    "InvalidArgument",
    "KVDeleted",
    "KVEntry",
    "KVHistory",
    "KVKeys",
    "KVList",
    "KVVersion",
    "KVWrite",
    "Lease",
    "Lock",
    "LockTimeout",
    "Member",
    "NoInstances",
    "NotFound",
    "OutcomeUnknown",
    "OutlierEjector",
    "PermissionDenied",
    "QuotaExceeded",
    "RaftregError",
    "Registration",
    "RegistryClient",
    "ServiceCaller",
    "ServiceHandle",
    "ServiceSummary",
    "Services",
    "Session",
    "SessionCreated",
    "SessionDestroyed",
    "SessionList",
    "SessionRenewed",
    "SyncRegistration",
    "Timeout",
    "TxnOp",
    "TxnResult",
    "Unavailable",
    "WriteResult",
    "keep_alive",
    "keep_alive_blocking",
    "make_balancer",
    "txn",
]
