"""``DnsServer``: the DNS interface of one node, UDP and TCP on the node's asyncio loop.

Contract:
- ``start()`` binds UDP and TCP on the node's ``dns`` address (``OSError`` if either port is
  taken); ``stop()`` closes both and every open TCP connection. ``raftreg.http.server.serve``
  starts it after the node and stops it before the node.
- UDP: one answer datagram per query datagram, computed inline (no task per packet).
- Answers come from ``wire.outcome`` or, for a packet already answered at the same catalog
  version, from the ``AnswerCache`` (SOA serial = the registry's index, so a kept answer is
  exactly what a new rendering would give, record order aside).
- TCP (RFC 7766): each message carries a 2-byte length prefix; a connection may send several
  queries, answered in order; it is closed after ``tcp_idle_timeout`` seconds without a complete
  query or with an answer its client does not read, on a zero length or a broken prefix. At
  most ``max_tcp_connections`` are open at once; more are closed at accept.
- Nothing a client sends raises into the loop: ``wire.respond`` turns every failure into an
  rcode or silence, and the transports guard that once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, cast

from raftreg.config import DnsSettings, split_hostport
from raftreg.dns.cache import AnswerCache
from raftreg.dns.catalog import NodeCatalog
from raftreg.dns.names import DATACENTER
from raftreg.dns.wire import outcome
from raftreg.errors import Unavailable
from raftreg.node.registry_node import RegistryNode

log = logging.getLogger("raftreg.dns")

LENGTH_PREFIX = 2
TCP_BACKLOG = 256


class DnsServer:
    def __init__(self, node: RegistryNode, settings: DnsSettings, address: str, *,
                 datacenter: str = DATACENTER) -> None:
        self.settings = settings
        self.datacenter = datacenter
        self.host, self.port = split_hostport(address)
        self._catalog = NodeCatalog(node)
        self._rng = random.Random()
        self._cache = AnswerCache()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    def answer(self, packet: bytes, *, udp: bool) -> bytes | None:
        """The answer to one query packet (None: send nothing), from the cache when this very
        question was answered at the current catalog version."""
        try:
            try:
                version: tuple[int, int] | None = self._catalog.version()
            except Unavailable:
                version = None  # respond() answers SERVFAIL
            key = (udp, packet[2:])
            if version is not None:
                body = self._cache.pick(key, version, self._rng)
                if body is not None:
                    return packet[:2] + body
            result = outcome(packet, self._catalog, self.settings, udp=udp, serial=version[0] if version else 0,
                             rng=self._rng, datacenter=self.datacenter)
            if version is not None and result.wire is not None and result.variants:
                self._cache.add(key, version, result.wire[2:], result.variants)
            return result.wire
        except Exception:  # outcome() guards itself; this is the last line before the loop
            log.exception("event=dns_packet_failed udp=%s bytes=%d", udp, len(packet))
            return None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), local_addr=(self.host,
                                                                                                   self.port))
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port, backlog=TCP_BACKLOG,
                                                   reuse_address=True)
        except OSError:
            self._udp.close()
            raise
        log.info("event=dns_serving address=%s:%d domain=%s", self.host, self.port, self.settings.domain)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._connections):
            writer.close()
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2.0)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.settings.max_tcp_connections:
            writer.close()
            return
        self._connections.add(writer)
        idle = self.settings.tcp_idle_timeout
        try:
            while True:
                prefix = await asyncio.wait_for(reader.readexactly(LENGTH_PREFIX), idle)
                length = int.from_bytes(prefix, "big")
                if length == 0:
                    break
                packet = await asyncio.wait_for(reader.readexactly(length), idle)
                reply = self.answer(packet, udp=False)
                if reply is None:
                    continue
                writer.write(len(reply).to_bytes(LENGTH_PREFIX, "big") + reply)
                await asyncio.wait_for(writer.drain(), idle)  # a client that never reads is dropped
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("event=dns_tcp_failed")
        finally:
            self._connections.discard(writer)
            writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # the loop's own datagram transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = self._server.answer(data, udp=True)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable from a client
        log.debug("event=dns_udp_error error=%s", exc)
