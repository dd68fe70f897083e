"""The chaos checker's compare-and-set register (KV ``cas``): hand-made histories that must pass or
fail, and a brute-force cross-check over random small histories mixing writes, deletes, reads and
cas of every outcome (including 409 conflicts)."""

from __future__ import annotations

import math
import random

import pytest

from raftreg.chaos.checker import check_history, check_key, format_key_history, lost_writes, participating
from raftreg.chaos.history import Op, Outcome
from raftreg.chaos.key_model import effect, mutates
from raftreg.chaos.prechecks import precheck_key
from tests.unit.test_checker import d, r, w

KEY = "svc/i1"


def cas(value: str, expect: str | None, invoke: float, complete: float | None, outcome: Outcome = "ok",
        conflict: bool = False, client: int = 2) -> Op:
    return Op(client=client, kind="cas", key=KEY, value=value, invoke=invoke,
              complete=None if outcome == "unknown" else complete, outcome=outcome, node="n1", expect=expect,
              conflict=conflict)


def verdict(ops: list[Op]) -> str:
    report = check_history(ops, budget_s=10)
    assert check_key(ops, budget_s=10).status == ("violation" if report.verdict == "violation" else "ok")
    return report.verdict


def test_sequential_cas_chain() -> None:
    ops = [cas("a", None, 0, 1), cas("b", "a", 2, 3), r("b", 4, 5), cas("c", "a", 6, 7, conflict=True)]
    assert verdict(ops) == "ok"


def test_two_successful_cas_from_the_same_value_is_a_violation() -> None:
    """Both clients read "a" and both cas from it: only one can win (a lost update)."""
    ops = [w("a", 0, 1), cas("b", "a", 2, 3), cas("c", "a", 4, 5, client=3)]
    assert verdict(ops) == "violation"
    report = check_history(ops)
    assert "cas 'c' if 'a'" in report.reason and report.failing_key == KEY


def test_concurrent_cas_from_the_same_value_one_wins_one_conflicts() -> None:
    ops = [w("a", 0, 1), cas("b", "a", 2, 5), cas("c", "a", 2, 5, client=3, conflict=True), r("b", 6, 7)]
    assert verdict(ops) == "ok"
    ops[-1] = r("c", 6, 7)  # the read sees the value of the cas that conflicted
    assert verdict(ops) == "violation"


def test_a_conflict_while_the_key_certainly_held_the_expected_value_is_a_violation() -> None:
    assert verdict([w("a", 0, 1), cas("b", "a", 2, 3, conflict=True), r("a", 4, 5)]) == "violation"
    assert verdict([cas("b", None, 0, 1, conflict=True)]) == "violation"  # absent, yet cas=0 refused


def test_a_cas_whose_outcome_is_unknown_may_or_may_not_have_applied() -> None:
    base = [w("a", 0, 1), cas("b", "a", 2, None, outcome="unknown")]
    assert verdict([*base, r("a", 3, 4)]) == "ok"
    assert verdict([*base, r("b", 3, 4)]) == "ok"
    assert verdict([*base, r("b", 3, 4), r("a", 5, 6)]) == "violation"  # applied, then undone by nothing
    # an unknown cas from a value the key never held cannot explain a read of its value
    assert verdict([w("a", 0, 1), cas("b", "z", 2, None, outcome="unknown"), r("b", 3, 4)]) == "violation"


def test_a_cas_value_counts_as_written_for_reads_and_lost_writes() -> None:
    ops = [cas("a", None, 0, 1), r("a", 2, 3)]
    assert precheck_key(ops) is None and verdict(ops) == "ok"
    assert lost_writes(ops, {KEY: None}) == [ops[0]]
    assert lost_writes(ops, {KEY: "a"}) == []
    assert lost_writes([*ops, cas("x", "a", 4, 5, conflict=True)], {KEY: "a"}) == []


def test_an_unknown_write_before_a_conflict_is_not_left_out() -> None:
    """Dropping the unknown write would leave "a" for the conflict on "a" to see: it must be placed."""
    ops = [w("a", 0, 1), w("b", 2, None, outcome="unknown"), cas("c", "a", 3, 4, conflict=True)]
    assert verdict(ops) == "ok"


def test_malformed_cas_is_rejected() -> None:
    with pytest.raises(ValueError):
        participating([Op(client=0, kind="cas", key=KEY, value=None, invoke=0, complete=1, outcome="ok")])
    with pytest.raises(ValueError):
        participating([w("a", 0, 1).__class__(client=0, kind="write", key=KEY, value="a", invoke=0, complete=1,
                                               outcome="ok", conflict=True)])


# ---- brute-force cross-check ---------------------------------------------------------------------


def brute_force(ops: list[Op]) -> bool:
    """Every order consistent with real time; an unknown op may be left out (= placed last)."""
    part = participating(ops)
    rets = [math.inf if o.outcome == "unknown" else o.complete for o in part]

    def step(op: Op, state: str | None) -> tuple[bool, str | None]:
        if op.kind == "read":
            return op.value == state, state
        if op.kind == "cas" and op.conflict:
            return op.expect != state, state
        if op.kind == "cas":
            if op.expect == state:
                return True, op.value
            return op.outcome == "unknown", state
        return True, effect(op) if mutates(op) else state

    def search(remaining: frozenset[int], state: str | None) -> bool:
        if not remaining:
            return True
        for i in remaining:
            op = part[i]
            if any(rets[j] < op.invoke for j in remaining if j != i):  # type: ignore[operator]
                continue
            legal, new = step(op, state)
            if legal and search(remaining - {i}, new):
                return True
        return False

    return search(frozenset(range(len(part))), None)


def random_history(rng: random.Random) -> list[Op]:
    ops: list[Op] = []
    written: list[str | None] = [None]
    for j in range(rng.randint(1, 8)):
        invoke = float(rng.randint(0, 12))
        complete = invoke + float(rng.randint(0, 4))
        outcome: Outcome = rng.choices(["ok", "unknown", "fail"], [0.75, 0.15, 0.1])[0]
        kind = rng.choices(["write", "delete", "read", "cas"], [0.2, 0.1, 0.35, 0.35])[0]
        client = rng.randint(0, 3)
        if kind == "write":
            written.append(f"v{j}")
            ops.append(w(f"v{j}", invoke, complete, outcome, client))
        elif kind == "delete":
            ops.append(d(invoke, complete, outcome, client))
        elif kind == "read":
            ops.append(r(rng.choice(written), invoke, complete, "consistent", client, outcome=outcome))
        else:
            conflict = outcome == "ok" and rng.random() < 0.4
            ops.append(cas(f"v{j}", rng.choice(written), invoke, complete, outcome, conflict, client))
            written.append(f"v{j}")
    return ops


def test_search_and_prechecks_agree_with_brute_force_on_cas_histories() -> None:
    rng = random.Random(11)
    verdicts = {True: 0, False: 0}
    for _ in range(3000):
        ops = random_history(rng)
        expected = brute_force(ops)
        verdicts[expected] += 1
        assert check_key(ops, budget_s=10).status == ("ok" if expected else "violation"), format_key_history(ops)
        if precheck_key(ops) is not None:
            assert not expected, format_key_history(ops)
        assert check_history(ops).verdict == ("ok" if expected else "violation"), format_key_history(ops)
    assert min(verdicts.values()) > 500, verdicts
