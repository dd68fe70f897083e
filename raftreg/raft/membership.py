"""Raft membership changes over pysyncobj (``dynamicMembershipChange``), driven from asyncio.

Facts from pysyncobj 0.3.17's source (research/pysyncobj.md "Membership"; syncobj.py):
- A change is a log entry ``['add'|'rem', id, node]``; it takes effect on each node when the entry
  is APPENDED (rolled back if the entry is truncated), not when it commits. The callback of
  ``addNodeToCluster``/``removeNodeFromCluster`` fires when the entry is applied (committed) on
  the leader, or at once with ``REQUEST_DENIED`` when the leader refuses it (its term's no-op not
  yet applied, the node already a member / not one).
- pysyncobj's "one change at a time" guard never fires (its index is never set): the caller
  (``raftreg.node.member_changes``) allows one change at a time itself.
- With ``dynamicMembershipChange`` the full dump holds the member set and overrides the peers
  given to the constructor; journal entries re-apply their changes on restart.
- A node cannot remove itself; a removed node keeps running (and campaigning).

Every call here queues its pysyncobj call on the bridge's Raft tick (``RaftNode._tick_actions``)
and returns a future the caller must bound with its own deadline (pysyncobj has none).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pysyncobj import FAIL_REASON

from raftreg.raft.bridge import RaftNode

_REASONS = {getattr(FAIL_REASON, name): name for name in dir(FAIL_REASON) if name.isupper()}


def voters(raft: RaftNode) -> frozenset[str]:
    """The Raft addresses of this node's current member set (itself included); the configured
    peers while the SyncObj is not running."""
    so: Any = raft._syncobj
    if so is None:
        return frozenset([raft.self_addr, *raft.peer_addrs])
    for _ in range(5):  # a tick on another thread may change the set while we copy it
        try:
            return frozenset([raft.self_addr, *(node.id for node in so.otherNodes)])
        except RuntimeError:
            continue
    return frozenset([raft.self_addr, *raft.peer_addrs])


def _on_tick(raft: RaftNode, call: Any) -> asyncio.Future[str]:
    """Run ``call(syncobj, callback)`` in the Raft tick; the future resolves to pysyncobj's
    FAIL_REASON name (``"SUCCESS"``, ``"REQUEST_DENIED"``, ``"NOT_LEADER"``...)."""
    loop = raft._loop
    assert loop is not None
    fut: asyncio.Future[str] = loop.create_future()

    def settle(reason: str) -> None:
        if not fut.done():
            fut.set_result(reason)

    def callback(_res: Any, err: Any) -> None:
        loop.call_soon_threadsafe(settle, _REASONS.get(err, str(err)))

    def action(so: Any) -> None:
        try:
            call(so, callback)
        except Exception as exc:  # e.g. dynamicMembershipChange off: refuse, never hang
            loop.call_soon_threadsafe(settle, f"ERROR: {exc}")

    raft._tick_actions.append(action)
    raft._wake()
    return fut


def add_voter(raft: RaftNode, addr: str) -> asyncio.Future[str]:
    """Leader: append the change adding ``addr``; resolves when it committed (``"SUCCESS"``)."""
    return _on_tick(raft, lambda so, cb: so.addNodeToCluster(addr, callback=cb))


def remove_voter(raft: RaftNode, addr: str) -> asyncio.Future[str]:
    """Leader: append the change removing ``addr``; resolves when it committed (``"SUCCESS"``)."""
    return _on_tick(raft, lambda so, cb: so.removeNodeFromCluster(addr, callback=cb))


def transfer_to(raft: RaftNode, addr: str | None) -> asyncio.Future[str]:
    """Leader: send TimeoutNow to ``addr`` (None: the most caught-up follower). ``"SUCCESS"``
    means the request went out; ``"REQUEST_DENIED"``: the target is not fully caught up (retry)."""
    return _on_tick(raft, lambda so, cb: so.transferLeadership(addr, callback=cb))
