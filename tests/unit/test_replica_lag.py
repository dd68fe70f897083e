"""``ReplicaLag``: the replicas' rows of ``GET /v1/cluster`` from their own answers, with fake peers."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.node.replicas import ReplicaLag, own_lag
from raftreg.raft.status import STOPPED

CONFIG = ClusterConfig(name="t", nodes=[
    *(NodeConfig(name=f"n{i}", http=f"127.0.0.1:{8500 + i}", raft=f"127.0.0.1:{7000 + i}") for i in (1, 2, 3)),
    *(NodeConfig(name=f"r{i}", http=f"127.0.0.1:{8510 + i}", raft=f"127.0.0.1:{7010 + i}", role="replica")
      for i in (1, 2)),
])


class FakePeers:
    def __init__(self, answers: dict[str, dict[str, Any] | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def cluster_status(self, member: str) -> dict[str, Any] | None:
        self.asked.append(member)
        return self.answers.get(member)


async def poll_once(lag: ReplicaLag) -> None:
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.05)
    task.cancel()


async def test_a_voter_reports_each_replicas_own_lag_and_an_unanswering_one_as_unreachable() -> None:
    peers = FakePeers({"r1": {"applied_index": 90, "leader_commit_index": 100}, "r2": None})
    lag = ReplicaLag(CONFIG, CONFIG.node("n1"), peers)  # type: ignore[arg-type]
    await poll_once(lag)
    assert sorted(peers.asked) == ["r1", "r2"]  # the replicas only, never the voters
    rows = {row["name"]: row for row in lag.rows(STOPPED)}
    assert rows["r1"] == {"name": "r1", "raft": "127.0.0.1:7011", "http": "127.0.0.1:8511", "role": "replica",
                          "status": "replica", "match_index": 90, "lag": 10}
    assert (rows["r2"]["status"], rows["r2"]["match_index"], rows["r2"]["lag"]) == ("unreachable", None, None)


async def test_a_replica_reports_itself_from_its_own_status_and_polls_only_the_others() -> None:
    peers = FakePeers({"r2": {"applied_index": 7, "leader_commit_index": None}})
    lag = ReplicaLag(CONFIG, CONFIG.node("r1"), peers)  # type: ignore[arg-type]
    await poll_once(lag)
    assert peers.asked == ["r2"]
    st = dataclasses.replace(STOPPED, applied_index=40, leader_commit_index=42)
    rows = {row["name"]: row for row in lag.rows(st)}
    assert (rows["r1"]["status"], rows["r1"]["match_index"], rows["r1"]["lag"]) == ("replica", 40, 2)
    assert (rows["r2"]["match_index"], rows["r2"]["lag"]) == (7, None)


def test_own_lag() -> None:
    assert own_lag(dataclasses.replace(STOPPED, state="leader", commit_index=5, applied_index=4)) == 1
    assert own_lag(dataclasses.replace(STOPPED, applied_index=9, leader_commit_index=5)) == 0
    assert own_lag(STOPPED) is None


async def test_no_replicas_no_polling_until_one_is_added_at_run_time() -> None:
    voters_only = ClusterConfig(name="t", nodes=list(CONFIG.voters))
    peers = FakePeers({"r1": {"applied_index": 7, "leader_commit_index": 9}})
    lag = ReplicaLag(voters_only, voters_only.node("n1"), peers)  # type: ignore[arg-type]
    await poll_once(lag)
    assert peers.asked == [] and lag.rows(STOPPED) == []
    # The membership adds a replica (it updates config.nodes in place): the next poll asks it.
    voters_only.nodes.append(CONFIG.node("r1"))
    await poll_once(lag)
    assert peers.asked == ["r1"]
    (row,) = lag.rows(STOPPED)
    assert (row["name"], row["status"], row["match_index"], row["lag"]) == ("r1", "replica", 7, 2)
