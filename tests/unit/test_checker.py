"""The chaos linearizability checker: hand-made histories, a brute-force cross-check, a 10,000-op run,
lost writes and the JSONL history format."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import pytest

from raftreg.chaos.checker import (
    check_history,
    check_key,
    format_key_history,
    lost_writes,
    participating,
    precheck_key,
)
from raftreg.chaos.history import Op, Outcome, ReadMode, read_jsonl, write_jsonl

KEY = "svc/i1"


def w(value: str, invoke: float, complete: float | None, outcome: Outcome = "ok", client: int = 0,
      key: str = KEY) -> Op:
    return Op(client=client, kind="write", key=key, value=value, invoke=invoke,
              complete=None if outcome == "unknown" else complete, outcome=outcome, node="n1")


def d(invoke: float, complete: float | None, outcome: Outcome = "ok", client: int = 0, key: str = KEY) -> Op:
    return Op(client=client, kind="delete", key=key, value=None, invoke=invoke,
              complete=None if outcome == "unknown" else complete, outcome=outcome, node="n2")


def r(value: str | None, invoke: float, complete: float, mode: ReadMode = "consistent", client: int = 1,
      key: str = KEY, outcome: Outcome = "ok") -> Op:
    return Op(client=client, kind="read", key=key, value=value, invoke=invoke,
              complete=None if outcome == "unknown" else complete, outcome=outcome, node="n3", read_mode=mode)


def status(ops: list[Op]) -> str:
    """The overall verdict, after checking that the search alone agrees with it."""
    report = check_history(ops, budget_s=10)
    search = {check_key([o for o in ops if o.key == k], budget_s=10).status for k in {o.key for o in ops}}
    expected = "violation" if report.verdict == "violation" else "ok"
    assert search == {expected} or (expected == "violation" and "violation" in search)
    return report.verdict


# ---- must pass -----------------------------------------------------------------------------------


def test_sequential_write_then_read() -> None:
    assert status([w("a", 0, 1), r("a", 2, 3)]) == "ok"


def test_read_before_any_write_sees_absent() -> None:
    assert status([r(None, 0, 1), w("a", 2, 3), r("a", 4, 5)]) == "ok"


@pytest.mark.parametrize("seen", ["a", "b"])
def test_concurrent_writes_read_sees_either(seen: str) -> None:
    ops = [w("a", 0, 10, client=0), w("b", 1, 9, client=2), r(seen, 11, 12), r(seen, 13, 14, client=3)]
    assert status(ops) == "ok"


@pytest.mark.parametrize("seen", ["a", "b"])
def test_read_concurrent_with_write_sees_old_or_new(seen: str) -> None:
    ops = [w("a", 0, 1), w("b", 2, 10), r(seen, 3, 5)]
    assert status(ops) == "ok"


def test_unknown_write_that_never_shows_up() -> None:
    ops = [w("a", 0, 1), w("lost", 2, None, "unknown"), r("a", 3, 4), r("a", 50, 51), w("c", 60, 61), r("c", 62, 63)]
    assert status(ops) == "ok"


def test_unknown_write_that_shows_up_later() -> None:
    ops = [w("a", 0, 1), w("late", 2, None, "unknown"), r("a", 3, 4), r("a", 10, 11), r("late", 50, 51),
           r("late", 52, 53)]
    assert status(ops) == "ok"


def test_unknown_delete_that_shows_up_later() -> None:
    ops = [w("a", 0, 1), d(2, None, "unknown"), r("a", 3, 4), r(None, 10, 11)]
    assert status(ops) == "ok"


def test_delete_then_read_absent() -> None:
    assert status([w("a", 0, 1), d(2, 3), r(None, 4, 5)]) == "ok"


def test_failed_ops_are_dropped_and_only_consistent_reads_count() -> None:
    ops = [w("a", 0, 1), w("b", 2, 3, "fail"), d(4, 5, "fail"), r("a", 6, 7),
           r(None, 8, 9, mode="default"), r("zz", 10, 11, mode="min_index"), r("b", 12, 13, outcome="unknown"),
           r("b", 14, 15, outcome="fail")]
    assert status(ops) == "ok"
    assert len(participating(ops)) == 2


# ---- must be caught ------------------------------------------------------------------------------


def test_stale_read_after_acknowledged_overwrite() -> None:
    ops = [w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)]
    assert status(ops) == "violation"
    pre = precheck_key(ops)
    assert pre is not None and "stale read" in pre.reason
    assert [o.value for o in pre.culprits] == ["a", "a", "b"]


def test_stale_read_after_acknowledged_delete() -> None:
    ops = [w("a", 0, 1), d(2, 3), r("a", 4, 5)]
    assert status(ops) == "violation"
    assert precheck_key(ops) is not None


def test_lost_write_read_absent_without_delete() -> None:
    ops = [w("a", 0, 1), r(None, 2, 3)]
    assert status(ops) == "violation"
    pre = precheck_key(ops)
    assert pre is not None and "absent" in pre.reason


def test_read_absent_is_fine_when_a_delete_may_fall_between() -> None:
    ops = [w("a", 0, 1), d(-5, 0.5, client=3), r(None, 2, 3)]  # the delete overlaps the write
    assert status(ops) == "ok"
    assert status([w("a", 0, 1), d(2, None, "unknown"), r(None, 3, 4)]) == "ok"


def test_read_of_a_value_never_written() -> None:
    ops = [w("a", 0, 1), r("zz", 2, 3)]
    assert status(ops) == "violation"
    pre = precheck_key(ops)
    assert pre is not None and "never written" in pre.reason


def test_read_of_a_value_only_a_failed_write_wrote() -> None:
    pre = precheck_key([w("a", 0, 1, "fail"), r("a", 2, 3)])
    assert pre is not None and "only by writes that failed" in pre.reason


def test_non_monotonic_reads() -> None:
    # The writes overlap, so either order is fine, but not both: once a read saw "b", "a" is gone.
    ops = [w("a", 0, 10, client=0), w("b", 0, 10, client=2), r("b", 11, 12), r("a", 13, 14, client=3)]
    assert precheck_key(ops) is None  # only the search sees this one
    result = check_key(ops, budget_s=10)
    assert result.status == "violation" and result.detected_by == "search"
    assert [o.value for o in result.linearization][-1] == "b"
    assert result.culprits[0].value == "a" and result.culprits[0].kind == "read"
    assert check_history(ops).verdict == "violation"


def test_non_monotonic_reads_sequential_writes() -> None:
    ops = [w("a", 0, 1), w("b", 2, 10), r("b", 3, 4), r("a", 5, 6)]
    assert status(ops) == "violation"


def test_read_before_its_write_was_invoked() -> None:
    ops = [r("a", 0, 1), w("a", 2, 3)]
    assert status(ops) == "violation"
    pre = precheck_key(ops)
    assert pre is not None and "before it was written" in pre.reason


def test_unknown_write_read_before_it_was_invoked() -> None:
    assert status([r("a", 0, 1), w("a", 2, None, "unknown")]) == "violation"


def test_unknown_write_seen_then_unseen() -> None:
    ops = [w("a", 0, 1), w("u", 2, None, "unknown"), r("u", 3, 4), r("a", 5, 6)]
    assert status(ops) == "violation"


# ---- API details ---------------------------------------------------------------------------------


def test_history_report_names_the_smallest_failing_key() -> None:
    big = [w(f"x{i}", 10 * i, 10 * i + 1, key="svc/big") for i in range(5)] + [r("x0", 100, 101, key="svc/big")]
    small = [w("a", 0, 1, key="svc/small"), r("zz", 2, 3, key="svc/small")]
    fine = [w("a", 0, 1, key="svc/fine"), r("a", 2, 3, key="svc/fine")]
    report = check_history(big + small + fine)
    assert report.verdict == "violation"
    assert report.violating_keys == ["svc/big", "svc/small"]
    assert report.failing_key == "svc/small"
    assert report.smallest_failing_ops == tuple(small)
    assert report.timeline == format_key_history(small)
    assert report.reason.startswith("key svc/small: ") and "1 more violating key" in report.reason
    assert report.keys["svc/fine"].status == "ok" and report.keys_checked == 3


def test_budget_exhausted_is_unknown() -> None:
    ops = [w("a", 0, 1), r("a", 2, 3)]
    assert check_key(ops, budget_s=0).status == "timeout"
    report = check_history(ops, budget_s=0)
    assert report.verdict == "unknown" and report.timed_out_keys == [KEY] and report.failing_key is None


def test_state_limit_is_a_timeout() -> None:
    ops, _ = simulate(seed=1, n_ops=2000, clients=16, keys=1)
    result = check_key(ops, budget_s=60, max_states=10)
    assert result.status == "timeout" and "state limit of 10 states" in result.reason
    assert result.steps <= 2048
    assert check_history(ops, max_states=10).verdict == "unknown"


def test_ok_result_carries_a_witness() -> None:
    ops = [w("a", 0, 10), w("b", 1, 9, client=2), r("a", 11, 12)]
    result = check_key(ops, budget_s=10)
    assert result.status == "ok"
    assert [o.value for o in result.linearization] == ["b", "a", "a"]


def test_format_key_history() -> None:
    text = format_key_history([r("a", 1.002, 1.003), w("a", 1.0, 1.001), d(1.004, None, "unknown"),
                               r(None, 1.005, 1.006, mode="default")])
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["#0", "c0", "write", "'a'", "+0.000", "->", "+1.000", "ms", "ok", "n1"]
    assert lines[1].split()[2:4] == ["read", "'a'"]
    assert lines[2].split() == ["#2", "c0", "delete", "-", "+4.000", "->", "?", "ms", "unknown", "n2"]
    assert lines[3].split()[2:4] == ["read(default)", "absent"]
    assert format_key_history([]) == ""


def test_malformed_ops_are_rejected() -> None:
    with pytest.raises(ValueError, match="without a value"):
        check_history([Op(client=0, kind="write", key=KEY, value=None, invoke=0, complete=1, outcome="ok")])
    with pytest.raises(ValueError, match="no completion"):
        check_history([Op(client=0, kind="read", key=KEY, value=None, invoke=0, complete=None, outcome="ok")])
    with pytest.raises(ValueError, match="several keys"):
        check_key([w("a", 0, 1), w("b", 0, 1, key="svc/other")], budget_s=1)


# ---- brute-force cross-check ---------------------------------------------------------------------


def brute_force_linearizable(ops: list[Op]) -> bool:
    """Try every order consistent with real time; unknown ops return at +inf (no reductions)."""
    part = participating(ops)
    rets = [math.inf if o.outcome == "unknown" else o.complete for o in part]

    def search(remaining: frozenset[int], state: str | None) -> bool:
        if not remaining:
            return True
        for i in remaining:
            op = part[i]
            if any(rets[j] < op.invoke for j in remaining if j != i):  # type: ignore[operator]
                continue
            if op.kind == "read" and op.value != state:
                continue
            new_state = state if op.kind == "read" else op.value if op.kind == "write" else None
            if search(remaining - {i}, new_state):
                return True
        return False

    return search(frozenset(range(len(part))), None)


OUTCOMES: list[Outcome] = ["ok", "unknown", "fail"]


def random_small_history(rng: random.Random) -> list[Op]:
    ops: list[Op] = []
    written: list[str] = []
    for j in range(rng.randint(1, 8)):
        invoke = float(rng.randint(0, 12)) if rng.random() < 0.5 else rng.uniform(0, 12)
        complete = invoke + (float(rng.randint(0, 4)) if rng.random() < 0.5 else rng.uniform(0, 4))
        outcome: Outcome = rng.choices(OUTCOMES, [0.75, 0.15, 0.1])[0]
        kind = rng.choices(["write", "delete", "read"], [0.4, 0.15, 0.45])[0]
        client = rng.randint(0, 3)
        if kind == "write":
            new = rng.choice(written) if written and rng.random() < 0.1 else f"v{j}"
            written.append(new)
            ops.append(w(new, invoke, complete, outcome, client))
        elif kind == "delete":
            ops.append(d(invoke, complete, outcome, client))
        else:
            seen: list[str | None] = [*written, None, None] if rng.random() < 0.95 else ["zz"]
            mode: ReadMode = "consistent" if rng.random() < 0.9 else "default"
            ops.append(r(rng.choice(seen), invoke, complete, mode, client, outcome=outcome))
    return ops


def test_search_and_prechecks_agree_with_brute_force() -> None:
    rng = random.Random(7)
    verdicts = {True: 0, False: 0}
    for _ in range(3000):
        ops = random_small_history(rng)
        expected = brute_force_linearizable(ops)
        verdicts[expected] += 1
        result = check_key(ops, budget_s=10)
        assert result.status == ("ok" if expected else "violation"), format_key_history(ops)
        if precheck_key(ops) is not None:
            assert not expected, format_key_history(ops)
        assert check_history(ops).verdict == result.status
    assert min(verdicts.values()) > 500  # both kinds well represented


# ---- a large generated history -------------------------------------------------------------------


def simulate(seed: int, n_ops: int = 10_000, clients: int = 8, keys: int = 20, unknown: float = 0.05,
             fail: float = 0.02) -> tuple[list[Op], dict[str, str | None]]:
    """A linearizable history and the final state: every op that takes effect is applied to a dict at a
    random point of its interval (unknown ones half the time, up to 3 durations after their invocation)."""
    rng = random.Random(seed)
    names = [f"svc{k % 4}/i{k}" for k in range(keys)]
    clock = [rng.uniform(0, 1e-3) for _ in range(clients)]
    planned: list[tuple[float | None, int, dict[str, object]]] = []
    for j in range(n_ops):
        c = min(range(clients), key=clock.__getitem__)
        invoke = clock[c]
        duration = rng.uniform(0.2e-3, 8e-3)
        complete: float | None = invoke + duration
        roll = rng.random()
        kind = "write" if roll < 0.45 else "delete" if roll < 0.55 else "read"
        mode = ("consistent" if rng.random() < 0.8 else "default") if kind == "read" else ""
        roll = rng.random()
        outcome = "unknown" if roll < unknown else "fail" if roll < unknown + fail else "ok"
        point: float | None = rng.uniform(invoke, invoke + duration)
        if outcome == "fail" or (kind == "read" and mode != "consistent"):
            point = None
        elif outcome == "unknown":
            complete = None
            point = rng.uniform(invoke, invoke + 3 * duration) if kind != "read" and rng.random() < 0.5 else None
        clock[c] = invoke + duration + rng.uniform(0, 1e-3)
        fields: dict[str, object] = {"client": c, "kind": kind, "key": rng.choice(names), "invoke": invoke,
                                     "complete": complete, "outcome": outcome, "node": f"n{rng.randint(1, 3)}",
                                     "read_mode": mode, "value": f"c{c}-{j}" if kind == "write" else None}
        planned.append((point, j, fields))
    state: dict[str, str | None] = {}
    seen: dict[str, list[str | None]] = {name: [None] for name in names}
    for _, _, fields in sorted((p for p in planned if p[0] is not None), key=lambda p: (p[0], p[1])):
        key = str(fields["key"])
        if fields["kind"] == "read":
            fields["value"] = state.get(key)
        else:
            state[key] = fields["value"]  # type: ignore[assignment]
            seen[key].append(state[key])
    for point, _, fields in planned:
        if fields["kind"] == "read" and point is None and fields["outcome"] == "ok":  # default reads: any old value
            fields["value"] = rng.choice(seen[str(fields["key"])])
    return [Op(**fields) for _, _, fields in planned], state  # type: ignore[arg-type]


def corrupt_one_read(ops: list[Op]) -> tuple[list[Op], int]:
    """Make a consistent read in the second half return a value overwritten before it began."""
    for i in range(len(ops) // 2, len(ops)):
        read = ops[i]
        if read.kind != "read" or read.read_mode != "consistent" or read.outcome != "ok":
            continue
        acked = [o for o in ops if o.key == read.key and o.kind == "write" and o.outcome == "ok"]
        for old in acked:
            assert old.complete is not None and read.complete is not None
            overwritten = any(x.outcome == "ok" and x.kind != "read" and x.key == read.key and x.invoke > old.complete
                              and x.complete is not None and x.complete < read.invoke for x in ops)
            if overwritten and old.value != read.value:
                bad = Op(**{**read.__dict__, "value": old.value})
                return [*ops[:i], bad, *ops[i + 1:]], i
    raise AssertionError("no read to corrupt")


def test_ten_thousand_ops_check_fast() -> None:
    ops, _ = simulate(seed=1)
    assert len(ops) == 10_000
    assert 300 < sum(o.outcome == "unknown" for o in ops) < 700

    started = time.monotonic()
    report = check_history(ops, budget_s=60)
    elapsed = time.monotonic() - started
    assert report.verdict == "ok", report.reason
    assert report.keys_checked == 20
    assert elapsed < 5.0, f"10,000-op history took {elapsed:.2f}s"

    bad, i = corrupt_one_read(ops)
    report = check_history(bad, budget_s=60)
    assert report.verdict == "violation"
    assert report.failing_key == ops[i].key and report.violating_keys == [ops[i].key]
    assert bad[i] in report.keys[ops[i].key].culprits
    # The search alone finds it too.
    alone = check_key([o for o in bad if o.key == ops[i].key], budget_s=30)
    assert alone.status == "violation"


# ---- lost writes ---------------------------------------------------------------------------------


def test_lost_writes() -> None:
    a, b = w("a", 0, 1), w("b", 2, 3)
    assert lost_writes([a], {KEY: None}) == [a]
    assert lost_writes([a], {}) == [a]  # a missing key is absent
    assert lost_writes([a], {KEY: "a"}) == []
    assert lost_writes([a, b], {KEY: "b"}) == []
    assert lost_writes([a, b], {KEY: "a"}) == [b]  # "a" was written before "b" began
    early_b = w("b", -1, 0.5, client=2)  # overlaps "a": it may have been ordered after it
    assert lost_writes([a, early_b], {KEY: "b"}) == []
    assert lost_writes([a, early_b], {KEY: "a"}) == []
    assert lost_writes([a, d(2, 3)], {KEY: None}) == []  # deleted afterwards
    assert lost_writes([a, d(2, None, "unknown")], {KEY: None}) == []
    assert lost_writes([a, d(2, 3, "fail")], {KEY: None}) == [a]
    assert lost_writes([d(-3, -2), a], {KEY: None}) == [a]  # that delete came before
    assert lost_writes([a, w("u", 5, None, "unknown")], {KEY: "u"}) == []
    assert lost_writes([a, w("c", 5, 6, "fail")], {KEY: "c"}) == [a]
    assert lost_writes([a, r(None, 2, 3)], {KEY: None}) == [a]  # reads explain nothing
    other = w("x", 0, 1, key="svc/other")
    assert lost_writes([a, b, other], {KEY: "b", "svc/other": "zz"}) == [other]


def test_lost_writes_of_generated_history() -> None:
    ops, final = simulate(seed=3, n_ops=2000)
    assert lost_writes(ops, final) == []
    # A final value nobody wrote explains none of the key's acknowledged writes.
    key = ops[0].key
    acked = [o for o in ops if o.key == key and o.kind == "write" and o.outcome == "ok"]
    assert acked and lost_writes(ops, {**final, key: "zz"}) == acked


# ---- JSONL ---------------------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path: Path) -> None:
    ops = [w("a", 0.5, 1.25), d(2, None, "unknown"), r(None, 3, 4, mode="min_index"),
           Op(client=7, kind="read", key="s/i", value="v", invoke=1e9, complete=1e9 + 0.001, outcome="fail",
              node="n5", read_mode="default", index=42), *simulate(seed=5, n_ops=200)[0]]
    path = tmp_path / "history.jsonl"
    write_jsonl(path, ops)
    assert len(path.read_text().splitlines()) == len(ops)
    assert read_jsonl(path) == ops


def test_jsonl_rejects_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"client": 0, "kind": "write", "key": "k", "value": "a", "invoke": 0, "complete": 1, '
                    '"outcome": "ok"}\n\n{"client": 0, "kind": "upsert"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:3"):
        read_jsonl(path)
