"""Registrations answered without aiohttp's request machinery: the write fast path.

Why: through aiohttp a registration's request object, handler task, four middlewares, response
object and stream writer were about half of the leader's CPU per registration
(``benchmarks/README.md``, "Where the CPU of a registration goes"), and the leader's CPU is what limits the
registration rate. ``NodeRequestHandler`` (``raftreg.http.protocol``) offers each whole request it
reads on an idle connection to ``FastWrites.takes``; a taken request is answered by ``serve``,
whose bytes the protocol writes itself. Everything else goes to aiohttp as before.

Which requests are taken (all must hold; otherwise aiohttp answers, with the same result):
- ``PUT /v1/services/{service}/instances/{id}`` read whole at once (``raftreg.http.shed``), no
  query string, the service and id valid as they are (no ``%``, fragment or dot segment for
  aiohttp to decode, strip or normalise; an invalid name is aiohttp's to refuse), on a node with
  ACLs off, no ACL conflict and no request log;
- well-formed header lines (``name: value`` with a token name, no control characters), none
  repeated, a ``Host``, no ``Sec-WebSocket-Key1``, at most ``MAX_HEADERS`` of them in ``MAX_HEAD``
  bytes (aiohttp answers 400 or 431 for what is malformed, incomplete or too large).

What ``serve`` does is the route's, in the middlewares' order: the request metrics (route
``/v1/services/{service}/instances/{id}``, ``PUT``; the in-flight gauge), the per-client rate
limit (client = the peer address, as with ACLs off), the write-queue check, the body checks of
``raftreg.http.wire`` (Content-Type, Content-Encoding, size), ``parse_register``, the write
through the node, the answer (the stored instance with ``index``, ``X-Raftreg-Index``) or the
error body with its status (and ``Retry-After`` for 503 and 429); 5xx errors other than 503/504
are logged as ``error_middleware`` logs them, an unexpected exception as ``internal`` (500) with
its traceback in the log only. The visible differences: no ``Server`` header; and a client that
goes away before its answer does not cancel the write's wait (aiohttp's ``handler_cancellation``
would; the write itself goes on either way), so the metrics count what the write gave.
"""

from __future__ import annotations

import logging
import re
import time

from raftreg.errors import PayloadTooLarge, RaftregError, Unavailable
from raftreg.http.limits import Limiter
from raftreg.http.metrics import RequestMetrics
from raftreg.http.shed import WholeRequest, answer_bytes
from raftreg.http.validation import parse_register
from raftreg.http.wire import MAX_BODY, check_body_headers, encode, instance_with_index, is_logged, retry_after_seconds
from raftreg.node.registry_node import RegistryNode

log = logging.getLogger("raftreg.http")

ROUTE = "/v1/services/{service}/instances/{id}"
# Far below aiohttp's limits (8190 bytes a line, 128 headers): a larger request is aiohttp's to judge.
MAX_HEAD = 4096
MAX_HEADERS = 32
_PUT = b"PUT"
# A valid service name and instance id (``raftreg.http.validation``), nothing to decode or normalise.
_PATH = re.compile(rb"/v1/services/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
                   rb"/instances/([A-Za-z0-9][A-Za-z0-9._:-]{0,127})")
_HOST = b"host"
_WEBSOCKET_KEY1 = b"\r\nsec-websocket-key1:"  # aiohttp's parser refuses it
# The header lines of a lowercased head (``WholeRequest.head``): token names, values without
# control characters other than tab.
_HEAD = re.compile(rb"(?:\r\n[!#$%&'*+.^_`|~0-9a-z-]+:[^\x00-\x08\x0a-\x1f\x7f]*)*\r\n")
_NAMES = re.compile(rb"\r\n([^:]*):")
_CONTENT_TYPE = b"\r\ncontent-type:"
_CONTENT_ENCODING = b"\r\ncontent-encoding:"


def _header(head: bytes, name: bytes) -> str:
    """The value of the header ``name`` (given as b"\\r\\nname:") in a lowercased head, "" if absent."""
    at = head.find(name)
    if at < 0:
        return ""
    return head[at + len(name):head.find(b"\r\n", at + 2)].decode("utf-8", "surrogateescape").strip()


class FastWrites:
    """The fast path of one node's API server (module docstring). ``limiter`` and ``metrics``
    are the app's own (``raftreg.http.limits.LIMITER``, ``raftreg.http.metrics.request_metrics``)."""

    def __init__(self, node: RegistryNode, limiter: Limiter | None, metrics: RequestMetrics | None) -> None:
        self._node = node
        self._limiter = limiter
        self._metrics = metrics

    def takes(self, whole: WholeRequest) -> bool:
        """Whether ``whole`` is a registration this path answers (module docstring)."""
        if whole.method != _PUT or whole.has_query or _PATH.fullmatch(whole.path) is None:
            return False
        node = self._node
        if node.acl.enabled or node.acl_conflict is not None or node.config.logging.requests:
            return False
        head = whole.head
        if len(head) > MAX_HEAD or _HEAD.fullmatch(head) is None or _WEBSOCKET_KEY1 in head:
            return False
        names = _NAMES.findall(head)
        return len(names) <= MAX_HEADERS and len(names) == len(set(names)) and _HOST in names

    async def serve(self, whole: WholeRequest, remote: str) -> bytes:
        """The whole HTTP answer to the registration ``whole`` from the peer ``remote``
        (``takes`` said yes)."""
        started = time.perf_counter()
        metrics = self._metrics
        status = 500
        if metrics is not None:
            metrics.in_flight += 1
        try:
            status, answer = await self._register(whole, remote)
            return answer
        finally:
            if metrics is not None:
                metrics.in_flight -= 1
                metrics.observe(ROUTE, "PUT", status, time.perf_counter() - started)

    async def _register(self, whole: WholeRequest, remote: str) -> tuple[int, bytes]:
        try:
            limiter = self._limiter
            refusal = None if limiter is None else limiter.take_request("a:" + remote, remote)
            if refusal is not None:
                raise refusal
            node = self._node
            conflict = node.acl_conflict  # as AclMiddleware, when the handler is about to run
            if conflict is not None:
                raise Unavailable(conflict, retry_after=2.0)
            node.check_write_capacity()
            check_body_headers(_header(whole.head, _CONTENT_TYPE), _header(whole.head, _CONTENT_ENCODING))
            if len(whole.body) > MAX_BODY:
                raise PayloadTooLarge(f"request body is larger than {MAX_BODY} bytes")
            match = _PATH.fullmatch(whole.path)
            assert match is not None  # ``takes`` said yes
            service, instance_id = match.group(1).decode(), match.group(2).decode()
            index, stored = await node.register(parse_register(service, instance_id, whole.body))
            return 200, answer_bytes(200, instance_with_index(stored, index), b"X-Raftreg-Index: %d\r\n" % index)
        except RaftregError as err:
            return err.status, error_bytes(err, whole)
        except Exception:
            log.exception("event=handler_failed method=PUT path=%s", whole.path.decode("latin-1"))
            return 500, answer_bytes(500, encode({"error": {"code": "internal", "message": "internal error"}}))


def error_bytes(err: RaftregError, whole: WholeRequest) -> bytes:
    """The answer ``error_middleware`` gives for ``err`` (and its log line for a 5xx)."""
    if is_logged(err):
        log.error("event=handler_error method=PUT path=%s code=%s message=%r", whole.path.decode("latin-1"),
                  err.code, err.message)
    retry_after = retry_after_seconds(err)
    extra = b"" if retry_after is None else b"Retry-After: %d\r\n" % retry_after
    return answer_bytes(err.status, encode(err.to_body()), extra)
