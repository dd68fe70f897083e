"""The chaos workload: clients that write, delete and read a small set of keys on every node and
record each operation (invocation, completion, outcome) for the checkers. A share of the operations
go to KV keys, with compare-and-set and transactions (``raftreg.chaos.kv_workload``), and some
are lock rounds (``raftreg.chaos.locks``: sessions, acquire, release).

A key is one instance ``service/instance``; its value is the ``v`` meta field of the registration.
Every written value is unique (``c<client>-<seq>``), so a read names the write it observed.

Outcome rules (what the checkers rely on):
- 200 → ok; a 404 from DELETE or GET → ok (the key is absent).
- 503 and other 4xx → fail: the node refused before proposing anything, nothing was applied.
- 504, a client timeout, or a connection lost after the request was sent → unknown: the write
  may have applied (or may still apply).
- a connection refused (nothing sent) → fail.
- 500 and other 5xx → recorded as unexpected statuses (a check failure of their own).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from raftreg.chaos.history import Op, outcome_of
from raftreg.chaos.kv_workload import KVWorkload
from raftreg.chaos.locks import Holding, LockWorkload
from raftreg.client.async_client import no_silent_retry

REQUEST_TIMEOUT = 12.0  # commit timeout (5 s) + barrier + slack; a later answer counts as "unanswered"

ReadMode = Literal["consistent", "default", "min_index"]


@dataclass
class WorkloadStats:
    """Live counters for the progress line and the report."""

    ops: int = 0
    ok: int = 0
    fail: int = 0
    unknown: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    unexpected: list[dict[str, Any]] = field(default_factory=list)  # 5xx other than 503/504
    unanswered: list[dict[str, Any]] = field(default_factory=list)  # client timeouts


@dataclass(frozen=True)
class WorkloadConfig:
    clients: int = 6
    rate: float = 100.0  # operations per second over all clients (open loop, per-client pacing)
    services: int = 2
    keys_per_service: int = 5
    kv_keys: int = 5  # KV keys (raftreg.chaos.kv_workload), chosen as often as each registry key
    lock_keys: int = 2  # lock keys (raftreg.chaos.locks)
    lock_share: float = 0.15  # of the KV operations, this share are lock rounds instead
    write_share: float = 0.45
    delete_share: float = 0.10
    # The remaining share is reads, split over these modes.
    read_modes: tuple[ReadMode, ...] = ("consistent", "consistent", "default", "min_index")

    def keys(self) -> list[tuple[str, str]]:
        return [(f"chaos{s}", f"k{k}") for s in range(self.services) for k in range(self.keys_per_service)]


class Workload(KVWorkload, LockWorkload):
    """``clients`` concurrent clients over the nodes' HTTP URLs, recording into ``history``."""

    def __init__(self, urls: Callable[[], dict[str, str]], config: WorkloadConfig, seed: int) -> None:
        self._urls = urls
        self.config = config
        self._rng = random.Random(seed)
        self.history: list[Op] = []
        self.stats = WorkloadStats()
        self.kv_counts: Counter[str] = Counter()
        self.holdings: list[Holding] = []
        self._keys = config.keys()
        # Per client and key: (index, value) of its last acknowledged write, for min_index reads.
        self._last_write: dict[tuple[int, str], int] = {}
        self._stop = asyncio.Event()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT, connect=2.0)
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        # no_silent_retry: a write re-sent by aiohttp after a lost connection would turn an
        # "unknown" outcome into a "refused" one (a wrongly failed write in the history).
        async with aiohttp.ClientSession(timeout=timeout, connector=connector,
                                         middlewares=(no_silent_retry,)) as session:
            await asyncio.gather(*(self._client(session, c) for c in range(self.config.clients)))

    def stop(self) -> None:
        self._stop.set()

    async def _client(self, session: aiohttp.ClientSession, client: int) -> None:
        rng = random.Random(self._rng.random())
        period = self.config.clients / self.config.rate
        seq = 0
        next_at = time.monotonic() + rng.uniform(0, period)
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    return
                except TimeoutError:
                    pass
            next_at = max(next_at + period, time.monotonic() - period)
            urls = self._urls()
            if not urls:
                continue
            node = rng.choice(sorted(urls))
            if rng.random() * (len(self._keys) + self.config.kv_keys) < self.config.kv_keys:
                seq += 1
                if rng.random() < self.config.lock_share:
                    await self._lock_op(session, rng, client, urls[node])
                else:
                    await self._kv_op(session, rng, client, node, urls[node], f"c{client}-{seq}")
                continue
            service, instance = rng.choice(self._keys)
            roll = rng.random()
            if roll < self.config.write_share:
                seq += 1
                await self._write(session, client, node, urls[node], service, instance, f"c{client}-{seq}")
            elif roll < self.config.write_share + self.config.delete_share:
                await self._delete(session, client, node, urls[node], service, instance)
            else:
                mode = rng.choice(self.config.read_modes)
                await self._read(session, client, node, urls[node], service, instance, mode)

    # ---- one operation each ---------------------------------------------------------------
    async def _write(self, session: aiohttp.ClientSession, client: int, node: str, url: str, service: str,
                     instance: str, value: str) -> None:
        body = {"address": "10.0.0.1", "port": 8080, "meta": {"v": value}}
        invoke = time.monotonic()
        status, doc = await self._send(session, "PUT", f"{url}/v1/services/{service}/instances/{instance}", body)
        outcome = outcome_of(status)
        index = doc.get("index") if status == 200 and isinstance(doc, dict) else None
        key = f"{service}/{instance}"
        if outcome == "ok" and isinstance(index, int):
            self._last_write[(client, key)] = index
        self._record(Op(client=client, kind="write", key=key, value=value, invoke=invoke,
                        complete=time.monotonic() if outcome != "unknown" else None, outcome=outcome, node=node,
                        index=index if isinstance(index, int) else None), status, node, invoke)

    async def _delete(self, session: aiohttp.ClientSession, client: int, node: str, url: str, service: str,
                      instance: str) -> None:
        invoke = time.monotonic()
        status, doc = await self._send(session, "DELETE", f"{url}/v1/services/{service}/instances/{instance}")
        outcome = "ok" if status == 404 else outcome_of(status)
        index = doc.get("index") if status == 200 and isinstance(doc, dict) else None
        self._record(Op(client=client, kind="delete", key=f"{service}/{instance}", value=None, invoke=invoke,
                        complete=time.monotonic() if outcome != "unknown" else None, outcome=outcome, node=node,
                        index=index if isinstance(index, int) else None), status, node, invoke)

    async def _read(self, session: aiohttp.ClientSession, client: int, node: str, url: str, service: str,
                    instance: str, mode: ReadMode) -> None:
        key = f"{service}/{instance}"
        query = ""
        if mode == "consistent":
            query = "?consistent"
        elif mode == "min_index":
            last = self._last_write.get((client, key))
            if last is None:
                mode = "default"
            else:
                query = f"?min_index={last}&wait=5s"
        invoke = time.monotonic()
        status, doc = await self._send(session, "GET", f"{url}/v1/services/{service}/instances/{instance}{query}")
        outcome = "ok" if status == 404 else outcome_of(status)
        value = None
        if status == 200 and isinstance(doc, dict):
            value = (doc.get("meta") or {}).get("v")
        self._record(Op(client=client, kind="read", key=key, value=value, invoke=invoke,
                        complete=time.monotonic() if outcome != "unknown" else None, outcome=outcome, node=node,
                        read_mode=mode, index=doc.get("modify_index") if status == 200 and isinstance(doc, dict)
                        else None), status, node, invoke)

    async def _send(self, session: aiohttp.ClientSession, method: str, url: str, body: Any = None,
                    data: bytes | None = None) -> tuple[int | str, Any]:
        """(HTTP status, decoded body) or (a pseudo-status naming the transport failure, None).
        ``body`` is sent as JSON, ``data`` as raw bytes."""
        try:
            async with session.request(method, url, json=body, data=data) as resp:
                try:
                    doc = await resp.json(content_type=None)
                except ValueError:
                    doc = None
                return resp.status, doc
        except aiohttp.ClientConnectorError:
            return "refused", None
        except TimeoutError:
            return "timeout", None
        except aiohttp.ClientError:
            return "disconnected", None

    def _record(self, op: Op, status: int | str, node: str, invoke: float) -> None:
        self.history.append(op)
        stats = self.stats
        stats.ops += 1
        stats.statuses[str(status)] += 1
        if op.outcome == "ok":
            stats.ok += 1
        elif op.outcome == "fail":
            stats.fail += 1
        else:
            stats.unknown += 1
        if isinstance(status, int) and status >= 500 and status not in (503, 504):
            stats.unexpected.append({"node": node, "status": status, "op": op.kind, "key": op.key, "at": invoke})
        if status == "timeout":
            stats.unanswered.append({"node": node, "op": op.kind, "key": op.key, "at": invoke})

