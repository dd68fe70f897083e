"""Linearizability checker for chaos histories: one register per key, Wing & Gong / Lowe search.

Model. Every key is an independent compare-and-set register whose initial value is ``None``
(absent). A ``write`` sets it to its value, a ``delete`` sets it to ``None`` (deleted or 404: both
leave the key absent), a ``read`` must return the current value. A ``cas`` sets it to its value if
it holds ``expect``: one that succeeded must find ``expect`` at its linearization point, one that
answered 409 (``conflict``) must find something else there and changes nothing, one with an
unknown outcome applies exactly when it finds ``expect`` (placed last, it has no visible effect).
A transaction is checked through its per-key projections (the workload's are a cas and a write;
the atomicity across keys is not checked here). Which ops take part (``participating``):
- outcome ``fail``: dropped, it did not happen;
- reads: only ``read_mode == "consistent"`` with outcome ``ok`` (default and min_index reads, and
  reads with an unknown outcome, are not part of this check);
- writes/deletes/cas with outcome ``unknown``: may take effect at any point after their invocation or
  never, i.e. their return time is +infinity (linearized last = no visible effect), as in porcupine.
Real-time order: ``a`` precedes ``b`` iff ``a.complete < b.invoke``; equal times count as concurrent.

Written values are expected to be unique per key (the workload writes ``c<client>-<seq>``). The
search is exact without that; the pre-checks and the ``search_intervals`` reductions that rely on
it skip values written more than once.

A "violation" verdict is a proof: pre-checks only report conditions that no linearization can
satisfy, and the search is exhaustive. "timeout" proves nothing either way.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from raftreg.chaos.history import Op
from raftreg.chaos.key_model import (
    INF,
    KeyResult,
    Report,
    Verdict,
    describe,
    effect,
    format_key_history,
    mutates,
    participating,
    ret_time,
    single_key,
    validate_op,
    writes,
)
from raftreg.chaos.prechecks import precheck_key, search_intervals

__all__ = ["Report", "check_history", "check_key", "format_key_history", "lost_writes", "participating",
           "precheck_key"]

_TIME_LIMIT = "search time budget"  # the reasons of a timeout start with one of these
_STATE_LIMIT = "search state limit"


class _Entry:
    """A call or return event in porcupine's doubly-linked event list; ``match`` is set on calls."""

    __slots__ = ("idx", "match", "next", "prev")

    def __init__(self, idx: int, match: _Entry | None) -> None:
        self.idx = idx
        self.match = match
        self.next: _Entry = self
        self.prev: _Entry = self


def _event_list(invokes: Sequence[float], rets: Sequence[float]) -> tuple[_Entry, _Entry]:
    """(head, tail) sentinels around call/return entries sorted by time, calls before returns at a tie."""
    events = sorted([(t, 0, i) for i, t in enumerate(invokes)] + [(t, 1, i) for i, t in enumerate(rets)])
    returns = [_Entry(i, None) for i in range(len(rets))]
    head, tail = _Entry(-1, None), _Entry(-1, None)
    prev = head
    for _, is_return, i in events:
        entry = returns[i] if is_return else _Entry(i, returns[i])
        prev.next, entry.prev = entry, prev
        prev = entry
    prev.next, tail.prev = tail, prev
    return head, tail


def _replay(ops: Sequence[Op]) -> str | None:
    state: str | None = None
    for op in ops:
        if mutates(op) and (op.kind != "cas" or op.expect == state):
            state = effect(op)
    return state


# What the model does with an op (``check_key``): a read and a conflicting cas observe the state
# and change nothing; a write or delete sets it; a successful cas needs ``expect``; a cas of
# unknown outcome applies only if it finds ``expect``.
_READ, _SET, _CAS, _CONFLICT, _MAYBE_CAS = range(5)


def _model_kind(op: Op) -> int:
    if op.kind == "read":
        return _READ
    if op.kind != "cas":
        return _SET
    if op.conflict:
        return _CONFLICT
    return _MAYBE_CAS if op.outcome == "unknown" else _CAS


def _lift(entry: _Entry) -> None:
    """Take a call entry and its return out of the list (porcupine's ``lift``)."""
    match = entry.match
    assert match is not None
    entry.prev.next, entry.next.prev = entry.next, entry.prev
    match.prev.next, match.next.prev = match.next, match.prev


def _unlift(entry: _Entry) -> None:
    """Put back what ``_lift(entry)`` took out (the return first, as porcupine's ``unlift``)."""
    match = entry.match
    assert match is not None
    match.prev.next = match.next.prev = match
    entry.prev.next = entry.next.prev = entry


