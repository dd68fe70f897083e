"""The three-call shape of the design documents, and the clients' shared callers.

    cart = client.service("cart")               # ServiceHandle (AsyncServiceHandle: awaited)
    cart.register(instance)                     # a raftreg.models.Instance, or API.md's body with an "id"
    cart.get_instance()                         # an instance chosen by a balancer, or None
    cart.deregister(instance)                   # an Instance or an instance id

Contracts:
- ``register(instance, instance_id=None)``: ``instance`` is an ``Instance`` (its ``id``; its
  ``service`` must be this service's or empty; status and indexes are ignored: the registry keeps
  them), a ``Registration`` with ``instance_id=``, or a mapping in API.md's JSON shape with an
  ``"id"`` key (or ``instance_id=``); read-only keys (``status``, indexes...) are dropped. It
  registers once (no heartbeats: ``client.registration()`` keeps a TTL instance alive) and returns
  the stored instance with its index.
- ``deregister(instance_or_id)`` returns the ``WriteResult``, or ``None`` when the instance was
  not registered.
- ``get_instance(key=None)`` picks from the client's shared discovery of the service (passing
  instances, stale rules of ``raftreg.client.discovery``) with the handle's balancer (round robin
  unless ``balancer=`` names another or is a ``Balancer``). The first call waits up to the
  client's ``deadline`` for the first list. ``None`` when there is no instance (or no list yet).

``Callers`` / ``AsyncCallers`` back ``client.call(service, fn, ...)``: one ``ServiceCaller`` (with
outlier ejection) per (service, balancer, passing) per client, fed by the shared discovery; the
first call of a service waits up to the client's ``deadline`` for the first list, after which an
empty list raises ``NoInstances``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from raftreg.client.balancers import Balancer, NoInstances, make_balancer
from raftreg.client.calls import AsyncServiceCaller, OutlierEjector, ServiceCaller
from raftreg.client.results import Instance, InstanceResult, Registration, WriteResult
from raftreg.errors import NotFound

if TYPE_CHECKING:
    from raftreg.client.async_client import AsyncRegistryClient
    from raftreg.client.discovery import AsyncDiscoveries, AsyncDiscovery, Discoveries, Discovery
    from raftreg.client.sync_client import RegistryClient

T = TypeVar("T")
Spec = Registration | dict[str, Any]
Registrable = Instance | Registration | Mapping[str, Any]
_READ_ONLY = frozenset({"id", "service", "status", "check_status", "manual_status", "status_note", "create_index",
                        "modify_index", "index"})


def registration_of(service: str, instance: Registrable, instance_id: str | None = None) -> tuple[str, Spec]:
    """``(instance id, body to register)`` for ``register`` (see the module docstring)."""
    if isinstance(instance, Instance):
        if instance.service not in ("", service):
            raise ValueError(f"instance {instance.id!r} belongs to service {instance.service!r}, not {service!r}")
        spec = Registration(address=instance.address, port=instance.port, tags=instance.tags, meta=instance.meta,
                            weight=instance.weight, ttl=instance.ttl, check=instance.check)
        return instance_id or instance.id, spec
    if isinstance(instance, Registration):
        if instance_id is None:
            raise ValueError("a Registration carries no id: pass instance_id=")
        return instance_id, instance
    found = instance_id or instance.get("id")
    if not isinstance(found, str) or not found:
        raise ValueError("the instance mapping has no \"id\" (or pass instance_id=)")
    return found, {k: v for k, v in instance.items() if k not in _READ_ONLY}


def id_of(instance: Instance | str) -> str:
    return instance if isinstance(instance, str) else instance.id


def balancer_of(balancer: str | Balancer) -> Balancer:
    return make_balancer(balancer) if isinstance(balancer, str) else balancer


class _Picker:
    """A balancer over a discovery's list, updated when the list's version moves."""

    def __init__(self, balancer: str | Balancer) -> None:
        self.balancer = balancer_of(balancer)
        self._seen = -1
        self._lock = threading.Lock()

    def pick(self, found: Discovery | AsyncDiscovery, key: str | None) -> Instance | None:
        with self._lock:
            if found.version != self._seen:
                self._seen = found.version
                self.balancer.update(found.instances)
            try:
                return self.balancer.pick(key)
            except NoInstances:
                return None


class ServiceHandle:
    """One service on a blocking ``RegistryClient`` (see the module docstring); thread-safe."""

    def __init__(self, client: RegistryClient, service: str, *, balancer: str | Balancer = "round_robin") -> None:
        self._client = client
        self.service = service
        self._picker = _Picker(balancer)

    def register(self, instance: Registrable, instance_id: str | None = None) -> InstanceResult:
        return self._client.register(self.service, *registration_of(self.service, instance, instance_id))

    def deregister(self, instance: Instance | str) -> WriteResult | None:
        try:
            return self._client.deregister(self.service, id_of(instance))
        except NotFound:
            return None

    def get_instance(self, key: str | None = None) -> Instance | None:
        found = self._client.discovery(self.service)
        if not found.ready:
            try:
                found.wait_ready(self._client.deadline)
            except TimeoutError:
                return None
        return self._picker.pick(found, key)


class AsyncServiceHandle:
    """One service on an ``AsyncRegistryClient``: ``ServiceHandle``'s methods, awaited."""

    def __init__(self, client: AsyncRegistryClient, service: str, *,
                 balancer: str | Balancer = "round_robin") -> None:
        self._client = client
        self.service = service
        self._picker = _Picker(balancer)

    async def register(self, instance: Registrable, instance_id: str | None = None) -> InstanceResult:
        return await self._client.register(self.service, *registration_of(self.service, instance, instance_id))

    async def deregister(self, instance: Instance | str) -> WriteResult | None:
        try:
            return await self._client.deregister(self.service, id_of(instance))
        except NotFound:
            return None

    async def get_instance(self, key: str | None = None) -> Instance | None:
        found = self._client.discovery(self.service)
        if not found.ready:
            try:
                await found.wait_ready(self._client.deadline)
            except TimeoutError:
                return None
        return self._picker.pick(found, key)


