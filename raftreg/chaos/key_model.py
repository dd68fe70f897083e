"""The register model of the chaos checker: verdict types, which ops take part, and how ops and
histories are described (see ``raftreg.chaos.checker`` for the model itself)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from raftreg.chaos.history import Op

INF = math.inf
KeyStatus = Literal["ok", "violation", "timeout"]
Verdict = Literal["ok", "violation", "unknown"]


@dataclass(frozen=True)
class KeyResult:
    """The verdict for one key.

    ``ops``: the participating ops of the key, by invocation time. ``linearization``: for ``ok``, a
    witness order of the ops the search had to place (unknown ops that cannot matter are left out);
    for ``violation`` found by the search, the longest linearizable prefix it found; else empty.
    ``culprits``: for a violation, the ops the reason names (for the search: the op that could
    not be linearized after that longest prefix).
    """

    key: str
    status: KeyStatus
    ops: tuple[Op, ...]
    reason: str = ""
    detected_by: Literal["precheck", "search", ""] = ""
    linearization: tuple[Op, ...] = ()
    culprits: tuple[Op, ...] = ()
    seconds: float = 0.0
    steps: int = 0  # search iterations


@dataclass(frozen=True)
class Report:
    """The verdict for a whole history.

    ``verdict``: ``violation`` if any key has one (other keys may have timed out), else ``unknown``
    if any key's search ran out of budget, else ``ok``. ``failing_key``: the violating key with the
    fewest participating ops; ``smallest_failing_ops`` and ``timeline`` (``format_key_history``) are
    its ops.
    """

    verdict: Verdict
    keys: Mapping[str, KeyResult]
    seconds: float
    failing_key: str | None = None
    smallest_failing_ops: tuple[Op, ...] = ()
    timeline: str = ""

    @property
    def keys_checked(self) -> int:
        return len(self.keys)

    @property
    def violating_keys(self) -> list[str]:
        return sorted(k for k, r in self.keys.items() if r.status == "violation")

    @property
    def timed_out_keys(self) -> list[str]:
        return sorted(k for k, r in self.keys.items() if r.status == "timeout")

    @property
    def reason(self) -> str:
        """One line: why the verdict is not ``ok`` (empty when it is)."""
        if self.failing_key is not None:
            others = len(self.violating_keys) - 1
            more = f" (and {others} more violating key{'s' * (others != 1)})" if others else ""
            return f"key {self.failing_key}: {self.keys[self.failing_key].reason}{more}"
        if self.verdict == "unknown":
            return f"search budget exhausted on {len(self.timed_out_keys)} keys: {', '.join(self.timed_out_keys)}"
        return ""


# ---- participating ops ---------------------------------------------------------------------------


def writes(op: Op) -> bool:
    """``op`` may set the key to ``op.value``: a write, or a cas that did not conflict."""
    return op.kind == "write" or (op.kind == "cas" and not op.conflict)


def mutates(op: Op) -> bool:
    """``op`` may change the key: a write, a delete, or a cas that did not conflict."""
    return op.kind == "delete" or writes(op)


def effect(op: Op) -> str | None:
    """The value a mutating op leaves (``None``: a delete leaves the key absent)."""
    return op.value if writes(op) else None


def validate_op(op: Op) -> None:
    if op.kind in ("write", "cas") and op.value is None:
        raise ValueError(f"{op.kind} without a value: {op}")
    if op.conflict and (op.kind != "cas" or op.outcome != "ok"):
        raise ValueError(f"only a cas with outcome ok can be a conflict: {op}")
    if op.outcome == "ok" and op.complete is None:
        raise ValueError(f"op with outcome ok but no completion time: {op}")
    if op.complete is not None and op.complete < op.invoke:
        raise ValueError(f"op completes before it is invoked: {op}")


def ret_time(op: Op) -> float:
    """Return time in the model: the completion, or +infinity when the outcome is unknown."""
    return INF if op.outcome == "unknown" or op.complete is None else op.complete


def participating(ops: Iterable[Op]) -> list[Op]:
    """The ops that take part in the linearizability check (module docstring), by invocation time.

    Raises ``ValueError`` for a malformed op (a write without value, an ``ok`` op without completion
    time, a completion before the invocation), whether it would take part or not.
    """
    kept = []
    for op in ops:
        validate_op(op)
        if op.outcome == "fail":
            continue
        if op.kind == "read" and (op.outcome != "ok" or op.read_mode != "consistent"):
            continue
        kept.append(op)
    kept.sort(key=lambda o: (o.invoke, ret_time(o), o.client))
    return kept


def single_key(ops: Sequence[Op]) -> str:
    keys = {op.key for op in ops}
    if len(keys) > 1:
        raise ValueError(f"ops of several keys given to a per-key check: {sorted(keys)}")
    return keys.pop() if keys else ""


# ---- readable output -----------------------------------------------------------------------------


def _ms(t: float | None, t0: float) -> str:
    return "?" if t is None else f"{(t - t0) * 1000:+.3f}"


def _show(value: str | None) -> str:
    return "absent" if value is None else repr(value)


def _value(op: Op) -> str:
    if op.kind == "delete":
        return "-"
    if op.kind == "cas":
        return f"{_show(op.value)} if {_show(op.expect)}{' (409)' if op.conflict else ''}"
    return _show(op.value)


def describe(op: Op, t0: float) -> str:
    mode = "" if op.kind != "read" or op.read_mode in ("consistent", "") else f" ({op.read_mode})"
    what = f"{op.kind}{mode} {_value(op)}" if op.kind != "delete" else "delete"
    return (f"{what} by client {op.client} on {op.node or '?'} [{_ms(op.invoke, t0)} -> "
            f"{_ms(op.complete, t0)} ms, {op.outcome}]")


def format_key_history(ops: Iterable[Op]) -> str:
    """A readable timeline: one line per op, by invocation time, times in ms relative to the first
    invocation: ``#n  c<client>  kind  value  invoke -> complete ms  outcome  node``.

    ``?`` is an unknown completion time; reads other than consistent show their mode.
    """
    ordered = sorted(ops, key=lambda o: (o.invoke, ret_time(o), o.client))
    if not ordered:
        return ""
    t0 = ordered[0].invoke
    lines = []
    for n, op in enumerate(ordered):
        kind = op.kind if op.kind != "read" or op.read_mode in ("consistent", "") else f"read({op.read_mode})"
        lines.append(f"#{n:<4} c{op.client:<3} {kind:<15} {_value(op):<24} {_ms(op.invoke, t0):>12} -> "
                     f"{_ms(op.complete, t0):>12} ms  {op.outcome:<7} {op.node}".rstrip())
    return "\n".join(lines)


# ---- pre-checks ----------------------------------------------------------------------------------


def violation(key: str, part: Sequence[Op], reason: str, culprits: Iterable[Op]) -> KeyResult:
    return KeyResult(key=key, status="violation", ops=tuple(part), reason=reason, detected_by="precheck",
                     culprits=tuple(culprits))


def prefix_argmax(ops: Sequence[Op], score: Sequence[float]) -> list[int]:
    """``out[i]``: index of the op with the largest score among ``ops[: i + 1]``."""
    out: list[int] = []
    for i in range(len(ops)):
        out.append(i if not out or score[i] > score[out[-1]] else out[-1])
    return out

