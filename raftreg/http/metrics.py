"""``GET /metrics`` and the request instruments of the native API (``raftreg.node.metrics`` has
the node's own collectors and the registry).

Contract:
- ``install_metrics(app, node)``: with ``[metrics] enabled`` (``node.metrics`` set), adds the
  outermost middleware and the ``/metrics`` route (open even with ACLs on: the permission table
  says so) to the native API. Off: nothing is added, ``/metrics`` answers 404, requests cost
  nothing extra. ``install_request_metrics(app, node, api)`` adds the middleware alone (the
  Consul-compatible API: ``api="consul"``); one ``RequestMetrics`` per node counts for all its
  APIs, under the label ``api``.
- Requests are counted by route *template* (aiohttp's canonical resource, e.g.
  ``/v1/services/{service}/instances/{id}``), never the raw path, so a client cannot grow the
  series without bound; a request no route matched counts under ``route="unmatched"``, an
  unusual method under ``method="OTHER"``.
  Families: ``raftreg_http_requests_total{api,route,method,status}``,
  ``raftreg_http_request_duration_seconds{api,route,method}`` (histogram),
  ``raftreg_http_requests_in_flight``, ``raftreg_acl_denials_total{api,code}`` (401
  ``unauthenticated`` and 403 ``permission_denied`` answers, whichever layer refused: the HTTP
  check or the re-check at apply; the Consul API answers both as 403, as Consul does).
- Hot-path cost per request: two clock reads, a dict lookup and a few integer additions on the
  event loop (no lock: requests and scrapes share the loop); the families are built when scraped
  (benchmarks/metrics_cost.py measures the cost).
"""

from __future__ import annotations

import bisect
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

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


@dataclass
class _RouteStats:
    """One (route, method): answers by status, and the latency histogram's buckets (not cumulative:
    ``buckets[i]`` counts durations in (bounds[i-1], bounds[i]], the last one above every bound)."""

    statuses: dict[int, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0


class RequestMetrics(Collector):
    """Request counters and latency of one node's APIs, kept in plain Python on the event loop (no
    lock, no prometheus object on the hot path) and turned into metric families when scraped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._routes: dict[tuple[str, str, str], _RouteStats] = {}
        self.in_flight = 0
        self.denials: dict[tuple[str, str], int] = {("native", code): 0 for code in _DENIALS.values()}
        registry.register(self)

    def observe(self, route: str, method: str, status: int, seconds: float, api: str = "native") -> None:
        stats = self._routes.get((api, route, method))
        if stats is None:
            stats = self._routes[(api, route, method)] = _RouteStats()
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        stats.buckets[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        stats.total += seconds
        stats.count += 1
        if status in _DENIALS:
            key = (api, _DENIALS[status])
            self.denials[key] = self.denials.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("raftreg_http_requests", "HTTP requests answered, by API, route template, "
                                       "method and status", labels=["api", "route", "method", "status"])
        duration = HistogramMetricFamily("raftreg_http_request_duration_seconds", "Seconds to answer an HTTP "
                                         "request (blocking queries included: they wait by design)",
                                         labels=["api", "route", "method"])
        for (api, route, method), stats in list(self._routes.items()):
            for status, count in sorted(stats.statuses.items()):
                requests.add_metric([api, route, method, str(status)], count)
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, DURATION_BUCKETS), "+Inf"), stats.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            duration.add_metric([api, route, method], buckets, stats.total)
        yield requests
        yield duration
        yield GaugeMetricFamily("raftreg_http_requests_in_flight", "HTTP requests being handled now",
                                value=self.in_flight)
        denials = CounterMetricFamily("raftreg_acl_denials", "Requests refused by the ACLs, by API and error code",
                                      labels=["api", "code"])
        for (api, code), count in sorted(self.denials.items()):
            denials.add_metric([api, code], count)
        yield denials

    def middleware(self, api: str = "native") -> Middleware:
        """The request-counting middleware of the API ``api``."""

        @web.middleware
        async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            self.in_flight += 1
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.in_flight -= 1
                method = request.method
                self.observe(route_template(request), method if method in METHODS else "OTHER", status,
                             time.perf_counter() - started, api)

        return count_requests


# One RequestMetrics per node registry (so per node), shared by the node's APIs.
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, RequestMetrics] = weakref.WeakKeyDictionary()


def request_metrics(node: RegistryNode) -> RequestMetrics | None:
    """The node's one ``RequestMetrics`` (made on first use), or None with metrics off."""
    if node.metrics is None:
        return None
    registry = node.metrics.registry
    metrics = _BY_REGISTRY.get(registry)
    if metrics is None:
        metrics = _BY_REGISTRY[registry] = RequestMetrics(registry)
    return metrics


def install_request_metrics(app: web.Application, node: RegistryNode, api: str) -> RequestMetrics | None:
    """Count ``app``'s requests under ``api`` (outermost middleware) when the node has metrics on."""
    metrics = request_metrics(node)
    if metrics is not None:
        app.middlewares.insert(0, metrics.middleware(api))
    return metrics


def install_metrics(app: web.Application, node: RegistryNode) -> RequestMetrics | None:
    """Add the request middleware (outermost) and ``GET /metrics`` when the node has metrics on."""
    requests = install_request_metrics(app, node, "native")
    if requests is None or node.metrics is None:
        return None
    registry = node.metrics.registry

    async def scrape(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get(METRICS_PATH, scrape)
    return requests
