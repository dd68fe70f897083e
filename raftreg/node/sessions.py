"""``SessionManager``: the sessions of one node: create and destroy through ``Writer``, renew
through the leases (``Health``), reads of the applied state.

Contract:
- A session's ttl deadline is a lease like an instance's (``raftreg.node.leases``), keyed
  ``(SESSION_LEASE, id)``: renewals never touch the Raft log; a follower forwards them to the
  leader; the leader commits only the expiry (``Expire`` on that key), which ends the session
  and releases (or deletes) its locked keys in the same apply.
- Create and destroy apply at most once, also when re-submitted after an unknown outcome
  (``raftreg.node.proposer``); a create's id is chosen here, before the command is proposed.
- Commands that may end a session carry this node's wall-clock time (``at``), from which the state
  machine counts the lock delay: the nodes' clocks are assumed to agree (NTP), as the signed
  node-to-node requests already assume.
"""

from __future__ import annotations

import time
import uuid

from raftreg.errors import NotFound
from raftreg.models import SESSION_LEASE, Session
from raftreg.node.health import Health
from raftreg.node.writes import Writer, unexpected
from raftreg.raft import RaftNode
from raftreg.state.commands import SessionCreate, SessionDestroy
from raftreg.state.sessions import SessionCreated, SessionsEnded


class SessionManager:
    def __init__(self, raft: RaftNode, writer: Writer, health: Health) -> None:
        self._raft = raft
        self._writer = writer
        self._health = health

    async def create(self, session: Session) -> tuple[int, Session]:
        """Store ``session`` under a new id; ``NotFound`` naming ``instances[i]`` when a tied
        instance does not exist or is critical."""
        session = Session(id=str(uuid.uuid4()), name=session.name, ttl=session.ttl, behavior=session.behavior,
                          lock_delay=session.lock_delay, instances=session.instances)
        committed = await self._writer.commit(SessionCreate(session))
        result = committed.result
        if not isinstance(result, SessionCreated):
            raise unexpected("the session creation", result)
        if not result.ok or result.session is None:
            raise NotFound(result.reason, field=f"instances[{result.instance}]")
        return committed.index, result.session

    async def destroy(self, session_id: str) -> tuple[int, bool]:
        """End a session (its locks are released, or its keys deleted); returns the index and
        whether it existed."""
        committed = await self._writer.commit(SessionDestroy(session_id, time.time()))
        result = committed.result
        if not isinstance(result, SessionsEnded):
            raise unexpected("the session destruction", result)
        return committed.index, bool(result.ids)

    async def renew(self, session_id: str) -> float:
        """Renew the session's lease (through the leader); its ttl, or ``NotFound``."""
        return await self._health.heartbeat(SESSION_LEASE, session_id)

    def get(self, session_id: str) -> tuple[int, Session | None]:
        with self._raft.lock:
            sessions = self._raft.state.sessions
            return sessions.index, sessions.get(session_id)

    def list(self) -> tuple[int, list[Session]]:
        with self._raft.lock:
            sessions = self._raft.state.sessions
            return sessions.index, sessions.all()
