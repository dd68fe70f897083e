"""The blocking client's transport: stdlib ``http.client`` with a small keep-alive pool per node.

Contract of ``ConnectionPool.send``: one attempt at one node, no retry of any kind (retries are
the policy's, ``raftreg.client.policy``). It returns the ``Response``, or raises:
- ``NotSent`` (``raftreg.client.core``): nothing reached the node (connection refused, unresolvable host, connect or TLS
  handshake failed or timed out);
- ``LostAfterSend``: the connection broke or timed out once the request was (maybe) sent.

A client without a certificate whose fresh TLS connection is closed unanswered (or during the
handshake) gets ``ClientCertificateRequired`` at once if the node also refuses a health check
for want of one (``raftreg.client.tls``).

Connections: an idle connection is reused only after a non-blocking peek shows the server has
not closed it, and only for reads and idempotent writes. A non-idempotent request always goes
out on a new connection, so a connection the server closed while idle can never turn "not sent"
into "outcome unknown". The pool is shared by threads (a lock guards the idle lists; a
connection is used by one thread at a time). ``timeout`` bounds each socket operation.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Sequence

from raftreg.client.core import Headers, LostAfterSend, NotSent, Request, Response, auth_headers
from raftreg.client.nodes import Node
from raftreg.client.tls import certificate_required, refuses_without_certificate

MAX_IDLE_PER_NODE = 16
USER_AGENT = "raftreg-client"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection the server has not closed (nothing to read, no EOF)."""
    sock = conn.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket):
        return _tls_still_open(sock)
    try:
        sock.settimeout(0.0)
        sock.recv(1, socket.MSG_PEEK)  # returns b"" at EOF, or bytes nobody asked for: unusable either way
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _tls_still_open(sock: ssl.SSLSocket) -> bool:
    """``_still_open`` for TLS, where MSG_PEEK is not allowed: nothing readable means open; if
    something is, one non-blocking read tells a TLS record that carries no data (a TLS 1.3
    session ticket: still open) from a close or stray data (unusable; the read consumed it, but
    the connection is dropped anyway)."""
    if sock.pending():
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return True
        sock.settimeout(0.0)
        sock.recv(1)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return True
    except (OSError, ValueError):
        return False
    return False


class ConnectionPool:
    """Keep-alive connections to a fixed list of nodes, shared by threads."""

    def __init__(self, nodes: Sequence[Node], max_idle: int = MAX_IDLE_PER_NODE, *,
                 ssl_context: ssl.SSLContext | None = None, token: str | None = None,
                 client_cert: bool = False) -> None:
        """``ssl_context`` is used for the ``https`` nodes (None: Python's default context);
        ``token``: the ACL token sent with every request; ``client_cert``: whether the context
        presents a client certificate."""
        self._ssl = ssl_context
        self._client_cert = client_cert
        self._nodes = tuple(nodes)
        self._auth = auth_headers(token)
        self._idle: list[list[http.client.HTTPConnection]] = [[] for _ in self._nodes]
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._closed = False

    def send(self, node: int, request: Request, timeout: float, connect_timeout: float) -> Response:
        """One attempt of ``request`` at ``nodes[node]`` (see the module docstring)."""
        conn = self._take(node) if request.idempotent else None
        fresh = conn is None
        if conn is None:
            conn = self._connect(self._nodes[node], connect_timeout)
        try:
            assert conn.sock is not None
            conn.sock.settimeout(timeout)
            headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **self._auth}
            if request.body is not None:
                headers["Content-Type"] = request.content_type
            conn.request(request.method, request.target, body=request.body, headers=headers)
            answer = conn.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            unanswered = isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | ssl.SSLEOFError)
            if fresh and unanswered:
                self._check_certificate(self._nodes[node], connect_timeout)
            raise LostAfterSend(_describe(exc)) from exc
        except BaseException:  # KeyboardInterrupt mid-request: the connection's state is unknown
            conn.close()
            raise
        response = Response(answer.status, Headers(answer.getheaders()), body)
        if answer.will_close:
            conn.close()
        else:
            self._give(node, conn)
        return response

    def close(self) -> None:
        """Close every idle connection; connections in use are closed when their call ends."""
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle for conn in conns]
            self._idle = [[] for _ in self._nodes]
        for conn in idle:
            conn.close()

    def _connect(self, node: Node, connect_timeout: float) -> http.client.HTTPConnection:
        if self._closed:
            raise RuntimeError("the client is closed")
        conn: http.client.HTTPConnection
        if node.scheme == "https":
            conn = http.client.HTTPSConnection(node.host, node.port, timeout=connect_timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(node.host, node.port, timeout=connect_timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            if isinstance(exc, ssl.SSLEOFError):
                self._check_certificate(node, connect_timeout)
            raise NotSent(_describe(exc)) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_certificate(self, node: Node, timeout: float) -> None:
        """Raise ``ClientCertificateRequired`` if ``node`` closed us for want of a client
        certificate (module docstring)."""
        if node.scheme != "https" or self._client_cert:
            return
        if refuses_without_certificate(node, self._ssl or ssl.create_default_context(), timeout):
            raise certificate_required(node.url) from None

    def _take(self, node: int) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                if not self._idle[node]:
                    return None
                conn = self._idle[node].pop()
            if _still_open(conn):
                return conn
            conn.close()

    def _give(self, node: int, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle[node]) < self._max_idle:
                self._idle[node].append(conn)
                return
        conn.close()
