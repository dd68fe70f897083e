"""Commands carried in the Raft log, and their versioned envelope.

The log holds msgpack-encoded ``Envelope``s. Each envelope carries one or more commands (group
commit puts many in one Raft entry). Adding a command means adding a tagged Struct to
``Command``; changing the meaning of an existing one means bumping ``ENVELOPE_VERSION``. A node
that meets a version or tag it does not know must stop, never skip the entry.

Version 2 adds the entry's origin: the proposing process's ``proposer`` token and its ``seq``
for this proposal (``raftreg.state.applied_entries``: a re-submitted proposal carries the same
pair and applies at most once). Version 1 entries (no origin) are still read and always apply.
The log may store an envelope compressed (``raftreg.raft.entry_compression``, data format 3).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from raftreg.models import Instance, Session, Status, TxnOp
from raftreg.state.acl_rules import Policy, Token
from raftreg.state.members import MemberDelete, MemberSet

ENVELOPE_VERSION = 2
READ_ENVELOPE_VERSIONS = (1, 2)


class Register(msgspec.Struct, frozen=True, tag="reg", array_like=True):
    """Create or replace ``instance`` (its index fields are ignored). Idempotent."""

    instance: Instance


class Deregister(msgspec.Struct, frozen=True, tag="dereg", array_like=True):
    """Delete an instance if it exists. Idempotent: a second apply reports ``existed=False``.
    ``at`` (every command that may end a session carries it): the proposer's wall-clock time,
    from which the lock delay of the sessions ended is counted (0 in entries written before)."""

    service: str
    id: str
    at: float = 0.0


class Noop(msgspec.Struct, frozen=True, tag="noop", array_like=True):
    """Changes nothing; committing one is a read barrier."""


class Expire(msgspec.Struct, frozen=True, tag="expire", array_like=True):
    """Remove an instance whose lease ran out (or whose check stayed critical too long), but only
    if it is still the version the leader judged: its ``modify_index`` must be ``modify_index``.
    A re-registration or a status change committed in between makes this a no-op, so a decision
    taken on an older state never removes a newer one."""

    service: str
    id: str
    modify_index: int
    reason: str = "ttl"
    at: float = 0.0


class SetCheckStatus(msgspec.Struct, frozen=True, tag="check", array_like=True):
    """The active check of an instance changed its verdict. Applies only to the incarnation that
    was probed (``create_index``); a no-op when the status is already ``status``."""

    service: str
    id: str
    create_index: int
    status: Status
    output: str = ""
    at: float = 0.0


class SetManualStatus(msgspec.Struct, frozen=True, tag="manual", array_like=True):
    """Set an instance's status by hand (``warning`` or ``critical``), or clear the manual status
    (``passing``): see ``raftreg.models.effective_status``."""

    service: str
    id: str
    status: Status
    note: str = ""
    at: float = 0.0


class KVSet(msgspec.Struct, frozen=True, tag="kvset", array_like=True):
    """Write ``key``. With ``cas`` set, only if the key's ``modify_index`` is ``cas`` (0: only if
    absent). ``history``: how many earlier versions the key keeps (stamped by the proposer from
    the cluster config, so every replica keeps the same number whatever its own config says).
    ``lock``: ``acquire`` the key's lock for ``session`` (and write), or ``release`` it (and
    write); ``at`` is the proposer's wall-clock time, compared with the key's lock delay."""

    key: str
    value: bytes
    flags: int = 0
    cas: int | None = None
    history: int = 0
    lock: Literal["", "acquire", "release"] = ""
    session: str = ""
    at: float = 0.0


class KVDelete(msgspec.Struct, frozen=True, tag="kvdel", array_like=True):
    """Delete ``key`` (``recurse``: every key starting with it). With ``cas`` set, only if the
    key's ``modify_index`` is ``cas`` (never with ``recurse``)."""

    key: str
    recurse: bool = False
    cas: int | None = None


class KVTxn(msgspec.Struct, frozen=True, tag="kvtxn", array_like=True):
    """Apply ``ops`` in order at one index, all or none (``raftreg.state.kv``)."""

    ops: list[TxnOp]
    history: int = 0


class SessionCreate(msgspec.Struct, frozen=True, tag="sess", array_like=True):
    """Create ``session`` (its id chosen by the proposer; its index fields are ignored). A second
    apply with the same id changes nothing."""

    session: Session


class SessionDestroy(msgspec.Struct, frozen=True, tag="sessdel", array_like=True):
    """End a session if it exists (its locks are released or its keys deleted); ``at`` as in
    ``Deregister``. A session's expiry is an ``Expire`` of ``(SESSION_LEASE, id)``."""

    id: str
    at: float = 0.0


class AclBootstrap(msgspec.Struct, frozen=True, tag="aclboot", array_like=True):
    """Create the management ``token`` (its secret chosen, and only hashed, by the proposer) if
    the cluster has never been bootstrapped, or if ``reset_index`` is the index of the last
    bootstrap (the reset file's contents, ``raftreg.state.acl``)."""

    token: Token
    reset_index: int = 0


class AclTokenSet(msgspec.Struct, frozen=True, tag="acltok", array_like=True):
    """Create or update a token (by ``accessor_id``); an update keeps the stored secret hash and
    ``create_index``."""

    token: Token


