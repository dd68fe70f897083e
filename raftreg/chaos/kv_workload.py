"""The key/value part of the chaos workload: sets, deletes, reads, compare-and-set and
transactions on a few KV keys, recorded as ``Op``s of keys ``kv:<key>`` (``raftreg.chaos.history``).

- set (``PUT /v1/kv/k``) → a ``write``; delete → a ``delete``; a read (``?consistent`` or default) →
  a ``read`` of the value (``None``: 404).
- cas: the client first reads the key on the node (recorded as a read), then ``PUT ?cas=<its
  modify_index>`` (0 when absent) → a ``cas`` op whose ``expect`` is the value it read (values are
  unique, so "modify_index is M" and "the key holds the value written at M" are the same
  condition). 200 → applied; 409 → ``conflict`` (outcome ok: known not applied); 504, timeouts and
  lost connections → unknown (never retried); 503, refused and other 4xx → fail.
- txn: ``[cas A at the index read, set B]`` in one ``PUT /v1/txn``, recorded as its per-key
  projections: a ``cas`` of A and a ``write`` of B. 200 → both applied; 409 naming ``ops[0]`` →
  A's cas conflicted and B was not written (fail); unknown → both unknown.
"""

from __future__ import annotations

import base64
import random
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from raftreg.chaos.history import Op, Outcome, outcome_of

if TYPE_CHECKING:
    from raftreg.chaos.workload import WorkloadConfig, WorkloadStats

KV_PREFIX = "kv:"  # history keys of KV ops: "kv:" + the KV key


def kv_keys(count: int) -> list[str]:
    """The KV keys of the workload (``chaos/k<n>``)."""
    return [f"chaos/k{n}" for n in range(count)]


def decode_value(doc: Any) -> str | None:
    """The text value of a ``GET /v1/kv/{key}`` document."""
    raw = doc.get("value") if isinstance(doc, dict) else None
    return base64.b64decode(raw).decode() if isinstance(raw, str) else None


