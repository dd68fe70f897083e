"""HeartbeatForwarder with a fake leader: batching, the bounded queue, and every per-key answer
the leader (or something pretending to be it) may send."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from raftreg.errors import InvalidArgument, NotFound, Unavailable
from raftreg.node.heartbeat_forwarder import HeartbeatForwarder
from raftreg.node.leases import LeaseKey


class FakePeers:
    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.answer = answer
        self.error = error
        self.batches: list[list[LeaseKey]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def renew_leases(self, leader: str, keys: list[LeaseKey]) -> list[Any]:
        self.batches.append(list(keys))
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.answer(keys) if callable(self.answer) else self.answer

    async def share_renewals(self, keys: list[LeaseKey]) -> None:
        pass

    async def cluster_status(self, member: str) -> dict[str, Any] | None:
        return None

    async def close(self) -> None:
        pass


def forwarder(peers: FakePeers, *, max_batch: int = 100, max_queued: int = 100,
              leader: str | None = "n1") -> HeartbeatForwarder:
    return HeartbeatForwarder(lambda: leader, peers, max_batch=max_batch, max_queued=max_queued)


async def test_each_key_gets_its_own_verdict() -> None:
    answers = [{"ttl": 10}, NotFound("gone").to_body(), InvalidArgument("no ttl").to_body(),
               "junk", None, {"error": "text"}, {"ttl": "ten"}, {"ttl": True}]
    peers = FakePeers(answer=answers)
    fwd = forwarder(peers)
    peers.gate.clear()
    calls = [asyncio.ensure_future(fwd.renew("s", f"i{n}")) for n in range(len(answers))]
    await asyncio.sleep(0)
    peers.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == 10.0
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], InvalidArgument)
    assert all(isinstance(r, Unavailable) for r in results[3:]), results[3:]


async def test_an_unreachable_leader_makes_every_key_retryable() -> None:
    fwd = forwarder(FakePeers(error=Unavailable("could not reach the leader")))
    results = await asyncio.gather(fwd.renew("s", "a"), fwd.renew("s", "b"), return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)


async def test_no_leader_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="no leader"):
        await forwarder(FakePeers(answer=[]), leader=None).renew("s", "a")


async def test_a_short_answer_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="unexpected"):
        await forwarder(FakePeers(answer=[])).renew("s", "a")


async def test_heartbeats_arriving_meanwhile_go_out_together() -> None:
    peers = FakePeers(answer=lambda keys: [{"ttl": 5}] * len(keys))
    fwd = forwarder(peers)
    peers.gate.clear()
    first = asyncio.ensure_future(fwd.renew("s", "first"))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(fwd.renew("s", f"r{n}")) for n in range(5)]
    await asyncio.sleep(0)
    peers.gate.set()
    await asyncio.gather(first, *rest)
    assert [len(b) for b in peers.batches] == [1, 5]


async def test_a_full_queue_refuses_at_once() -> None:
    peers = FakePeers(answer=lambda keys: [{"ttl": 5}] * len(keys))
    fwd = forwarder(peers, max_queued=3)
    peers.gate.clear()
    inflight = asyncio.ensure_future(fwd.renew("s", "inflight"))
    await asyncio.sleep(0)
    queued = [asyncio.ensure_future(fwd.renew("s", f"q{n}")) for n in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(Unavailable, match="limit"):
        await fwd.renew("s", "refused")
    assert fwd.refused == 1
    peers.gate.set()
    await asyncio.gather(inflight, *queued)
    assert ("s", "refused") not in [key for batch in peers.batches for key in batch]
