"""The client's load balancers (raftreg.client.balancers, .hashing and .adaptive): the shared
rules, each balancer's distribution, consistent hashing's minimal disruption, and the load-aware
ones steering away from a slow instance in a simulation on a simulated clock. Fixed seeds only."""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from raftreg.client.adaptive import LeastConnectionsBalancer, PeakEwmaBalancer
from raftreg.client.balancers import (
    BALANCER_NAMES,
    Balancer,
    NoInstances,
    RoundRobinBalancer,
    SmoothWeightedRoundRobinBalancer,
    WeightedRandomBalancer,
    balancer_classes,
    make_balancer,
)
from raftreg.client.hashing import HashRing, RendezvousHash, RingHashBalancer, stable_hash64
from raftreg.errors import Unavailable
from raftreg.models import Instance, Status

SEED = 20261205
KEYED = ("source_hash", "ring_hash", "rendezvous")
WEIGHT_AWARE = ("weighted_random", "smooth_weighted_round_robin", "least_connections", "p2c_peak_ewma",
                "source_hash", "rendezvous")


def inst(instance_id: str, weight: int = 100, status: Status = "passing", service: str = "api") -> Instance:
    return Instance(service=service, id=instance_id, address="10.0.0.1", port=8080, weight=weight, status=status)


def fleet(count: int, prefix: str = "i") -> list[Instance]:
    return [inst(f"{prefix}{n:02d}") for n in range(count)]


def picks(balancer: Balancer, count: int, keyed: bool = False) -> list[str]:
    """``count`` picks (keys ``k0``, ``k1``, ... when ``keyed``), each call ended at once."""
    out = []
    for n in range(count):
        chosen = balancer.pick(f"k{n}" if keyed else None)
        balancer.on_result(chosen, 0.001, True)
        out.append(chosen.id)
    return out


def shares(ids: Sequence[str]) -> dict[str, float]:
    return {name: count / len(ids) for name, count in Counter(ids).items()}


# ---- the factory and the rules every balancer follows ------------------------------------------
def test_factory_knows_every_name() -> None:
    assert set(balancer_classes()) == set(BALANCER_NAMES)
    for name in BALANCER_NAMES:
        balancer = make_balancer(name, seed=SEED)
        assert balancer.name == name
    assert isinstance(make_balancer("ring_hash", vnodes=10), RingHashBalancer)
    with pytest.raises(ValueError, match="unknown balancer"):
        make_balancer("fastest")
    with pytest.raises(TypeError):
        make_balancer("random", warning_weight=0.5)  # random ignores weights: the option is refused


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_empty_set_raises_no_instances(name: str) -> None:
    balancer = make_balancer(name, seed=SEED)
    with pytest.raises(NoInstances):
        balancer.pick("k")
    balancer.update(fleet(3))
    balancer.pick("k")
    balancer.update([])
    with pytest.raises(Unavailable):  # NoInstances is an Unavailable: "retry later"
        balancer.pick("k")


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_critical_instances_are_never_picked(name: str) -> None:
    balancer = make_balancer(name, seed=SEED)
    balancer.update([*fleet(4), inst("sick", status="critical"), inst("sicker", status="critical")])
    chosen = set(picks(balancer, 2000, keyed=name in KEYED))
    assert "sick" not in chosen and "sicker" not in chosen
    assert {i.id for i in balancer.candidates} == {f"i{n:02d}" for n in range(4)}


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_all_critical_means_all_are_candidates(name: str) -> None:
    balancer = make_balancer(name, seed=SEED)
    balancer.update([inst(f"c{n}", status="critical") for n in range(3)])
    assert set(picks(balancer, 300, keyed=name in KEYED)) == {"c0", "c1", "c2"}


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_same_seed_same_sequence_whatever_the_input_order(name: str) -> None:
    instances = [inst(f"i{n}", weight=50 + 10 * n) for n in range(7)]
    sequences = []
    for order in (instances, instances[::-1], random.Random(1).sample(instances, len(instances))):
        balancer = make_balancer(name, seed=SEED)
        balancer.update(order)
        sequences.append(picks(balancer, 300, keyed=name in KEYED))
    assert sequences[0] == sequences[1] == sequences[2]


@pytest.mark.parametrize("name", ["random", "weighted_random", "least_connections", "p2c_peak_ewma"])
def test_another_seed_another_sequence(name: str) -> None:
    runs = []
    for seed in (1, 2):
        balancer = make_balancer(name, seed=seed)
        balancer.update(fleet(10))
        balancer.pick()  # least connections: every later pick has nine tied candidates
        runs.append(picks(balancer, 100))
    assert runs[0] != runs[1]


