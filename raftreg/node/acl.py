"""``AclManager``: one node's side of ACLs: finding a token by its secret, deciding a permission,
and the ACL writes (bootstrap, tokens, policies), each through the log.

Contract:
- Secrets are generated here, on the node that proposes (``secrets.token_hex``); only their
  sha256 enters the log. A secret is answered once, by the create or bootstrap call, and
  never logged.
- ``resolve(secret)``: the token whose secret it is (its hash compared with
  ``hmac.compare_digest``), or ``None``.
- Bootstrap works once; then ``PermissionDenied``, unless the file ``acl-bootstrap-reset`` in
  the data directory of the node that receives the call holds the index of the last bootstrap
  (as Consul's reset index): that allows one more, and the file is removed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

from raftreg.config import AclSettings
from raftreg.errors import InvalidArgument, NotFound, PermissionDenied
from raftreg.node.authority import Authority
from raftreg.node.writes import Writer, unexpected
from raftreg.raft import RaftNode
from raftreg.state.acl import AclChanged, AclStore
from raftreg.state.acl_rules import (
    Permission,
    Policy,
    Resource,
    Rule,
    RuleError,
    Token,
    check_rule,
    parse_rule,
)
from raftreg.state.commands import AclBootstrap, AclPolicyDelete, AclPolicySet, AclTokenDelete, AclTokenSet

__all__ = ["AclManager", "Authority", "Permission", "Policy", "Rule", "Token", "parse_rules", "sha256_hex"]

log = logging.getLogger("raftreg.acl")
RESET_FILE = "acl-bootstrap-reset"
MAX_RULES = 256


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_rules(items: list[object], field: str = "rules") -> tuple[Rule, ...]:
    """Rules given as strings (``'key_prefix "a/" read'``) or objects (``{"kind", "name",
    "access"}``); ``InvalidArgument`` naming ``rules[i]`` for a bad one."""
    if len(items) > MAX_RULES:
        raise InvalidArgument(f"at most {MAX_RULES} rules", field=field)
    rules = []
    for i, item in enumerate(items):
        try:
            if isinstance(item, str):
                rules.append(parse_rule(item))
            elif isinstance(item, dict) and set(item) <= {"kind", "name", "access"}:
                name = item.get("name")
                rules.append(check_rule(str(item.get("kind")), name if isinstance(name, str) else "",
                                        str(item.get("access")), named=isinstance(name, str)))
            else:
                raise RuleError("a rule is a string or an object {kind, name, access}")
        except RuleError as exc:
            raise InvalidArgument(str(exc), field=f"{field}[{i}]") from None
    return tuple(rules)


class AclManager:
    def __init__(self, settings: AclSettings, raft: RaftNode, writer: Writer, data_dir: Path) -> None:
        self.settings = settings
        self._raft = raft
        self._writer = writer
        self._data_dir = data_dir

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    @property
    def default_allow(self) -> bool:
        return self.settings.default_policy == "allow"

    # ---- decisions ----------------------------------------------------------------------
    def resolve(self, secret: str) -> Authority | None:
        """The authority of ``secret``'s token, or ``None`` for an unknown secret."""
        digest = sha256_hex(secret)
        with self._raft.lock:
            acl = self._raft.state.acl
            token, index = acl.by_secret_hash(digest), acl.index
        if token is None or not hmac.compare_digest(token.secret_sha256, digest):
            return None
        return Authority(token, index, self.default_allow)

    def accessor_of(self, secret: str) -> str | None:
        """The accessor id of ``secret``'s token, or ``None`` for an unknown secret (what the rate
        limiter keys a client on: ``raftreg.http.limits``)."""
        authority = self.resolve(secret)
        return authority.accessor_id if authority is not None and authority.token is not None else None

    def anonymous(self) -> Authority:
        with self._raft.lock:
            index = self._raft.state.acl.index
        return Authority(None, index, self.default_allow)

    def allows(self, authority: Authority, resource: Resource, name: str, need: str) -> bool:
        """Whether ``authority`` may ``need`` (read/write) ``resource`` ``name`` now."""
        return self.reader(authority)(resource, name, need)

    def reader(self, authority: Authority) -> Callable[[Resource, str, str], bool]:
        """``allows`` for many names at once (filtering a list): the token's rules are read once."""
        if authority.operator:
            return lambda _resource, _name, _need: True
        with self._raft.lock:
            rules = self._raft.state.acl.effective_rules(authority.token)

        def decide(resource: Resource, name: str, need: str) -> bool:
            perm = Permission(resource, name, "write" if need == "write" else "read")
            return AclStore.allows(rules, perm, authority.default_allow)

        return decide

    # ---- reads --------------------------------------------------------------------------
    def tokens(self) -> tuple[int, list[Token]]:
        with self._raft.lock:
            acl = self._raft.state.acl
            return acl.index, acl.tokens()

    def token(self, accessor_id: str) -> tuple[int, Token | None]:
        with self._raft.lock:
            acl = self._raft.state.acl
            return acl.index, acl.token(accessor_id)

    def policies(self) -> tuple[int, list[Policy]]:
        with self._raft.lock:
            acl = self._raft.state.acl
            return acl.index, acl.policies()

    def policy(self, name: str) -> tuple[int, Policy | None]:
        with self._raft.lock:
            acl = self._raft.state.acl
            return acl.index, acl.policy(name)

    # ---- writes -------------------------------------------------------------------------
    async def bootstrap(self) -> tuple[int, Token, str]:
        """Create the management token: (index, token, secret); see the module docstring."""
        reset_path = self._data_dir / RESET_FILE
        reset_index = 0
        if reset_path.exists():
            try:
                reset_index = int(reset_path.read_text().strip())
            except (OSError, ValueError):
                log.warning("event=acl_reset_file_unreadable path=%s", reset_path)
        secret = secrets.token_hex(32)
        token = Token(str(uuid.uuid4()), sha256_hex(secret), description="bootstrap token (management)")
        committed = await self._writer.commit(AclBootstrap(token, reset_index), bounded=False)
        result = committed.result
        if not isinstance(result, AclChanged):
            raise unexpected("the ACL bootstrap", result)
        if not result.ok or result.token is None:
            with self._raft.lock:
                current = self._raft.state.acl.bootstrap_index
            raise PermissionDenied(f"ACLs are already bootstrapped (reset index {current}: write it to "
                                   f"{RESET_FILE} in the data directory of the node you call to bootstrap again)")
        if reset_index:
            reset_path.unlink(missing_ok=True)
        log.info("event=acl_bootstrapped accessor=%s index=%d", result.token.accessor_id, committed.index)
        return committed.index, result.token, secret

    async def token_create(self, description: str, rules: tuple[Rule, ...],
                           policies: tuple[str, ...]) -> tuple[int, Token, str]:
        """A new token: (index, token, secret)."""
        secret = secrets.token_hex(32)
        token = Token(str(uuid.uuid4()), sha256_hex(secret), description, rules, policies)
        return (*await self._set_token(token), secret)

    async def token_update(self, accessor_id: str, description: str | None, rules: tuple[Rule, ...] | None,
                           policies: tuple[str, ...] | None) -> tuple[int, Token]:
        """Change a token's description, rules or policies (``None``: unchanged); its secret stays."""
        _, old = self.token(accessor_id)
        if old is None:
            raise NotFound(f"no token {accessor_id!r}")
        token = Token(accessor_id, old.secret_sha256, old.description if description is None else description,
                      old.rules if rules is None else rules, old.policies if policies is None else policies)
        return await self._set_token(token)

    async def _set_token(self, token: Token) -> tuple[int, Token]:
        committed = await self._writer.commit(AclTokenSet(token))
        result = committed.result
        if not isinstance(result, AclChanged) or result.token is None:
            raise unexpected("the token", result)
        return committed.index, result.token

    async def token_delete(self, accessor_id: str) -> tuple[int, bool]:
        """Delete a token: (index, whether it existed)."""
        return await self._delete(AclTokenDelete(accessor_id))

    async def policy_set(self, name: str, description: str, rules: tuple[Rule, ...]) -> tuple[int, Policy]:
        committed = await self._writer.commit(AclPolicySet(Policy(name, description, rules)))
        result = committed.result
        if not isinstance(result, AclChanged) or result.policy is None:
            raise unexpected("the policy", result)
        return committed.index, result.policy

    async def policy_delete(self, name: str) -> tuple[int, bool]:
        """Delete a policy (its tokens keep naming it, and get nothing from it)."""
        return await self._delete(AclPolicyDelete(name))

    async def _delete(self, cmd: AclTokenDelete | AclPolicyDelete) -> tuple[int, bool]:
        committed = await self._writer.commit(cmd)
        if not isinstance(committed.result, AclChanged):
            raise unexpected("the ACL deletion", committed.result)
        return committed.index, committed.result.existed
