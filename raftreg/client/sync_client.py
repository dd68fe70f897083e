"""``RegistryClient``: the blocking shell over the sans-I/O core.

    with RegistryClient(["127.0.0.1:8501", "127.0.0.1:8502"]) as c:   # or config="cluster.toml"
        stored = c.register("cart", "cart-1", Registration(address="10.0.0.5", port=8080, ttl=10))
        found = c.instances("cart", passing=True, min_index=stored.index)

Transport: stdlib ``http.client`` with a per-node keep-alive pool (``sync_transport``), chosen over
a private event loop in a background thread because a blocking call is then just a blocking
call: it behaves the same from a plain script, from a thread while another thread runs an event
loop, and from inside a coroutine of a running loop (where ``asyncio.run`` would refuse and a
``run_until_complete`` would re-enter the loop). No loop, no hidden thread, nothing to shut down
at exit or after ``fork``, and no cross-thread hand-off per call. Called from a coroutine it
blocks that loop for the duration of the call, as any blocking I/O does; async code should use
``AsyncRegistryClient`` (same methods, awaited) or ``asyncio.to_thread``.

Thread-safe: one client may be shared by threads. Failover and retries follow
``raftreg.client.policy`` (the module docstring states the rules); errors are the classes of
``raftreg.errors`` (``NotFound``, ``Conflict``, ``InvalidArgument``, ``PermissionDenied``,
``Unavailable``, ``Timeout``, ``OutcomeUnknown``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from raftreg.client import core
from raftreg.client.balancers import Balancer
from raftreg.client.core import LostAfterSend, Malformed, NotSent, Params, Reply, Request, Response
from raftreg.client.discovery import Discoveries, Discovery, changes
from raftreg.client.kv_sync import KVCalls
from raftreg.client.policy import CallPlan, Failure, NodeSelector, Pause, RetryPolicy, WatchCursor
from raftreg.client.registration import SyncRegistration, build_spec
from raftreg.client.results import (
    Check,
    ClusterStatus,
    Instance,
    InstanceResult,
    Instances,
    Lease,
    Registration,
    Services,
    WriteResult,
)
from raftreg.client.service import Callers, ServiceHandle
from raftreg.client.session_sync import SessionCalls
from raftreg.client.sync_transport import ConnectionPool
from raftreg.client.tls import connect_plan
from raftreg.errors import Timeout, Unavailable

T = TypeVar("T")
Meta = Mapping[str, str] | Iterable[tuple[str, str]]


class RegistryClient(KVCalls, SessionCalls):
    """A blocking client of a raftreg cluster.

    ``addrs``: node addresses (``host:port`` or ``http://host:port``); ``config``: a cluster config
    file whose nodes are added (at least one of the two). ``timeout``: seconds per attempt at one
    node; ``deadline``: seconds for a whole call, failovers and pauses included (a blocking
    query's ``wait`` is added to both). ``rng`` seeds the jitter and the choice of the first node
    for reads (tests). ``ca_file``/``cert_file``/``key_file``: TLS (``raftreg.client.tls``): any
    of them, or a ``config`` with ``[tls]``, makes bare addresses ``https``; a config's
    ``tls.ca_file`` is used unless ``ca_file`` is given; ``cert_file`` is the client certificate
    that clusters with ``verify_clients`` require. ``token``: the ACL token's secret, sent as
    ``Authorization: Bearer``."""

    def __init__(self, addrs: Sequence[str] | str | None = None, *, config: str | Path | None = None,
                 timeout: float = 6.0, deadline: float = 15.0, connect_timeout: float = 2.0,
                 rng: random.Random | None = None, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, token: str | None = None) -> None:
        nodes, ssl_context = connect_plan(addrs, config, ca_file, cert_file, key_file)
        self._policy = RetryPolicy(timeout=timeout, deadline=deadline, connect_timeout=min(connect_timeout, timeout))
        self._rng = rng or random.Random()
        self._selector = NodeSelector([n.url for n in nodes], self._policy, self._rng)
        self._lock = threading.Lock()  # guards the selector and the rng
        self._pool = ConnectionPool(nodes, ssl_context=ssl_context, token=token, client_cert=cert_file is not None)
        self._discoveries = Discoveries(self)
        self._callers = Callers(self._discoveries, self._policy.deadline)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The base URLs of the nodes, in the order given."""
        return self._selector.nodes

    @property
    def deadline(self) -> float:
        """Seconds a whole call may take (failovers and pauses included)."""
        return self._policy.deadline

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the client's discoveries and close the idle connections; the client must not be
        used afterwards."""
        self._discoveries.close()
        self._pool.close()

    # ---- instances ------------------------------------------------------------------------------
    def register(self, service: str, instance_id: str, spec: Registration | Mapping[str, Any], *,
                 deadline: float | None = None) -> InstanceResult:
        """Register or replace an instance (idempotent, so retried after an unknown outcome).
        ``spec`` is a ``Registration`` or API.md's JSON body as a mapping (durations may be
        strings there). Returns the stored instance and the commit index."""
        return self._call(core.put_instance(service, instance_id, spec), core.parse_instance, deadline=deadline)

    def deregister(self, service: str, instance_id: str, *, deadline: float | None = None) -> WriteResult:
        """Remove an instance; ``NotFound`` if there is none."""
        return self._call(core.delete_instance(service, instance_id), core.parse_write, deadline=deadline)

    def heartbeat(self, service: str, instance_id: str, *, deadline: float | None = None) -> Lease:
        """Renew a TTL instance's lease. ``NotFound``: the lease expired; register again
        (``keep_alive_blocking`` does all of this)."""
        return self._call(core.heartbeat(service, instance_id), core.parse_lease, deadline=deadline)

    def set_status(self, service: str, instance_id: str, status: str, note: str = "", *,
                   deadline: float | None = None) -> InstanceResult:
        """Set the status by hand (``warning``/``critical``), or clear it (``passing``)."""
        return self._call(core.set_status(service, instance_id, status, note), core.parse_instance,
                          deadline=deadline)

    def instance(self, service: str, instance_id: str, *, consistent: bool = False, min_index: int | None = None,
                 index: int | None = None, wait: float | None = None,
                 deadline: float | None = None) -> InstanceResult:
        """One instance; ``NotFound`` if absent. Read options as in ``instances``."""
        req = core.get_instance(service, instance_id, consistent=consistent, min_index=min_index, index=index,
                                wait=wait)
        return self._call(req, core.parse_instance, deadline=deadline)

    def instances(self, service: str, *, passing: bool = False, tags: Iterable[str] = (), meta: Meta = (),
                  consistent: bool = False, min_index: int | None = None, index: int | None = None,
                  wait: float | None = None, deadline: float | None = None) -> Instances:
        """A service's instances (all ``tags`` and ``meta`` pairs must match; ``passing``: only
        passing ones). ``consistent``: linearizable; ``min_index``: only from a node that applied
        it; ``index``/``wait``: a blocking query (answers once the index exceeds ``index``)."""
        req = core.list_instances(service, passing=passing, tags=tags, meta=meta, consistent=consistent,
                                  min_index=min_index, index=index, wait=wait)
        return self._call(req, core.parse_instances, deadline=deadline)

    def services(self, *, consistent: bool = False, min_index: int | None = None, index: int | None = None,
                 wait: float | None = None, deadline: float | None = None) -> Services:
        """Every service with its instance counts, sorted by name."""
        req = core.list_services(consistent=consistent, min_index=min_index, index=index, wait=wait)
        return self._call(req, core.parse_services, deadline=deadline)

    def cluster_status(self, *, deadline: float | None = None) -> ClusterStatus:
        """The Raft view of whichever node answers."""
        return self._call(core.cluster_status(), core.parse_cluster_status, deadline=deadline)

    # ---- watches --------------------------------------------------------------------------------
    def watch_instances(self, service: str, *, passing: bool = False, tags: Iterable[str] = (), meta: Meta = (),
                        index: int = 0, wait: float = 60.0, max_backoff: float = 5.0) -> Iterator[Instances]:
        """Yield the service's instances now (from ``index=0``), then again at every change.

        Runs blocking queries one after the other, each on the node that answered last (the first
        node given, for a new client), not spread like plain reads; a node
        that fails is left for another, keeping the index, so a watcher never goes back in time.
        Failures back off up to ``max_backoff``; an index that goes backwards resets to 0."""
        tags, meta = tuple(tags), tuple(meta.items() if isinstance(meta, Mapping) else meta)

        def build(at: int | None) -> Request:
            return core.list_instances(service, passing=passing, tags=tags, meta=meta, index=at,
                                       wait=wait if at is not None else None)

        return self._watch(build, core.parse_instances, lambda r: r.index, index, max_backoff)

    def watch_services(self, *, index: int = 0, wait: float = 60.0, max_backoff: float = 5.0) -> Iterator[Services]:
        """Yield the service list now (from ``index=0``), then again at every change."""

        def build(at: int | None) -> Request:
            return core.list_services(index=at, wait=wait if at is not None else None)

        return self._watch(build, core.parse_services, lambda r: r.index, index, max_backoff)

    def watch(self, path: str, params: Iterable[tuple[str, str]] | None = None, *, index: int = 0,
              wait: float = 60.0, max_backoff: float = 5.0) -> Iterator[tuple[int, Any]]:
        """Low-level watch of any read endpoint: yields ``(index, decoded body)``."""
        base = tuple(params or ())

        def build(at: int | None) -> Request:
            extra = () if at is None else (("index", str(at)), ("wait", f"{wait:g}s"))
            return core.custom("GET", path, params=(*base, *extra), sticky=True)

        for reply in self._watch(build, core.parse_reply, lambda r: r.index, index, max_backoff):
            yield reply.index, reply.body

    # ---- self-registration, discovery, calls (raftreg.client.registration, .discovery, .service) --
    def registration(self, service: str, instance_id: str, *, address: str, port: int, ttl: float | str = "10s",
                     tags: Iterable[str] = (), meta: Mapping[str, str] | None = None, weight: int = 100,
                     check: Check | Mapping[str, Any] | None = None) -> SyncRegistration:
        """A self-registration: ``with`` registers, heartbeats every ttl/3 in a daemon thread,
        deregisters on exit and at interpreter exit (contract: ``raftreg.client.registration``)."""
        spec, seconds = build_spec(address=address, port=port, ttl=ttl, tags=tags, meta=meta, weight=weight,
                                   check=check)
        return SyncRegistration(self, service, instance_id, spec, seconds, start_timeout=self.deadline)

    def watch_service(self, name: str, *, passing: bool = True, tags: Iterable[str] = ()) -> Iterator[Instances]:
        """The service's instances now, then again at every change of the list (a blocking-query
        watch, as ``watch_instances``, that skips answers whose instances did not change)."""
        return changes(self.watch_instances(name, passing=passing, tags=tags))

    def discovery(self, name: str, *, passing: bool = True) -> Discovery:
        """The client's shared live list of ``name``, kept by one daemon thread per (name,
        passing), started by the first call (contract: ``raftreg.client.discovery``)."""
        return self._discoveries.get(name, passing)

    def service(self, name: str, *, balancer: str | Balancer = "round_robin") -> ServiceHandle:
        """``register``/``deregister``/``get_instance`` of one service (``raftreg.client.service``)."""
        return ServiceHandle(self, name, balancer=balancer)

    def call(self, service: str, fn: Callable[[Instance], T], *, balancer: str | Balancer = "round_robin",
             retries: int = 2, passing: bool = True) -> T:
        """``fn(instance)`` on an instance of ``service`` chosen by ``balancer``, retrying a failure
        on other instances with outlier ejection (``raftreg.client.calls``); thread-safe."""
        return self._callers.call(service, fn, balancer, retries, passing)

    # ---- low level ------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: Params = None,
                timeout: float | None = None, deadline: float | None = None,
                idempotent: bool | None = None, sticky: bool = False) -> Reply:
        """Any request of the API under the same failover rules. Returns a ``Reply`` (decoded
        body, headers, index) or raises.
        ``idempotent=None`` infers it (``core.infer_idempotent``); ``timeout`` and ``deadline``
        override the client's for this call."""
        req = core.custom(method, path, json=json, params=params, idempotent=idempotent, sticky=sticky)
        return self._call(req, core.parse_reply, timeout=timeout, deadline=deadline)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).body

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body).body

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path).body

    # ---- the driver of the core's plan ----------------------------------------------------------
    def _call(self, request: Request, parse: Callable[[Response], T], *, timeout: float | None = None,
              deadline: float | None = None) -> T:
        with self._lock:
            plan = CallPlan(request, self._selector, self._policy, self._rng, time.monotonic(), timeout=timeout,
                            deadline=deadline)
        while True:
            with self._lock:
                step = plan.next(time.monotonic())
            if isinstance(step, Pause):
                time.sleep(step.seconds)
                continue
            try:
                response = self._pool.send(step.node, request, step.timeout, step.connect_timeout)
            except (NotSent, LostAfterSend) as exc:
                with self._lock:
                    plan.failed(step, Failure.NOT_SENT if isinstance(exc, NotSent) else Failure.LOST, str(exc),
                                time.monotonic())
                continue
            with self._lock:
                if not plan.answered(step, response, time.monotonic()):
                    continue
            try:
                return parse(response)
            except Malformed as exc:
                with self._lock:
                    plan.failed(step, Failure.MALFORMED, str(exc), time.monotonic())

    def _watch(self, build: Callable[[int | None], Request], parse: Callable[[Response], T],
               index_of: Callable[[T], int], index: int, max_backoff: float) -> Iterator[T]:
        cursor = WatchCursor(index, max_backoff=max_backoff)
        while True:
            try:
                result = self._call(msgspec.structs.replace(build(cursor.blocking_index), sticky=True), parse)
            except (Unavailable, Timeout):
                with self._lock:
                    pause = cursor.failed(self._rng)
                time.sleep(pause)
                continue
            if cursor.answered(index_of(result)):
                yield result