def test_duplicate_identity_is_refused() -> None:
    balancer = make_balancer("random", seed=SEED)
    with pytest.raises(ValueError, match="twice"):
        balancer.update([inst("a"), inst("b"), inst("a", weight=5)])
    balancer.update([inst("a"), inst("a", service="other")])  # another service: another identity
    assert len(balancer.instances) == 2


@pytest.mark.parametrize("name", KEYED)
def test_keyed_balancers_need_a_key(name: str) -> None:
    balancer = make_balancer(name)
    balancer.update(fleet(3))
    with pytest.raises(ValueError, match="key"):
        balancer.pick()


# ---- simple ones -------------------------------------------------------------------------------
def test_random_covers_every_instance_evenly() -> None:
    balancer = make_balancer("random", seed=SEED)
    balancer.update(fleet(10))
    got = shares(picks(balancer, 20_000))
    assert len(got) == 10
    assert all(0.09 < share < 0.11 for share in got.values())


def test_round_robin_cycles_in_identity_order_and_continues_after_an_update() -> None:
    balancer = RoundRobinBalancer(seed=SEED)
    balancer.update(fleet(4)[::-1])
    first = picks(balancer, 12)
    start = int(first[0][1:])
    assert first == [f"i{(start + n) % 4:02d}" for n in range(12)]
    last = first[-1]
    balancer.update([i for i in fleet(6) if i.id != "i02"])
    following = [i.id for i in balancer.candidates if i.id > last] or [balancer.candidates[0].id]
    assert balancer.pick().id == following[0]
    assert set(picks(balancer, 5)) | {following[0]} == {"i00", "i01", "i03", "i04", "i05"}


def test_round_robin_seeds_spread_the_first_pick() -> None:
    firsts = set()
    for seed in range(20):
        balancer = RoundRobinBalancer(seed=seed)
        balancer.update(fleet(5))
        firsts.add(balancer.pick().id)
    assert len(firsts) >= 3


# ---- weights -----------------------------------------------------------------------------------
WEIGHTS = {"a": 500, "b": 300, "c": 200}


@pytest.mark.parametrize("name", ["weighted_random", "smooth_weighted_round_robin", "source_hash", "rendezvous"])
def test_weighted_shares_within_2_percent(name: str) -> None:
    balancer = make_balancer(name, seed=SEED)
    balancer.update([inst(i, weight=w) for i, w in WEIGHTS.items()])
    got = shares(picks(balancer, 100_000, keyed=name in KEYED))
    total = sum(WEIGHTS.values())
    for instance_id, weight in WEIGHTS.items():
        assert got[instance_id] == pytest.approx(weight / total, rel=0.02), (instance_id, got)


def test_smooth_weighted_round_robin_exact_sequence() -> None:
    balancer = SmoothWeightedRoundRobinBalancer()
    balancer.update([inst("c", weight=1), inst("a", weight=5), inst("b", weight=1)])
    assert picks(balancer, 14) == list("aabacaa" * 2)


def test_smooth_weighted_round_robin_keeps_credits_of_stayers() -> None:
    balancer = SmoothWeightedRoundRobinBalancer()
    balancer.update([inst("a", weight=5), inst("b", weight=1), inst("c", weight=1)])
    assert picks(balancer, 3) == ["a", "a", "b"]
    balancer.update([inst("a", weight=5), inst("b", weight=1), inst("c", weight=1), inst("d", weight=0)])
    assert picks(balancer, 4) == ["a", "c", "a", "a"]  # the cycle goes on; weight 0 gets nothing


@pytest.mark.parametrize("name", WEIGHT_AWARE)
def test_warning_weight_reduces_the_share(name: str) -> None:
    balancer = make_balancer(name, seed=SEED, warning_weight=0.25)
    balancer.update([inst("ok"), inst("meh", status="warning")])
    got = shares(picks(balancer, 20_000, keyed=name in KEYED))
    if name in ("least_connections", "p2c_peak_ewma"):  # calls end at once: the weight decides ties
        assert got.get("meh", 0.0) < 0.25
    else:
        assert got["meh"] == pytest.approx(0.2, abs=0.01)  # 25 / (100 + 25)


def test_warning_weight_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="warning_weight"):
        WeightedRandomBalancer(warning_weight=1.5)


@pytest.mark.parametrize("name", WEIGHT_AWARE)
def test_weight_zero_gets_nothing_unless_all_are_zero(name: str) -> None:
    balancer = make_balancer(name, seed=SEED)
    balancer.update([inst("a"), inst("b"), inst("drained", weight=0)])
    assert "drained" not in picks(balancer, 2000, keyed=name in KEYED)
    balancer.update([inst("x", weight=0), inst("y", weight=0)])
    assert set(picks(balancer, 500, keyed=name in KEYED)) == {"x", "y"}


