"""A small "cart" service that registers itself with raftreg and stays registered while it runs.

    .venv/bin/python examples/cart_service.py --id cart-1 --port 8081      # cluster: cluster-configs/local-3.toml
    .venv/bin/python examples/cart_service.py --id cart-2 --port 8082 --registry 127.0.0.1:8501

Endpoints (aiohttp): ``GET /cart/{user}`` answers the user's cart as JSON, naming the replica that
served it (``served_by``); ``GET /health`` answers 200 while the service is up.

Registration (``client.registration``): the instance is registered once its port is open, with a
TTL lease (``--ttl``, heartbeats every ttl/3 in the background) and, unless ``--no-check``, an
active HTTP check of ``/health`` run by the cluster every ``--check-interval`` seconds. The lease
removes the instance when the process dies (kill -9: within ``--ttl``); the check marks it critical
sooner (one failed check), so callers discovering passing instances drop it within about one
interval. SIGTERM or Ctrl-C deregisters before exiting.

Prints ``ready <id> <port>`` on stdout once registered (scripts and tests wait for that line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from raftreg.client import AsyncRegistryClient, Check

REPO = Path(__file__).resolve().parents[1]
SERVICE = "cart"

CATALOG = ("apple", "bread", "coffee", "eggs", "milk", "rice", "tea", "tomato")


def cart_of(user: str) -> list[dict[str, str | int]]:
    """A made-up cart, the same for a user on every replica (a stand-in for a shared database)."""
    seed = sum(user.encode())
    return [{"item": CATALOG[(seed + k) % len(CATALOG)], "quantity": (seed + k) % 3 + 1} for k in range(seed % 4 + 1)]


def make_app(instance_id: str) -> web.Application:
    """The cart service's aiohttp application."""

    async def cart(request: web.Request) -> web.Response:
        user = request.match_info["user"]
        return web.json_response({"user": user, "items": cart_of(user), "served_by": instance_id})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "id": instance_id, "pid": os.getpid()})

    app = web.Application()
    app.router.add_get("/cart/{user}", cart)
    app.router.add_get("/health", health)
    return app


async def registered_until_stopped(args: argparse.Namespace, service: str, port: int, check: Check | None) -> None:
    """Register ``args.id`` of ``service`` at ``args.host:port`` (TTL lease, optional ``check``),
    print ``ready <id> <port> ...``, wait for SIGTERM / SIGINT, then deregister (leaving the block)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    registry = args.registry.split(",") if args.registry else None
    async with AsyncRegistryClient(registry, config=args.config) as client, \
            client.registration(service, args.id, address=args.host, port=port, ttl=args.ttl,
                                tags=("example",), meta={"version": "1"}, check=check) as registration:
        print(f"ready {args.id} {port} registered={registration.registered}", flush=True)
        await stop.wait()


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM / SIGINT, registered the whole time."""
    runner = web.AppRunner(make_app(args.id), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = runner.addresses[0][1]  # the real port when --port 0
    check = None
    if not args.no_check:
        check = Check(http=f"http://{args.host}:{port}/health", interval=args.check_interval, timeout=1.0)
    try:
        await registered_until_stopped(args, SERVICE, port, check)
    finally:
        await runner.cleanup()


def parse_args(argv: list[str] | None = None, description: str | None = __doc__) -> argparse.Namespace:
    """The service's options (shared by the gRPC example)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--id", required=True, help="the instance id, e.g. cart-1")
    parser.add_argument("--port", type=int, default=0, help="port to serve on (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on and to register")
    parser.add_argument("--config", default=None, help="cluster config file (default: cluster-configs/local-3.toml)")
    parser.add_argument("--registry", default=None, help="comma-separated raftreg node addresses (host:port)")
    parser.add_argument("--ttl", default="10s", help="lease of the registration (default 10s)")
    parser.add_argument("--check-interval", type=float, default=1.0, help="seconds between health checks")
    parser.add_argument("--no-check", action="store_true", help="register with the TTL lease only")
    args = parser.parse_args(argv)
    if args.config is None and args.registry is None:
        args.config = str(REPO / "cluster-configs" / "local-3.toml")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
