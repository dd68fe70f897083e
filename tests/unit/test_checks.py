"""CheckRunner (thresholds, deregistration, share, concurrency bound) with a fake clock and fake
probes; rendezvous hashing."""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec

from raftreg.config import CheckTuning
from raftreg.models import Check, Instance, Status
from raftreg.node.checks import CheckRunner, ProbeResult, owner_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def monotonic(self) -> float:
        return self.now


def checked(i: int, **check: object) -> Instance:
    spec = {"http": f"http://10.0.0.1/h/{i}", "interval": 1.0, **check}
    return Instance(service="web", id=f"i{i}", address="10.0.0.1", port=80, check=msgspec.convert(spec, Check),
                    check_status="critical", status="critical", create_index=i + 1, modify_index=i + 1)


class Harness:
    """A runner whose commits land in a dict standing for the registry."""

    def __init__(self, instances: list[Instance], members: list[str] | None = None, me: str = "n1",
                 max_concurrent: int = 8) -> None:
        self.clock = FakeClock()
        self.store = {(i.service, i.id): i for i in instances}
        self.members = members if members is not None else ["n1"]
        self.proposed: list[tuple[str, Status]] = []
        self.expired: list[str] = []
        self.results: dict[str, bool] = {}
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.max_running = 0
        self.runner = CheckRunner(
            me, CheckTuning(max_concurrent=max_concurrent), self.clock,
            list_checked=lambda: list(self.store.values()),
            live_members=lambda: self.members,
            propose_status=self.propose_status,
            propose_expire=self.propose_expire,
            prober=self.probe,
        )

    async def propose_status(self, inst: Instance, status: Status, output: str) -> Instance | None:
        self.proposed.append((inst.id, status))
        new = msgspec.structs.replace(inst, check_status=status, status=status, status_note=output,
                                      modify_index=inst.modify_index + 100)
        self.store[(inst.service, inst.id)] = new
        return new

    async def propose_expire(self, inst: Instance) -> bool:
        self.expired.append(inst.id)
        return self.store.pop((inst.service, inst.id), None) is not None

    async def probe(self, check: Check) -> ProbeResult:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            assert check.http is not None
            ok = self.results.get(check.http.rsplit("/", 1)[1], True)
            return ProbeResult(ok, "HTTP 200" if ok else "HTTP 500")
        finally:
            self.running -= 1

    async def probe_once(self, key: str, ok: bool) -> None:
        self.results[key] = ok
        self.runner.reconcile()
        owned = self.runner._owned[("web", f"i{key}")]
        await self.runner.judge(owned, ProbeResult(ok, "HTTP 200" if ok else "HTTP 500"))


def test_rendezvous_moves_only_the_dead_members_keys() -> None:
    keys = [f"web/i{i}" for i in range(3000)]
    before = {k: owner_of(k, ["n1", "n2", "n3"]) for k in keys}
    spread = Counter(before.values())
    assert all(800 < spread[m] < 1200 for m in ("n1", "n2", "n3")), spread
    after = {k: owner_of(k, ["n1", "n3"]) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(before[k] == "n2" for k in moved)
    assert all(after[k] in ("n1", "n3") for k in keys)


async def test_transitions_need_consecutive_results_and_only_transitions_are_committed() -> None:
    h = Harness([checked(0, failures_before_critical=3, successes_before_passing=2)])
    await h.probe_once("0", True)
    assert h.proposed == []  # one success of the two needed
    await h.probe_once("0", True)
    assert h.proposed == [("i0", "passing")]
    for _ in range(5):
        await h.probe_once("0", True)
    assert h.proposed == [("i0", "passing")]  # steady: nothing more committed
    await h.probe_once("0", False)
    await h.probe_once("0", False)
    await h.probe_once("0", True)  # a success resets the failure count
    await h.probe_once("0", False)
    await h.probe_once("0", False)
    assert h.proposed == [("i0", "passing")]
    await h.probe_once("0", False)
    assert h.proposed == [("i0", "passing"), ("i0", "critical")]
    assert h.store[("web", "i0")].status_note == "HTTP 500"


async def test_deregister_critical_after_counts_from_the_committed_critical_state() -> None:
    h = Harness([checked(0, deregister_critical_after=30.0)])
    await h.probe_once("0", False)  # already critical (new instance): the clock starts now
    h.clock.now += 29.0
    await h.probe_once("0", False)
    assert h.expired == []
    h.clock.now += 1.5
    await h.probe_once("0", False)
    assert h.expired == ["i0"]


async def test_a_passing_probe_stops_the_deregistration_clock() -> None:
    h = Harness([checked(0, deregister_critical_after=10.0)])
    await h.probe_once("0", False)
    h.clock.now += 8.0
    await h.probe_once("0", True)  # passing now (successes_before_passing=1)
    h.clock.now += 8.0
    await h.probe_once("0", False)  # critical again: a fresh 10 s
    h.clock.now += 5.0
    await h.probe_once("0", False)
    assert h.expired == []


def test_a_node_without_a_leader_owns_nothing_and_the_share_follows_the_members() -> None:
    instances = [checked(i) for i in range(300)]
    h = Harness(instances, members=["n1", "n2", "n3"])
    h.runner.reconcile()
    mine = set(h.runner._owned)
    assert 60 < len(mine) < 140
    h.members = ["n1", "n3"]  # n2 died: n1 takes over some of its share and keeps its own
    h.runner.reconcile()
    assert mine < set(h.runner._owned)
    h.members = []  # no usable leader: probe nothing (nothing could be committed)
    h.runner.reconcile()
    assert h.runner.stats.owned == 0


async def test_probes_in_flight_are_bounded() -> None:
    h = Harness([checked(i) for i in range(60)], max_concurrent=5)
    h.gate = asyncio.Event()
    h.runner.reconcile()
    h.clock.now += 5.0  # everything due at once
    assert h.runner.launch_due(h.clock.now) == 60
    for _ in range(20):
        await asyncio.sleep(0)
    assert h.max_running == 5
    h.gate.set()
    for _ in range(200):
        await asyncio.sleep(0)
        if h.runner.stats.probes == 60:
            break
    assert h.runner.stats.probes == 60 and h.max_running == 5
    await h.runner.stop()
