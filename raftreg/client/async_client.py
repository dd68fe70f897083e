"""``AsyncRegistryClient``: the asyncio shell over the sans-I/O core, on aiohttp.

    async with AsyncRegistryClient(config="cluster-configs/local-3.toml") as c:
        stored = await c.register("cart", "cart-1", Registration(address="10.0.0.5", port=8080))
        async for found in c.watch_instances("cart"):
            ...

The same methods as the blocking ``RegistryClient``, awaited, with the same failover rules
(``raftreg.client.policy``) and errors (``raftreg.errors``). ``aclose()`` (or ``async with``)
closes its connections. One client serves many concurrent calls and watches on one event loop
(no connection limit: every watch holds a connection for its whole wait).

Transport: an aiohttp session whose ``no_silent_retry`` middleware stops aiohttp from re-sending
a PUT or DELETE on a new connection after a connection broke (RFC 9112 allows it, and it would
turn "outcome unknown" into a refused retry); a non-idempotent request goes out on a connection
of its own, never on one the server may have closed while idle.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

from raftreg.client import core
from raftreg.client.balancers import Balancer
from raftreg.client.core import (
    Headers,
    LostAfterSend,
    Malformed,
    NotSent,
    Params,
    Reply,
    Request,
    Response,
    auth_headers,
)
from raftreg.client.discovery import AsyncDiscoveries, AsyncDiscovery, achanges
from raftreg.client.kv_async import AsyncKVCalls
from raftreg.client.policy import CallPlan, Failure, NodeSelector, Pause, RetryPolicy, Send, WatchCursor
from raftreg.client.registration import AsyncRegistration, build_spec
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
from raftreg.client.service import AsyncCallers, AsyncServiceHandle
from raftreg.client.session_async import AsyncSessionCalls
from raftreg.client.tls import certificate_required, connect_plan, refuses_without_certificate
from raftreg.errors import Timeout, Unavailable

T = TypeVar("T")
Meta = Mapping[str, str] | Iterable[tuple[str, str]]


class ConnectionLostAfterSend(aiohttp.ClientConnectionError):
    """The connection broke after the request was (perhaps) sent: a write's outcome is unknown."""


