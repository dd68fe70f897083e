"""Keep a TTL instance registered: heartbeat every ttl/3, register again when the lease was lost.

Contract (``keep_alive`` on an ``AsyncRegistryClient``, ``keep_alive_blocking`` on a
``RegistryClient``; the same rules):
- Registers the instance first (``("registered", index)``), then sends a heartbeat every
  ``ttl / 3`` seconds, each within a deadline of ``ttl / 3`` (at least 1 s).
- A ``NotFound`` heartbeat means the lease expired (or someone deregistered the instance): it is
  registered again at once and reported as ``("reregistered", index)``.
- A failed heartbeat or registration (``Unavailable``: no leader during a failover, every node
  unreachable; ``Timeout``/``OutcomeUnknown``) is reported as ``("retrying", message)`` and retried
  after ``ttl / 10`` (at least 0.2 s): the leader that comes next re-arms every lease with a
  grace, so a heartbeat lost in a failover never expires the instance.
- ``on_renewed`` (optional) is called after every heartbeat the registry accepted, so a caller
  can tell when a ``retrying`` phase is over (``raftreg.client.registration`` uses it).
- Returns when ``stop`` is set; the caller deregisters if it wants to (the CLI does on Ctrl-C).
- Other API errors (``InvalidArgument``: e.g. the instance has no ttl) are raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from raftreg.client.results import Registration
from raftreg.errors import NotFound, Timeout, Unavailable

if TYPE_CHECKING:  # the clients import this module's users (``registration``) at their top
    from raftreg.client.async_client import AsyncRegistryClient
    from raftreg.client.sync_client import RegistryClient

Event = tuple[str, Any]  # ("registered", index) | ("reregistered", index) | ("retrying", message)
Spec = Registration | Mapping[str, Any]


def _periods(ttl: float) -> tuple[float, float, float]:
    """(heartbeat period, pause after a failure, deadline of one heartbeat) for a lease of ``ttl``."""
    period = ttl / 3
    return period, max(0.2, ttl / 10), max(1.0, period)


async def keep_alive(client: AsyncRegistryClient, service: str, instance_id: str, spec: Spec, ttl: float,
                     stop: asyncio.Event, on_event: Callable[[Event], None] | None = None,
                     on_renewed: Callable[[], None] | None = None) -> None:
    """Keep ``service/instance_id`` registered with ``spec`` until ``stop`` is set (see above)."""
    notify = on_event or (lambda event: None)
    renewed = on_renewed or (lambda: None)
    notify(("registered", (await client.register(service, instance_id, spec)).index))
    period, retry, deadline = _periods(ttl)
    pause = period
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
        if stop.is_set():
            return
        try:
            try:
                await client.heartbeat(service, instance_id, deadline=deadline)
                renewed()
            except NotFound:
                notify(("reregistered", (await client.register(service, instance_id, spec)).index))
            pause = period
        except (Unavailable, Timeout) as err:
            notify(("retrying", err.message))
            pause = retry


def keep_alive_blocking(client: RegistryClient, service: str, instance_id: str, spec: Spec, ttl: float,
                        stop: threading.Event, on_event: Callable[[Event], None] | None = None,
                        on_renewed: Callable[[], None] | None = None) -> None:
    """``keep_alive`` for the blocking client: runs in the calling thread until ``stop`` is set.

    Set ``stop`` from another thread, not from a signal handler of this one (``Event.set`` takes
    a lock this thread may be holding): the CLI runs this in a worker thread for that reason."""
    notify = on_event or (lambda event: None)
    renewed = on_renewed or (lambda: None)
    notify(("registered", client.register(service, instance_id, spec).index))
    period, retry, deadline = _periods(ttl)
    pause = period
    while not stop.wait(pause):
        try:
            try:
                client.heartbeat(service, instance_id, deadline=deadline)
                renewed()
            except NotFound:
                notify(("reregistered", client.register(service, instance_id, spec).index))
            pause = period
        except (Unavailable, Timeout) as err:
            notify(("retrying", err.message))
            pause = retry
