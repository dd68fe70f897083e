"""Shared helpers for the multi-process cluster tests: a concurrent write load (aiohttp) that
records exactly which registrations were acknowledged, and checks that read every node.

Acknowledged = HTTP 200 on the PUT. 503 and 504 (and connection errors or client timeouts) are
"not acknowledged": such a registration may or may not exist later, so nothing asserts its absence.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from raftreg.testing import LocalCluster, http_json, wait_for

# Statuses a write may answer while nodes fail: 200 ok, 503 unavailable, 504 outcome unknown,
# 0 = connection refused/reset or client-side timeout (the node died or is stopped).
EXPECTED_WRITE_STATUSES = {0, 200, 503, 504}


def instance_body(instance_id: str) -> dict[str, Any]:
    n = sum(instance_id.encode()) % 250 + 1
    return {"address": f"10.0.{n}.{n}", "port": 1000 + n, "tags": ["load"], "meta": {"writer": instance_id[:16]}}


def put_instance(cluster: LocalCluster, node: str, service: str, instance_id: str,
                 timeout: float = 10.0) -> tuple[int, Any]:
    return http_json(f"{cluster.url(node)}/v1/services/{service}/instances/{instance_id}", method="PUT",
                     body=instance_body(instance_id), timeout=timeout)


def service_listing(cluster: LocalCluster, node: str, service: str, timeout: float = 20.0) -> dict[str, Any]:
    """GET /v1/services/{service} on ``node`` (answered from its local applied state)."""
    code, body = http_json(f"{cluster.url(node)}/v1/services/{service}", timeout=timeout)
    assert code == 200, f"GET /v1/services/{service} on {node} answered {code}: {body}"
    assert isinstance(body, dict)
    return body


def service_ids(cluster: LocalCluster, node: str, service: str, timeout: float = 20.0) -> set[str]:
    """The instance ids node ``node`` lists for ``service``."""
    return {inst["id"] for inst in service_listing(cluster, node, service, timeout)["instances"]}


def assert_all_nodes_have(cluster: LocalCluster, service: str, expected: set[str],
                          nodes: list[str] | None = None) -> dict[str, set[str]]:
    """Every node lists every id in ``expected`` (it may list more: unknown-outcome writes), and
    all nodes answer the very same listing (instances with their indexes, and the service index).
    Call after ``wait_converged``. Returns the per-node id sets."""
    listings = {name: service_listing(cluster, name, service) for name in nodes or cluster.names}
    seen = {name: {inst["id"] for inst in body["instances"]} for name, body in listings.items()}
    for name, ids in seen.items():
        missing = expected - ids
        assert not missing, (
            f"node {name} lost {len(missing)} of {len(expected)} acknowledged registrations, "
            f"e.g. {sorted(missing)[:10]}"
        )
    distinct = {frozenset(ids) for ids in seen.values()}
    assert len(distinct) == 1, f"nodes disagree: { {n: len(ids) for n, ids in seen.items()} }"
    first, *rest = listings
    for name in rest:
        if listings[name] != listings[first]:
            diff = [(a, b) for a, b in zip(listings[first]["instances"], listings[name]["instances"], strict=True)
                    if a != b]
            raise AssertionError(f"{name} and {first} list different instances or indexes: index "
                                 f"{listings[name]['index']} vs {listings[first]['index']}, e.g. {diff[:2]}")
    return seen


def dump_path(cluster: LocalCluster, name: str) -> Path:
    return cluster.config.node_data_dir(name) / "raft.dump"


def dump_stamp(cluster: LocalCluster, name: str) -> tuple[int, int] | None:
    """(inode, mtime_ns) of the node's raft.dump, None if it has none. pysyncobj replaces the
    dump atomically (write a temporary file, rename), so a new dump has a new stamp."""
    try:
        st = dump_path(cluster, name).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def wait_dump(cluster: LocalCluster, name: str, timeout: float = 30.0,
              other_than: tuple[int, int] | None = None) -> None:
    """Wait until the node has a raft.dump (a different one than ``other_than``)."""

    def fresh() -> bool:
        stamp = dump_stamp(cluster, name)
        return stamp is not None and stamp != other_than

    wait_for(fresh, timeout, f"{dump_path(cluster, name)} to be written")


def force_snapshot(cluster: LocalCluster, names: list[str], timeout: float = 30.0) -> None:
    """POST /v1/debug/snapshot on each node and wait until it has written a new raft.dump."""
    before = {name: dump_stamp(cluster, name) for name in names}
    for name in names:
        code, body = cluster.debug(name, "snapshot", {})
        assert code == 200, f"snapshot on {name}: {code} {body}"
    for name in names:
        wait_dump(cluster, name, timeout, other_than=before[name])


def last_run_log(cluster: LocalCluster, name: str) -> str:
    """The log of the node's current (latest) process run."""
    return cluster.log_text(name).rsplit("==== start", 1)[-1]


