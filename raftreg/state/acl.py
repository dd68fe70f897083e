"""ACLs: the tokens and policies part of the replicated state machine, and the permission each
command needs.

Contract (the same as the other parts):
- Deterministic, never raises; ``snapshot_struct()`` / ``restore()`` round-trip exactly.
- Tokens are stored by ``accessor_id`` with only the sha256 of their secret (hex); a presented
  secret is hashed and looked up by its hash (``by_secret_hash``); the node layer then compares
  the hashes in constant time (``hmac.compare_digest``, ``raftreg.node.acl``).
- ``bootstrap_index`` is 0 until the first ``AclBootstrap`` applies; a later bootstrap applies
  only when its ``reset_index`` equals the current ``bootstrap_index`` (what the reset file
  holds), so each reset allows exactly one more bootstrap.
- ``effective_rules(token)``: the token's inline rules and those of its policies (a policy that
  does not exist grants nothing).
- ``recheck(cmd)``: apply's second look at an ``Authorized`` command: ``None`` when still
  allowed, else a ``Denied`` naming the permission lacked.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from raftreg.state.acl_rules import MANAGEMENT_RULES, Permission, Policy, Rule, Token, decide, may_write_subtree
from raftreg.state.commands import (
    AclBootstrap,
    AclPolicyDelete,
    AclPolicySet,
    AclTokenDelete,
    AclTokenSet,
    Authorized,
    Deregister,
    KVDelete,
    KVSet,
    KVTxn,
    Register,
    SessionCreate,
    SessionDestroy,
    SetManualStatus,
    Unauthorized,
)

ACL_SNAPSHOT_VERSION = 1


class AclChanged(msgspec.Struct, frozen=True):
    """Result of an ACL command: ``ok`` with the stored token or policy (``existed`` for a delete),
    or not ``ok`` with ``reason``."""

    ok: bool
    token: Token | None = None
    policy: Policy | None = None
    existed: bool = False
    reason: str = ""


class Denied(msgspec.Struct, frozen=True):
    """An ``Authorized`` command refused at apply: ``permission`` is what the token lacked."""

    permission: str
    reason: str = "permission_denied"


class _AclSnap(msgspec.Struct, array_like=True):
    v: int
    index: int
    bootstrap_index: int
    tokens: list[Token]
    policies: list[Policy]


_snap_decoder = msgspec.msgpack.Decoder(_AclSnap)


def required_permissions(cmd: Unauthorized, session_name: Callable[[str], str]) -> list[Permission]:
    """What a client's write needs (``session_name(id)``: the name of a live session, or "").
    Recursive KV deletes are checked apart (``AclStore.allows_command``)."""
    if isinstance(cmd, Register):
        return [Permission("service", cmd.instance.service, "write")]
    if isinstance(cmd, Deregister | SetManualStatus):
        return [Permission("service", cmd.service, "write")]
    if isinstance(cmd, KVSet) and cmd.lock:  # as Consul: a lock also needs write on its session
        return [Permission("key", cmd.key, "write"), Permission("session", session_name(cmd.session), "write")]
    if isinstance(cmd, KVSet):
        return [Permission("key", cmd.key, "write")]
    if isinstance(cmd, KVDelete):
        return [Permission("key", cmd.key, "write")]
    if isinstance(cmd, KVTxn):
        return [Permission("key", op.key, "read" if op.op in ("get", "check_index") else "write") for op in cmd.ops]
    if isinstance(cmd, SessionCreate):
        return [Permission("session", cmd.session.name, "write")]
    if isinstance(cmd, SessionDestroy):
        return [Permission("session", session_name(cmd.id), "write")]
    if isinstance(cmd, AclBootstrap):
        return []
    if isinstance(cmd, AclTokenSet | AclTokenDelete | AclPolicySet | AclPolicyDelete):
        return [Permission("acl", "", "write")]
    return [Permission("operator", "", "write")]  # anything else is the node's own business


class AclStore:
    """Tokens by accessor, their secrets' hashes (derived index), and policies by name."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._by_hash: dict[str, str] = {}
        self._policies: dict[str, Policy] = {}
        self._index = 0
        self.bootstrap_index = 0

    # ---- apply --------------------------------------------------------------------------
    def apply(self, index: int, cmd: AclBootstrap | AclTokenSet | AclTokenDelete | AclPolicySet
              | AclPolicyDelete) -> AclChanged:
        if isinstance(cmd, AclBootstrap):
            if self.bootstrap_index and cmd.reset_index != self.bootstrap_index:
                return AclChanged(ok=False, reason="ACLs are already bootstrapped")
            token = msgspec.structs.replace(cmd.token, rules=MANAGEMENT_RULES, policies=(),
                                            create_index=index, modify_index=index)
            self.bootstrap_index = index
            return AclChanged(ok=True, token=self._put_token(index, token))
        if isinstance(cmd, AclTokenSet):
            old = self._tokens.get(cmd.token.accessor_id)
            token = cmd.token
            if old is not None:
                token = msgspec.structs.replace(token, secret_sha256=old.secret_sha256, create_index=old.create_index)
            else:
                token = msgspec.structs.replace(token, create_index=index)
            return AclChanged(ok=True, token=self._put_token(index, msgspec.structs.replace(token, modify_index=index)))
        if isinstance(cmd, AclTokenDelete):
            old = self._tokens.pop(cmd.accessor_id, None)
            if old is not None:
                self._by_hash.pop(old.secret_sha256, None)
                self._index = index
            return AclChanged(ok=True, token=old, existed=old is not None)
        if isinstance(cmd, AclPolicySet):
            prev = self._policies.get(cmd.policy.name)
            policy = msgspec.structs.replace(cmd.policy, create_index=prev.create_index if prev else index,
                                             modify_index=index)
            self._policies[policy.name] = policy
            self._index = index
            return AclChanged(ok=True, policy=policy)
        gone = self._policies.pop(cmd.name, None)
        if gone is not None:
            self._index = index
        return AclChanged(ok=True, policy=gone, existed=gone is not None)

    def _put_token(self, index: int, token: Token) -> Token:
        old = self._tokens.get(token.accessor_id)
        if old is not None:
            self._by_hash.pop(old.secret_sha256, None)
        self._tokens[token.accessor_id] = token
        self._by_hash[token.secret_sha256] = token.accessor_id
        self._index = index
        return token

    def recheck(self, cmd: Authorized, session_name: Callable[[str], str]) -> Denied | None:
        """Apply's re-check of ``cmd`` against the ACL state now (see the module docstring)."""
        token = self._tokens.get(cmd.accessor_id) if cmd.accessor_id else None
        if cmd.accessor_id and token is None:
            return Denied("a valid token", reason="token_not_found")
        return self.first_denied(token, cmd.cmd, cmd.default_allow, session_name)

    def first_denied(self, token: Token | None, cmd: Unauthorized, default_allow: bool,
                     session_name: Callable[[str], str]) -> Denied | None:
        """The first permission ``cmd`` needs that ``token`` (``None``: no token) lacks."""
        rules = self.effective_rules(token)
        if isinstance(cmd, KVDelete) and cmd.recurse:
            if may_write_subtree(rules, cmd.key, default_allow):
                return None
            return Denied(str(Permission("key", cmd.key, "write")) + " (every key under it)")
        for perm in required_permissions(cmd, session_name):
            if not self.allows(rules, perm, default_allow):
                return Denied(str(perm))
        return None

    @staticmethod
    def allows(rules: list[Rule], perm: Permission, default_allow: bool) -> bool:
        """The decision for ``perm``: the rules', else the default policy (never for ``acl``)."""
        verdict = decide(rules, perm)
        if verdict is None:
            return default_allow and perm.resource != "acl"
        return verdict

    # ---- reads --------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """Raft index of the last command that changed a token or a policy."""
        return self._index

    def place_at(self, index: int) -> None:
        """A restore committed at ``index``: the ACL index becomes ``index`` (authorities taken
        before it are re-checked)."""
        self._index = index

    def effective_rules(self, token: Token | None) -> list[Rule]:
        if token is None:
            return []
        rules = list(token.rules)
        for name in token.policies:
            policy = self._policies.get(name)
            if policy is not None:
                rules.extend(policy.rules)
        return rules

    def by_secret_hash(self, secret_sha256: str) -> Token | None:
        accessor = self._by_hash.get(secret_sha256)
        return self._tokens.get(accessor) if accessor is not None else None

    def token(self, accessor_id: str) -> Token | None:
        return self._tokens.get(accessor_id)

    def tokens(self) -> list[Token]:
        return [self._tokens[a] for a in sorted(self._tokens)]

    def policy(self, name: str) -> Policy | None:
        return self._policies.get(name)

    def policies(self) -> list[Policy]:
        return [self._policies[n] for n in sorted(self._policies)]

    def __len__(self) -> int:
        return len(self._tokens) + len(self._policies)

    # ---- snapshots ----------------------------------------------------------------------
    def snapshot_struct(self) -> _AclSnap:
        return _AclSnap(ACL_SNAPSHOT_VERSION, self._index, self.bootstrap_index, self.tokens(), self.policies())

    def restore(self, data: bytes | memoryview) -> None:
        snap = _snap_decoder.decode(data)
        if snap.v != ACL_SNAPSHOT_VERSION:
            raise ValueError(f"acl snapshot version {snap.v}, this build knows {ACL_SNAPSHOT_VERSION}")
        self._tokens, self._by_hash, self._policies = {}, {}, {}
        for token in snap.tokens:
            self._tokens[token.accessor_id] = token
            self._by_hash[token.secret_sha256] = token.accessor_id
        self._policies = {p.name: p for p in snap.policies}
        self._index, self.bootstrap_index = snap.index, snap.bootstrap_index
