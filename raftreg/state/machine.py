"""The replicated state machine: the registry, the key/value store and the sessions behind one
``apply``.

Contract (hashicorp/raft's FSM, as each part's):
- ``apply(index, cmd)`` hands each command to the part it belongs to; deterministic, never raises
  (a failure is returned as ``Failed``).
- What crosses parts happens here, in the same apply: a lock acquisition needs a live session;
  a session that ends (destroyed, expired: an ``Expire`` of ``(SESSION_LEASE, id)``, or an
  instance it is tied to deregistered, expired or turned critical) releases its locks (behavior
  ``release``) or deletes its locked keys (``delete``), each key then unacquirable until the
  command's ``at`` plus the session's ``lock_delay``. Sessions ended by a registry command are
  reported by ``take_cascades()`` (the command's own result stays the registry's).
- ``snapshot()`` encodes every part, deterministically; ``restore()`` reads this build's format
  and every older one. Version 1 was the registry alone (``Registry.snapshot()``); version 2 is
  ``[2, registry, kv, sessions]`` (written before sessions without the last part); version 3 adds
  the ACL part (``[3, registry, kv, sessions, acl]``); version 4 adds the members' recorded
  incarnations (``raftreg.state.identities``) and the staging of an online restore:
  ``[4, registry, kv, sessions, acl, identities, staging]`` (the last two may be absent); version 5
  appends the members table (``raftreg.state.members``): ``[5, ..., staging, members]``; version 6
  appends the applied-entries memory (``raftreg.state.applied_entries``): ``[6, ..., members,
  applied]``. An online restore replaces neither: they are the live cluster's, not the backup's.
- ``apply_entry(index, entry)`` applies the commands of one Raft entry, unless the entry's origin
  was applied already (``raftreg.state.applied_entries``): a re-submitted proposal applies once.
- An online restore (``raftreg.state.restore_staging``): ``RestoreBegin``/``RestoreChunk`` stage
  a payload; ``RestoreCommit`` at index N decodes it into a fresh machine, places its parts at N
  (every service, catalog, key, session and ACL index becomes N, so no watcher sees an index go
  back) and replaces the ``RESTORABLE`` parts of this machine with them, keeping every other
  part. A payload that does not decode changes nothing but the staging (``Failed``).
- An ``Authorized`` command (a client's write with its token's authority) is re-checked against
  the ACL state at apply (``raftreg.state.acl``); refused, it changes nothing and answers
  ``Denied``. Restore keeps
  each part encoded until that part decodes it, one stored object at a time (a restarted node's
  peak memory stays close to its final size).
"""

from __future__ import annotations

import msgspec

from raftreg.models import SESSION_LEASE
from raftreg.state.acl import AclChanged, AclStore, Denied
from raftreg.state.applied_entries import Admission, AppliedEntries, Repeated
from raftreg.state.commands import (
    AclBootstrap,
    AclPolicyDelete,
    AclPolicySet,
    AclTokenDelete,
    AclTokenSet,
    Authorized,
    Command,
    Deregister,
    Envelope,
    Expire,
    ForgetIdentity,
    KVDelete,
    KVSet,
    KVTxn,
    RecordIdentity,
    Register,
    RestoreBegin,
    RestoreChunk,
    RestoreCommit,
    SessionCreate,
    SessionDestroy,
    SetCheckStatus,
    SetManualStatus,
)
from raftreg.state.identities import Identities, IdentityRecorded
from raftreg.state.kv import KVResult, KVStore, KVWritten
from raftreg.state.members import MemberChanged, MemberDelete, MemberSet, MembersTable
from raftreg.state.registry import Deregistered, Failed, Registry, StatusSet
from raftreg.state.registry import Result as RegistryResult
from raftreg.state.restore_staging import RESTORABLE, RestoreStaging, StagedResult
from raftreg.state.sessions import SessionCreated, SessionsEnded, SessionStore

SNAPSHOT_VERSION = 6

Result = (RegistryResult | KVResult | SessionCreated | SessionsEnded | AclChanged | Denied | IdentityRecorded
          | StagedResult | MemberChanged | Repeated)


class _Head(msgspec.Struct, array_like=True):
    """The first field of every snapshot version (the rest is ignored when decoding this)."""

    v: int


class _Snapshot(msgspec.Struct, array_like=True):
    v: int
    registry: msgspec.Struct
    kv: msgspec.Struct
    sessions: msgspec.Struct
    acl: msgspec.Struct
    identities: msgspec.Struct
    staging: msgspec.Struct
    members: msgspec.Struct
    applied: msgspec.Struct


