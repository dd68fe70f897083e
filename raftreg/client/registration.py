"""Self-registration: register an instance, keep its TTL lease alive, deregister on the way out.

    async with client.registration("cart", "cart-1", address="10.0.0.5", port=8080, ttl="10s") as reg:
        ...                                     # reg.state, reg.registered, reg.index

    with sync_client.registration("cart", "cart-1", address="10.0.0.5", port=8080) as reg:
        ...

Contract (``AsyncRegistration`` and ``SyncRegistration``, the same rules):
- ``start()`` (or entering the ``with`` block) registers and returns once the registry
  acknowledged it. ``InvalidArgument``, ``PermissionDenied`` (any API error other than
  ``Unavailable``/``Timeout``/``OutcomeUnknown``) is raised from ``start()``: the registration
  itself is wrong. When the registry cannot be reached, ``start()`` does not fail the
  application's start-up and does not hang: it waits at most the client's ``deadline`` for the
  first acknowledgement, then returns with ``registered == False`` and ``state == "retrying"``
  while the background worker keeps trying (the instance appears as soon as the registry is back).
- In the background (an asyncio task, or a daemon thread for the blocking client) it runs
  ``keep_alive``: a heartbeat every ``ttl / 3``, registering again at once after a 404 (the lease
  expired or someone deregistered it), retrying failed heartbeats through leader failovers and
  outages without end.
- It logs one line per state change on ``logging.getLogger("raftreg.client")``, never one per
  attempt. States: ``registering`` (before the first acknowledgement), ``registered``,
  ``retrying`` (the last registration or heartbeat failed; the lease may still be alive: the next
  leader re-arms every lease), ``stopped``.
- ``stop()`` (or leaving the block) stops the worker and deregisters, best effort within
  ``deregister_deadline`` seconds (3 s by default): an absent instance is fine; a failure is logged,
  not raised (a TTL instance then expires by itself within its ``ttl``). The blocking form also
  deregisters at interpreter exit (an ``atexit`` hook, removed again by ``stop()``).
- ``ttl`` is seconds or a duration string as the server reads them (``"10s"``, ``"1m30s"``).
  ``check`` is a ``Check`` or API.md's ``check`` object as a mapping (durations may be strings).
- A handle is used once: ``start()`` after ``stop()`` raises ``RuntimeError`` (make a new one).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from raftreg.client.keepalive import Event, keep_alive, keep_alive_blocking
from raftreg.client.results import Check, Registration
from raftreg.durations import parse_duration
from raftreg.errors import NotFound, RaftregError, Timeout, Unavailable

if TYPE_CHECKING:
    from types import TracebackType

    from raftreg.client.async_client import AsyncRegistryClient
    from raftreg.client.sync_client import RegistryClient

log = logging.getLogger("raftreg.client")

State = Literal["registering", "registered", "retrying", "stopped"]
Spec = Registration | dict[str, Any]
DEREGISTER_DEADLINE = 3.0

def parse_ttl(value: float | str) -> float:
    """Seconds of a ttl: a number, a numeric string or a Go duration (``"10s"``, ``"1m30s"``), read by
    the server's own parser. ``ValueError`` unless positive."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {value!r}")
    return seconds


def build_spec(*, address: str, port: int, ttl: float | str, tags: Iterable[str] = (),
               meta: Mapping[str, str] | None = None, weight: int = 100,
               check: Check | Mapping[str, Any] | None = None) -> tuple[Spec, float]:
    """The body to register and the lease in seconds. A ``check`` given as a mapping makes the
    body a mapping (API.md's JSON), so the server parses its durations; ``ValueError`` for an
    unreadable or non-positive ``ttl``."""
    seconds = parse_ttl(ttl)
    spec = Registration(address=address, port=port, tags=tuple(tags), meta=dict(meta or {}), weight=weight,
                        ttl=seconds, check=check if isinstance(check, Check) else None)
    if check is None or isinstance(check, Check):
        return spec, seconds
    body: dict[str, Any] = msgspec.to_builtins(spec)
    body["check"] = dict(check)
    return body, seconds


class RegistrationStatus:
    """The state machine both handles share (no I/O): fed by ``keep_alive``'s events, it keeps
    ``state`` and ``index`` and logs each change of state once. Safe to read from any thread."""

    def __init__(self, service: str, instance_id: str) -> None:
        self.name = f"{service}/{instance_id}"
        self.state: State = "registering"
        self.index: int | None = None
        self.error: BaseException | None = None  # the API error that ended the worker, if any
        self._lock = threading.Lock()

    def _move(self, state: State, line: str, *args: object, level: int = logging.INFO) -> None:
        with self._lock:
            if state == self.state and state != "registered":
                return
            self.state = state
        log.log(level, line, *args)

    def on_event(self, event: Event) -> None:
        """A ``keep_alive`` event: ``registered``, ``reregistered`` or ``retrying``."""
        kind, detail = event
        if kind == "retrying":
            self._move("retrying", "registration %s: %s; retrying in the background", self.name, detail,
                       level=logging.WARNING)
            return
        self.index = int(detail)
        if kind == "reregistered":
            self._move("registered", "registration %s: the lease had expired; registered again at index %d",
                       self.name, self.index, level=logging.WARNING)
        elif self.state != "registered":
            self._move("registered", "registration %s: registered at index %d", self.name, self.index)

    def on_renewed(self) -> None:
        """A heartbeat was accepted: leaves ``retrying``."""
        if self.state == "retrying":
            self._move("registered", "registration %s: heartbeats accepted again", self.name)

    def start_failed(self, err: RaftregError) -> bool:
        """A ``keep_alive`` run failed on a registration. True: retry after a pause
        (``Unavailable``/``Timeout``); False: the worker ends, ``error`` keeps the refusal."""
        if not isinstance(err, Unavailable | Timeout):
            self.error = err
            self._move("stopped", "registration %s: refused: %s", self.name, err, level=logging.ERROR)
            return False
        self.on_event(("retrying", err.message))
        return True

    def stopped(self, outcome: str) -> None:
        self._move("stopped", "registration %s: stopped; %s", self.name, outcome)


