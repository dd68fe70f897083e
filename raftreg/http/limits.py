"""Limits against abusive clients (``[limits]`` of the cluster config, ``raftreg.config.LimitsTuning``).

Contracts, per node:

* **Request rate.** Every request except health, ready and the signed node-to-node routes takes a
  token from its client's bucket (``rate`` per second, at most ``burst``). An empty bucket answers
  429 ``rate_limited`` with ``Retry-After`` (whole seconds until a token is back, at least 1) and
  the usual error body, before any handler runs: nothing is read, proposed or parked.
* **Client identity** (``client_key``): with ACLs on, ``t:`` + the accessor id of the request's
  token once the token is validated (``Authorization: Bearer`` or ``X-Raftreg-Token``; the secret
  is never kept or logged); a request without a token, or with one the cluster does not know,
  is ``a:`` + its peer address, so inventing a token per request gains nothing: every invented
  token shares its address's bucket. With ACLs off, tokens mean nothing and the address is the
  client. Headers such as ``X-Forwarded-For`` are ignored.
* **Buckets are bounded**: at most ``max_clients``; the least recently seen is dropped first (a
  dropped client starts again with a full bucket, as an idle one would have).
* **Parked blocking queries** (a GET with ``?index`` or ``?min_index``): at most
  ``blocking_per_client`` in flight per client; one more is answered 429 at once.
* **Connections** (``ConnectionCap``): at most ``conns_per_address`` open connections per remote
  address; one more is answered a 429 and closed as it is accepted, before anything is parsed.
* **Slow clients**: aiohttp (as pinned in pyproject; test_http_limits checks it) closes a
  connection that has not delivered a complete request head ``keepalive_timeout`` seconds after
  it opened or after its last answer, however slowly bytes trickle in; ``server_kwargs`` sets
  that to ``header_timeout``. A body that does not arrive within ``body_timeout`` is answered 408
  and the connection closed (``raftreg.http.wire``) at most ``LINGER`` seconds later.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from raftreg.config import LimitsTuning
from raftreg.errors import RateLimited
from raftreg.http import routes
from raftreg.http.auth import request_secret
from raftreg.http.wire import BODY_TIMEOUT, Handler, encode, error_response

log = logging.getLogger("raftreg.http.limits")

EXEMPT = frozenset({"/v1/health", "/v1/ready"})
LINGER = 1.0  # seconds (see server_kwargs)
LOG_EVERY = 10.0  # seconds between two log lines about refused clients


class TokenBuckets:
    """Token buckets keyed by client, at most ``max_clients`` of them (least recently seen dropped)."""

    def __init__(self, rate: float, burst: int, max_clients: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_clients = rate, float(burst), max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if there was one, else the seconds until there is."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


AccessorOf = Callable[[str], str | None]  # a token secret -> its accessor id, None if unknown


def client_key(request: web.BaseRequest, accessor_of: AccessorOf | None = None) -> str:
    """Who sent ``request``, for limiting: its validated token's accessor id when ``accessor_of``
    (ACLs on) knows the token, else its peer address (module docstring)."""
    if accessor_of is not None:
        secret = request_secret(request)
        accessor = accessor_of(secret) if secret is not None else None
        if accessor:
            return "t:" + accessor
    return "a:" + (request.remote or "?")


def _exempt(request: web.Request) -> bool:
    canonical = request.match_info.route.resource.canonical if request.match_info.route.resource else ""
    return canonical in EXEMPT or canonical.startswith((routes.INTERNAL, routes.DEBUG))


def _rate_limited(message: str, retry_after: float) -> web.Response:
    return error_response(RateLimited(message, retry_after=max(1.0, math.ceil(retry_after))))


class Limiter:
    """The request-rate and blocking-query limits of one node (module docstring)."""

    def __init__(self, tuning: LimitsTuning, clock: Callable[[], float] = time.monotonic,
                 accessor_of: AccessorOf | None = None) -> None:
        self.tuning = tuning
        self.accessor_of = accessor_of
        self.buckets = TokenBuckets(tuning.rate, tuning.burst, tuning.max_clients, clock) if tuning.rate > 0 else None
        self.blocking: dict[str, int] = {}
        self.refused = 0
        self._last_log = float("-inf")

    def note_refused(self, what: str, remote: str | None) -> None:
        """Count a request refused by the limit ``what`` (logged at most every ``LOG_EVERY`` s)."""
        self.refused += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY:
            self._last_log = now
            log.warning("event=client_limited limit=%s remote=%s refused_so_far=%d", what, remote, self.refused)

    def take_request(self, key: str, remote: str | None) -> RateLimited | None:
        """Take a token for the client ``key`` (from ``remote``): None when it had one, else the
        429 to answer (counted and logged)."""
        if self.buckets is None:
            return None
        wait = self.buckets.take(key)
        if wait <= 0:
            return None
        self.note_refused("rate", remote)
        return RateLimited("too many requests from this client", retry_after=max(1.0, math.ceil(wait)))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if _exempt(request):
            return await handler(request)
        key = client_key(request, self.accessor_of)
        refusal = self.take_request(key, request.remote)
        if refusal is not None:
            return error_response(refusal)
        cap = self.tuning.blocking_per_client
        if not cap or request.method != "GET" or not ("index" in request.query or "min_index" in request.query):
            return await handler(request)
        parked = self.blocking.get(key, 0)
        if parked >= cap:
            self.note_refused("blocking", request.remote)
            return _rate_limited(f"this client already has {parked} blocking queries in flight", 1.0)
        self.blocking[key] = parked + 1
        try:
            return await handler(request)
        finally:
            left = self.blocking[key] - 1
            if left:
                self.blocking[key] = left
            else:
                del self.blocking[key]


_REFUSAL_BODY = encode(RateLimited("too many connections from this address").to_body())
REFUSAL = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
           b"Connection: close\r\nContent-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY)


class ConnectionCap:
    """At most ``cap`` open connections per remote address on one ``web.Server``.

    ``install`` wraps the server's ``connection_made``/``connection_lost`` (the hooks aiohttp's
    ``RequestHandler`` calls on its manager as a connection opens and closes). A connection over
    the cap is written ``REFUSAL`` and closed at once; it never counts.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open: dict[str, int] = {}
        self._counted: dict[RequestHandler, str] = {}
        self.refused = 0

    def install(self, server: web.Server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: Any) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
            count = self.open.get(address, 0)
            if count >= self.cap:
                self.refused += 1
                transport.write(REFUSAL)
                transport.close()
                return
            self.open[address] = count + 1
            self._counted[handler] = address

        def connection_lost(handler: RequestHandler, exc: BaseException | None) -> None:
            address = self._counted.pop(handler, None)
            if address is not None:
                left = self.open[address] - 1
                if left:
                    self.open[address] = left
                else:
                    del self.open[address]
            lost(handler, exc)

        setattr(server, "connection_made", connection_made)  # noqa: B010 (an instance hook, on purpose)
        setattr(server, "connection_lost", connection_lost)  # noqa: B010


