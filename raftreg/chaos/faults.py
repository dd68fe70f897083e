"""Fault schedule and fault actions against a ``LocalCluster``.

The schedule is a pure function of the seed: the same seed gives the same sequence of fault
kinds, target roles ("leader" or a random node) and durations. Which node is the leader at run
time is up to the cluster, so the concrete victims may differ between runs.

Faults (one at a time, so a majority normally survives each):
- ``kill``: kill -9 a node's process group, start it again after a delay on the same data.
- ``pause``: SIGSTOP a node, SIGCONT after a delay (a paused leader keeps believing it leads).
- ``partition``: drop all Raft traffic between a node and every peer (both sides, through the
  nodes' ``POST /v1/debug/partition`` fault hook in front of the Raft transport), heal after a delay.
- ``restart-all``: kill -9 every node at once, start them all again.
- ``membership``: remove a follower, wipe its data, add it back and start it with ``--join``
  (``raftreg.chaos.membership_fault``).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Literal

from raftreg.chaos.membership_fault import add_back, remove_member
from raftreg.testing import LocalCluster

FaultKind = Literal["kill", "pause", "partition", "restart-all", "membership"]
FAULT_KINDS: tuple[FaultKind, ...] = ("kill", "pause", "partition", "restart-all", "membership")
# "<kind>-leader" always hits the current leader; plain "<kind>" hits it with ``leader_share``.
FAULT_NAMES: tuple[str, ...] = (*FAULT_KINDS, "kill-leader", "pause-leader", "partition-leader")


@dataclass(frozen=True)
class PlannedFault:
    kind: FaultKind
    target: Literal["leader", "random", "all"]
    random_pick: float  # picks the node when target == "random"
    hold: float  # seconds the fault lasts (down, paused, cut off)
    gap: float  # seconds of calm after the cluster recovered, before the next fault


def plan(seed: int, names: list[str], count: int, *, leader_share: float = 0.6) -> list[PlannedFault]:
    """``count`` faults drawn from ``names`` (see ``FAULT_NAMES``; round robin, so each occurs),
    seeded. The first fault of each name hits the leader (a short run always includes a leader
    kill); later ones hit it with probability ``leader_share`` (always for ``<kind>-leader``)."""
    if not names:
        return []
    rng = random.Random(seed)
    faults = []
    for i in range(count):
        name = names[i % len(names)]
        kind: FaultKind = name.removesuffix("-leader")  # type: ignore[assignment]
        to_leader = rng.random() < leader_share or i < len(names) or name.endswith("-leader")
        target: Literal["leader", "random", "all"] = (
            "all" if kind == "restart-all" else ("leader" if to_leader and kind != "membership" else "random")
        )
        hold = {"kill": rng.uniform(0.5, 2.0), "pause": rng.uniform(1.0, 4.0),
                "partition": rng.uniform(2.0, 5.0), "restart-all": rng.uniform(0.5, 1.5),
                "membership": rng.uniform(0.5, 1.5)}[kind]
        faults.append(PlannedFault(kind, target, rng.random(), hold, rng.uniform(0.5, 2.0)))
    return faults


@dataclass
class FaultRecord:
    """What happened, for the report."""

    kind: str  # a FaultKind, or a lab fault (raftreg.chaos.netfaults)
    nodes: list[str]
    was_leader: bool
    started: float  # time.monotonic()
    healed: float | None = None
    recovered: float | None = None  # every node ready again
    catch_up_s: dict[str, float] = field(default_factory=dict)  # restarted node -> restart..ready
    error: str | None = None
    detail: str = ""  # a lab fault's amount, e.g. "23%" (raftreg.chaos.netfaults)


class FaultInjector:
    """Applies planned faults to a cluster. Blocking calls run in threads (``asyncio.to_thread``)."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.records: list[FaultRecord] = []
        self.paused: dict[str, list[tuple[float, float]]] = {}  # node -> pause intervals
        self.current: FaultRecord | None = None

    def leader(self) -> str | None:
        try:
            return self.cluster.leader(timeout=0.5)
        except TimeoutError:
            return None

    async def apply(self, fault: PlannedFault, recover_timeout: float = 60.0) -> FaultRecord:
        cluster = self.cluster
        leader = await asyncio.to_thread(self.leader)
        names = cluster.names
        if fault.target == "all":
            victims = list(names)
        elif fault.target == "leader" and leader is not None:
            victims = [leader]
        elif fault.kind == "membership":  # a follower: the leader cannot remove itself
            followers = [n for n in names if n != leader] or names
            victims = [followers[int(fault.random_pick * len(followers)) % len(followers)]]
        else:
            victims = [names[int(fault.random_pick * len(names)) % len(names)]]
        rec = FaultRecord(fault.kind, victims, leader in victims, time.monotonic())
        self.records.append(rec)
        self.current = rec
        try:
            if fault.kind == "kill" or fault.kind == "restart-all":
                for name in victims:
                    cluster.kill(name)
                await asyncio.sleep(fault.hold)
                restart_at = time.monotonic()
                for name in victims:
                    cluster.start_node(name)
                rec.healed = time.monotonic()
                await asyncio.to_thread(self._wait_ready, victims, restart_at, rec, recover_timeout)
            elif fault.kind == "membership":
                await asyncio.to_thread(remove_member, cluster, victims[0])
                await asyncio.sleep(fault.hold)
                restart_at = time.monotonic()
                await asyncio.to_thread(add_back, cluster, victims[0])
                rec.healed = time.monotonic()
                await asyncio.to_thread(self._wait_ready, victims, restart_at, rec, recover_timeout)
            elif fault.kind == "pause":
                for name in victims:
                    cluster.pause(name)
                await asyncio.sleep(fault.hold)
                for name in victims:
                    cluster.resume(name)
                    self.paused.setdefault(name, []).append((rec.started, time.monotonic()))
                rec.healed = time.monotonic()
            elif fault.kind == "partition":
                await asyncio.to_thread(self._partition, victims)
                await asyncio.sleep(fault.hold)
                await asyncio.to_thread(self._heal)
                rec.healed = time.monotonic()
            await asyncio.to_thread(cluster.wait_ready, recover_timeout)
            rec.recovered = time.monotonic()
        except Exception as exc:  # report, and let the runner decide (it checks cluster health)
            rec.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.current = None
        return rec

    def heal_all(self) -> None:
        """Undo whatever a fault left behind (interrupted run): resume, heal, start dead nodes."""
        for name in self.cluster.names:
            proc = self.cluster.procs[name]
            if proc.alive():
                self.cluster.resume(name)
            else:
                self.cluster.start_node(name)
        self._heal()

    def _wait_ready(self, names: list[str], since: float, rec: FaultRecord, timeout: float) -> None:
        for name in names:
            self.cluster.wait_node_ready(name, timeout=timeout)
            rec.catch_up_s[name] = time.monotonic() - since

    def _partition(self, victims: list[str]) -> None:
        names = self.cluster.names
        for victim in victims:
            others = [n for n in names if n != victim]
            self._block(victim, others)
            for other in others:
                self._block(other, [victim])

    def _heal(self) -> None:
        for name in self.cluster.names:
            self._block(name, [])

    def _block(self, name: str, peers: list[str]) -> None:
        code, body = self.cluster.debug(name, "partition", {"block": peers}, timeout=5.0)
        if code != 200 and self.cluster.procs[name].alive():
            raise RuntimeError(f"partition hook on {name} answered {code}: {body}")