class _SnapshotRaw(msgspec.Struct, array_like=True):
    v: int
    registry: msgspec.Raw
    kv: msgspec.Raw
    sessions: msgspec.Raw = msgspec.Raw()  # empty in snapshots written before sessions
    acl: msgspec.Raw = msgspec.Raw()  # absent in version 2
    identities: msgspec.Raw = msgspec.Raw()  # absent before version 4
    staging: msgspec.Raw = msgspec.Raw()  # absent before version 4
    members: msgspec.Raw = msgspec.Raw()  # absent before version 5
    applied: msgspec.Raw = msgspec.Raw()  # absent before version 6


_encoder = msgspec.msgpack.Encoder()
_head_decoder = msgspec.msgpack.Decoder(_Head)
_raw_decoder = msgspec.msgpack.Decoder(_SnapshotRaw)


# Commands whose result may end the sessions tied to an instance (a tuple: isinstance over a
# ``X | Y`` union costs more, and this runs for every applied command).
_MAY_END_SESSIONS = (Deregister, Expire, SetCheckStatus, SetManualStatus)

class StateMachine:
    """Every replicated part. Not thread-safe: the caller serialises apply/restore with readers."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.kv = KVStore()
        self.sessions = SessionStore()
        self.acl = AclStore()
        self.identities = Identities()
        self.staging = RestoreStaging()
        self.members = MembersTable()
        self.applied = AppliedEntries()
        self._cascades: list[SessionsEnded] = []
        self.applied_index = 0  # of the last command applied here (not in snapshots): what a backup is taken at

    def apply_entry(self, index: int, entry: Envelope) -> tuple[Admission, list[Result]]:
        """Apply the commands of the Raft entry at ``index`` unless its origin was applied
        already (then each command's result is ``Repeated``). Never raises."""
        admission = self.applied.admit(index, entry.proposer, entry.seq) if entry.proposer else "new"
        if admission != "new":
            self.applied_index = index
            return admission, [Repeated(too_old=admission == "too_old")] * len(entry.cmds)
        return admission, [self.apply(index, cmd) for cmd in entry.cmds]

    def apply(self, index: int, cmd: Command) -> Result:
        """Apply ``cmd`` committed at Raft ``index``. Never raises."""
        self.applied_index = index
        try:
            return self._apply(index, cmd)
        except Exception as exc:  # apply must never raise (research/pysyncobj.md §4.1)
            return Failed(f"{type(exc).__name__}: {exc}")

    def _apply(self, index: int, cmd: Command) -> Result:
        if type(cmd) is Register:  # most entries are registrations: skip the dispatch chain below
            return self.registry.apply(index, cmd)  # (a registration ends no session)
        if isinstance(cmd, Authorized):
            denied = self.acl.recheck(cmd, self.session_name)
            if denied is not None:
                return denied
            return self._apply(index, cmd.cmd)
        if isinstance(cmd, RecordIdentity | ForgetIdentity):
            return self.identities.apply(index, cmd)
        if isinstance(cmd, MemberSet | MemberDelete):
            return self.members.apply(index, cmd)
        if isinstance(cmd, RestoreBegin | RestoreChunk | RestoreCommit):
            return self._stage(index, cmd)
        if isinstance(cmd, AclBootstrap | AclTokenSet | AclTokenDelete | AclPolicySet | AclPolicyDelete):
            return self.acl.apply(index, cmd)
        if isinstance(cmd, KVSet) and cmd.lock and self.sessions.get(cmd.session) is None:
            return KVWritten(ok=False, entry=self.kv.get(cmd.key), reason="no_session")
        if isinstance(cmd, KVSet | KVDelete | KVTxn):
            return self.kv.apply(index, cmd)
        if isinstance(cmd, SessionCreate):
            usable = [(inst := self.registry.get_instance(tie.service, tie.id)) is not None
                      and inst.status != "critical" for tie in cmd.session.instances]
            return self.sessions.create(index, cmd, usable)
        if isinstance(cmd, SessionDestroy):
            return self._end_sessions(index, [cmd.id], cmd.at)
        if isinstance(cmd, Expire) and cmd.service == SESSION_LEASE:
            session = self.sessions.get(cmd.id)
            if session is None or session.modify_index != cmd.modify_index:
                return SessionsEnded()
            return self._end_sessions(index, [cmd.id], cmd.at)
        result = self.registry.apply(index, cmd)
        self._end_tied_sessions(index, cmd, result)
        return result

    def _stage(self, index: int, cmd: RestoreBegin | RestoreChunk | RestoreCommit) -> Result:
        if isinstance(cmd, RestoreBegin):
            return self.staging.begin(cmd)
        if isinstance(cmd, RestoreChunk):
            return self.staging.chunk(cmd)
        payload = self.staging.take(cmd)
        if isinstance(payload, StagedResult):
            return payload
        fresh = StateMachine()
        fresh.restore(payload)  # raises on a payload that does not decode: Failed, nothing replaced
        for part in RESTORABLE:
            getattr(fresh, part).place_at(index)
            setattr(self, part, getattr(fresh, part))
        return StagedResult(True, restored=True)

    def _end_tied_sessions(self, index: int, cmd: Command, result: Result) -> None:
        """The sessions tied to an instance that this registry command removed or made critical."""
        if not isinstance(cmd, _MAY_END_SESSIONS):
            return
        removed = isinstance(result, Deregistered) and result.existed
        critical = (isinstance(result, StatusSet) and result.changed and result.instance is not None
                    and result.instance.status == "critical")
        tied = self.sessions.tied_to(cmd.service, cmd.id) if removed or critical else []
        if tied:
            self._cascades.append(self._end_sessions(index, tied, cmd.at))

    def _end_sessions(self, index: int, ids: list[str], at: float) -> SessionsEnded:
        ended: list[str] = []
        keys: list[str] = []
        for session_id in ids:
            session = self.sessions.end(index, session_id)
            if session is not None:
                ended.append(session_id)
                keys += self.kv.end_locks(index, session_id, delete=session.behavior == "delete",
                                          until=at + session.lock_delay)
        return SessionsEnded(tuple(ended), tuple(keys))

    def session_name(self, session_id: str) -> str:
        """The name of a live session ("" when there is none): what ``session_prefix`` rules match."""
        session = self.sessions.get(session_id)
        return session.name if session is not None else ""

    def take_cascades(self) -> list[SessionsEnded]:
        """The sessions ended by registry commands since the last call (see the docstring)."""
        cascades, self._cascades = self._cascades, []
        return cascades

    def item_count(self) -> int:
        """Stored objects of every part (the log-compaction budget scales with it)."""
        return self.registry.instance_count() + self.kv.item_count() + len(self.sessions) + len(self.acl)

    def snapshot(self, *, bookkeeping: bool = True) -> bytes:
        """The whole state as compact, deterministic msgpack bytes (the current version).
        ``bookkeeping=False`` leaves out the applied-entries memory (encoded empty): the state as
        clients can observe it, which a write that changed nothing leaves alone."""
        applied = self.applied if bookkeeping else AppliedEntries()
        return _encoder.encode(_Snapshot(SNAPSHOT_VERSION, self.registry.snapshot_struct(),
                                         self.kv.snapshot_struct(), self.sessions.snapshot_struct(),
                                         self.acl.snapshot_struct(), self.identities.snapshot_struct(),
                                         self.staging.snapshot_struct(), self.members.snapshot_struct(),
                                         applied.snapshot_struct()))

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the one ``data`` describes (any known version);
        ``ValueError`` for an unknown one."""
        version = _head_decoder.decode(data).v
        registry, kv, sessions, acl = Registry(), KVStore(), SessionStore(), AclStore()
        identities, staging, members, applied = Identities(), RestoreStaging(), MembersTable(), AppliedEntries()
        if version == 1:
            registry.restore(data)
        elif version in (2, 3, 4, 5, SNAPSHOT_VERSION):
            parts = _raw_decoder.decode(data)
            registry.restore(memoryview(parts.registry))
            kv.restore(memoryview(parts.kv))
            if len(parts.sessions):
                sessions.restore(memoryview(parts.sessions))
            if len(parts.acl):
                acl.restore(memoryview(parts.acl))
            if len(parts.identities):
                identities.restore(memoryview(parts.identities))
            if len(parts.staging):
                staging.restore(memoryview(parts.staging))
            if len(parts.members):
                members.restore(memoryview(parts.members))
            if len(parts.applied):
                applied.restore(memoryview(parts.applied))
        else:
            raise ValueError(f"snapshot version {version}, this build knows 1 to {SNAPSHOT_VERSION}")
        self.registry, self.kv, self.sessions, self.acl = registry, kv, sessions, acl
        self.identities, self.staging, self.members, self.applied = identities, staging, members, applied
