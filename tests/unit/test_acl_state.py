"""The ACL part of the state machine and its rules engine (raftreg.state.acl, acl_rules)."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftreg.models import Instance, Session, TxnOp
from raftreg.state.acl import AclChanged, Denied
from raftreg.state.acl_rules import (
    Permission,
    Policy,
    Rule,
    RuleError,
    Token,
    decide,
    matching_access,
    may_write_subtree,
    parse_rule,
)
from raftreg.state.commands import (
    AclBootstrap,
    AclPolicySet,
    AclTokenDelete,
    AclTokenSet,
    Authorized,
    KVDelete,
    KVSet,
    KVTxn,
    Register,
    SessionCreate,
    decode_entry,
    encode_entry,
)
from raftreg.state.machine import StateMachine


def sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token(accessor: str, *rules: str, policies: tuple[str, ...] = ()) -> Token:
    return Token(accessor, sha("s-" + accessor), rules=tuple(parse_rule(r) for r in rules), policies=policies)


# ---- parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "rule"), [
    ('service_prefix "cart" write', Rule("service_prefix", "write", "cart")),
    ('service "" read', Rule("service", "read", "")),
    ('key "a/\\"b" deny', Rule("key", "deny", 'a/"b')),
    ("operator read", Rule("operator", "read")),
    ("  acl   write ", Rule("acl", "write")),
])
def test_parse_rule(text: str, rule: Rule) -> None:
    assert parse_rule(text) == rule
    assert parse_rule(str(rule)) == rule


@pytest.mark.parametrize("text", ["service cart write", 'service "x" admin', 'operator "x" read', 'node_prefix "" read',
                                  'key_prefix ""', "", 'service "x" write extra'])
def test_parse_rule_refuses(text: str) -> None:
    with pytest.raises(RuleError):
        parse_rule(text)


# ---- the engine ------------------------------------------------------------------------------
def rules(*texts: str) -> list[Rule]:
    return [parse_rule(t) for t in texts]


def test_exact_beats_prefix_and_longest_prefix_wins() -> None:
    r = rules('service_prefix "" write', 'service_prefix "cart" deny', 'service "cart-api" read')
    assert decide(r, Permission("service", "web", "write")) is True
    assert decide(r, Permission("service", "cart", "read")) is False
    assert decide(r, Permission("service", "cart-db", "read")) is False
    assert decide(r, Permission("service", "cart-api", "read")) is True
    assert decide(r, Permission("service", "cart-api", "write")) is False


def test_deny_wins_at_equal_specificity_and_no_rule_is_none() -> None:
    r = rules('key_prefix "app/" write', 'key_prefix "app/" deny')
    assert decide(r, Permission("key", "app/x", "read")) is False
    assert decide(r, Permission("key", "other", "read")) is None
    assert decide(r, Permission("operator", "", "read")) is None
    assert decide(rules("operator read"), Permission("operator", "", "write")) is False
    assert decide(rules("operator write"), Permission("operator", "", "read")) is True


def test_recursive_delete_needs_write_on_the_whole_subtree() -> None:
    assert may_write_subtree(rules('key_prefix "a/" write'), "a/", default_allow=False)
    assert not may_write_subtree(rules('key_prefix "a/" write', 'key "a/secret" read'), "a/", default_allow=False)
    assert not may_write_subtree(rules('key_prefix "a/" write', 'key_prefix "a/b" deny'), "a/", default_allow=True)
    assert not may_write_subtree([], "a/", default_allow=False)
    assert may_write_subtree([], "a/", default_allow=True)


ACCESS = st.sampled_from(["read", "write", "deny"])
NAMES = st.text(alphabet="ab/", max_size=4)
RULES = st.lists(st.builds(lambda kind, name, access: Rule(kind, access, name),
                           st.sampled_from(["service", "service_prefix"]), NAMES, ACCESS), max_size=6)


@given(RULES, NAMES)
def test_write_implies_read_and_deny_grants_nothing(rs: list[Rule], name: str) -> None:
    w = decide(rs, Permission("service", name, "write"))
    r = decide(rs, Permission("service", name, "read"))
    assert (w is None) == (r is None)
    if w:
        assert r
    if matching_access(rs, "service", name) == "deny":
        assert r is False


@given(RULES, NAMES, st.permutations(range(6)))
def test_decision_is_order_independent(rs: list[Rule], name: str, order: list[int]) -> None:
    shuffled = [rs[i] for i in order if i < len(rs)]
    for need in ("read", "write"):
        perm = Permission("service", name, need)  # type: ignore[arg-type]
        assert decide(rs, perm) == decide(shuffled, perm)


@given(RULES, NAMES, ACCESS)
def test_an_exact_rule_decides_alone(rs: list[Rule], name: str, access: str) -> None:
    exact = Rule("service", access, name)  # type: ignore[arg-type]
    rs = [r for r in rs if not (r.kind == "service" and r.name == name)] + [exact]
    assert matching_access(rs, "service", name) == access


# ---- the store through the machine ------------------------------------------------------------
def test_bootstrap_once_then_only_with_the_reset_index() -> None:
    m = StateMachine()
    first = m.apply(5, AclBootstrap(token("boot")))
    assert isinstance(first, AclChanged) and first.ok and first.token is not None
    assert first.token.create_index == 5 and m.acl.bootstrap_index == 5
    again = m.apply(6, AclBootstrap(token("second")))
    assert isinstance(again, AclChanged) and not again.ok
    stale = m.apply(7, AclBootstrap(token("third"), reset_index=4))
    assert isinstance(stale, AclChanged) and not stale.ok
    reset = m.apply(8, AclBootstrap(token("fourth"), reset_index=5))
    assert isinstance(reset, AclChanged) and reset.ok and m.acl.bootstrap_index == 8
    assert m.acl.by_secret_hash(sha("s-fourth")) is not None


def test_token_update_keeps_secret_and_create_index_and_delete_forgets_the_hash() -> None:
    m = StateMachine()
    m.apply(3, AclTokenSet(token("t1", 'service "a" read')))
    m.apply(9, AclTokenSet(msgspec.structs.replace(token("t1", 'service "a" write'), secret_sha256="other")))
    stored = m.acl.token("t1")
    assert stored is not None and stored.secret_sha256 == sha("s-t1")
    assert (stored.create_index, stored.modify_index) == (3, 9) and m.acl.index == 9
    m.apply(10, AclTokenDelete("t1"))
    assert m.acl.token("t1") is None and m.acl.by_secret_hash(sha("s-t1")) is None


def authorized(accessor: str, cmd: object, default_allow: bool = False) -> Authorized:
    return Authorized(accessor, 1, default_allow, cmd)  # type: ignore[arg-type]


def test_apply_rechecks_the_token_and_its_policies() -> None:
    m = StateMachine()
    m.apply(1, AclPolicySet(Policy("cart", rules=(parse_rule('service_prefix "cart" write'),))))
    m.apply(2, AclTokenSet(token("t1", policies=("cart",))))
    inst = Instance(service="cart", id="i1", address="10.0.0.1", port=80)
    assert not isinstance(m.apply(3, authorized("t1", Register(inst))), Denied)
    assert m.registry.get_instance("cart", "i1") is not None
    other = Instance(service="web", id="i1", address="10.0.0.1", port=80)
    denied = m.apply(4, authorized("t1", Register(other)))
    assert isinstance(denied, Denied) and "service:write on 'web'" in denied.permission
    m.apply(5, AclTokenDelete("t1"))
    gone = m.apply(6, authorized("t1", Register(inst)))
    assert isinstance(gone, Denied) and gone.reason == "token_not_found"
    # anonymous under the default policy, and never acl management by default
    assert not isinstance(m.apply(7, authorized("", Register(other), default_allow=True)), Denied)
    assert isinstance(m.apply(8, authorized("", AclTokenSet(token("x")), default_allow=True)), Denied)


def test_one_entry_applies_in_order() -> None:
    """Group commit puts several commands in one entry (one index): a write before the
    revocation in that entry applies, one after it is refused, on every replica alike."""
    m = StateMachine()
    m.apply(1, AclTokenSet(token("t", 'service "cart" write')))
    inst = Instance(service="cart", id="i1", address="10.0.0.1", port=80)
    later = Instance(service="cart", id="i2", address="10.0.0.1", port=80)
    results = [m.apply(7, cmd) for cmd in (authorized("t", Register(inst)), AclTokenDelete("t"),
                                           authorized("t", Register(later)))]
    assert not isinstance(results[0], Denied) and isinstance(results[2], Denied)
    assert m.registry.get_instance("cart", "i1") is not None and m.registry.get_instance("cart", "i2") is None


def test_kv_txn_recursive_delete_and_sessions_are_checked() -> None:
    m = StateMachine()
    m.apply(1, AclTokenSet(token("t", 'key_prefix "app/" write', 'key "app/ro" read', 'session_prefix "w" write')))
    assert isinstance(m.apply(2, authorized("t", KVSet("app/ro", b"x"))), Denied)
    assert not isinstance(m.apply(3, authorized("t", KVSet("app/rw", b"x"))), Denied)
    txn = KVTxn([TxnOp("get", "app/ro"), TxnOp("set", "app/rw", b"y")])
    assert not isinstance(m.apply(4, authorized("t", txn)), Denied)
    assert isinstance(m.apply(5, authorized("t", KVTxn([TxnOp("set", "app/ro", b"y")]))), Denied)
    assert isinstance(m.apply(6, authorized("t", KVDelete("app/", recurse=True))), Denied)
    assert isinstance(m.apply(7, authorized("t", SessionCreate(Session("s1", name="other")))), Denied)
    assert not isinstance(m.apply(8, authorized("t", SessionCreate(Session("s2", name="worker")))), Denied)


def test_a_lock_needs_write_on_its_session_too() -> None:
    """As Consul: ``?acquire``/``?release`` need ``key:write`` and ``session:write`` on the
    session's name, re-checked at apply (a token that lost the session right is refused)."""
    m = StateMachine()
    m.apply(1, SessionCreate(Session("s1", name="worker")))
    m.apply(2, AclTokenSet(token("keys", 'key_prefix "lock/" write')))
    m.apply(3, AclTokenSet(token("both", 'key_prefix "lock/" write', 'session_prefix "work" write')))
    for lock in ("acquire", "release"):
        denied = m.apply(4, authorized("keys", KVSet("lock/a", b"x", lock=lock, session="s1")))
        assert isinstance(denied, Denied) and "session:write on 'worker'" in denied.permission, denied
    assert m.kv.get("lock/a") is None
    assert not isinstance(m.apply(5, authorized("both", KVSet("lock/a", b"x", lock="acquire", session="s1"))),
                          Denied)
    assert m.kv.get("lock/a") is not None
    m.apply(6, AclTokenSet(token("both", 'key_prefix "lock/" write')))  # loses the session right
    revoked = m.apply(7, authorized("both", KVSet("lock/a", b"y", lock="release", session="s1")))
    assert isinstance(revoked, Denied) and "session:write" in revoked.permission
    assert not isinstance(m.apply(8, authorized("keys", KVSet("lock/a", b"z"))), Denied)  # a plain write


def test_snapshot_round_trip_and_version_2_still_restores() -> None:
    m = StateMachine()
    m.apply(1, AclPolicySet(Policy("p", rules=(parse_rule("operator read"),))))
    m.apply(2, AclBootstrap(token("boot")))
    data = m.snapshot()
    copy = StateMachine()
    copy.restore(data)
    assert copy.snapshot() == data and copy.acl.bootstrap_index == 2 and copy.acl.policy("p") is not None
    assert copy.acl.by_secret_hash(sha("s-boot")) is not None
    v2 = msgspec.msgpack.encode([2, m.registry.snapshot_struct(), m.kv.snapshot_struct(),
                                 m.sessions.snapshot_struct()])
    old = StateMachine()
    old.restore(v2)
    assert old.acl.tokens() == [] and old.acl.bootstrap_index == 0


def test_commands_round_trip_through_the_log_without_secrets() -> None:
    cmd = authorized("t", AclTokenSet(token("n", 'key "a" read')))
    raw = encode_entry([cmd])
    assert decode_entry(raw) == [cmd]
    assert b"s-n" not in raw
