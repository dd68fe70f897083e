"""The chaos lock check (``raftreg.chaos.locks.check_locks``): a clean hand-over passes; two
sessions holding a lock at overlapping acknowledged times, or a fence that does not increase, are
flagged; different keys and one session's own holdings never conflict."""

from __future__ import annotations

from raftreg.chaos.locks import Holding, check_locks


def h(session: str, fence: int, start: float, end: float, key: str = "chaos/lock0") -> Holding:
    return Holding(client=0, key=key, session=session, fence=fence, start=start, end=end)


def test_a_clean_history_passes() -> None:
    assert check_locks([h("a", 1, 0, 1), h("b", 2, 1, 2), h("c", 3, 2.5, 3), h("d", 1, 0, 9, key="other")]) == []


def test_overlapping_holdings_are_flagged() -> None:
    found = check_locks([h("a", 1, 0, 2), h("b", 3, 2.5, 3), h("c", 2, 1, 1.5)])
    assert len(found) == 1 and "held it at once" in found[0]
    assert "sessions a (fence 1) and c (fence 2)" in found[0]
    assert "fence 3 of b" not in " ".join(found)  # b starts after a and c ended, with a larger fence


def test_a_fence_that_does_not_increase_is_flagged() -> None:
    found = check_locks([h("a", 5, 0, 1), h("b", 5, 2, 3)])
    assert found == ["lock chaos/lock0: fence 5 of b at 2.000 is not above 5 of a at 0.000"]