def cluster_snapshot(cluster: LocalCluster) -> str:
    """One line per node (state, term, indexes) for assertion messages."""
    parts = []
    for name in cluster.names:
        st = cluster.status(name)
        if st is None:
            parts.append(f"{name}: down/unreachable")
        else:
            parts.append(f"{name}: {st['state']} leader={st['leader']} term={st['term']} "
                         f"commit={st['commit_index']} applied={st['applied_index']}")
    return "; ".join(parts)


@dataclass
class Ack:
    instance_id: str
    node: str
    sent: float  # monotonic time the acknowledged attempt was sent
    done: float  # monotonic time the 200 arrived
    index: int


@dataclass
class WriteLoad:
    """Concurrent writers registering ``{prefix}{writer}-{seq}`` into ``service``.

    Each writer sends its writes round-robin over ``nodes`` (all nodes by default); a write that
    is not acknowledged is retried (same id: registrations are idempotent) on the next node until it
    is acknowledged or the load stops. ``limit`` caps the total number of distinct ids written.
    """

    cluster: LocalCluster
    service: str
    writers: int = 8
    prefix: str = "w"
    nodes: list[str] | None = None
    limit: int | None = None
    request_timeout: float = 0.0  # 0: the cluster's commit_timeout + 2 s
    acks: dict[str, Ack] = field(default_factory=dict)
    attempted: set[str] = field(default_factory=set)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    unexpected: list[tuple[str, int, Any, float]] = field(default_factory=list)  # node, status, body, sent
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None
    _issued: int = 0

    @property
    def acked(self) -> set[str]:
        return set(self.acks)

    def start(self) -> WriteLoad:
        timeout = self.request_timeout or self.cluster.config.raft.commit_timeout + 2.0
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
        )
        self._tasks = [asyncio.create_task(self._writer(w)) for w in range(self.writers)]
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks)
        if self._session is not None:
            await self._session.close()

    async def finished(self, timeout: float) -> None:
        """Wait until every writer ran out of work (``limit``), then close."""
        await asyncio.wait_for(asyncio.gather(*self._tasks), timeout)
        await self.stop()

    async def wait_acks(self, count: int, timeout: float) -> None:
        """Wait until at least ``count`` writes were acknowledged in total."""
        deadline = time.monotonic() + timeout
        while len(self.acks) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.acks)} of {count} writes acknowledged after {timeout}s; "
                                   f"statuses {dict(self.statuses)}")
            await asyncio.sleep(0.02)

    async def wait_ack_after(self, t0: float, timeout: float, nodes: set[str] | None = None) -> Ack:
        """The first acknowledgement of an attempt *sent* after ``t0`` (optionally through ``nodes``)."""
        deadline = time.monotonic() + timeout
        while True:
            later = [a for a in self.acks.values() if a.sent >= t0 and (nodes is None or a.node in nodes)]
            if later:
                return min(later, key=lambda a: a.done)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no write acknowledged within {timeout}s after t0; statuses {dict(self.statuses)}")
            await asyncio.sleep(0.02)

    def _next_id(self, writer: int, seq: int) -> str | None:
        if self.limit is not None:
            if self._issued >= self.limit:
                return None
            self._issued += 1
        return f"{self.prefix}{writer}-{seq}"

    async def _writer(self, writer: int) -> None:
        assert self._session is not None
        nodes = self.nodes or self.cluster.names
        turn = writer
        seq = 0
        while not self._stop.is_set():
            instance_id = self._next_id(writer, seq)
            if instance_id is None:
                return
            seq += 1
            self.attempted.add(instance_id)
            while not self._stop.is_set():
                node = nodes[turn % len(nodes)]
                turn += 1
                status, body, sent = await self._put(node, instance_id)
                self.statuses[status] += 1
                if status not in EXPECTED_WRITE_STATUSES:
                    self.unexpected.append((node, status, body, sent))
                if status == 200:
                    self.acks[instance_id] = Ack(instance_id, node, sent, time.monotonic(), int(body["index"]))
                    break
                # not acknowledged: retry the same registration on the next node after a short pause
                await asyncio.sleep(0.05)

    async def _put(self, node: str, instance_id: str) -> tuple[int, Any, float]:
        assert self._session is not None
        url = f"{self.cluster.url(node)}/v1/services/{self.service}/instances/{instance_id}"
        sent = time.monotonic()
        try:
            async with self._session.put(url, json=instance_body(instance_id)) as resp:
                body = await resp.json(content_type=None)
                return resp.status, body, sent
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return 0, None, sent


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking LocalCluster call without stalling the writers on the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)
