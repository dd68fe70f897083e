"""``Http``: sequential blocking requests to one node over one keep-alive connection (the parent
process's writer, pollers and probe threads)."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
import urllib.parse
from typing import Any

from harness.payloads import JSON_HEADERS, instance_body


class Http:
    """One keep-alive connection to one node. ``request`` reconnects and retries once after a
    connection failure (``retry=False``: it raises at once). One thread at a time, except for
    ``abort``, which another thread may call to end a request in progress (e.g. a parked query)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, *, retry: bool = True
                ) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) of one request; OSError / HTTPException if it failed (twice)."""
        for attempt in (0, 1) if retry else (1,):
            try:
                self.conn.request(method, path, body=body, headers=JSON_HEADERS if body is not None else {})
                resp = self.conn.getresponse()
                return resp.status, resp.read(), dict(resp.getheaders())
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def register(self, service: str, iid: str, i: int, size: int) -> tuple[float, float, int]:
        """PUT one instance (``instance_body(i, size)``); returns (monotonic time just before
        sending, time the answer was read, commit index). RuntimeError unless HTTP 200."""
        body = instance_body(i, size)
        t0 = time.monotonic()
        status, raw, _ = self.request("PUT", f"/v1/services/{service}/instances/{iid}", body)
        t1 = time.monotonic()
        if status != 200:
            raise RuntimeError(f"register {service}/{iid} answered HTTP {status}: {raw[:200]!r}")
        return t0, t1, int(json.loads(raw)["index"])

    def cluster(self) -> dict[str, Any]:
        """The node's ``GET /v1/cluster``; RuntimeError unless HTTP 200."""
        status, raw, _ = self.request("GET", "/v1/cluster")
        if status != 200:
            raise RuntimeError(f"/v1/cluster answered HTTP {status}")
        info: dict[str, Any] = json.loads(raw)
        return info

    def service_index(self, service: str) -> int:
        """``X-Raftreg-Index`` of ``GET /v1/services/{service}``; RuntimeError unless HTTP 200."""
        status, _, headers = self.request("GET", f"/v1/services/{service}")
        if status != 200:
            raise RuntimeError(f"GET /v1/services/{service} answered HTTP {status}")
        return int(headers["X-Raftreg-Index"])

    def abort(self) -> None:
        """Shut the socket down (from another thread): a request in progress fails at once."""
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.conn.close()
