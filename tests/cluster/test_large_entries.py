"""Raft entries larger than one AppendEntries chunk replicate to every follower.

pysyncobj 0.3.17 sends an entry of 64 KiB or more in chunks and marks the last chunk by comparing
the position with the length of the *raw* command instead of its pickled form, which is about 60
bytes longer: when the raw length falls just under a multiple of 64 KiB, the follower gets two
"finish" chunks, fails to unpickle the first, and never takes the entry (it stays behind until
the watchdog resyncs it; the overload benchmark hit it with full group-commit batches of equal-sized
registrations). raftreg never lets pysyncobj chunk (``raftreg.raft.bridge``).

Three real ``RaftNode``s in this process; raw entries whose sizes sweep the window below twice
64 KiB are proposed on the leader; every node must apply every one of them, with identical
state, and pysyncobj must log no failure while doing it (before the guard: about a hundred
"pickle data was truncated" tick failures and "truncating already-applied log entries" criticals
in this very test, and a follower that takes the entries only by luck, or never).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from raftreg.config import RaftTuning
from raftreg.models import Instance
from raftreg.raft import RaftNode
from raftreg.state.commands import Register, encode_entry
from raftreg.testing import free_ports

pytestmark = pytest.mark.cluster

CHUNK = 1 << 16


def entry_of_size(size: int, n: int) -> bytes:
    """An encoded one-registration entry of exactly ``size`` bytes."""
    def build(pad: int) -> bytes:
        inst = Instance(service="big", id=f"i{n}", address="10.0.0.1", port=80, meta={"pad": "x" * pad})
        return encode_entry([Register(inst)])

    pad = size - len(build(0))
    raw = build(pad)
    while len(raw) != size:  # msgpack's string header grows at some lengths
        pad += size - len(raw)
        raw = build(pad)
    return raw


async def wait_until(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_entries_just_under_a_multiple_of_the_chunk_size_replicate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pysyncobj")
    loop = asyncio.get_running_loop()
    addrs = [f"127.0.0.1:{p}" for p in free_ports(3)]
    nodes = [RaftNode(self_addr=a, peer_addrs=[b for b in addrs if b != a], data_dir=tmp_path / f"n{i}",
                      secret="s3cret", tuning=RaftTuning()) for i, a in enumerate(addrs)]
    for node in nodes:
        await loop.run_in_executor(None, node.start, loop)
    try:
        await wait_until(lambda: any(n.is_leader() for n in nodes), 20, "a leader")
        leader = next(n for n in nodes if n.is_leader())
        sizes = range(2 * CHUNK - 300, 2 * CHUNK + 40, 4)
        for n, size in enumerate(sizes):
            index, _ = await asyncio.wait_for(leader.submit(entry_of_size(size, n)), 10)
        await wait_until(lambda: all(node.applied_index >= index for node in nodes), 20,
                         f"every node to apply index {index} ({len(sizes)} entries of {sizes[0]}..{sizes[-1]} bytes)")
        counts = [len(node.registry.list_instances("big")) for node in nodes]
        assert counts == [len(sizes)] * 3
        assert len({node.registry.snapshot() for node in nodes}) == 1, "the replicas differ"
        failures = [r.getMessage() for r in caplog.records
                    if r.name.startswith("pysyncobj") and r.levelno >= logging.ERROR]
        assert not failures, f"pysyncobj failed {len(failures)} times, e.g. {failures[:3]}"
    finally:
        for node in nodes:
            await loop.run_in_executor(None, node.stop)
