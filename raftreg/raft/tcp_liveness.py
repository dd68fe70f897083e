"""Raft connections that notice a dead link in seconds: ``TCP_USER_TIMEOUT`` and keepalive.

A partition does not close a TCP connection: both ends keep it and the sender retransmits with
exponential backoff (RTO doubling up to 2 minutes). pysyncobj's own ``connectionTimeout`` is
checked only when the connection has an event, and raftreg sets it to 60 s. So after a 15 s
partition the old connection was still "established" and the next retransmission came up to
~12 s after the heal (research §3.2: 11.5 s from heal to resume). Measured in the lab
(``benchmarks/lab_heal.py``, README "Testing on a real network").

With ``TCP_USER_TIMEOUT`` the kernel aborts a connection whose sent data stays unacknowledged
that long (it also bounds a connect's SYN retries), and keepalive probes do the same for an idle
one. pysyncobj then sees the error, drops the connection and reconnects every
``connectionRetryTime`` (``transport.CONNECTION_RETRY_S``) with a fresh socket, whose
first SYN after the heal gets through: heal -> caught up in about 1-2 s instead of 10+. A
paused peer's kernel still acknowledges, so a SIGSTOPped node does not trip it.

``RAFTREG_RAFT_TCP_USER_TIMEOUT`` (seconds; 0 turns the tuning off, for before/after
measurements) overrides ``USER_TIMEOUT_S``.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

USER_TIMEOUT_S = 2.0
ENV = "RAFTREG_RAFT_TCP_USER_TIMEOUT"
KEEPALIVE_IDLE_S = 1
KEEPALIVE_INTERVAL_S = 1
KEEPALIVE_PROBES = 2


def user_timeout_s() -> float:
    """The configured timeout in seconds (0: off); a malformed override falls back to the default."""
    raw = os.environ.get(ENV)
    if raw is None:
        return USER_TIMEOUT_S
    try:
        return max(0.0, float(raw))
    except ValueError:
        return USER_TIMEOUT_S


def tune_socket(sock: socket.socket | None, timeout_s: float) -> None:
    """Set ``TCP_USER_TIMEOUT`` and keepalive on one Raft socket (no-op for ``timeout_s`` 0)."""
    if sock is None or timeout_s <= 0:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(timeout_s * 1000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


def connection_socket(conn: Any) -> socket.socket | None:
    """The socket of a pysyncobj ``TcpConnection`` (a name-mangled attribute), or None."""
    sock = getattr(conn, "_TcpConnection__socket", None)
    return sock if isinstance(sock, socket.socket) else None


def tune_outgoing(conn: Any, timeout_s: float) -> None:
    """Make an outgoing ``TcpConnection`` tune each socket it creates: ``connect()`` calls
    ``setSockoptKeepalive()`` right after creating its socket, before connecting, so the
    instance's hook is replaced (pysyncobj's keepalive setting is not used by raftreg)."""
    if timeout_s <= 0:
        return
    conn.setSockoptKeepalive = lambda: tune_socket(connection_socket(conn), timeout_s)
