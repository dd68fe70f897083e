"""``GET /metrics`` and the request instruments of the native API (``raftreg.node.metrics`` has
the node's own collectors and the registry).

Contract:
- ``install_metrics(app, node)``: with ``[metrics] enabled`` (``node.metrics`` set), adds the
  outermost middleware and the ``/metrics`` route (open even with ACLs on: the permission table
  says so). Off: nothing is added, ``/metrics`` answers 404, requests cost nothing extra.
- Requests are counted by route *template* (aiohttp's canonical resource, e.g.
  ``/v1/services/{service}/instances/{id}``), never the raw path, so a client cannot grow the
  series without bound; a request no route matched counts under ``route="unmatched"``, an
  unusual method under ``method="OTHER"``.
  Families: ``raftreg_http_requests_total{route,method,status}``,
  ``raftreg_http_request_duration_seconds{route,method}`` (histogram), ``raftreg_http_requests_in_flight``,
  ``raftreg_acl_denials_total{code}`` (401 ``unauthenticated`` and 403 ``permission_denied``
  answers, whichever layer refused: the HTTP check or the re-check at apply).
- Hot-path cost per request: two clock reads, a dict lookup of the cached label children, one
  counter increment and one histogram observation (benchmarks/metrics_cost.py measures it).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from raftreg.http.wire import Handler
from raftreg.node.registry_node import RegistryNode

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
_DENIALS = {401: "unauthenticated", 403: "permission_denied"}
# Any other method (a client may send anything) counts as OTHER: the series stay bounded.
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})

# No ``*_created`` series: a node is one process, whose start time is ``process_start_time_seconds``.
disable_created_metrics()  # type: ignore[no-untyped-call]


def route_template(request: web.BaseRequest) -> str:
    """The canonical route a request matched (``unmatched`` when none did)."""
    match_info = getattr(request, "match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    return resource.canonical if resource is not None else UNMATCHED


class RequestMetrics:
    """Request counters and latency of one node's API, registered on the node's registry."""

    def __init__(self, registry: Any) -> None:
        self.requests = Counter("raftreg_http_requests", "HTTP requests answered, by route template, method "
                                "and status", ["route", "method", "status"], registry=registry)
        self.duration = Histogram("raftreg_http_request_duration_seconds", "Seconds to answer an HTTP request "
                                  "(blocking queries included: they wait by design)", ["route", "method"],
                                  buckets=DURATION_BUCKETS, registry=registry)
        self.in_flight = Gauge("raftreg_http_requests_in_flight", "HTTP requests being handled now",
                               registry=registry)
        self.denials = Counter("raftreg_acl_denials", "Requests refused by the ACLs, by error code", ["code"],
                               registry=registry)
        for code in _DENIALS.values():
            self.denials.labels(code)  # present (at 0) before the first denial
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        timer = self._timers.get(key[:2])
        if timer is None:
            timer = self._timers[key[:2]] = self.duration.labels(route, method)
        timer.observe(seconds)
        if status in _DENIALS:
            self.denials.labels(_DENIALS[status]).inc()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        self.in_flight.inc()
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.in_flight.dec()
            method = request.method
            self.observe(route_template(request), method if method in METHODS else "OTHER", status,
                         time.perf_counter() - started)


def install_metrics(app: web.Application, node: RegistryNode) -> RequestMetrics | None:
    """Add the request middleware (outermost) and ``GET /metrics`` when the node has metrics on."""
    metrics = node.metrics
    if metrics is None:
        return None
    registry = metrics.registry
    requests = RequestMetrics(registry)
    app.middlewares.insert(0, requests.middleware)

    async def scrape(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get(METRICS_PATH, scrape)
    return requests
