"""Keep a TTL instance registered: heartbeat every ttl/3, register again when the lease was lost.

Contract (``keep_alive``):
- Registers the instance first, then sends ``PUT .../heartbeat`` every ``ttl / 3`` seconds.
- A 404 on a heartbeat means the lease expired (or someone deregistered the instance): it is
  registered again at once and reported as ``("reregistered", index)``.
- A failed heartbeat (no leader during a failover: 503; every node unreachable) is retried
  after a short pause (``ttl / 10``, at least 0.2 s): the leader that comes next re-arms every
  lease with a grace, so a heartbeat lost in a failover never expires the instance.
- Returns when ``stop`` is set; the caller deregisters if it wants to (the CLI does on Ctrl-C).
- Other API errors (400: e.g. the instance has no ttl) are raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from raftreg.client.http_client import RegistryClient
from raftreg.errors import NotFound, Timeout, Unavailable

Event = tuple[str, Any]  # ("registered", index) | ("reregistered", index) | ("retrying", message)


async def keep_alive(
    client: RegistryClient,
    service: str,
    instance_id: str,
    body: dict[str, Any],
    ttl: float,
    stop: asyncio.Event,
    on_event: Callable[[Event], None] | None = None,
) -> None:
    path = f"/v1/services/{service}/instances/{instance_id}"
    notify = on_event or (lambda event: None)
    stored = await client.put(path, body)
    notify(("registered", stored["index"]))
    period, retry = ttl / 3, max(0.2, ttl / 10)
    pause = period
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
        if stop.is_set():
            return
        try:
            await client.request("PUT", path + "/heartbeat", timeout=max(1.0, period))
            pause = period
        except NotFound:
            try:
                stored = await client.put(path, body)
                notify(("reregistered", stored["index"]))
                pause = period
            except (Unavailable, Timeout) as again:  # a registration is idempotent: retry it
                notify(("retrying", again.message))
                pause = retry
        except (Unavailable, Timeout) as err:
            notify(("retrying", err.message))
            pause = retry
