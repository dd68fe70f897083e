"""The failover policy, as pure logic: which node to try, when to retry, when to give up.

No I/O and no clock: callers pass ``now`` (a monotonic time) and a ``random.Random``, so every
decision can be replayed in a unit test. Both shells drive a ``CallPlan`` the same way::

    plan = CallPlan(request, selector, policy, rng, now())
    while True:
        step = plan.next(now())               # Send(node...) or Pause(seconds); raises when done
        ...send, then plan.failed(...) or plan.answered(...)

The rules (API.md's error table and DESIGN.md "Writes"):
- A request that never reached a node (connection refused, unresolvable host, connect timeout) or
  that a node refused with 503 (or 429) applied nothing: it moves on to the next node, whatever
  its method. A 503's ``Retry-After`` keeps that node at the back of the line for that long, and
  if a whole round failed, the pause before the next round is at least the shortest one seen.
- A read whose connection broke or timed out after sending moves on too (reads change nothing);
  a read answered 504 (``min_index`` waited out) raises ``Timeout``: the server already waited.
- A write answered 504, or whose connection broke or timed out after sending, has an unknown
  outcome. A non-idempotent write raises ``OutcomeUnknown`` at once and is never sent again. An
  idempotent one is retried; if no later attempt succeeds, the call raises ``OutcomeUnknown``
  (never "failed"), and a DELETE whose retry finds nothing raises ``NotFound`` saying so.
- Between rounds (every node tried once), the pause is full jitter,
  ``uniform(0, min(cap, base * 2**round))``, so a cluster coming back is not hit by a herd.
- The whole call, pauses included, stays within ``deadline`` (plus the request's ``hold``);
  each attempt within ``timeout`` (plus ``hold``) and within what is left of the deadline.
- Plain reads are spread: each starts at the next node in turn (from a random one). Writes,
  blocking queries and the reads of a watch (``Request.sticky``) go first to the node that
  answered last, the first node given until one answered (any node forwards a write to the
  leader). Nodes that failed recently are tried last, for a period that doubles with each
  consecutive failure and ends at their next success.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from raftreg.client.core import Request, Response, error_of
from raftreg.errors import OutcomeUnknown, RaftregError, Unavailable

_MAX_EXPONENT = 30


class Failure(enum.Enum):
    """How an attempt failed without an HTTP answer."""

    NOT_SENT = "not sent"  # nothing reached a node: connection refused, unresolvable, connect timeout
    LOST = "lost"  # the connection broke or timed out after the request (maybe) went out
    MALFORMED = "malformed"  # a 2xx answer whose body did not parse


@dataclass(frozen=True)
class RetryPolicy:
    """Timing of a call. Every value is in seconds."""

    timeout: float = 6.0  # per attempt: the server's commit timeout (5 s) and some slack
    deadline: float = 15.0  # the whole call, retries and pauses included
    connect_timeout: float = 2.0
    backoff_base: float = 0.1
    backoff_cap: float = 2.0
    suspect_for: float = 1.0  # a failed node goes to the back of the line this long, doubled per failure
    suspect_cap: float = 30.0

    def __post_init__(self) -> None:
        for name in ("timeout", "deadline", "connect_timeout", "backoff_base", "backoff_cap", "suspect_for",
                     "suspect_cap"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2 ** min(attempt, _MAX_EXPONENT)))


class NodeSelector:
    """The order in which a request tries the nodes, and what the client learnt about them.

    Not thread-safe: a client used from several threads serializes calls to it."""

    def __init__(self, nodes: Sequence[str], policy: RetryPolicy, rng: random.Random) -> None:
        if not nodes:
            raise ValueError("at least one node address is needed")
        self.nodes = tuple(nodes)
        self._policy = policy
        self._last_ok = 0
        self._next_read = rng.randrange(len(self.nodes))
        self._suspect_until = [0.0] * len(self.nodes)
        self._strikes = [0] * len(self.nodes)

    def order(self, request: Request, now: float) -> list[int]:
        """Node indexes, each once: healthy nodes first (in turn for a plain read, from the last
        node that answered otherwise), then the ones that failed recently."""
        n = len(self.nodes)
        if request.spread:
            start, self._next_read = self._next_read, (self._next_read + 1) % n
        else:
            start = self._last_ok
        ring = [(start + k) % n for k in range(n)]
        healthy = [i for i in ring if self._suspect_until[i] <= now]
        return healthy + [i for i in ring if self._suspect_until[i] > now]

    def succeeded(self, node: int) -> None:
        self._last_ok = node
        self._strikes[node] = 0
        self._suspect_until[node] = 0.0

    def failed(self, node: int, now: float, at_least: float = 0.0) -> None:
        self._strikes[node] += 1
        period = min(self._policy.suspect_cap,
                     self._policy.suspect_for * 2 ** min(self._strikes[node] - 1, _MAX_EXPONENT))
        self._suspect_until[node] = now + max(period, at_least)

    def suspected(self, node: int, now: float) -> bool:
        return self._suspect_until[node] > now


class Send(NamedTuple):
    """Send the request to ``nodes[node]`` (``url``) within ``timeout`` seconds."""

    node: int
    url: str
    timeout: float
    connect_timeout: float


class Pause(NamedTuple):
    """Every node failed this round: wait this long before the next."""

    seconds: float


class CallPlan:
    """One call's attempts under the policy (see the module docstring for the rules)."""

    def __init__(self, request: Request, selector: NodeSelector, policy: RetryPolicy, rng: random.Random, now: float,
                 *, timeout: float | None = None, deadline: float | None = None) -> None:
        self.request = request
        self.attempts = 0
        self._selector = selector
        self._policy = policy
        self._rng = rng
        self._attempt_timeout = (policy.timeout if timeout is None else timeout) + request.hold
        self._deadline_at = now + (policy.deadline if deadline is None else deadline) + request.hold
        self._round = 0
        self._queue = selector.order(request, now)
        self._retry_after: float | None = None  # the shortest Retry-After of this round
        self._unknown = False  # an attempt of this write may have applied
        self._last: RaftregError | None = None

    def next(self, now: float) -> Send | Pause:
        """The next step; raises the call's error when no attempt is left within the deadline."""
        remaining = self._deadline_at - now
        if remaining <= 0:
            raise self.final_error()
        if self._queue:
            node = self._queue.pop(0)
            timeout = min(self._attempt_timeout, remaining)
            self.attempts += 1
            return Send(node, self._selector.nodes[node], timeout, min(self._policy.connect_timeout, timeout))
        pause = self._policy.backoff(self._round, self._rng)
        if self._retry_after is not None:
            pause = max(pause, self._retry_after)
        if pause >= remaining:
            raise self.final_error()
        self._round += 1
        self._retry_after = None
        self._queue = self._selector.order(self.request, now + pause)
        return Pause(pause)

    def failed(self, send: Send, failure: Failure, detail: str, now: float) -> None:
        """An attempt ended without an HTTP answer. Raises ``OutcomeUnknown`` for a
        non-idempotent write that may have gone out; otherwise the call goes on."""
        self._selector.failed(send.node, now)
        req = self.request
        if failure is Failure.NOT_SENT:
            self._last = Unavailable(f"{send.url}: unreachable ({detail})")
            return
        what = "answered something unreadable" if failure is Failure.MALFORMED else "connection lost after sending"
        if req.is_read:
            self._last = Unavailable(f"{send.url}: {what} ({detail})")
            return
        if not req.idempotent:
            raise OutcomeUnknown(f"{req.method} {req.path} at {send.url}: {what} ({detail}); the write is not "
                                 "idempotent, so it is not sent again: its outcome is unknown")
        self._unknown = True
        self._last = OutcomeUnknown(f"{send.url}: {what} ({detail}): the write's outcome is unknown")

    def answered(self, send: Send, response: Response, now: float) -> bool:
        """An HTTP answer. True: a 2xx (or a status of ``request.answers``) for the caller to parse.
        False: the call goes on (503, 429, or a 504 answering an idempotent write). Otherwise
        raises its error."""
        status = response.status
        if 200 <= status < 300 or status in self.request.answers:
            self._selector.succeeded(send.node)
            return True
        err = error_of(self.request, response)
        if status in (429, 503):
            wait = response.retry_after
            self._selector.failed(send.node, now, at_least=wait)
            self._retry_after = wait if self._retry_after is None else min(self._retry_after, wait)
            self._last = err
            return False
        if status == 504 and not self.request.is_read:
            if not self.request.idempotent:
                raise OutcomeUnknown(f"{err.message}: the write is not idempotent, so it is not sent again: "
                                     "its outcome is unknown")
            self._unknown = True
            self._last = err
            return False
        self._selector.succeeded(send.node)  # it answered: alive, whatever it said
        if self._unknown and status == 404:
            raise type(err)(f"{err.message} (an earlier attempt, whose outcome was unknown, may have done it)",
                            field=err.field)
        raise err

    def final_error(self) -> RaftregError:
        """The error of a call that ran out of attempts: ``OutcomeUnknown`` if a write may have
        applied, else the last failure (``Unavailable`` when no node could be reached)."""
        last = self._last or Unavailable(f"{self.request.method} {self.request.path}: no node answered in time")
        if self._unknown and not isinstance(last, OutcomeUnknown):
            return OutcomeUnknown(f"{last.message}; an earlier attempt may have applied the write: "
                                  "its outcome is unknown")
        return last