def check_key(ops: Sequence[Op], budget_s: float, *, max_states: int = 4_000_000) -> KeyResult:
    """Decide linearizability of one key's ops by search alone (no pre-checks).

    porcupine's ``checkSingle`` made iterative: walk the time-sorted event list; at a call whose op
    is a legal next model step and whose (linearized set, state) is not cached, record it, lift
    the call and its return out of the list and restart from the head; at a return (its op was not
    linearized in time) backtrack: pop the last op, re-insert it, try the entry after it. The history
    is linearizable iff the list empties; a backtrack with nothing to pop refutes it. The cache key
    stores the linearized set as (first op not linearized, bitmask from there on).

    Exact prunings on top (each keeps a linearization if there is one):
    - a read (or a conflicting cas) that is a candidate (every op that precedes it is linearized) and
      legal (returns the current value; finds another than it expected) is linearized at once, before
      any mutation: moving it to the front of any valid completion keeps it valid, as it changes
      nothing. So its failure fails its parent node;
    - pending unknown deletes are linearized in invocation order only (swapping two keeps validity);
    - the ``search_intervals`` reductions of unknown ops.

    Gives up with ``timeout`` after ``budget_s`` wall-clock seconds (0: at once) or once more than
    ``max_states`` search states are cached (about 150 bytes each). Raises ``ValueError`` for
    malformed ops or ops of several keys.
    """
    start = time.monotonic()
    deadline = start + budget_s
    key = single_key(ops)
    part = participating(ops)
    intervals = search_intervals(part)
    sops = [part[i] for i, _ in intervals]  # the ops to place; entry.idx indexes this list
    head, tail = _event_list([op.invoke for op in sops], [ret for _, ret in intervals])
    kinds = [_model_kind(op) for op in sops]
    is_read = [k in (_READ, _CONFLICT) for k in kinds]  # observes, changes nothing
    values = [op.value if op.kind != "delete" else None for op in sops]  # read: observed; others: effect
    expects = [op.expect for op in sops]
    bits = [1 << i for i in range(len(sops))]
    # Canonical order of pending unknown deletes: each needs its predecessor linearized first.
    before = [0] * len(sops)
    last_unknown_delete = -1
    for j, (_, ret) in enumerate(intervals):
        if sops[j].kind == "delete" and ret == INF:
            before[j] = bits[last_unknown_delete] if last_unknown_delete >= 0 else 0
            last_unknown_delete = j

    state: str | None = None
    linearized = 0
    done = bytearray(len(sops) + 1)  # done[j]: sops[j] is linearized; the last byte stops scans
    frontier = 0  # first op not linearized
    cache: set[tuple[int, int, str | None]] = set()
    calls: list[tuple[_Entry, str | None]] = []
    longest: list[int] = []
    stuck = -1
    steps = 0
    entry = head.next
    fresh = True  # at a search node whose candidates were not yet scanned for a legal read
    while head.next is not tail:
        if steps & 1023 == 0 and (time.monotonic() > deadline or len(cache) > max_states):
            limit = (f"{_TIME_LIMIT} of {budget_s:g}s exhausted" if len(cache) <= max_states
                     else f"{_STATE_LIMIT} of {max_states} states reached")
            return KeyResult(key=key, status="timeout", ops=tuple(part), reason=f"{limit} after {steps} steps",
                             seconds=time.monotonic() - start, steps=steps)
        steps += 1
        if fresh:  # a new node: a legal candidate read goes first, or this node fails
            fresh = False
            take = head.next
            while take.match is not None and not (
                    (kinds[take.idx] == _READ and values[take.idx] == state)
                    or (kinds[take.idx] == _CONFLICT and expects[take.idx] != state)):
                take = take.next
            if take.match is None:  # no legal read: try writes/deletes in list order
                entry = head.next
                continue
            new_state = state
        elif entry.match is not None:  # a call: try to linearize its write/delete next
            take = entry
            kind = kinds[take.idx]
            if (is_read[take.idx] or linearized & before[take.idx] != before[take.idx]
                    or (kind == _CAS and expects[take.idx] != state)):
                entry = entry.next
                continue
            new_state = values[take.idx] if kind != _MAYBE_CAS or expects[take.idx] == state else state
        else:
            take = None
        if take is not None:
            j = take.idx
            new_linearized = linearized | bits[j]
            new_frontier = frontier
            if j == frontier:
                new_frontier += 1
                while done[new_frontier]:
                    new_frontier += 1
            cached = (new_linearized >> new_frontier, new_frontier, new_state)
            if cached not in cache:
                cache.add(cached)
                calls.append((take, state))
                state, linearized, frontier = new_state, new_linearized, new_frontier
                done[j] = 1
                _lift(take)
                fresh = True
                continue
            if take is entry:  # a write/delete already explored from here: try the next entry
                entry = entry.next
                continue
        elif len(calls) > len(longest) or stuck < 0:  # a return: its op could not be placed in time
            longest, stuck = [c.idx for c, _ in calls], entry.idx
        # Dead end: backtrack to the last write/delete choice (a popped read failed its node too).
        while calls:
            entry, state = calls.pop()
            j = entry.idx
            linearized ^= bits[j]
            done[j] = 0
            frontier = min(frontier, j)
            _unlift(entry)
            if not is_read[j]:
                break
        else:
            break
        entry = entry.next
    elapsed = time.monotonic() - start
    if head.next is tail:
        order = tuple(sops[c.idx] for c, _ in calls)
        return KeyResult(key=key, status="ok", ops=tuple(part), linearization=order, seconds=elapsed, steps=steps)
    prefix = tuple(sops[j] for j in longest)
    held = _replay(prefix)
    reason = (f"not linearizable: the longest linearizable prefix found places {len(prefix)} of {len(sops)} "
              f"ops; after it the key holds {'absent' if held is None else repr(held)} and "
              f"{describe(sops[stuck], part[0].invoke)} cannot be linearized before it returned")
    return KeyResult(key=key, status="violation", ops=tuple(part), reason=reason, detected_by="search",
                     linearization=prefix, culprits=(sops[stuck],), seconds=elapsed, steps=steps)


