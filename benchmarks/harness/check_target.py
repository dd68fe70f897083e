"""The lease benchmark's check target: an aiohttp server answering 200 on ``GET /health/<i>``
(``lease_bench.py --serve-target PORT`` runs it as a subprocess), counting what it is asked."""

from __future__ import annotations

import time
from array import array
from typing import Any

from aiohttp import web

from harness.bench import serve_app
from harness.stats import pct


def serve_target(port: int) -> None:
    """``GET /health/{i}`` -> 200; ``GET /stats[?reset=1]`` -> the request count and the
    intervals between two probes of the same path (since the last reset)."""
    state: dict[str, Any] = {"requests": 0, "last": {}, "gaps": array("d")}

    async def health(request: web.Request) -> web.Response:
        now = time.monotonic()
        state["requests"] += 1
        path = request.match_info["i"]
        prev = state["last"].get(path)
        if prev is not None:
            state["gaps"].append(now - prev)
        state["last"][path] = now
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        gaps = sorted(state["gaps"])
        body = {"requests": state["requests"], "paths": len(state["last"]), "intervals": len(gaps),
                "interval_s": {"p1": pct(gaps, 1), "p50": pct(gaps, 50), "p99": pct(gaps, 99),
                               "max": gaps[-1] if gaps else None}}
        if request.query.get("reset"):
            state["gaps"] = array("d")
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/health/{i}", health)
    app.router.add_get("/stats", stats)
    serve_app(app, port)

