"""The only package that imports pysyncobj (DESIGN.md, "Layers").

- ``bridge``: ``RaftNode``, one SyncObj replicating the state machine, bridged into asyncio;
- ``proposals``: pysyncobj callbacks turned into asyncio futures, ``ProposalFailed``;
- ``status``: ``RaftStatus`` samples and the tick-thread observations behind them;
- ``transport``: the guarded transport (fault hook, snapshot-install commit guard);
- ``storage``: the node's Raft files and the wipe that keeps term and vote;
- ``snapshot``: snapshots in raftreg's own encoding, written by a child that dies with us;
- ``faults``: partition and wedge hooks for chaos runs and tests;
- ``replica``: read replicas (pysyncobj's read-only mode) and what raftreg relies on in it;
- ``loop_tick``: pysyncobj driven by the asyncio loop instead of its own tick thread;
- ``compat``: the version guard, run here at import: an incompatible pysyncobj stops the import
  with ``IncompatiblePysyncobj`` naming what is missing;
- ``message_framing``: pysyncobj's messages under 64 KiB framed as stored zlib streams,
  installed here at import, before any SyncObj exists.
"""

from raftreg.raft.compat import IncompatiblePysyncobj, ensure_compatible

ensure_compatible()

from raftreg.raft.message_framing import frame_messages_stored  # noqa: E402

frame_messages_stored()

from raftreg.raft.bridge import RaftNode  # noqa: E402
from raftreg.raft.proposals import ProposalFailed  # noqa: E402
from raftreg.raft.status import RaftStatus  # noqa: E402

__all__ = ["IncompatiblePysyncobj", "ProposalFailed", "RaftNode", "RaftStatus"]
