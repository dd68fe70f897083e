"""Node-to-node request signatures: an HMAC derived from the cluster secret.

Nothing identifies a node to another but this signature (DESIGN.md, "Security"): no header, user
agent or source address grants anything. It is used for the internal endpoints
(``/v1/internal/...``) and the debug endpoints (``/v1/debug/...``).

Contract:
- ``Signer(secret, sender).headers(method, target, body)`` returns the ``X-Raftreg-Signature``
  header: ``v1 t=<unix seconds> n=<nonce> s=<sender> h=<hex HMAC-SHA256>`` over the method, the
  request target (path and query, exactly as sent), the time, the nonce, the sender name and the
  SHA-256 of the body. The key is HMAC-SHA256(secret, "raftreg node-to-node v1"), so the secret
  itself is never used directly nor sent.
- ``Verifier(secret).verify(header, method, target, body)`` raises ``SignatureRejected`` (the
  reason is for logs only) unless the signature is valid, its time is within ``max_age`` seconds
  of this node's clock either way, and its nonce was not seen in that window (a captured request
  replayed within the window is refused too). Only valid signatures are remembered, so unsigned
  traffic cannot fill the replay cache; the cache is pruned by time and bounded.
- Nodes must keep their clocks within ``max_age`` seconds of each other (NTP).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

HEADER = "X-Raftreg-Signature"
MAX_AGE = 5.0
_REPLAY_CACHE_LIMIT = 200_000
_KEY_LABEL = b"raftreg node-to-node v1"


class SignatureRejected(Exception):
    """A node-to-node request without a valid, fresh, unreplayed signature."""


def _derive_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _mac(key: bytes, method: str, target: str, stamp: str, nonce: str, sender: str, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    message = "\n".join((method.upper(), target, stamp, nonce, sender, digest)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class Signer:
    def __init__(self, secret: str, sender: str, *, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("signing needs the cluster secret")
        self._key = _derive_key(secret)
        self._sender = sender
        self._clock = clock

    def headers(self, method: str, target: str, body: bytes = b"") -> dict[str, str]:
        stamp = f"{self._clock():.3f}"
        nonce = secrets.token_hex(12)
        mac = _mac(self._key, method, target, stamp, nonce, self._sender, body)
        return {HEADER: f"v1 t={stamp} n={nonce} s={self._sender} h={mac}"}


class Verifier:
    def __init__(self, secret: str, *, max_age: float = MAX_AGE, clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("verifying signatures needs the cluster secret")
        self._key = _derive_key(secret)
        self._max_age = max_age
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._seen_order: collections.deque[tuple[float, str]] = collections.deque()

    def verify(self, header: str | None, method: str, target: str, body: bytes) -> str:
        """Return the sender's name, or raise ``SignatureRejected``."""
        if not header:
            raise SignatureRejected("no signature")
        version, *pairs = header.split(" ")
        fields = dict(p.split("=", 1) for p in pairs if "=" in p)
        if version != "v1" or set(fields) != {"t", "n", "s", "h"}:
            raise SignatureRejected("malformed signature")
        stamp, nonce, sender, mac = fields["t"], fields["n"], fields["s"], fields["h"]
        expected = _mac(self._key, method, target, stamp, nonce, sender, body)
        if not hmac.compare_digest(expected, mac):
            raise SignatureRejected("bad signature")
        now = self._clock()
        try:
            age = now - float(stamp)
        except ValueError:
            raise SignatureRejected("malformed signature time") from None
        if not -self._max_age <= age <= self._max_age:
            raise SignatureRejected(f"signature time {age:+.1f}s from this node's clock (limit {self._max_age:g}s)")
        self._forget_old(now)
        if nonce in self._seen:
            raise SignatureRejected("replayed request")
        self._seen[nonce] = now
        self._seen_order.append((now, nonce))
        return sender

    def _forget_old(self, now: float) -> None:
        order, seen = self._seen_order, self._seen
        horizon = now - 2 * self._max_age
        while order and (order[0][0] < horizon or len(order) > _REPLAY_CACHE_LIMIT):
            _, nonce = order.popleft()
            seen.pop(nonce, None)
