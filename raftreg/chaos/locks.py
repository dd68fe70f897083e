"""The lock part of the chaos workload, and its mutual-exclusion check.

Workload (a mixin of ``Workload``, one lock round per ``_lock_op``): create a session (ttl
``LOCK_TTL``, lock delay 0), ``PUT /v1/kv/chaos/lock<n>?acquire=<session>``, then read the key
linearizably (``?consistent``): whatever the acquire answered (200 ok, ``ok: false``, 504 or a lost
connection), the session holds the lock iff the key's ``session`` is it, and then its
``lock_index`` is the fence. Never retried, never guessed. A held lock is kept for a few
milliseconds, then released (``?release=``) and the session destroyed.

Each confirmed holding is a ``Holding``: its acknowledged interval starts when the confirming read
answered and ends when the release was sent, or earlier at ``created + ttl`` (``created``: when the
session creation was sent; the session cannot expire before, and nobody renews it): past that the
holder's claim is no longer backed by the registry, as a ``lost`` lock of the recipe.

Check (``check_locks``), per key: sorted by start, no two holdings (of different sessions) overlap,
and fences strictly increase. A release commits after it is sent and the next acquire after that,
so a correct registry never breaks either.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from raftreg.chaos.workload import WorkloadConfig

LOCK_TTL = 3.0
HOLD_S = 0.02  # the longest a holder keeps the lock


@dataclass(frozen=True)
class Holding:
    """A lock holding confirmed by a linearizable read: ``start`` (that read answered) to ``end``."""

    client: int
    key: str
    session: str
    fence: int
    start: float
    end: float


def lock_keys(count: int) -> list[str]:
    return [f"chaos/lock{n}" for n in range(count)]


class LockWorkload:
    """Mixin of ``Workload``: one lock round per call of ``_lock_op``; confirmed holdings in ``holdings``."""

    config: WorkloadConfig
    kv_counts: Counter[str]
    holdings: list[Holding]

    if TYPE_CHECKING:
        async def _send(self, session: aiohttp.ClientSession, method: str, url: str, body: Any = None,
                        data: bytes | None = None) -> tuple[int | str, Any]: ...

    async def _lock_op(self, http: aiohttp.ClientSession, rng: random.Random, client: int, url: str) -> None:
        key = rng.choice(lock_keys(self.config.lock_keys))
        created = time.monotonic()
        status, doc = await self._send(http, "PUT", f"{url}/v1/sessions",
                                       {"ttl": f"{LOCK_TTL:g}s", "lock_delay": "0s", "name": f"chaos-{client}"})
        if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            self.kv_counts[f"lock_session_{status}"] += 1
            return
        sid = doc["id"]
        acquired, doc = await self._send(http, "PUT", f"{url}/v1/kv/{key}?acquire={sid}", data=f"c{client}".encode())
        refused = acquired == 200 and isinstance(doc, dict) and doc.get("ok") is False
        # The truth is the key: read it whatever the acquire answered.
        status, doc = await self._send(http, "GET", f"{url}/v1/kv/{key}?consistent")
        start = time.monotonic()
        held = status == 200 and isinstance(doc, dict) and doc.get("session") == sid
        self.kv_counts["lock_held" if held else "lock_busy" if refused else f"lock_not_held_{acquired}"] += 1
        if held and isinstance(doc, dict):
            await asyncio.sleep(rng.uniform(0, HOLD_S))
            end = min(time.monotonic(), created + LOCK_TTL)
            self.holdings.append(Holding(client, key, sid, int(doc.get("lock_index", 0)), start, end))
            status, _ = await self._send(http, "PUT", f"{url}/v1/kv/{key}?release={sid}", data=b"")
            self.kv_counts[f"release_{status}"] += 1
        await self._send(http, "DELETE", f"{url}/v1/sessions/{sid}")


def check_locks(holdings: Iterable[Holding]) -> list[str]:
    """Violations of mutual exclusion (two sessions holding a key at overlapping acknowledged
    times) and of fencing (a later holding with a fence not above the earlier one's), per key."""
    by_key: dict[str, list[Holding]] = defaultdict(list)
    for holding in holdings:
        by_key[holding.key].append(holding)
    violations = []
    for key, items in sorted(by_key.items()):
        items.sort(key=lambda h: (h.start, h.end))
        latest: Holding | None = None  # of the earlier holdings, the one that ended last
        fenced: Holding | None = None  # of the earlier holdings, the one with the largest fence
        for holding in items:
            if latest is not None and latest.session != holding.session and latest.end > holding.start:
                violations.append(f"lock {key}: sessions {latest.session} (fence {latest.fence}) and "
                                  f"{holding.session} (fence {holding.fence}) held it at once "
                                  f"({latest.start:.3f}-{latest.end:.3f} and {holding.start:.3f}-{holding.end:.3f})")
            if fenced is not None and holding.fence <= fenced.fence:
                violations.append(f"lock {key}: fence {holding.fence} of {holding.session} at {holding.start:.3f} "
                                  f"is not above {fenced.fence} of {fenced.session} at {fenced.start:.3f}")
            if latest is None or holding.end > latest.end:
                latest = holding
            if fenced is None or holding.fence > fenced.fence:
                fenced = holding
    return violations
