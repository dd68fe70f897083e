"""``ReplicaLag``: the read replicas of the cluster and how far behind each is, as rows of
``GET /v1/cluster`` ``members``.

A voter's pysyncobj knows a connected replica only by a counter id, never by its name
(``raftreg.raft.replica``), so each node asks every *other* replica for its own status
(``Peers.cluster_status``) every ``POLL_PERIOD`` seconds, and reports what it answered last:
its applied index and its lag, the leader's commit index *as the replica last heard it* minus
what it has applied (both read together on the replica, so a poll's age does not inflate the
lag). A replica that has not answered for ``STALE_AFTER`` seconds shows as ``unreachable``.
A node reports its own row from its own status. The replicas are read from the live membership
at each poll (``config.nodes`` follows run-time changes, ``raftreg.node.membership``), so a
replica added with ``raftreg cluster add --role replica`` shows up without a restart. Nothing
here decides anything: replicas count in no quorum, share no checks and hold no leases; this is
observation only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.node.peers import Peers
from raftreg.raft import RaftStatus

log = logging.getLogger("raftreg.node")

POLL_PERIOD = 1.0
STALE_AFTER = 3 * POLL_PERIOD


@dataclass(frozen=True)
class _Seen:
    applied_index: int
    lag: int | None
    at: float  # time.monotonic() of the answer


def own_lag(st: RaftStatus) -> int | None:
    """This node's lag behind the leader's commit index as last reported to it (0 on the leader;
    None while it has heard of no commit index)."""
    if st.state == "leader":
        return max(0, st.commit_index - st.applied_index)
    if st.leader_commit_index is None:
        return None
    return max(0, st.leader_commit_index - st.applied_index)


class ReplicaLag:
    """Polls the other replicas of ``config`` (create, then ``run()`` as a task; no-op without any)."""

    def __init__(self, config: ClusterConfig, me: NodeConfig, peers: Peers) -> None:
        self._me = me
        self._config = config
        self._peers = peers
        self._seen: dict[str, _Seen] = {}

    async def run(self) -> None:
        """Poll every ``POLL_PERIOD`` seconds until cancelled; a failed pass is logged, never fatal."""
        while True:
            others = [n.name for n in self._config.replicas if n.name != self._me.name]
            try:
                if others:
                    await self._poll(others)
            except Exception:
                log.exception("event=replica_poll_failed")
            await asyncio.sleep(POLL_PERIOD)

    async def _poll(self, others: list[str]) -> None:
        answers = await asyncio.gather(*(self._peers.cluster_status(name) for name in others))
        now = time.monotonic()
        for name, doc in zip(others, answers, strict=True):
            seen = _from_status(doc, now)
            if seen is not None:
                self._seen[name] = seen

    def rows(self, st: RaftStatus) -> list[dict[str, Any]]:
        """One ``members`` row per replica: ``role``, ``status`` (``replica`` or ``unreachable``),
        ``match_index`` (its applied index) and ``lag`` (entries; None when unknown)."""
        now = time.monotonic()
        out = []
        for n in self._config.replicas:
            row: dict[str, Any] = {"name": n.name, "raft": n.raft, "http": n.http, "role": "replica"}
            if n.name == self._me.name:
                row.update(status="replica", match_index=st.applied_index, lag=own_lag(st))
            elif (seen := self._seen.get(n.name)) is not None and now - seen.at <= STALE_AFTER:
                row.update(status="replica", match_index=seen.applied_index, lag=seen.lag)
            else:
                row.update(status="unreachable", match_index=None, lag=None)
            out.append(row)
        return out


def _from_status(doc: dict[str, Any] | None, now: float) -> _Seen | None:
    """What a replica's ``GET /v1/cluster`` says of its progress; None for no or an odd answer."""
    if doc is None or not isinstance(applied := doc.get("applied_index"), int):
        return None
    commit = doc.get("leader_commit_index")
    lag = max(0, commit - applied) if isinstance(commit, int) else None
    return _Seen(applied, lag, now)