async def no_silent_retry(req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
    """aiohttp client middleware: a connection lost after sending surfaces as
    ``ConnectionLostAfterSend`` instead of being re-sent by aiohttp on a new connection; a refused
    connection (nothing sent) stays an ``aiohttp.ClientConnectorError``."""
    try:
        return await handler(req)
    except aiohttp.ClientConnectorError:
        raise
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise ConnectionLostAfterSend(f"{req.method} {req.url}: connection lost: {exc}") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class AsyncRegistryClient(AsyncKVCalls, AsyncSessionCalls):
    """An asyncio client of a raftreg cluster; arguments as ``RegistryClient``'s."""

    def __init__(self, addrs: Sequence[str] | str | None = None, *, config: str | Path | None = None,
                 timeout: float = 6.0, deadline: float = 15.0, connect_timeout: float = 2.0,
                 rng: random.Random | None = None, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, token: str | None = None) -> None:
        nodes, ssl_context = connect_plan(addrs, config, ca_file, cert_file, key_file)
        self._nodes = nodes
        self._probe_ssl = ssl_context if cert_file is None else None  # see _check_certificate
        self._auth = auth_headers(token)
        self._policy = RetryPolicy(timeout=timeout, deadline=deadline, connect_timeout=min(connect_timeout, timeout))
        self._rng = rng or random.Random()
        self._selector = NodeSelector([n.url for n in nodes], self._policy, self._rng)
        self._timeout = aiohttp.ClientTimeout(total=None, connect=self._policy.connect_timeout)
        self._ssl: ssl.SSLContext | bool = ssl_context or True
        self._session: aiohttp.ClientSession | None = None  # keep-alive connections
        self._fresh: aiohttp.ClientSession | None = None  # one new connection per request
        self._discoveries = AsyncDiscoveries(self)
        self._callers = AsyncCallers(self._discoveries, self._policy.deadline)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The base URLs of the nodes, in the order given."""
        return self._selector.nodes

    @property
    def deadline(self) -> float:
        """Seconds a whole call may take (failovers and pauses included)."""
        return self._policy.deadline

    async def __aenter__(self) -> AsyncRegistryClient:
        self._keep_alive_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def close(self) -> None:
        """The same as ``aclose()`` (aiohttp's ``ClientSession.close()`` spelling)."""
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the client's discoveries and close its connections."""
        await self._discoveries.aclose()
        for session in (self._session, self._fresh):
            if session is not None:
                await session.close()
        self._session = self._fresh = None

    # ---- instances, services, cluster (see RegistryClient for the contracts) --------------------
    async def register(self, service: str, instance_id: str, spec: Registration | Mapping[str, Any], *,
                       deadline: float | None = None) -> InstanceResult:
        return await self._call(core.put_instance(service, instance_id, spec), core.parse_instance,
                                deadline=deadline)

    async def deregister(self, service: str, instance_id: str, *, deadline: float | None = None) -> WriteResult:
        return await self._call(core.delete_instance(service, instance_id), core.parse_write, deadline=deadline)

    async def heartbeat(self, service: str, instance_id: str, *, deadline: float | None = None) -> Lease:
        return await self._call(core.heartbeat(service, instance_id), core.parse_lease, deadline=deadline)

    async def set_status(self, service: str, instance_id: str, status: str, note: str = "", *,
                         deadline: float | None = None) -> InstanceResult:
        return await self._call(core.set_status(service, instance_id, status, note), core.parse_instance,
                                deadline=deadline)

    async def instance(self, service: str, instance_id: str, *, consistent: bool = False,
                       min_index: int | None = None, index: int | None = None, wait: float | None = None,
                       deadline: float | None = None) -> InstanceResult:
        req = core.get_instance(service, instance_id, consistent=consistent, min_index=min_index, index=index,
                                wait=wait)
        return await self._call(req, core.parse_instance, deadline=deadline)

    async def instances(self, service: str, *, passing: bool = False, tags: Iterable[str] = (), meta: Meta = (),
                        consistent: bool = False, min_index: int | None = None, index: int | None = None,
                        wait: float | None = None, deadline: float | None = None) -> Instances:
        req = core.list_instances(service, passing=passing, tags=tags, meta=meta, consistent=consistent,
                                  min_index=min_index, index=index, wait=wait)
        return await self._call(req, core.parse_instances, deadline=deadline)

    async def services(self, *, consistent: bool = False, min_index: int | None = None, index: int | None = None,
                       wait: float | None = None, deadline: float | None = None) -> Services:
        req = core.list_services(consistent=consistent, min_index=min_index, index=index, wait=wait)
        return await self._call(req, core.parse_services, deadline=deadline)

    async def cluster_status(self, *, deadline: float | None = None) -> ClusterStatus:
        return await self._call(core.cluster_status(), core.parse_cluster_status, deadline=deadline)

    # ---- watches --------------------------------------------------------------------------------
    def watch_instances(self, service: str, *, passing: bool = False, tags: Iterable[str] = (), meta: Meta = (),
                        index: int = 0, wait: float = 60.0,
                        max_backoff: float = 5.0) -> AsyncGenerator[Instances, None]:
        """As ``RegistryClient.watch_instances``, as an async generator (``aclose()`` ends it)."""
        tags, meta = tuple(tags), tuple(meta.items() if isinstance(meta, Mapping) else meta)

        def build(at: int | None) -> Request:
            return core.list_instances(service, passing=passing, tags=tags, meta=meta, index=at,
                                       wait=wait if at is not None else None)

        return self._watch(build, core.parse_instances, lambda r: r.index, index, max_backoff)

    def watch_services(self, *, index: int = 0, wait: float = 60.0,
                       max_backoff: float = 5.0) -> AsyncGenerator[Services, None]:
        def build(at: int | None) -> Request:
            return core.list_services(index=at, wait=wait if at is not None else None)

        return self._watch(build, core.parse_services, lambda r: r.index, index, max_backoff)

    async def watch(self, path: str, params: Iterable[tuple[str, str]] | None = None, *, index: int = 0,
                    wait: float = 60.0, max_backoff: float = 5.0) -> AsyncGenerator[tuple[int, Any], None]:
        """Low-level watch of any read endpoint: yields ``(index, decoded body)``; each query
        goes through ``request``."""
        base = tuple(params or ())
        cursor = WatchCursor(index, max_backoff=max_backoff)
        while True:
            extra = () if cursor.blocking_index is None else (("index", str(cursor.blocking_index)),
                                                              ("wait", f"{wait:g}s"))
            try:
                reply = await self.request("GET", path, params=(*base, *extra), sticky=True)
            except (Unavailable, Timeout):
                await asyncio.sleep(cursor.failed(self._rng))
                continue
            if cursor.answered(reply.index):
                yield reply.index, reply.body

    # ---- self-registration, discovery, calls (raftreg.client.registration, .discovery, .service) --
    def registration(self, service: str, instance_id: str, *, address: str, port: int, ttl: float | str = "10s",
                     tags: Iterable[str] = (), meta: Mapping[str, str] | None = None, weight: int = 100,
                     check: Check | Mapping[str, Any] | None = None) -> AsyncRegistration:
        """``async with`` it: registers (waiting at most ``deadline`` for the registry), heartbeats
        every ttl/3 in a task, deregisters on exit (``raftreg.client.registration``)."""
        body = build_spec(address=address, port=port, ttl=ttl, tags=tags, meta=meta, weight=weight, check=check)
        return AsyncRegistration(self, service, instance_id, *body, start_timeout=self.deadline)

    def watch_service(self, name: str, *, passing: bool = True, tags: Iterable[str] = ()) -> AsyncIterator[Instances]:
        """The service's instances now, then again at every change of the list (a blocking-query
        watch, as ``watch_instances``, that skips answers whose instances did not change)."""
        return achanges(self.watch_instances(name, passing=passing, tags=tags))

    def discovery(self, name: str, *, passing: bool = True) -> AsyncDiscovery:
        """The client's shared live list of ``name`` (one watch per (name, passing), started by the
        first call; contract: ``raftreg.client.discovery``). Call it inside the running loop."""
        return self._discoveries.get(name, passing)

    def service(self, name: str, *, balancer: str | Balancer = "round_robin") -> AsyncServiceHandle:
        """``register``/``deregister``/``get_instance`` of one service (``raftreg.client.service``)."""
        return AsyncServiceHandle(self, name, balancer=balancer)

    async def call(self, service: str, fn: Callable[[Instance], Awaitable[T]], *,
                   balancer: str | Balancer = "round_robin", retries: int = 2, passing: bool = True) -> T:
        """``await fn(instance)`` on an instance of ``service`` chosen by ``balancer``, retrying a
        failure on other instances with outlier ejection (``raftreg.client.calls``)."""
        return await self._callers.call(service, fn, balancer, retries, passing)

    # ---- low level ------------------------------------------------------------------------------
    async def request(self, method: str, path: str, *, json: Any = None, params: Params = None,
                      timeout: float | None = None, deadline: float | None = None,
                      idempotent: bool | None = None, sticky: bool = False) -> Reply:
        """As ``RegistryClient.request``: a ``Reply`` (decoded body, headers, index)."""
        req = core.custom(method, path, json=json, params=params, idempotent=idempotent, sticky=sticky)
        return await self._call(req, core.parse_reply, timeout=timeout, deadline=deadline)

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.request("GET", path, params=params or None)).body

    async def put(self, path: str, body: Any) -> Any:
        return (await self.request("PUT", path, json=body)).body

    async def delete(self, path: str) -> Any:
        return (await self.request("DELETE", path)).body

    # ---- the driver of the core's plan, and the transport ---------------------------------------
    async def _call(self, request: Request, parse: Callable[[Response], T], *, timeout: float | None = None,
                    deadline: float | None = None) -> T:
        plan = CallPlan(request, self._selector, self._policy, self._rng, time.monotonic(), timeout=timeout,
                        deadline=deadline)
        while True:
            step = plan.next(time.monotonic())
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
                continue
            try:
                response = await self._send(step, request)
            except (NotSent, LostAfterSend) as exc:
                plan.failed(step, Failure.NOT_SENT if isinstance(exc, NotSent) else Failure.LOST, str(exc),
                            time.monotonic())
                continue
            if not plan.answered(step, response, time.monotonic()):
                continue
            try:
                return parse(response)
            except Malformed as exc:
                plan.failed(step, Failure.MALFORMED, str(exc), time.monotonic())

    async def _watch(self, build: Callable[[int | None], Request], parse: Callable[[Response], T],
                     index_of: Callable[[T], int], index: int, max_backoff: float) -> AsyncGenerator[T, None]:
        cursor = WatchCursor(index, max_backoff=max_backoff)
        while True:
            try:
                result = await self._call(msgspec.structs.replace(build(cursor.blocking_index), sticky=True), parse)
            except (Unavailable, Timeout):
                await asyncio.sleep(cursor.failed(self._rng))
                continue
            if cursor.answered(index_of(result)):
                yield result

    async def _send(self, step: Send, request: Request) -> Response:
        """One attempt, no retry: ``NotSent`` or ``LostAfterSend`` as ``sync_transport``'s."""
        session = self._keep_alive_session() if request.idempotent else self._fresh_session()
        headers = {"Accept": "application/json", **self._auth}
        if request.body is not None:
            headers["Content-Type"] = request.content_type
        per_attempt = aiohttp.ClientTimeout(total=None, connect=step.connect_timeout)
        try:
            async with asyncio.timeout(step.timeout):
                async with session.request(request.method, step.url + request.target, data=request.body,
                                           headers=headers, timeout=per_attempt, allow_redirects=False) as answer:
                    body = await answer.read()
                    return Response(answer.status, Headers(answer.headers.items()), body)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ssl.SSLEOFError):
                await self._check_certificate(step, exc)  # TLS 1.2: closed during the handshake
            raise NotSent(_describe(exc)) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientConnectionError):
                await self._check_certificate(step, exc)
            raise LostAfterSend(_describe(exc) if str(exc) else "no answer in time") from exc

    async def _check_certificate(self, step: Send, exc: BaseException) -> None:
        """A client without a certificate whose TLS connection was closed: raise
        ``ClientCertificateRequired`` if the node refuses a fresh one for want of it
        (``raftreg.client.tls``; it is asked in a thread, on this failure path only)."""
        node = self._nodes[step.node]
        if self._probe_ssl is None or node.scheme != "https":
            return
        if await asyncio.to_thread(refuses_without_certificate, node, self._probe_ssl, step.connect_timeout):
            raise certificate_required(node.url) from exc

    def _keep_alive_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout,
                                                  connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl),
                                                  middlewares=(no_silent_retry,))
        return self._session

    def _fresh_session(self) -> aiohttp.ClientSession:
        if self._fresh is None:
            self._fresh = aiohttp.ClientSession(timeout=self._timeout,
                                                connector=aiohttp.TCPConnector(limit=0, force_close=True,
                                                                               ssl=self._ssl),
                                                middlewares=(no_silent_retry,))
        return self._fresh
