"""The ACL rules engine: pure functions from rules and a requested permission to a decision.

Rules have Consul's shape (a useful subset): ``service "cart"``, ``service_prefix ""``,
``key "app/db"``, ``key_prefix "app/"``, ``session_prefix ""``, ``operator``, ``acl``, each
followed by ``read``, ``write`` or ``deny``.

Contract (``decide``):
- A request names a resource (``service``, ``key``, ``session``, ``operator``, ``acl``), a name
  (empty for ``operator`` and ``acl``) and the access it needs (``read`` or ``write``).
- The rules that decide are the exact ones for that name (``service "cart"``, ``key "a/b"``) if
  there are any; else the prefix rules with the longest prefix of the name. Among the deciding
  rules (several tokens' policies may give several), ``deny`` wins, else the strongest access.
- ``write`` implies ``read``; ``deny`` grants nothing.
- No matching rule: ``None`` (the caller applies the cluster's default policy; ``acl`` is never
  granted by default).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

import msgspec

Access = Literal["read", "write", "deny"]
Need = Literal["read", "write"]
RuleKind = Literal["service", "service_prefix", "key", "key_prefix", "session_prefix", "operator", "acl"]
Resource = Literal["service", "key", "session", "operator", "acl"]

NAMED_KINDS: frozenset[str] = frozenset({"service", "service_prefix", "key", "key_prefix", "session_prefix"})
_EXACT: dict[str, str] = {"service": "service", "key": "key"}
_PREFIX: dict[str, str] = {"service": "service_prefix", "key": "key_prefix", "session": "session_prefix"}
_RANK = {"deny": 0, "read": 1, "write": 2}
_RULE_RE = re.compile(r'^\s*([a-z_]+)\s*(?:"((?:[^"\\]|\\.)*)")?\s*([a-z]+)\s*$')
MAX_RULE_NAME = 512


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One rule: ``kind`` (``name`` is empty for ``operator`` and ``acl``) grants ``access``."""

    kind: RuleKind
    access: Access
    name: str = ""

    def __str__(self) -> str:
        if self.kind not in NAMED_KINDS:
            return f"{self.kind} {self.access}"
        quoted = self.name.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.kind} "{quoted}" {self.access}'


class Permission(msgspec.Struct, frozen=True):
    """What a request needs: ``need`` on ``resource`` ``name``."""

    resource: Resource
    name: str
    need: Need

    def __str__(self) -> str:
        if self.resource in ("operator", "acl"):
            return f"{self.resource}:{self.need}"
        return f"{self.resource}:{self.need} on {self.name!r}"


class RuleError(ValueError):
    """A rule that does not parse or is not valid (the message says why)."""


def parse_rule(text: str) -> Rule:
    """``'service_prefix "cart" write'`` -> ``Rule``; ``RuleError`` when malformed."""
    match = _RULE_RE.match(text)
    if match is None:
        raise RuleError(f"cannot parse rule {text!r}: expected e.g. 'service_prefix \"cart\" write' or 'operator read'")
    kind, name, access = match.group(1), match.group(2), match.group(3)
    if name is not None:
        name = re.sub(r"\\(.)", r"\1", name)
    return check_rule(kind, "" if name is None else name, access, named=name is not None)


def check_rule(kind: str, name: str, access: str, *, named: bool = True) -> Rule:
    """A validated ``Rule`` (``named``: a name was given, required exactly for the named kinds)."""
    if kind not in NAMED_KINDS and kind not in ("operator", "acl"):
        raise RuleError(f"unknown rule kind {kind!r}")
    if access not in _RANK:
        raise RuleError(f"unknown access {access!r} (read, write or deny)")
    if kind in NAMED_KINDS and not named:
        raise RuleError(f"a {kind} rule needs a quoted name (\"\" for every name)")
    if kind not in NAMED_KINDS and (named or name):
        raise RuleError(f"an {kind} rule takes no name")
    if len(name) > MAX_RULE_NAME:
        raise RuleError(f"rule names are at most {MAX_RULE_NAME} characters")
    return Rule(kind, access, name)  # type: ignore[arg-type]


def _combine(accesses: Iterable[str]) -> str:
    ranked = sorted(accesses, key=_RANK.__getitem__)
    return ranked[0] if ranked[0] == "deny" else ranked[-1]


def decide(rules: Iterable[Rule], perm: Permission) -> bool | None:
    """Whether ``rules`` grant ``perm``; ``None`` when no rule speaks of it (see the docstring)."""
    access = matching_access(rules, perm.resource, perm.name)
    if access is None:
        return None
    return access != "deny" and _RANK[access] >= _RANK[perm.need]


def matching_access(rules: Iterable[Rule], resource: Resource, name: str) -> str | None:
    """The access the deciding rules give on ``resource`` ``name``, or ``None``."""
    rules = list(rules)
    if resource in ("operator", "acl"):
        found = [r.access for r in rules if r.kind == resource]
        return _combine(found) if found else None
    exact_kind = _EXACT.get(resource)
    exact = [r.access for r in rules if r.kind == exact_kind and r.name == name]
    if exact:
        return _combine(exact)
    prefix_kind = _PREFIX[resource]
    best = -1
    found = []
    for rule in rules:
        if rule.kind == prefix_kind and name.startswith(rule.name):
            if len(rule.name) > best:
                best, found = len(rule.name), [rule.access]
            elif len(rule.name) == best:
                found.append(rule.access)
    return _combine(found) if found else None


def may_write_subtree(rules: Iterable[Rule], prefix: str, default_allow: bool) -> bool:
    """Whether every key starting with ``prefix`` may be written (a recursive delete): the prefix
    itself is writable and no more specific rule under it gives less than ``write``."""
    rules = list(rules)
    here = decide(rules, Permission("key", prefix, "write"))
    if not (default_allow if here is None else here):
        return False
    return all(r.access == "write" for r in rules
               if r.kind in ("key", "key_prefix") and r.name.startswith(prefix) and len(r.name) > len(prefix))


MANAGEMENT_RULES: tuple[Rule, ...] = (
    Rule("acl", "write"), Rule("operator", "write"), Rule("service_prefix", "write"),
    Rule("key_prefix", "write"), Rule("session_prefix", "write"),
)
"""The rules of the bootstrap (management) token: everything."""


class Policy(msgspec.Struct, frozen=True):
    """A named set of rules that tokens refer to (``policies``)."""

    name: str
    description: str = ""
    rules: tuple[Rule, ...] = ()
    create_index: int = 0
    modify_index: int = 0


class Token(msgspec.Struct, frozen=True):
    """An ACL token as stored and replicated: never its secret, only ``secret_sha256`` (hex)."""

    accessor_id: str
    secret_sha256: str
    description: str = ""
    rules: tuple[Rule, ...] = ()
    policies: tuple[str, ...] = ()
    create_index: int = 0
    modify_index: int = 0