C = TypeVar("C", ServiceCaller, AsyncServiceCaller)


def _new_caller(kind: type[C], discoveries: Discoveries | AsyncDiscoveries, service: str,
                balancer: str | Balancer, passing: bool) -> C:
    """A caller over the shared discovery, with outlier ejection; it looks the discovery up at
    every call, so one closed by hand is replaced."""
    current = discoveries.get
    return kind(lambda: current(service, passing).instances, lambda: current(service, passing).version,
                balancer_of(balancer), OutlierEjector())


Key = tuple[str, Hashable, bool]  # (service, balancer name or Balancer object, passing)


class Callers:
    """A ``RegistryClient``'s ``ServiceCaller`` per (service, balancer, passing); thread-safe."""

    def __init__(self, discoveries: Discoveries, ready_timeout: float) -> None:
        self._discoveries = discoveries
        self._ready_timeout = ready_timeout
        self._lock = threading.Lock()
        self._all: dict[Key, ServiceCaller] = {}

    def call(self, service: str, fn: Callable[[Instance], T], balancer: str | Balancer, retries: int,
             passing: bool) -> T:
        found = self._discoveries.get(service, passing)
        with self._lock:
            caller = self._all.get((service, balancer, passing))
            if caller is None:
                caller = _new_caller(ServiceCaller, self._discoveries, service, balancer, passing)
                self._all[(service, balancer, passing)] = caller
        if not found.ready:
            with contextlib.suppress(TimeoutError):  # no list: the caller raises NoInstances
                found.wait_ready(self._ready_timeout)
        return caller.call(fn, retries)


class AsyncCallers:
    """An ``AsyncRegistryClient``'s ``AsyncServiceCaller`` per (service, balancer, passing)."""

    def __init__(self, discoveries: AsyncDiscoveries, ready_timeout: float) -> None:
        self._discoveries = discoveries
        self._ready_timeout = ready_timeout
        self._all: dict[Key, AsyncServiceCaller] = {}

    async def call(self, service: str, fn: Callable[[Instance], Awaitable[T]], balancer: str | Balancer,
                   retries: int, passing: bool) -> T:
        key = (service, balancer, passing)
        if key not in self._all:
            self._all[key] = _new_caller(AsyncServiceCaller, self._discoveries, service, balancer, passing)
        found = self._discoveries.get(service, passing)
        if not found.ready:  # no list in time: the caller raises NoInstances
            with contextlib.suppress(TimeoutError):
                await found.wait_ready(self._ready_timeout)
        return await self._all[key].call(fn, retries)