# ---- whole history -------------------------------------------------------------------------------


def check_history(ops: Iterable[Op], budget_s: float = 60.0, *, max_states: int = 4_000_000) -> Report:
    """Check every key of a history: pre-checks for all keys, then the search for the others.

    Search budget: ``budget_s`` seconds in total, ``max_states`` cached states per key (memory).
    Keys are searched smallest first; each gets an equal share of the time left (keys that finish
    early leave more for the rest). Keys that ran out of time are searched again, from scratch, with
    equal shares of whatever time is left after that first pass. Raises ``ValueError`` for
    malformed ops.
    """
    start = time.monotonic()
    deadline = start + budget_s
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    results: dict[str, KeyResult] = {}
    pending: list[tuple[int, str]] = []
    for key, key_ops in by_key.items():
        found = precheck_key(key_ops)
        if found is not None:
            results[key] = found
        else:
            pending.append((len(participating(key_ops)), key))
    pending.sort()
    for attempt in range(2):
        todo = [key for _, key in pending] if attempt == 0 else sorted(
            (k for _, k in pending if results[k].reason.startswith(_TIME_LIMIT)),
            key=lambda k: len(results[k].ops))
        for n, key in enumerate(todo):
            remaining = deadline - time.monotonic()
            if attempt and remaining <= 0:
                break
            results[key] = check_key(by_key[key], max(0.0, remaining) / (len(todo) - n), max_states=max_states)

    statuses = {r.status for r in results.values()}
    verdict: Verdict = "violation" if "violation" in statuses else "unknown" if "timeout" in statuses else "ok"
    failing = min((r for r in results.values() if r.status == "violation"), key=lambda r: (len(r.ops), r.key),
                  default=None)
    return Report(
        verdict=verdict,
        keys=dict(sorted(results.items())),
        seconds=time.monotonic() - start,
        failing_key=failing.key if failing else None,
        smallest_failing_ops=failing.ops if failing else (),
        timeline=format_key_history(failing.ops) if failing else "",
    )


# ---- lost writes ---------------------------------------------------------------------------------


def lost_writes(ops: Iterable[Op], final_state: Mapping[str, str | None]) -> list[Op]:
    """Acknowledged writes (and successful cas) that the final state shows were lost, by invocation
    time.

    ``final_state``: each key's value after the run, read consistently once everything is quiet;
    a key missing from it counts as absent (``None``), so pass every key the history touches.

    Rule. An acknowledged write W of key k is lost iff the final value F of k is not W's value and
    no op that may be ordered after W could have produced F. F must be the effect of the last
    write/delete L in a linearization; L is after W (W did take effect), so L does not precede W
    in real time: ``ret(L) >= W.invoke``, with ``ret`` = +inf for an unknown outcome. Hence W is
    reported iff F != W.value and
    - F is None and no delete (acknowledged or unknown; its HTTP result does not matter) has
      ``ret(D) >= W.invoke``, or
    - F is a value and no write of F (acknowledged or unknown) has ``ret >= W.invoke`` (a value that
      no write wrote explains nothing, so every acknowledged write of that key is reported).
    A cas counts as a write of its value (one of unknown outcome may have applied); failed ops,
    conflicting cas and reads never explain anything. A write followed by an acknowledged delete is
    not lost when F is None; neither is one overlapped by a write of F invoked before it. The rule is
    pairwise, so a report is a proof of loss; losses only visible through several ops (e.g. F was
    written concurrently with W but provably before it through reads) are left to ``check_history``.
    O(n). Raises ``ValueError`` for malformed ops.
    """
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        validate_op(op)
        if mutates(op) and op.outcome != "fail":
            by_key[op.key].append(op)
    lost = []
    for key, key_ops in by_key.items():
        final = final_state.get(key)
        producers = [op for op in key_ops if effect(op) == final]
        latest = max((ret_time(op) for op in producers), default=-INF)
        lost += [w for w in key_ops if writes(w) and w.outcome == "ok" and w.value != final
                 and latest < w.invoke]
    lost.sort(key=lambda o: (o.invoke, o.client))
    return lost
