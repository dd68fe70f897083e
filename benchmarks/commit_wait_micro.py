"""What a write's wait for its commit costs the event loop, with and without a timer per wait.

In-process micro-benchmark of ``GroupCommitter.propose`` (``raftreg.node.proposer``) in front of
a stub Raft that commits every entry on the next loop turn: ``--writers`` (64) concurrent writers,
as in the registration benchmarks, each waiting for its command under the 5 s write deadline

- ``deadlines``: kept by the committer (``propose(..., deadline=)``, ``raftreg.node.deadlines``:
  one timer for all the waits), as ``Writer.commit`` does;
- ``timeout_at``: ``asyncio.timeout_at`` around each wait, as ``Writer.commit`` did before.

It prints the process CPU per write for each, alternating ``--rounds`` times. Only the loop's
share of a write is measured: no HTTP, no Raft messages, no apply. Run from the repository root::

    .venv/bin/python benchmarks/commit_wait_micro.py
    .venv/bin/python benchmarks/commit_wait_micro.py --writes 100000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from raftreg.node.proposer import GroupCommitter
from raftreg.state.commands import Deregister, decode_envelope

DEADLINE_S = 5.0  # raft.commit_timeout's default
MODES = ("deadlines", "timeout_at")


class InstantRaft:
    """Commits each submitted entry on the next loop turn, one ``Nothing``-like result per command."""

    def __init__(self) -> None:
        self.index = 0

    def submit(self, raw: bytes) -> asyncio.Future[tuple[int, list[Any]]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[int, list[Any]]] = loop.create_future()
        self.index += 1
        loop.call_soon(fut.set_result, (self.index, [None] * len(decode_envelope(raw).cmds)))
        return fut

    def is_leader(self) -> bool:
        return True


async def one_run(mode: str, writes: int, writers: int) -> float:
    """CPU µs per write for ``writes`` writes by ``writers`` concurrent writers."""
    loop = asyncio.get_running_loop()
    committer = GroupCommitter(InstantRaft(), max_batch=2000, max_queued=10_000,  # type: ignore[arg-type]
                               stuck_after=30.0)
    cmd = Deregister("svc", "inst", 0.0)

    async def writer(count: int) -> None:
        for _ in range(count):
            deadline = loop.time() + DEADLINE_S
            if mode == "deadlines":
                await committer.propose(cmd, deadline=deadline)
            else:
                async with asyncio.timeout_at(deadline):
                    await committer.propose(cmd)

    started = time.process_time()
    await asyncio.gather(*(writer(writes // writers) for _ in range(writers)))
    return (time.process_time() - started) / (writes // writers * writers) * 1e6


async def run(writes: int, writers: int, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for r in range(rounds):
        for mode in (MODES if r % 2 == 0 else MODES[::-1]):
            results[mode].append(await one_run(mode, writes, writers))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=40_000, help="writes per run")
    parser.add_argument("--writers", type=int, default=64, help="concurrent writers")
    parser.add_argument("--rounds", type=int, default=4, help="runs of each mode, alternating")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.writes, args.writers, args.rounds))
    print(f"CPU per write, {args.writers} writers, {args.writes:,} writes per run (median; each run)")
    for mode, values in results.items():
        print(f"{mode:>11}  {statistics.median(values):6.2f} µs   " + " ".join(f"{v:.2f}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
