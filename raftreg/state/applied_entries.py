"""Applied entries: the replicated memory of which proposals were already applied, so a proposal
that is re-submitted after an unknown outcome applies at most once (the Raft thesis, §6.3).

Why: a node proposes a Raft entry; the leader changes before the node hears the outcome
(pysyncobj's LEADER_CHANGED). The entry may have committed, or not. Re-submitting it is the only
way to get it applied when it did not, but when it did, a second apply of even a "blind" write
is not harmless: a key set to ``v`` by the first apply, compare-and-set by another client to
``w``, would be set back to ``v`` by the second (a linearizability violation the 30-minute lab
chaos run found). So every proposal carries its origin: the proposing process's ``proposer``
token and a ``seq`` that process never reuses for another proposal, and a re-submission carries
the same pair. Apply asks ``admit(proposer, seq)`` first.

Contract (deterministic, never raises, like every part):
- ``admit`` answers ``"new"`` for a pair not applied before (and records it), ``"repeated"`` for
  one that was, and ``"too_old"`` for a ``seq`` more than ``WINDOW`` below that proposer's
  highest applied seq (it cannot tell; the entry is not applied, so nothing is ever applied
  twice). A proposer's seqs may apply out of order (a stuck proposal, a retry): within the
  window every seq is judged exactly.
- At most ``MAX_PROPOSERS`` proposers are remembered; beyond that the one whose last admitted
  entry is oldest is forgotten. That is safe because a re-submission follows its first attempt
  within seconds (the proposer's commit deadline), while forgetting needs ``MAX_PROPOSERS``
  other processes to propose in between.
- ``snapshot_struct()`` / ``restore()`` round-trip exactly. An online restore keeps this part
  (it is the live cluster's, like the members table).
"""

from __future__ import annotations

from typing import Literal

import msgspec

WINDOW = 4096
MAX_PROPOSERS = 128
APPLIED_ENTRIES_SNAPSHOT_VERSION = 1

Admission = Literal["new", "repeated", "too_old"]


class _Proposer(msgspec.Struct, array_like=True):
    """One proposer's memory: its highest applied ``seq``, the seqs below it (within the window)
    not applied yet, and the Raft index of its last admitted entry (for eviction)."""

    high: int
    missing: list[int]
    last_index: int


class _AppliedSnap(msgspec.Struct, array_like=True):
    v: int
    proposers: dict[str, _Proposer]


_encoder = msgspec.msgpack.Encoder(order="deterministic")
_decoder = msgspec.msgpack.Decoder(_AppliedSnap)


class AppliedEntries:
    """Which ``(proposer, seq)`` pairs were applied (see the module docstring)."""

    def __init__(self) -> None:
        self._proposers: dict[str, tuple[int, set[int], int]] = {}

    def __len__(self) -> int:
        return len(self._proposers)

    def admit(self, index: int, proposer: str, seq: int) -> Admission:
        """Whether the entry at Raft ``index`` from ``(proposer, seq)`` applies (``"new"``)."""
        known = self._proposers.get(proposer)
        if known is None:
            # A proposer not seen before (or forgotten): lower seqs count as applied, so a late
            # one answers "repeated" (its caller hears "outcome unknown") rather than risk a
            # second apply.
            self._remember(proposer, seq, set(), index)
            return "new"
        high, missing, _ = known
        if seq > high:
            gap = range(max(high + 1, seq - WINDOW + 1), seq)
            missing.update(gap)
            if missing and min(missing) <= seq - WINDOW:
                missing = {s for s in missing if s > seq - WINDOW}
            self._proposers[proposer] = (seq, missing, index)
            return "new"
        if seq <= high - WINDOW:
            return "too_old"
        if seq in missing:
            missing.discard(seq)
            self._proposers[proposer] = (high, missing, index)
            return "new"
        return "repeated"

    def _remember(self, proposer: str, seq: int, missing: set[int], index: int) -> None:
        if len(self._proposers) >= MAX_PROPOSERS:
            oldest = min(self._proposers, key=lambda p: (self._proposers[p][2], p))
            del self._proposers[oldest]
        self._proposers[proposer] = (seq, missing, index)

    def snapshot_struct(self) -> msgspec.Struct:
        return _AppliedSnap(APPLIED_ENTRIES_SNAPSHOT_VERSION, {
            p: _Proposer(high, sorted(missing), last) for p, (high, missing, last) in sorted(self._proposers.items())})

    def restore(self, data: bytes | memoryview) -> None:
        snap = _decoder.decode(data)
        if snap.v != APPLIED_ENTRIES_SNAPSHOT_VERSION:
            raise ValueError(f"applied-entries snapshot version {snap.v}, this build knows "
                             f"{APPLIED_ENTRIES_SNAPSHOT_VERSION}")
        self._proposers = {p: (r.high, set(r.missing), r.last_index) for p, r in snap.proposers.items()}


class Repeated(msgspec.Struct, frozen=True):
    """The result of every command of an entry that was not applied because its origin was
    (``too_old`` False: the command took effect at an earlier attempt, whose result is lost) or
    may have been (``too_old`` True) applied already."""

    too_old: bool = False
