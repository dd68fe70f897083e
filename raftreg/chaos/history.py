"""The history model shared by the chaos workload (which records it) and the checkers (which judge it).

A history is a list of ``Op``: one per client request, in any order. Times are ``time.monotonic()``
seconds of the one process that ran every client, so they are comparable across clients.

Kinds: ``write`` (a registration or a KV set), ``delete``, ``read``, and ``cas`` (a KV compare-and-set,
alone or as the conditional op of a transaction; see ``Op.expect``). Keys of KV ops start with ``kv:``.

On disk a history is JSONL: one JSON object per line with exactly the fields of ``Op``.
``read_jsonl(path)`` returns what ``write_jsonl(path, ops)`` wrote (equal ``Op`` values, same order).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

OpKind = Literal["write", "delete", "read", "cas"]
Outcome = Literal["ok", "fail", "unknown"]
ReadMode = Literal["consistent", "default", "min_index", ""]


@dataclass(frozen=True)
class Op:
    """One client operation as recorded by the chaos workload."""

    client: int  # workload client number
    kind: OpKind
    key: str  # "service/instance"
    value: str | None  # write: the unique value written; read: value observed (None = absent); delete: None
    invoke: float  # time.monotonic() when the request was sent
    complete: float | None  # time.monotonic() when the answer arrived; None when the outcome is unknown
    # fail = certainly not applied (e.g. 503, 4xx); unknown = timeout/504/connection lost after sending
    outcome: Outcome
    node: str = ""  # node name the request went to
    read_mode: ReadMode = ""  # for reads
    index: int | None = None  # X-Raftreg-Index of the answer / index of the write
    # cas: a conditional write of ``value`` that applies only if the key holds ``expect`` (None =
    # absent). The workload's condition is a modify_index; it names the value read at that index,
    # and every written value is unique, so the two conditions are the same. ``conflict``: the
    # answer said the condition did not hold (409; outcome "ok": the result is known, not applied).
    expect: str | None = None
    conflict: bool = False


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Op)


def write_jsonl(path: str | Path, ops: Iterable[Op]) -> None:
    """Write ``ops`` to ``path`` (replacing it), one JSON object per line, in the given order."""
    with Path(path).open("wb") as out:
        for op in ops:
            out.write(_ENCODER.encode(op))
            out.write(b"\n")


def read_jsonl(path: str | Path) -> list[Op]:
    """The ops of a JSONL history, in file order; blank lines are skipped.

    Raises ``ValueError`` naming the line when a line is not a valid ``Op`` (bad JSON, a missing
    or unknown-typed field, a kind/outcome/read_mode outside its literals).
    """
    ops = []
    with Path(path).open("rb") as src:
        for number, line in enumerate(src, start=1):
            if not line.strip():
                continue
            try:
                ops.append(_DECODER.decode(line))
            except msgspec.DecodeError as exc:
                raise ValueError(f"{path}:{number}: not a history op: {exc}") from exc
    return ops


def outcome_of(status: int | str) -> Outcome:
    """The outcome of a write's answer: an HTTP status, or the workload's pseudo-status of a
    transport failure (``refused``: nothing was sent; ``timeout``, ``disconnected``: maybe sent).
    200 → ok; 503, other 4xx and refused → fail (nothing applied); 504, other 5xx, timeouts and
    lost connections → unknown."""
    if status == 200:
        return "ok"
    if status == "refused" or (isinstance(status, int) and (status == 503 or 400 <= status < 500)):
        return "fail"
    return "unknown"
