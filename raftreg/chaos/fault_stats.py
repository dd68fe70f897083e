"""Recovery figures per fault kind, for the chaos summary (``faults.per_kind``).

For each kind (``kill``, ``isolate``, ``loss``, ...; a leader-hitting fault counts under its
kind, and ``leader_hits`` says how many hit the leader): p50/p99/max of the time from the fault
to the next acknowledged write, and of the catch-up times (a restarted node: restart -> ready; a
network or disk fault's node: heal -> applied the leader's commit index).
"""

from __future__ import annotations

import statistics
from typing import Any


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 3), "p99": round(p99, 3), "max": round(ordered[-1], 3)}


def per_kind(each: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``each``: the summary's per-fault rows (kind, was_leader, to_next_acked_write_s, catch_up_s)."""
    kinds: dict[str, dict[str, Any]] = {}
    for row in each:
        entry = kinds.setdefault(row["kind"], {"count": 0, "leader_hits": 0, "write": [], "catch_up": []})
        entry["count"] += 1
        entry["leader_hits"] += bool(row["was_leader"])
        if row["to_next_acked_write_s"] is not None:
            entry["write"].append(row["to_next_acked_write_s"])
        entry["catch_up"] += list(row["catch_up_s"].values())
    return {kind: {"count": e["count"], "leader_hits": e["leader_hits"],
                   "to_next_acked_write_s": percentiles(e["write"]), "catch_up_s": percentiles(e["catch_up"])}
            for kind, e in sorted(kinds.items())}