class AclTokenDelete(msgspec.Struct, frozen=True, tag="acltokdel", array_like=True):
    accessor_id: str


class AclPolicySet(msgspec.Struct, frozen=True, tag="aclpol", array_like=True):
    """Create or update a policy (by ``name``); an update keeps ``create_index``."""

    policy: Policy


class AclPolicyDelete(msgspec.Struct, frozen=True, tag="aclpoldel", array_like=True):
    name: str


class RecordIdentity(msgspec.Struct, frozen=True, tag="ident", array_like=True):
    """Record ``incarnation`` as the identity of member ``name`` (``raftreg.state.identities``).
    Proposed by the node itself once it has caught up; never a client's write."""

    name: str
    incarnation: str


class ForgetIdentity(msgspec.Struct, frozen=True, tag="identdel", array_like=True):
    """Drop the recorded incarnation of member ``name`` (to be committed with the removal of the
    member, so the name can be added again later with a fresh data directory)."""

    name: str


class RestoreBegin(msgspec.Struct, frozen=True, tag="rstbegin", array_like=True):
    """Start staging restore ``id``: ``chunks`` chunks of a ``size``-byte payload whose SHA-256
    is ``sha256`` (``raftreg.state.restore_staging``). Discards any other staging."""

    id: str
    sha256: str
    size: int
    chunks: int


class RestoreChunk(msgspec.Struct, frozen=True, tag="rstchunk", array_like=True):
    """Chunk ``seq`` (from 0) of the staged restore ``id``."""

    id: str
    seq: int
    data: bytes


class RestoreCommit(msgspec.Struct, frozen=True, tag="rstcommit", array_like=True):
    """Replace the restorable parts by the staged payload of restore ``id``, placed at this
    command's index (``raftreg.state.machine``); with ``abort``, drop that staging instead."""

    id: str
    abort: bool = False


Unauthorized = (Register | Deregister | Noop | Expire | SetCheckStatus | SetManualStatus | KVSet | KVDelete | KVTxn
                | SessionCreate | SessionDestroy | AclBootstrap | AclTokenSet | AclTokenDelete | AclPolicySet
                | AclPolicyDelete | RecordIdentity | ForgetIdentity | RestoreBegin | RestoreChunk | RestoreCommit
                | MemberSet | MemberDelete)


class Authorized(msgspec.Struct, frozen=True, tag="authz", array_like=True):
    """A client's write ``cmd`` with the authority the HTTP layer decided on: the token's
    ``accessor_id`` ("" for a request without a token) at ACL index ``acl_index``, under the
    cluster's default policy (``default_allow``, stamped so every replica decides alike). Apply
    re-checks the permission against the ACL state of the moment and refuses the command when
    the token was deleted or lost the right in between (``raftreg.state.acl``)."""

    accessor_id: str
    acl_index: int
    default_allow: bool
    cmd: Unauthorized


Command = Unauthorized | Authorized


def unwrap(cmd: Command) -> Unauthorized:
    """The command itself, without its ``Authorized`` authority (what observers of applied
    entries look at: a refused one answered ``Denied``, which no observer acts on)."""
    return cmd.cmd if isinstance(cmd, Authorized) else cmd


class Envelope(msgspec.Struct, frozen=True, array_like=True):
    """What one Raft entry carries: a format version, the commands (applied in order) and, from
    version 2, its origin (``proposer`` "" and ``seq`` 0: none; the entry always applies)."""

    v: int
    cmds: list[Command]
    proposer: str = ""
    seq: int = 0


class UnsupportedEntry(Exception):
    """A log entry this code cannot interpret (newer version or unknown command)."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)


def encode_entry(cmds: list[Command], proposer: str = "", seq: int = 0) -> bytes:
    """Encode commands (from ``(proposer, seq)``, if given) into the bytes of one Raft entry."""
    return _encoder.encode(Envelope(ENVELOPE_VERSION, cmds, proposer, seq))


def encode_command(cmd: Command) -> bytes:
    """One command's encoding, to be joined into an entry by ``encode_entry_from``."""
    return _encoder.encode(cmd)


def encode_entry_from(encoded: list[bytes], proposer: str = "", seq: int = 0) -> bytes:
    """The entry of already encoded commands: the same bytes as ``encode_entry`` of the
    commands (an envelope is a msgpack array whose command list holds each command's encoding)."""
    return _encoder.encode([ENVELOPE_VERSION, [msgspec.Raw(part) for part in encoded], proposer, seq])


def decode_envelope(raw: bytes) -> Envelope:
    """Decode one Raft entry; ``UnsupportedEntry`` when it is from a newer or unknown format."""
    try:
        envelope = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise UnsupportedEntry(f"undecodable log entry: {exc}") from exc
    if envelope.v not in READ_ENVELOPE_VERSIONS:
        raise UnsupportedEntry(f"log entry version {envelope.v}, this build knows {READ_ENVELOPE_VERSIONS}")
    return envelope


def decode_entry(raw: bytes) -> list[Command]:
    """The commands of one Raft entry (``decode_envelope``)."""
    return decode_envelope(raw).cmds