# ---- consistent hashing ------------------------------------------------------------------------
KEYS = [f"user-{n}" for n in range(100_000)]


def assignment(balancer: Balancer) -> list[str]:
    return [balancer.pick(key).id for key in KEYS]


@pytest.mark.parametrize("name", ["ring_hash", "rendezvous"])
def test_removing_or_adding_one_of_ten_moves_only_its_keys(name: str) -> None:
    balancer = make_balancer(name)
    instances = fleet(10)
    balancer.update(instances)
    before = assignment(balancer)
    assert all(0.07 < share < 0.13 for share in shares(before).values())

    busiest = Counter(before).most_common(1)[0][0]  # the worst case: the instance with most keys
    balancer.update([i for i in instances if i.id != busiest])
    after_removal = assignment(balancer)
    moved = [n for n in range(len(KEYS)) if after_removal[n] != before[n]]
    assert len(moved) <= 0.13 * len(KEYS)
    assert all(before[n] == busiest for n in moved)  # stayers keep their instance

    balancer.update([*instances, inst("new")])
    after_addition = assignment(balancer)
    moved = [n for n in range(len(KEYS)) if after_addition[n] != before[n]]
    assert 0.05 * len(KEYS) < len(moved) <= 0.13 * len(KEYS)
    assert all(after_addition[n] == "new" for n in moved)


def test_ring_rebuilt_from_a_previous_one_is_the_same_ring() -> None:
    nodes = {f"api/i{n}": 40 for n in range(30)}
    ring = HashRing(nodes)
    changed = {**{k: v for k, v in nodes.items() if k != "api/i3"}, "api/i7": 20, "api/new": 40}
    reused, fresh = HashRing(changed, reuse=ring), HashRing(changed)
    assert len(reused) == len(fresh) == 29 * 40 + 20
    probes = [stable_hash64(f"p{n}") for n in range(5000)] + [0, 2**64 - 1]
    assert [reused.lookup(h) for h in probes] == [fresh.lookup(h) for h in probes]
    with pytest.raises(LookupError):
        HashRing({}).lookup(1)


def test_weighted_ring_scales_virtual_nodes() -> None:
    balancer = RingHashBalancer(weighted=True, vnodes=160)
    balancer.update([inst("big", weight=300), inst("small", weight=100), inst("tiny", weight=1)])
    got = shares(assignment(balancer)[:50_000])
    assert got["big"] == pytest.approx(0.75, abs=0.05)
    assert 0.0 < got.get("tiny", 0.0) < 0.02  # weight 1: max(1, round(1.6)) = 2 points


def test_rendezvous_weight_change_moves_keys_only_to_or_from_that_node() -> None:
    keys = [stable_hash64(k) for k in KEYS[:20_000]]
    before = RendezvousHash({"a": 1.0, "b": 1.0, "c": 1.0})
    after = RendezvousHash({"a": 1.0, "b": 1.0, "c": 0.5})
    moved = [(before.lookup(h), after.lookup(h)) for h in keys if before.lookup(h) != after.lookup(h)]
    assert moved and all(old == "c" for old, _ in moved)
    assert len(RendezvousHash(["x", "y"])) == 2 and len(RendezvousHash({"x": 0.0})) == 0


def test_stable_hash_never_changes() -> None:
    # Pinned: a client on another version or machine must send the same key to the same instance.
    assert stable_hash64("10.1.2.3") == int.from_bytes(bytes.fromhex(STABLE_HASH_OF_10_1_2_3), "little")
    balancer = make_balancer("source_hash")
    balancer.update(fleet(5))
    assert {balancer.pick("10.1.2.3").id for _ in range(10)} == {balancer.pick("10.1.2.3").id}


STABLE_HASH_OF_10_1_2_3 = "b36b3bdbf6874d89"  # blake2b(b"10.1.2.3", digest_size=8)


# ---- load-aware balancers ----------------------------------------------------------------------
class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(balancer: Balancer, clock: SimulatedClock, latency_s: dict[str, float], requests: int = 20_000,
             interval_s: float = 0.0004) -> Counter[str]:
    """Open-loop arrivals every ``interval_s``; each call ends (``on_result``) after its instance's
    latency. Returns the picks per instance id."""
    in_flight: list[tuple[float, int, Instance]] = []
    picked: Counter[str] = Counter()
    for n in range(requests):
        arrival = n * interval_s
        while in_flight and in_flight[0][0] <= arrival:
            clock.now, _, done = heapq.heappop(in_flight)
            balancer.on_result(done, latency_s[done.id], True)
        clock.now = arrival
        chosen = balancer.pick()
        picked[chosen.id] += 1
        heapq.heappush(in_flight, (arrival + latency_s[chosen.id], n, chosen))
    return picked