class WatchCursor:
    """The index of a watch, a loop of blocking queries (API.md "Blocking queries").

    Starting from 0, the first query is a plain read, answered at once; from a known index, every
    query blocks until the index exceeds it. An answer is new when its index moved past the last
    one seen; an index that went backwards (a rebuilt cluster) resets the cursor to 0. After a
    failed query, the first retry is immediate (the call already tried every node), later ones
    back off with full jitter up to ``max_backoff``."""

    def __init__(self, index: int = 0, *, max_backoff: float = 5.0) -> None:
        self.index = index
        self.failures = 0
        self._first = index == 0
        self._max_backoff = max_backoff

    @property
    def blocking_index(self) -> int | None:
        """The ``index`` parameter of the next query (``None``: a plain read)."""
        return None if self._first else self.index

    def answered(self, index: int) -> bool:
        """Record an answer's index; True if the caller should see this answer."""
        self.failures = 0
        if index < self.index:
            self.index = 0
            return False
        if self._first or index > self.index:
            self._first = False
            self.index = index
            return True
        return False

    def failed(self, rng: random.Random) -> float:
        """Record a failed query; returns the pause before the next one."""
        self.failures += 1
        if self.failures == 1:
            return 0.0
        return rng.uniform(0.0, min(self._max_backoff, 0.1 * 2 ** min(self.failures, _MAX_EXPONENT)))
