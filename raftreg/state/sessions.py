"""Sessions: the sessions part of the replicated state machine (Consul's sessions).

Contract (the same as the other parts):
- Deterministic, never raises; ``snapshot_struct()`` / ``restore()`` round-trip exactly.
- A session is created with an id chosen by the proposer (a retried create of the same id is a
  no-op answering the stored session), a ttl, a ``behavior`` (``release``: its locks are released
  when it ends; ``delete``: its locked keys are deleted) and a ``lock_delay`` (how long a key it
  held stays unacquirable after it ended). It may be tied to instances: they must exist and not
  be critical when it is created.
- Renewals are not here: the leader keeps the session's ttl deadline in memory like an instance
  lease (``raftreg.node.leases``) and commits only its expiry.
- ``end(id)`` removes a session; what happens to its locks is the state machine's business
  (``raftreg.state.machine``), which calls it for a destroy, an expiry, or the loss of a tied
  instance.
"""

from __future__ import annotations

import msgspec

from raftreg.models import Session
from raftreg.state.commands import SessionCreate

SESSIONS_SNAPSHOT_VERSION = 1

InstanceKey = tuple[str, str]


class SessionCreated(msgspec.Struct, frozen=True):
    """Result of SessionCreate: the stored session, or not ``ok`` with ``reason`` and the index
    of the instance at fault (``instance``)."""

    ok: bool
    session: Session | None = None
    reason: str = ""
    instance: int = -1


class SessionsEnded(msgspec.Struct, frozen=True):
    """Sessions that ended in one command (destroyed, expired, or their instance went away), and
    the KV keys whose locks were released or that were deleted (behavior ``delete``)."""

    ids: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()


class _SessionsSnap(msgspec.Struct, array_like=True):
    v: int
    index: int
    sessions: list[Session]


_snap_decoder = msgspec.msgpack.Decoder(_SessionsSnap)


class SessionStore:
    """Live sessions, by id, and the sessions tied to each instance (derived)."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._by_instance: dict[InstanceKey, set[str]] = {}
        self._index = 0

    def create(self, index: int, cmd: SessionCreate, instance_usable: list[bool]) -> SessionCreated:
        """Store the session of ``cmd``; ``instance_usable[i]``: tied instance i exists and is not
        critical (checked by the caller, which owns the registry)."""
        existing = self._sessions.get(cmd.session.id)
        if existing is not None:
            return SessionCreated(ok=True, session=existing)
        for i, usable in enumerate(instance_usable):
            if not usable:
                inst = cmd.session.instances[i]
                return SessionCreated(ok=False, instance=i, reason=f"instance {inst.id!r} of service "
                                      f"{inst.service!r} does not exist or is critical")
        session = msgspec.structs.replace(cmd.session, create_index=index, modify_index=index)
        self._add(session)
        self._index = index
        return SessionCreated(ok=True, session=session)

    def end(self, index: int, session_id: str) -> Session | None:
        """Remove a session; None when there is none."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return None
        for inst in session.instances:
            tied = self._by_instance.get((inst.service, inst.id))
            if tied is not None:
                tied.discard(session_id)
                if not tied:
                    del self._by_instance[(inst.service, inst.id)]
        self._index = index
        return session

    def _add(self, session: Session) -> None:
        self._sessions[session.id] = session
        for inst in session.instances:
            self._by_instance.setdefault((inst.service, inst.id), set()).add(session.id)

    # ---- reads --------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """Raft index of the last command that created or ended a session."""
        return self._index

    def place_at(self, index: int) -> None:
        """A restore committed at ``index``: the sessions' index becomes ``index``."""
        self._index = index

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def all(self) -> list[Session]:
        return [self._sessions[sid] for sid in sorted(self._sessions)]

    def tied_to(self, service: str, instance_id: str) -> list[str]:
        """The sessions tied to an instance, sorted (a deterministic order to end them in)."""
        return sorted(self._by_instance.get((service, instance_id), ()))

    def __len__(self) -> int:
        return len(self._sessions)

    # ---- snapshots ----------------------------------------------------------------------
    def snapshot_struct(self) -> _SessionsSnap:
        return _SessionsSnap(SESSIONS_SNAPSHOT_VERSION, self._index, self.all())

    def restore(self, data: bytes | memoryview) -> None:
        snap = _snap_decoder.decode(data)
        if snap.v != SESSIONS_SNAPSHOT_VERSION:
            raise ValueError(f"sessions snapshot version {snap.v}, this build knows {SESSIONS_SNAPSHOT_VERSION}")
        self._sessions, self._by_instance = {}, {}
        for session in snap.sessions:
            self._add(session)
        self._index = snap.index