def _deregistered(result: int | None) -> str:
    return "deregistered" if result is not None else "it was not registered (nothing to deregister)"


class _Handle:
    """What both handles share: the arguments, the status and its read-only views."""

    def __init__(self, service: str, instance_id: str, spec: Spec, ttl: float, start_timeout: float,
                 deregister_deadline: float) -> None:
        self.service = service
        self.instance_id = instance_id
        self.spec = spec
        self.ttl = ttl
        self._status = RegistrationStatus(service, instance_id)
        self._start_timeout = start_timeout
        self._deregister_deadline = deregister_deadline
        self._retry = max(0.2, ttl / 10)  # keep_alive's pause after a failure
        self._used = False

    def _first_start(self) -> None:
        if self._used:
            raise RuntimeError(f"registration {self._status.name} was already started; make a new handle")
        self._used = True

    @property
    def state(self) -> State:
        """``registering`` | ``registered`` | ``retrying`` | ``stopped``."""
        return self._status.state

    @property
    def registered(self) -> bool:
        """Whether the last registration or heartbeat was acknowledged."""
        return self._status.state == "registered"

    @property
    def index(self) -> int | None:
        """The index of the last acknowledged registration (``None`` before the first)."""
        return self._status.index

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._status.name} {self.state} index={self.index}>"


class AsyncRegistration(_Handle):
    """A self-registration on an ``AsyncRegistryClient`` (see the module docstring)."""

    def __init__(self, client: AsyncRegistryClient, service: str, instance_id: str, spec: Spec, ttl: float, *,
                 start_timeout: float, deregister_deadline: float = DEREGISTER_DEADLINE) -> None:
        super().__init__(service, instance_id, spec, ttl, start_timeout, deregister_deadline)
        self._client = client
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncRegistration:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Register (see the contract); a second call does nothing."""
        if self._task is not None:
            return
        self._first_start()
        self._task = asyncio.create_task(self._run(), name=f"raftreg-registration-{self._status.name}")
        acked = asyncio.create_task(self._until_acked())
        try:
            await asyncio.wait((self._task, acked), timeout=self._start_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            acked.cancel()
        if self._task.done() and self._status.error is not None:
            self._task = None
            raise self._status.error

    async def _until_acked(self) -> None:
        while self._status.index is None:
            await asyncio.sleep(0.02)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await keep_alive(self._client, self.service, self.instance_id, self.spec, self.ttl, self._stop,
                                 self._status.on_event, self._status.on_renewed)
            except RaftregError as err:
                if not self._status.start_failed(err):
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._retry)

    async def stop(self) -> None:
        """Stop heartbeating and deregister (best effort); a second call does nothing."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, 1.0)  # cancelled if still inside a call after 1 s
        try:
            result: int | None = (await self._client.deregister(self.service, self.instance_id,
                                                                deadline=self._deregister_deadline)).index
        except NotFound:
            result = None
        except (RaftregError, RuntimeError) as err:
            self._status.stopped(f"deregistering failed ({err}); the lease expires within {self.ttl:g}s")
            return
        self._status.stopped(_deregistered(result))


class SyncRegistration(_Handle):
    """A self-registration on a blocking ``RegistryClient``: heartbeats in a daemon thread,
    deregisters on ``stop()`` and at interpreter exit (see the module docstring)."""

    def __init__(self, client: RegistryClient, service: str, instance_id: str, spec: Spec, ttl: float, *,
                 start_timeout: float, deregister_deadline: float = DEREGISTER_DEADLINE) -> None:
        super().__init__(service, instance_id, spec, ttl, start_timeout, deregister_deadline)
        self._client = client
        self._stop = threading.Event()
        self._done = threading.Event()  # the worker ended (stopped, or refused)
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SyncRegistration:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Register (see the contract); a second call does nothing."""
        if self._thread is not None:
            return
        self._first_start()
        self._thread = threading.Thread(target=self._run, name=f"raftreg-registration-{self._status.name}",
                                        daemon=True)
        self._thread.start()
        atexit.register(self.stop)
        waited = 0.0
        while self._status.index is None and not self._done.is_set() and waited < self._start_timeout:
            self._done.wait(0.02)
            waited += 0.02
        if self._done.is_set() and self._status.error is not None:
            atexit.unregister(self.stop)
            self._thread = None
            raise self._status.error

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    keep_alive_blocking(self._client, self.service, self.instance_id, self.spec, self.ttl, self._stop,
                                        self._status.on_event, self._status.on_renewed)
                except RaftregError as err:
                    if not self._status.start_failed(err):
                        return  # kept in the status, raised by start()
                    self._stop.wait(self._retry)
        finally:
            self._done.set()

    def stop(self) -> None:
        """Stop heartbeating and deregister (best effort); a second call does nothing. Waits
        for an in-flight heartbeat up to its deadline, so a late re-registration cannot follow the
        deregistration."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        atexit.unregister(self.stop)
        self._stop.set()
        thread.join(max(1.0, self.ttl / 3) + 0.5)
        try:
            result: int | None = self._client.deregister(self.service, self.instance_id,
                                                         deadline=self._deregister_deadline).index
        except NotFound:
            result = None
        except (RaftregError, RuntimeError) as err:  # RuntimeError: the client was closed first
            self._status.stopped(f"deregistering failed ({err}); the lease expires within {self.ttl:g}s")
            return
        self._status.stopped(_deregistered(result))
