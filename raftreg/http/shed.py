"""Refusing writes cheaply while this node's write queue is full (load shedding).

While the group-commit queue is full every bounded write is answered 503 ``unavailable`` with
``Retry-After`` (``raftreg.node.proposer``). Through aiohttp that answer costs a request object, a
task, the middlewares and a response object: 66-68 µs of a node's CPU per refusal on the 2-core
benchmark machine (one node, wrk), a third of what an accepted registration costs its leader, so
under a 4x overload the refusals took the CPU the accepted writes needed
(``benchmarks/overload_bench.py``). ``NodeRequestHandler`` (``raftreg.http.protocol``) asks
``Shedder.refuse_or_reserve`` first and, when it gets bytes back, writes them instead of handing
the read to aiohttp: 27 µs per refusal, socket calls included (measured 2026-12-07, interleaved).

A write that is not refused reserves a slot of the queue until its handler runs: an event loop
iteration reads hundreds of requests before the first of their handlers queues its command, so
without reservations a full iteration's reads passed the check and ~45 % of the refusals under
overload still went through aiohttp (the queue filled between the read and the handler).

Contract of a fast refusal:
- Only while the node's write queue, with the slots reserved for admitted writes whose handler
  has not run yet, is full; it is counted as refused like any other (``group_commit.refused``,
  ``raftreg_group_commit_refused``) and in ``group_commit.refused_at_once``.
- Only for a read that is one whole request by itself (``parse_whole``): request line
  ``METHOD TARGET HTTP/1.1``, headers ending in an empty line, a body of exactly its
  ``Content-Length`` (none without one), no ``Transfer-Encoding``, ``Expect``, ``Upgrade`` or
  ``Connection: close``/``upgrade``; on a connection whose every earlier read was such a whole
  request (so aiohttp's parser holds nothing partial) and whose handler is idle (no request in
  progress or queued: answers stay in order). Anything else goes to aiohttp unchanged.
- Only the routes whose handlers check the write capacity before anything else (``sheddable``):
  registration, deregistration, the status of an instance, KV writes and transactions, session
  create and destroy. Heartbeats, reads, the signed node-to-node routes and everything else are
  never shed here.
- The answer is the handler's: 503, ``Retry-After``, the error body with code ``unavailable``
  (``answer_bytes`` writes it as aiohttp would, without a ``Server`` header);
  the connection stays open. The request log and the per-route HTTP metrics do not see it. ACLs
  and rate limits are not consulted: a 503 changes nothing and tells only that the node is
  overloaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple

from raftreg.errors import Unavailable
from raftreg.http.wire import encode, retry_after_seconds

_HEAD_END = b"\r\n\r\n"
_REFUSING_HEADERS = (b"\r\ntransfer-encoding:", b"\r\nexpect:", b"\r\nupgrade:")
_LENGTH = b"\r\ncontent-length:"
_CONNECTION = b"\r\nconnection:"

SERVICES = b"/v1/services/"
KV = b"/v1/kv/"
TXN = b"/v1/txn"
SESSIONS = b"/v1/sessions"


class WholeRequest(NamedTuple):
    """One whole HTTP/1.1 request read at once (``parse_whole``)."""

    method: bytes
    path: bytes  # the target without its query string
    has_query: bool  # the target had a ``?``
    head: bytes  # the header lines, lowercased: b"\r\nname: value" ... b"\r\n"
    body: bytes


def parse_whole(data: bytes) -> WholeRequest | None:
    """The request when ``data`` is exactly one whole HTTP/1.1 request as the module docstring
    describes, else None."""
    end = data.find(_HEAD_END)
    if end < 0:
        return None
    line_end = data.find(b"\r\n")
    parts = data[:line_end].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return None
    head = data[line_end:end + 2].lower()  # "\r\nname: value" ... "\r\n"
    length = 0
    at = head.find(_LENGTH)
    if at >= 0:
        value_end = head.find(b"\r\n", at + 2)
        value = head[at + len(_LENGTH):value_end].strip()
        if not value.isdigit() or head.find(_LENGTH, value_end) >= 0:  # odd or repeated
            return None
        length = int(value)
    body_at = end + len(_HEAD_END)
    if len(data) != body_at + length:
        return None
    for name in _REFUSING_HEADERS:
        if name in head:
            return None
    at = head.find(_CONNECTION)
    if at >= 0:
        value = head[at:head.find(b"\r\n", at + 2)]
        if b"close" in value or b"upgrade" in value:
            return None
    target = parts[1]
    query = target.find(b"?")
    return WholeRequest(parts[0], target if query < 0 else target[:query], query >= 0, head, data[body_at:])


def sheddable(method: bytes, path: bytes) -> bool:
    """Whether a request for ``path`` with ``method`` is one of the writes refused while the queue
    is full (module docstring)."""
    if path.startswith(SERVICES):
        segments = path[len(SERVICES):].split(b"/")
        if len(segments) < 3 or segments[1] != b"instances" or not segments[0] or not segments[2]:
            return False
        if len(segments) == 3:
            return method in (b"PUT", b"DELETE")
        return len(segments) == 4 and segments[3] == b"status" and method == b"PUT"
    if path.startswith(KV):
        return method in (b"PUT", b"DELETE")
    if path == TXN:
        return method == b"PUT"
    if path == SESSIONS:
        return method == b"PUT"
    if path.startswith(SESSIONS + b"/"):
        rest = path[len(SESSIONS) + 1:]
        return method == b"DELETE" and bool(rest) and b"/" not in rest
    return False


def refusal_bytes(err: Unavailable) -> bytes:
    """The whole HTTP answer to a refused write: what ``error_response`` would send."""
    return answer_bytes(503, encode(err.to_body()), b"Retry-After: %d\r\n" % (retry_after_seconds(err) or 1))


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_date_second = -1
_date_header = b""


def answer_bytes(status: int, body: bytes, headers: bytes = b"") -> bytes:
    """A whole HTTP/1.1 keep-alive answer with a JSON ``body``, as aiohttp would write it (without
    a ``Server`` header); ``headers``: more header lines, each ending in CRLF."""
    global _date_second, _date_header
    now = int(time.time())
    if now != _date_second:  # as aiohttp, format the date at most once a second
        _date_second, _date_header = now, formatdate(now, usegmt=True).encode()
    return (b"HTTP/1.1 %d %s\r\n%bContent-Type: application/json\r\nContent-Length: %d\r\nDate: %s\r\n\r\n"
            % (status, _REASONS.get(status, b""), headers, len(body), _date_header) + body)


class Shedder:
    """Decides, for one server, whether a whole sheddable write is refused at once (module
    docstring).

    ``admit``: the node's read-time admission (``RegistryNode.admit_write_at_once``), which raises
    the node's ``Unavailable`` (and counts the refusal) when the write queue, with the slots
    already reserved, is full, and otherwise reserves a slot; ``release``: gives a slot back."""

    def __init__(self, admit: Callable[[], None], release: Callable[[], None]) -> None:
        self._admit = admit
        self.release = release
        self.refused = 0  # fast refusals given

    def refuse_or_reserve(self) -> bytes | None:
        """For a whole sheddable write: the refusal to write, or None when it was admitted and holds
        a slot, which the caller gives back with ``release`` once aiohttp hands the request to its
        handler, or when the connection is lost first."""
        try:
            self._admit()
        except Unavailable as err:
            self.refused += 1
            return refusal_bytes(err)
        return None
