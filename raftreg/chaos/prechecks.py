"""Exact pre-checks of one key's history, cheap enough to run before the search: each reports
only conditions no linearization can satisfy (see ``raftreg.chaos.checker``)."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Sequence

from raftreg.chaos.history import Op
from raftreg.chaos.key_model import (
    INF,
    KeyResult,
    describe,
    mutates,
    participating,
    prefix_argmax,
    ret_time,
    single_key,
    violation,
    writes,
)


def precheck_key(ops: Sequence[Op]) -> KeyResult | None:
    """Cheap necessary conditions for one key; a ``violation`` result with a precise reason, or None.

    For each participating read R (by invocation time), the first that fails of:
    1. R's value was written by no write of the key (or only by writes that failed);
    2. every write of R's value was invoked after R completed;
    3. (value written by exactly one write W, acknowledged) an acknowledged write or delete X was
       invoked after W completed and completed before R was invoked: then W < X < R in every
       linearization, so R cannot see W's value;
    4. (R returns absent) an acknowledged write W completed before R was invoked and no delete
       (acknowledged or unknown) can be ordered between W and R, i.e. none with
       ``D.invoke <= R.complete`` and ``ret(D) >= W.invoke``.
    Each is a proof of non-linearizability; ``None`` proves nothing (the search decides).
    O(n log n). Raises ``ValueError`` for malformed ops or ops of several keys.
    """
    key = single_key(ops)
    part = participating(ops)
    t0 = part[0].invoke if part else 0.0
    failed_values = {op.value for op in ops if op.kind in ("write", "cas") and op.outcome == "fail"}
    writers: dict[str | None, list[Op]] = defaultdict(list)
    for op in part:
        if writes(op):
            writers[op.value].append(op)
    acked_mut = sorted((op for op in part if mutates(op) and op.outcome == "ok"), key=ret_time)
    mut_completes = [ret_time(op) for op in acked_mut]
    mut_best = prefix_argmax(acked_mut, [op.invoke for op in acked_mut])
    acked_writes = [op for op in acked_mut if writes(op)]
    write_completes = [ret_time(op) for op in acked_writes]
    write_best = prefix_argmax(acked_writes, [op.invoke for op in acked_writes])
    deletes = [op for op in part if op.kind == "delete"]  # by invocation time
    delete_invokes = [op.invoke for op in deletes]
    delete_best = prefix_argmax(deletes, [ret_time(op) for op in deletes])

    for r in (op for op in part if op.kind == "read"):
        r_complete = ret_time(r)
        if r.value is None:
            n = bisect.bisect_left(write_completes, r.invoke)
            if not n:
                continue
            w = acked_writes[write_best[n - 1]]
            m = bisect.bisect_right(delete_invokes, r_complete)
            if m and ret_time(deletes[delete_best[m - 1]]) >= w.invoke:
                continue
            return violation(key, part, f"{describe(r, t0)} found the key absent, but {describe(w, t0)} "
                              "was acknowledged before the read began and no delete can be ordered between them",
                              (r, w))
        ws = writers.get(r.value, [])
        if not ws:
            only = " (only by writes that failed)" if r.value in failed_values else ""
            return violation(key, part, f"{describe(r, t0)} returned a value never written{only}", (r,))
        first = min(ws, key=lambda o: o.invoke)
        if first.invoke > r_complete:
            return violation(key, part, f"{describe(r, t0)} returned a value before it was written: "
                              f"{describe(first, t0)} was invoked after the read completed", (r, *ws))
        if len(ws) != 1 or ws[0].outcome != "ok":
            continue
        w = ws[0]
        n = bisect.bisect_left(mut_completes, r.invoke)
        if n and acked_mut[mut_best[n - 1]].invoke > ret_time(w):
            x = acked_mut[mut_best[n - 1]]
            return violation(key, part, f"stale read: {describe(r, t0)} returned the value of "
                              f"{describe(w, t0)}, overwritten by {describe(x, t0)} which began after that "
                              "write completed and was acknowledged before the read began", (r, w, x))
    return None


# ---- search --------------------------------------------------------------------------------------


def search_intervals(part: Sequence[Op]) -> list[tuple[int, float]]:
    """(index into ``part``, model return time) of the ops the search must place.

    Exact reductions of the unknown-outcome writes/deletes (return time +inf in the model; an
    unknown cas is never reduced):
    - an unknown op whose effect no read could observe (no read returns its value, for a delete
      ``None``, and no cas that did not conflict expects it, with ``ret >= op.invoke``), while no
      conflicting cas returns after its invocation, is left out: removing it from any linearization
      keeps it valid (nothing observes the state between it and the next mutation; an unknown cas
      there was a no-op and can move to the end), and appending it at the end of one without it
      does too;
    - an unknown write of a value written exactly once, that some read returns (or a cas expects),
      must precede every such read (cas), so its return time becomes the earliest completion among
      those reads.
    """
    observed: dict[str | None, list[float]] = defaultdict(list)
    conflicts_until = -INF  # the latest return of a conflicting cas
    for op in part:
        if op.kind == "read":
            observed[op.value].append(ret_time(op))
        elif op.kind == "cas" and not op.conflict:  # it needs (or, unknown, may need) its expected value
            observed[op.expect].append(ret_time(op))
        elif op.kind == "cas":
            conflicts_until = max(conflicts_until, ret_time(op))
    latest = {value: max(times) for value, times in observed.items()}
    earliest = {value: min(times) for value, times in observed.items()}
    writers = Counter(op.value for op in part if writes(op))
    out: list[tuple[int, float]] = []
    for i, op in enumerate(part):
        if op.outcome == "ok" or op.kind == "cas":
            out.append((i, ret_time(op)))
            continue
        value = op.value if op.kind == "write" else None
        if latest.get(value, -INF) < op.invoke and conflicts_until < op.invoke:
            continue
        if op.kind == "write" and writers[value] == 1 and value in earliest:
            out.append((i, max(op.invoke, earliest[value])))
        else:
            out.append((i, INF))
    return out

