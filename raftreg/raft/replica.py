"""Read replicas: a ``RaftNode(readonly=True)`` runs pysyncobj in read-only mode (``selfNode=None``).

What pysyncobj 0.3.17 does in that mode (read from its source, ``syncobj.py`` and
``transport.py``), and what raftreg builds on:

- The replica binds no Raft port and connects out to every voter; after the Fernet key exchange
  (the cluster ``password``: a connection without it never gets past the first message) it sends
  ``'readonly'`` instead of its address. The voter registers it under a counter id, sends it
  AppendEntries from the leader like any follower, and counts it in no quorum: commit indexes,
  ``hasQuorum``, votes, ``leaderFallbackTimeout`` and ``transferLeadership`` look only at the
  voters (``otherNodes``).
- It never campaigns and never answers a vote request (``__selfNode is None`` guards both), so it
  never changes a term; it takes the leader's term from AppendEntries.
- It learns its leader from AppendEntries, so ``apply`` on a replica is forwarded to the leader
  (``apply_command``) exactly as on a follower, and its callback fires once the entry is applied
  *here*: writes through a replica keep the follower's semantics (a timeout is an unknown
  outcome). raftreg's ReadIndex messages (``raftreg.raft.read_channel``) travel the same way.
- A voter knows a replica only by that counter id, never by name: a replica's lag is learnt from
  the replica itself (``raftreg.node.replicas``).

raftreg's own guards that would read ``selfNode.address`` skip a replica
(``raftreg.raft.transport``: it never campaigns early either).
"""

from __future__ import annotations

from typing import Protocol


class _Member(Protocol):
    self_addr: str
    readonly: bool


def syncobj_self_node(node: _Member) -> str | None:
    """The ``selfNode`` to give ``SyncObj``: the Raft address of a voter, None for a replica."""
    return None if node.readonly else node.self_addr