LIMITER = web.AppKey("limiter", Limiter)


def install_limits(app: web.Application, tuning: LimitsTuning, accessor_of: AccessorOf | None = None) -> None:
    """Put the limits of ``tuning`` on ``app`` (call before it is frozen): the rate and blocking
    query middleware goes first, the body timeout is stored for ``raftreg.http.wire``.
    ``accessor_of`` (with ACLs on): how a token secret is validated into its client identity.
    The limiter is ``app[LIMITER]`` (the fast registrations of ``raftreg.http.fast_writes`` use it too)."""
    app[BODY_TIMEOUT] = tuning.body_timeout
    limiter = Limiter(tuning, accessor_of=accessor_of)
    app[LIMITER] = limiter
    app.middlewares.insert(0, limiter.middleware)


def server_kwargs(tuning: LimitsTuning) -> dict[str, Any]:
    """``web.AppRunner`` keyword arguments for ``tuning``: the header timeout (module docstring), and
    at most ``LINGER`` seconds spent draining the unread rest of a refused request's body (aiohttp's
    ``lingering_time``, 10 s by default, would let a stalled body hold its connection that long
    after its 408 or 413)."""
    return {"keepalive_timeout": tuning.header_timeout, "lingering_time": LINGER}


def cap_connections(runner: web.AppRunner, tuning: LimitsTuning) -> ConnectionCap | None:
    """Cap the connections per address of ``runner``'s server (after ``runner.setup()``)."""
    if not tuning.conns_per_address or runner.server is None:
        return None
    cap = ConnectionCap(tuning.conns_per_address)
    cap.install(runner.server)
    return cap
