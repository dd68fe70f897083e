"""``Reader``: the read-consistency rules of API.md and the queries on the local applied state.

Contract of ``prepare(opts, topic)``, everything a read waits for before it reads local state,
in this order:
1. ``min_index``: this node has applied it (``Timeout``, 504, after ``wait``);
2. ``index`` (blocking query): the query's index moved past it, or ``wait`` (plus up to wait/16 of
   jitter, which spreads the re-polls of watchers that timed out together) passed;
3. then either the ReadIndex rule (``consistent``: a read index confirmed by a majority,
   ``raftreg.node.read_index``, then this node has applied it; 503 if it cannot be had in time,
   never a stale answer) or the check that this node has caught up since it started
   (``ClusterView.check_readable``). A blocking query whose index moved answers without
   that check: an answer past the client's index is never older than what it saw.

Queries hold the registry lock only while they copy what they return.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass

from raftreg.errors import Timeout, Unavailable
from raftreg.models import SESSION_LEASE, Instance, ServiceSummary, Session
from raftreg.node.leases import LeaseKey
from raftreg.node.read_index import ReadIndex
from raftreg.node.view import ClusterView
from raftreg.node.watches import (
    CATALOG,
    KV_KEY,
    KV_PREFIX,
    SESSIONS,
    WatchHub,
    kv_key_topic,
    kv_prefix_topic,
    service_topic,
)
from raftreg.raft import RaftNode
from raftreg.state.restorable import encode_payload

DEFAULT_BLOCKING_WAIT = 300.0
MAX_BLOCKING_WAIT = 600.0
DEFAULT_MIN_INDEX_WAIT = 5.0

__all__ = ["CATALOG", "SESSIONS", "ReadOptions", "Reader", "kv_key_topic", "kv_prefix_topic", "service_topic"]


@dataclass(frozen=True)
class ReadOptions:
    """The consistency and blocking options every read endpoint takes (API.md).

    ``index``: blocking query, answer once the query's index exceeds it (or ``wait`` passes).
    ``min_index``: answer only once this node has applied it (504 after ``wait``).
    ``wait``: seconds, clamped to 10 minutes; defaults to 5 m for ``index``, 5 s for ``min_index``.
    """

    consistent: bool = False
    index: int | None = None
    min_index: int | None = None
    wait: float | None = None

    @property
    def blocking_wait(self) -> float:
        return self.wait if self.wait is not None else DEFAULT_BLOCKING_WAIT

    @property
    def min_index_wait(self) -> float:
        return self.wait if self.wait is not None else DEFAULT_MIN_INDEX_WAIT


class Reader:
    def __init__(self, view: ClusterView, raft: RaftNode, watches: WatchHub, read_index: ReadIndex) -> None:
        self._raft = raft
        self._view = view
        self._watches = watches
        self._read_index = read_index
        self._consistent_wait = view.config.raft.commit_timeout

    async def prepare(self, opts: ReadOptions, topic: str) -> None:
        """Wait for what ``opts`` asks before reading ``topic`` (see the module docstring)."""
        if opts.min_index is not None:
            await self.wait_applied(opts.min_index, opts.min_index_wait)
        moved = False
        if opts.index is not None:
            wait = opts.blocking_wait
            moved = await self.wait_for_change(topic, opts.index, wait + random.uniform(0, wait / 16))
        if opts.consistent:
            index = await self._read_index.linearizable_index()
            if not self._watches.has_applied(index) and not await self._watches.wait_applied(
                    index, self._consistent_wait):
                raise Unavailable(f"this node has not applied the read index {index} in time; retry "
                                  "or read another node", retry_after=1.0)
        elif not moved:
            self._view.check_readable()

    async def wait_applied(self, index: int, timeout: float) -> None:
        """Return once this node has applied ``index``; ``Timeout`` after ``timeout``."""
        if not await self._watches.wait_applied(index, timeout):
            raise Timeout(
                f"this node has not applied index {index} within {timeout:g}s "
                f"(applied {self._watches.applied_index}); retry or read another node"
            )

    async def wait_for_change(self, topic: str, after: int, timeout: float) -> bool:
        """Blocking query: True once ``query_index(topic)`` exceeds ``after``, False after
        ``timeout``. Parks on the topic's change future: writes to other topics never wake it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.query_index(topic) <= after:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._watches.wait_changed(topic, remaining):
                return False
        return True

    # ---- queries on the applied state ---------------------------------------------------
    def query_index(self, topic: str) -> int:
        """The index answering a query on ``topic`` (``CATALOG``, a ``service_topic``, a
        ``kv_key_topic`` or a ``kv_prefix_topic``)."""
        with self._raft.lock:
            if topic.startswith(KV_KEY):
                return self._raft.kv.key_index(topic[len(KV_KEY):])
            if topic.startswith(KV_PREFIX):
                return self._raft.kv.prefix_index(topic[len(KV_PREFIX):])
            if topic == SESSIONS:
                return self._raft.state.sessions.index
            reg = self._raft.registry
            if topic == CATALOG:
                return reg.index
            return reg.service_index(topic.removeprefix(service_topic("")))

    def get_instance(self, service: str, instance_id: str) -> tuple[int, Instance | None]:
        with self._raft.lock:
            reg = self._raft.registry
            return reg.service_index(service), reg.get_instance(service, instance_id)

    def list_instances(
        self, service: str, *, passing_only: bool = False, tags: Iterable[str] = (),
        meta: Iterable[tuple[str, str]] = (),
    ) -> tuple[int, list[Instance]]:
        with self._raft.lock:
            reg = self._raft.registry
            return reg.service_index(service), reg.list_instances(service, passing_only=passing_only, tags=tags,
                                                                   meta=meta)

    def list_services(self) -> tuple[int, list[ServiceSummary]]:
        with self._raft.lock:
            reg = self._raft.registry
            return reg.index, reg.list_services()

    def leased_instances(self) -> list[tuple[LeaseKey, float, int]]:
        """``(key, ttl, modify_index)`` of every instance with a ttl (key ``(service, id)``) and
        of every session (key ``(SESSION_LEASE, id)``)."""
        with self._raft.lock:
            leased = self._raft.registry.instances_where(lambda i: i.ttl is not None)
            sessions = self._raft.state.sessions.all()
        return [*(((i.service, i.id), i.ttl or 0.0, i.modify_index) for i in leased),
                *(((SESSION_LEASE, s.id), s.ttl, s.modify_index) for s in sessions)]

    def get_leased(self, service: str, key: str) -> Instance | Session | None:
        """The instance, or with ``service`` SESSION_LEASE the session, a lease key names."""
        with self._raft.lock:
            if service == SESSION_LEASE:
                return self._raft.state.sessions.get(key)
            return self._raft.registry.get_instance(service, key)

    def leased_exist(self, keys: Iterable[LeaseKey]) -> list[LeaseKey]:
        """The keys that name an instance with a ttl, or a session, in the applied state."""
        with self._raft.lock:
            reg, sessions = self._raft.registry, self._raft.state.sessions
            return [k for k in keys if (sessions.get(k[1]) is not None if k[0] == SESSION_LEASE else
                                        (inst := reg.get_instance(*k)) is not None and inst.ttl is not None)]

    def checked_instances(self) -> list[Instance]:
        with self._raft.lock:
            return self._raft.registry.checked_instances()

    def state_digest(self) -> dict[str, object]:
        """A fingerprint of the applied state: equal on replicas that applied the same entries.
        ``digest`` covers every part; ``content`` every part but the applied-entries memory (what
        clients can observe: a write that changed nothing leaves it alone); ``restorable`` only
        what a backup holds (registry, KV, sessions, ACL: ``raftreg.state.restorable``), which a
        cluster restored from that backup shares with the source although its members and
        identities are its own."""
        with self._raft.lock:
            reg, state = self._raft.registry, self._raft.state
            data, content = state.snapshot(), state.snapshot(bookkeeping=False)
            payload = encode_payload(state)
            return {"applied_index": self._raft.applied_index, "index": reg.index,
                    "instances": reg.instance_count(), "kv_index": self._raft.kv.index,
                    "digest": hashlib.sha256(data).hexdigest(), "content": hashlib.sha256(content).hexdigest(),
                    "restorable": hashlib.sha256(payload).hexdigest()}