class KVWorkload:
    """Mixin of ``Workload``: one KV operation per call of ``_kv_op``."""

    config: WorkloadConfig
    stats: WorkloadStats
    history: list[Op]
    kv_counts: Counter[str]  # e.g. cas_ok, cas_conflict, txn_unknown: for the report

    if TYPE_CHECKING:
        async def _send(self, session: aiohttp.ClientSession, method: str, url: str, body: Any = None,
                        data: bytes | None = None) -> tuple[int | str, Any]: ...

        def _record(self, op: Op, status: int | str, node: str, invoke: float) -> None: ...

    async def _kv_op(self, session: aiohttp.ClientSession, rng: random.Random, client: int, node: str, url: str,
                     value: str) -> None:
        keys = kv_keys(self.config.kv_keys)
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.25:
            await self._kv_set(session, client, node, url, key, value)
        elif roll < 0.50:
            await self._kv_cas(session, client, node, url, key, value)
        elif roll < 0.60 and len(keys) > 1:
            other = rng.choice([k for k in keys if k != key])
            await self._kv_txn(session, client, node, url, key, other, value)
        elif roll < 0.65:
            await self._kv_delete(session, client, node, url, key)
        else:
            await self._kv_read(session, client, node, url, key, rng.choice(("consistent", "default")))

    def _done(self, outcome: Outcome) -> float | None:
        return time.monotonic() if outcome != "unknown" else None

    async def _kv_set(self, session: aiohttp.ClientSession, client: int, node: str, url: str, key: str,
                      value: str) -> None:
        invoke = time.monotonic()
        status, doc = await self._send(session, "PUT", f"{url}/v1/kv/{key}", data=value.encode())
        outcome = outcome_of(status)
        self.kv_counts[f"set_{outcome}"] += 1
        self._record(Op(client=client, kind="write", key=KV_PREFIX + key, value=value, invoke=invoke,
                        complete=self._done(outcome), outcome=outcome, node=node, index=_index(status, doc)),
                     status, node, invoke)

    async def _kv_delete(self, session: aiohttp.ClientSession, client: int, node: str, url: str, key: str) -> None:
        invoke = time.monotonic()
        status, doc = await self._send(session, "DELETE", f"{url}/v1/kv/{key}")
        outcome = "ok" if status == 404 else outcome_of(status)
        self.kv_counts[f"delete_{outcome}"] += 1
        self._record(Op(client=client, kind="delete", key=KV_PREFIX + key, value=None, invoke=invoke,
                        complete=self._done(outcome), outcome=outcome, node=node, index=_index(status, doc)),
                     status, node, invoke)

    async def _kv_read(self, session: aiohttp.ClientSession, client: int, node: str, url: str, key: str,
                       mode: Literal["consistent", "default"]) -> tuple[bool, str | None, int]:
        """Read and record; returns (known, value, modify_index) for a cas that follows."""
        invoke = time.monotonic()
        query = "?consistent" if mode == "consistent" else ""
        status, doc = await self._send(session, "GET", f"{url}/v1/kv/{key}{query}")
        outcome = "ok" if status == 404 else outcome_of(status)
        value = decode_value(doc) if status == 200 else None
        modify = doc.get("modify_index") if status == 200 and isinstance(doc, dict) else 0
        self._record(Op(client=client, kind="read", key=KV_PREFIX + key, value=value, invoke=invoke,
                        complete=self._done(outcome), outcome=outcome, node=node, read_mode=mode,
                        index=modify or None), status, node, invoke)
        known = outcome == "ok" and isinstance(modify, int)
        return known, value, modify if isinstance(modify, int) else 0

    async def _kv_cas(self, session: aiohttp.ClientSession, client: int, node: str, url: str, key: str,
                      value: str) -> None:
        known, expect, modify = await self._kv_read(session, client, node, url, key, "default")
        if not known:
            return
        invoke = time.monotonic()
        status, doc = await self._send(session, "PUT", f"{url}/v1/kv/{key}?cas={modify}", data=value.encode())
        outcome: Outcome = "ok" if status == 409 else outcome_of(status)
        self.kv_counts["cas_conflict" if status == 409 else f"cas_{outcome}"] += 1
        self._record(Op(client=client, kind="cas", key=KV_PREFIX + key, value=value, invoke=invoke,
                        complete=self._done(outcome), outcome=outcome, node=node, index=_index(status, doc),
                        expect=expect, conflict=status == 409), status, node, invoke)

    async def _kv_txn(self, session: aiohttp.ClientSession, client: int, node: str, url: str, key: str, other: str,
                      value: str) -> None:
        known, expect, modify = await self._kv_read(session, client, node, url, key, "default")
        if not known:
            return
        data = base64.b64encode(value.encode()).decode()
        body = {"ops": [{"op": "cas", "key": key, "value": data, "index": modify},
                        {"op": "set", "key": other, "value": data}]}
        invoke = time.monotonic()
        status, doc = await self._send(session, "PUT", f"{url}/v1/txn", body)
        field = ((doc or {}).get("error") or {}).get("field") if isinstance(doc, dict) else None
        conflict = status == 409 and field == "ops[0]"
        outcome: Outcome = "ok" if conflict else "fail" if status == 409 else outcome_of(status)
        self.kv_counts["txn_conflict" if status == 409 else f"txn_{outcome}"] += 1
        done = self._done(outcome)
        index = _index(status, doc)
        self.history_append(Op(client=client, kind="cas", key=KV_PREFIX + key, value=value, invoke=invoke,
                               complete=done, outcome=outcome, node=node, index=index, expect=expect,
                               conflict=conflict))
        other_outcome: Outcome = "fail" if status == 409 else outcome
        self._record(Op(client=client, kind="write", key=KV_PREFIX + other, value=value, invoke=invoke,
                        complete=self._done(other_outcome), outcome=other_outcome, node=node, index=index),
                     status, node, invoke)

    def history_append(self, op: Op) -> None:
        """Record a projection of a transaction without counting the request twice."""
        self.history.append(op)


def _index(status: int | str, doc: Any) -> int | None:
    index = doc.get("index") if status == 200 and isinstance(doc, dict) else None
    return index if isinstance(index, int) else None

