"""A small asyncio HTTP client for the raftreg API that fails over between nodes.

A request goes to the node that answered last; on a connection error or a 503 it moves on to
the next node, until every node was tried. Writes are retried on another node only when the
first never reached a node or was refused with 503 (nothing applied); a 504 is returned as is
(outcome unknown).

Errors come from the one table (``raftreg.errors``): an error answer raises the class of its code
(``NotFound``, ``InvalidArgument``, ``Unavailable``, ...); a write answered 504, timed out, or
whose connection broke after sending raises ``OutcomeUnknown``; no reachable node raises
``Unavailable``.

``watch`` runs a blocking query in a loop and yields each new state (see its docstring).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from raftreg.errors import OutcomeUnknown, RaftregError, Timeout, Unavailable, error_from_body

_READS = ("GET", "HEAD")


def _retry_after(headers: Any) -> float:
    try:
        return max(0.0, float(headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


class ConnectionLostAfterSend(aiohttp.ClientConnectionError):
    """The connection broke after the request was (perhaps) sent: a write's outcome is unknown."""


async def no_silent_retry(req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
    """aiohttp client middleware: stop aiohttp from silently re-sending PUT/DELETE after a lost
    connection (RFC 9112 retry of idempotent methods).

    Without it, a write sent to a node that dies mid-request is retried on a new connection; the
    retry's "connection refused" then hides that the first attempt may have been applied. Here a
    connection lost after sending surfaces as ``ConnectionLostAfterSend`` (outcome unknown), and a
    refused connection (nothing sent) as ``aiohttp.ClientConnectorError``."""
    try:
        return await handler(req)
    except aiohttp.ClientConnectorError:
        raise
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise ConnectionLostAfterSend(f"{req.method} {req.url}: connection lost: {exc}") from exc


class RegistryClient:
    """``async with RegistryClient(["127.0.0.1:8501", ...]) as c: await c.get("/v1/services")``"""

    def __init__(self, addrs: list[str], *, timeout: float = 10.0) -> None:
        if not addrs:
            raise ValueError("at least one node address is needed")
        self.addrs = [a if a.startswith("http") else f"http://{a}" for a in addrs]
        self._current = 0
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=2.0)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RegistryClient:
        # No connection cap: every concurrent watch holds one connection for its whole wait.
        self._session = aiohttp.ClientSession(timeout=self._timeout, connector=aiohttp.TCPConnector(limit=0),
                                              middlewares=(no_silent_retry,))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self, method: str, path: str, *, json: Any = None, params: Any = None, timeout: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """Send one request; returns (decoded body, headers) or raises a ``RaftregError``.

        ``timeout`` overrides the client's total timeout for this request (blocking queries).
        A write whose connection broke after sending is retried on the next node (every write is
        idempotent); if no node then confirms it, ``OutcomeUnknown`` says so, never that it failed."""
        assert self._session is not None, "use 'async with RegistryClient(...)'"
        write = method not in _READS
        last: RaftregError | None = None
        maybe_applied = False
        per_request = aiohttp.ClientTimeout(total=timeout, connect=2.0) if timeout is not None else None
        for attempt in range(len(self.addrs)):
            base = self.addrs[(self._current + attempt) % len(self.addrs)]
            try:
                async with self._session.request(method, base + path, json=json, params=params,
                                                 timeout=per_request or self._timeout) as resp:
                    body = await resp.json(content_type=None) if resp.content_length != 0 else None
                    headers = dict(resp.headers)
                    if resp.status < 400:
                        self._current = (self._current + attempt) % len(self.addrs)
                        return body, headers
                    last = error_from_body(resp.status, body, write=write, retry_after=_retry_after(resp.headers))
                    if resp.status != 503:
                        raise last
            except (TimeoutError, aiohttp.ClientConnectionError, ValueError) as exc:
                if isinstance(exc, asyncio.TimeoutError) and write:
                    raise OutcomeUnknown(f"{base}: no answer in time; the write's outcome is unknown") from None
                maybe_applied = maybe_applied or isinstance(exc, ConnectionLostAfterSend)
                what = "answered a body that is not JSON" if isinstance(exc, ValueError) else "unreachable"
                last = Unavailable(f"{base}: {what} ({exc or type(exc).__name__})")
        assert last is not None
        if maybe_applied and write:
            raise OutcomeUnknown(f"{last.message}; a node may have applied the write before its connection broke: "
                                 "its outcome is unknown")
        raise last

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.request("GET", path, params=params or None))[0]

    async def put(self, path: str, body: Any) -> Any:
        return (await self.request("PUT", path, json=body))[0]

    async def delete(self, path: str) -> Any:
        return (await self.request("DELETE", path))[0]

    async def heartbeat(self, service: str, instance_id: str) -> float:
        """Renew a TTL instance's lease; returns its ttl. ``NotFound``: the lease expired,
        register again (``raftreg.client.keepalive.keep_alive`` does all of this)."""
        body, _ = await self.request("PUT", f"/v1/services/{service}/instances/{instance_id}/heartbeat")
        return float(body["ttl"])

    async def set_status(self, service: str, instance_id: str, status: str, note: str = "") -> Any:
        """Set the status by hand (``warning``/``critical``), or clear it (``passing``)."""
        return await self.put(f"/v1/services/{service}/instances/{instance_id}/status",
                              {"status": status, "note": note})

    async def watch(
        self,
        path: str,
        params: list[tuple[str, str]] | None = None,
        *,
        index: int = 0,
        wait: float = 60.0,
        max_backoff: float = 5.0,
    ) -> AsyncIterator[tuple[int, Any]]:
        """Yield ``(index, body)`` for the state of a read endpoint, then again at every change.

        Runs blocking queries (``?index=N&wait=...``) one after the other. With ``index=0`` the
        first result comes at once. A node that fails (connection error, 503, 504) is left for the
        next one, keeping the index: the next node answers only once its state has moved past what
        was already yielded, so a watcher never goes back in time when it fails over. Repeated
        failures back off (full jitter, up to ``max_backoff`` seconds) so a dead node causes no
        reconnect storm. If the index goes backwards (the cluster was rebuilt), the watch resets to
        0 and yields the state it finds, as API.md asks.
        """
        last = index
        first = index == 0  # the caller knows nothing yet: the first answer is a plain read, at once
        failures = 0
        while True:
            query = [*(params or [])]
            if not first:
                query += [("index", str(last)), ("wait", f"{wait:g}s")]
            try:
                body, headers = await self.request("GET", path, params=query, timeout=wait * 17 / 16 + 5.0)
            except (Unavailable, Timeout):
                failures += 1
                if failures > 1:  # the request itself already tried every node once
                    await asyncio.sleep(random.uniform(0, min(max_backoff, 0.1 * 2 ** failures)))
                continue
            failures = 0
            current = int(headers.get("X-Raftreg-Index", "0"))
            if current < last:
                last = 0  # the index went backwards: start over from whatever the cluster has now
                continue
            if first or current > last:
                first = False
                last = current
                yield current, body
