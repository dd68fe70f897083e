"""Run one node: the Raft member and its HTTP API in one process, until a stop signal.

The Consul-compatible API and the DNS server are imported only by a node whose config gives
them an address (together about 11 MiB of a node's memory, measured 2026-12-07)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from pathlib import Path

from aiohttp import web

from raftreg.config import ClusterConfig, split_hostport
from raftreg.http.app import build_app
from raftreg.http.fast_writes import FastWrites
from raftreg.http.limits import LIMITER, cap_connections, server_kwargs
from raftreg.http.metrics import request_metrics
from raftreg.http.peer_client import PeerClient
from raftreg.http.protocol import install_shedding, use_node_request_handler
from raftreg.http.shed import Shedder
from raftreg.node.registry_node import LocalIdentity, RegistryNode
from raftreg.tls import server_context

log = logging.getLogger("raftreg.server")

SHUTDOWN_TIMEOUT = 5.0  # seconds a graceful stop waits for requests in flight


async def serve(config: ClusterConfig, name: str, *, data_dir: Path, secret: str,
                identity: LocalIdentity | None = None) -> None:
    """Start the node and its HTTP server; return after SIGINT/SIGTERM, having stopped both.
    With ``[tls]`` the API is HTTPS only (``raftreg.tls``); its files are checked before the node starts."""
    ssl_context = server_context(config.tls, name) if config.tls is not None else None
    node = RegistryNode(config, name, data_dir=data_dir, secret=secret, peers=PeerClient(config, name, secret),
                        identity=identity)
    await node.start()
    app = build_app(node, secret=secret)
    use_node_request_handler()
    # handler_cancellation: a blocking query whose client went away stops waiting at once.
    # auto_decompress off: raftreg takes no compressed request bodies (read_body refuses a
    # Content-Encoding), so no decoder (or missing one) is ever run on a client's bytes.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True,
                            shutdown_timeout=SHUTDOWN_TIMEOUT, auto_decompress=False,
                            **server_kwargs(config.limits))
    await runner.setup()
    cap_connections(runner, config.limits)
    assert runner.server is not None
    fast = None
    if os.environ.get("RAFTREG_FAST_WRITES") != "0":  # "0": every registration through aiohttp (A/B benchmarks)
        fast = FastWrites(node, app.get(LIMITER), request_metrics(node))
    install_shedding(runner.server, Shedder(node.admit_write_at_once, node.release_write_slot), fast)
    host, port = split_hostport(node.me.http)
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True,
                       ssl_context=ssl_context)
    await site.start()
    dns_server = None
    if node.me.dns:
        from raftreg.dns.server import DnsServer

        dns_server = DnsServer(node, config.dns, node.me.dns, datacenter=config.datacenter)
        await dns_server.start()
    log.info("event=serving node=%s %s=%s raft=%s data_dir=%s", name, config.scheme, node.me.http, node.me.raft,
             data_dir)
    consul = None
    if node.me.consul_http is not None:  # the Consul-compatible API (raftreg.consul), same TLS and limits
        from raftreg.consul.app import build_consul_app

        consul = await start_site(build_consul_app(node, secret=secret), node.me.consul_http, config, ssl_context)
        log.info("event=serving_consul node=%s %s=%s", name, config.scheme, node.me.consul_http)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("event=stopping node=%s", name)
    if len(config.voters) > 1 and not await node.hand_over_leadership():  # replicas never take over
        log.warning("event=leadership_not_handed_over: stopping as leader (the others elect one)")
    node.release_waiters()  # parked blocking queries answer now instead of holding the shutdown
    await runner.cleanup()
    if consul is not None:
        await consul.cleanup()
    if dns_server is not None:
        await dns_server.stop()
    await node.stop()


async def start_site(app: web.Application, addr: str, config: ClusterConfig,
                     ssl_context: ssl.SSLContext | None) -> web.AppRunner:
    """Serve ``app`` on ``addr`` with the main API's runner settings and limits; the caller
    stops it with ``cleanup()``."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=SHUTDOWN_TIMEOUT, auto_decompress=False, **server_kwargs(config.limits))
    await runner.setup()
    cap_connections(runner, config.limits)
    host, port = split_hostport(addr)
    await web.TCPSite(runner, host, port, backlog=1024, reuse_address=True, ssl_context=ssl_context).start()
    return runner
