"""The restorable part of the state: what a backup holds and what a restore replaces.

A backup holds the registry, the key/value store, the sessions and the ACL tables, encoded as
``StateMachine.snapshot()`` version 3 encodes them, so ``StateMachine.restore`` reads it into a
fresh machine. Every other part of ``StateMachine`` (the live cluster's membership, identities,
anything added later) is NOT restorable: ``adopt`` keeps it, as Consul keeps its Raft
configuration on restore. A part becomes restorable only by being listed in ``RESTORABLE``
(``raftreg.state.restore_staging``).
Pure and deterministic: the same state gives the same bytes.
"""

from __future__ import annotations

import msgspec

from raftreg.state.machine import StateMachine
from raftreg.state.restore_staging import RESTORABLE

__all__ = ["RESTORABLE", "adopt", "counts", "decode_payload", "encode_payload"]

PAYLOAD_VERSION = 3  # StateMachine.restore's version holding exactly the RESTORABLE parts


class _Payload(msgspec.Struct, array_like=True):
    v: int
    registry: msgspec.Struct
    kv: msgspec.Struct
    sessions: msgspec.Struct
    acl: msgspec.Struct


_encoder = msgspec.msgpack.Encoder()


def encode_payload(state: StateMachine) -> bytes:
    """The restorable parts of ``state`` as bytes (call under the state lock)."""
    return _encoder.encode(_Payload(PAYLOAD_VERSION, state.registry.snapshot_struct(), state.kv.snapshot_struct(),
                                    state.sessions.snapshot_struct(), state.acl.snapshot_struct()))


def decode_payload(data: bytes | memoryview) -> StateMachine:
    """A fresh machine holding the payload's parts; ``ValueError`` (or a msgspec error, a
    ``ValueError`` too) when the bytes do not decode."""
    state = StateMachine()
    state.restore(bytes(data))
    return state


def adopt(target: StateMachine, source: StateMachine) -> None:
    """Replace the restorable parts of ``target`` by those of ``source``; keep the others."""
    for part in RESTORABLE:
        setattr(target, part, getattr(source, part))


def counts(state: StateMachine) -> dict[str, int]:
    """What the manifest reports (call under the state lock)."""
    return {"services": state.registry.service_count(), "instances": state.registry.instance_count(),
            "keys": state.kv.stats()["keys"], "sessions": len(state.sessions),
            "tokens": len(state.acl.tokens()), "policies": len(state.acl.policies())}