@pytest.mark.parametrize("name", ["least_connections", "p2c_peak_ewma", "random"])
def test_load_aware_balancers_steer_away_from_a_slow_instance(name: str) -> None:
    clock = SimulatedClock()
    options = {"clock": clock} if name == "p2c_peak_ewma" else {}
    balancer = make_balancer(name, seed=SEED, **options)
    balancer.update(fleet(5))
    latency = {i.id: 0.002 for i in fleet(5)} | {"i03": 0.020}  # one instance 10x slower
    slow_share = simulate(balancer, clock, latency)["i03"] / 20_000
    if name == "random":  # the control: blind to load, the slow instance gets its fifth
        assert slow_share == pytest.approx(0.2, abs=0.01)
    else:
        assert slow_share < 0.06


def test_least_connections_counts_in_flight_and_breaks_ties_by_weight() -> None:
    balancer = LeastConnectionsBalancer(seed=SEED)
    a, b, c = inst("a", weight=100), inst("b", weight=300), inst("c", weight=100)
    balancer.update([a, b, c])
    assert balancer.pick().id == "b"  # all at 0 in flight: the heaviest
    assert {balancer.pick().id, balancer.pick().id} == {"a", "c"}
    assert [balancer.in_flight(i) for i in (a, b, c)] == [1, 1, 1]
    balancer.release(c)
    balancer.on_result(c, 0.01, False)  # nothing in flight left: stays at 0
    assert balancer.in_flight(c) == 0 and balancer.pick().id == "c"

    balancer.update([a, inst("b", weight=300, status="warning"), inst("d")])  # b stays, c goes
    assert [balancer.in_flight(i) for i in (a, b, c)] == [1, 1, 0]
    balancer.on_result(c, 0.01, True)  # not in the set any more: ignored
    assert balancer.pick().id == "d"


def test_peak_ewma_formula() -> None:
    clock = SimulatedClock()
    balancer = PeakEwmaBalancer(seed=SEED, clock=clock, decay_s=10.0, initial_latency_s=0.001,
                                failure_latency_s=1.0)
    fast, slow = inst("fast"), inst("slow", weight=50)
    balancer.update([fast, slow])
    assert balancer.cost(fast) == pytest.approx(0.001)
    assert balancer.cost(slow) == pytest.approx(0.002)  # half the weight: twice the cost

    balancer.on_result(fast, 0.005, True)  # above the estimate: the peak is taken as is
    assert balancer.cost(fast) == pytest.approx(0.005)
    clock.now = 10.0
    assert balancer.cost(fast) == pytest.approx(0.005 / math.e)  # decays towards 0
    balancer.on_result(fast, 0.001, True)
    w = math.exp(-1)
    assert balancer.cost(fast) == pytest.approx(0.005 * w + 0.001 * (1 - w))

    balancer.on_result(slow, 0.0001, False)  # a fast failure counts as failure_latency_s
    assert balancer.cost(slow) == pytest.approx(1.0 * 2)
    chosen = balancer.pick()
    assert chosen == fast and balancer.in_flight(fast) == 1
    assert balancer.cost(fast) == pytest.approx((0.005 * w + 0.001 * (1 - w)) * 2)  # (in_flight + 1)

    balancer.update([fast, inst("new")])  # fast keeps its estimate and its call in flight
    assert balancer.in_flight(fast) == 1 and balancer.cost(inst("new")) == pytest.approx(0.001)
    assert balancer.cost(slow) == math.inf


def test_peak_ewma_options_are_checked() -> None:
    with pytest.raises(ValueError):
        PeakEwmaBalancer(decay_s=0)


def test_a_lease_reports_the_call() -> None:
    balancer = LeastConnectionsBalancer(seed=SEED)
    balancer.update([inst("a")])
    with balancer.acquire() as lease:
        assert balancer.in_flight(lease.instance) == 1
    assert balancer.in_flight(lease.instance) == 0

    clock = SimulatedClock()
    p2c = PeakEwmaBalancer(seed=SEED, clock=clock)
    p2c.update([inst("a"), inst("b")])
    with pytest.raises(RuntimeError), p2c.acquire() as lease:
        raise RuntimeError("the call failed")
    assert p2c.cost(lease.instance) == pytest.approx(1.0)  # reported as a failure
    with pytest.raises(KeyError), p2c.acquire() as lease:
        lease.ok = True  # e.g. a NotFound: the instance answered fine
        raise KeyError("not found")
    assert p2c.in_flight(lease.instance) == 0
