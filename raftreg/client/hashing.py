"""The client's key-affine balancers (see ``raftreg.client.balancers`` for the rules they share):
the same ``pick(key=...)`` gets the same instance.

* ``SourceHashBalancer``: the key's hash scaled onto the weights; most keys move on any change.
* ``RingHashBalancer``: consistent hashing on a ring of virtual nodes (``HashRing``).
* ``RendezvousBalancer``: weighted rendezvous hashing (``RendezvousHash``).

The hashing itself is pure data structures over node names (strings):

* ``stable_hash64``: a 64-bit hash of a string that is the same in every process and on every
  machine (blake2b; Python's ``hash()`` is salted per process, so never used here).
* ``HashRing``: consistent hashing with virtual nodes. ``lookup`` is a bisect over the sorted
  points, O(log(n * vnodes)); building hashes and sorts every point (a rebuild reuses the points
  of the nodes that did not change).
* ``RendezvousHash``: weighted highest-random-weight (HRW) hashing. No table at all; ``lookup``
  scores every node, O(n).

Both keep keys where they are when the node set changes, except the keys that must move: removing
a node moves only that node's keys (each to some survivor), adding a node moves to it only the keys
it now owns, and no key moves between two nodes that were present before and after.

Rendezvous rather than Maglev as the second scheme: Maglev's O(1) lookup and near-perfect balance
come from a permutation table (65,537 slots or more) rebuilt on every change, and that rebuild
moves a small share of keys between *surviving* backends. Rendezvous gives the exact guarantee
above, supports weights without a table (the logarithmic method below), and costs nothing to
rebuild; its O(n) lookup costs ~0.3 µs per node in CPython (~0.5 µs with unequal weights: a
logarithm each), fine for the tens of instances a service usually has; for very large sets use the
ring (``benchmarks/client_bench.py`` measures both).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping

from raftreg.client.balancers import WeightAwareBalancer
from raftreg.models import Instance

_MASK64 = (1 << 64) - 1
_TWO_TO_52 = float(1 << 52)


def stable_hash64(text: str) -> int:
    """A uniform 64-bit hash of ``text``, identical across processes, machines and versions."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def mix64(value: int) -> int:
    """A bijective 64-bit finalizer (the murmur3 ``fmix64`` constants): every input bit flips each
    output bit with probability ~1/2, so ``mix64(key ^ node)`` scores are independent per node."""
    value &= _MASK64
    value ^= value >> 33
    value = (value * 0xFF51AFD7ED558CCD) & _MASK64
    value ^= value >> 33
    value = (value * 0xC4CEB9FE1A85EC53) & _MASK64
    return value ^ (value >> 33)


class HashRing:
    """Consistent hashing: each node owns ``vnodes[node]`` points on a 64-bit circle; a key belongs
    to the node of the first point at or clockwise after ``stable_hash64(key)``.

    A node's points are ``stable_hash64(f"{node}#{i}")`` for ``i < vnodes[node]``, so they depend on
    nothing but the node's name and count. Points of two nodes that collide (2**-64 per pair) are
    ordered by node name, so the ring is the same whatever order ``vnodes`` lists the nodes in.
    """

    __slots__ = ("_owners", "_points", "_vnodes")

    def __init__(self, vnodes: Mapping[str, int], *, reuse: HashRing | None = None) -> None:
        """``vnodes``: node name -> number of virtual nodes (0 leaves the node off the ring).

        ``reuse``: a previous ring whose points are kept for every node with the same count, so a
        change of a few nodes hashes only theirs and merges them in (the result is the same ring)."""
        if any(count < 0 for count in vnodes.values()):
            raise ValueError("a node's number of virtual nodes must be >= 0")
        self._vnodes = dict(vnodes)
        previous = reuse._vnodes if reuse is not None else {}
        unchanged = {node for node, count in self._vnodes.items() if count and previous.get(node) == count}
        entries: list[tuple[int, str]] = [] if reuse is None or not unchanged else [
            (point, node) for point, node in zip(reuse._points, reuse._owners, strict=True) if node in unchanged
        ]
        entries += [(stable_hash64(f"{node}#{i}"), node)
                    for node, count in self._vnodes.items() if node not in unchanged for i in range(count)]
        entries.sort()  # the kept points are one sorted run: Timsort merges the new ones into it
        self._points: list[int] = [point for point, _ in entries]
        self._owners: list[str] = [node for _, node in entries]

    def __len__(self) -> int:
        """The number of points on the ring."""
        return len(self._points)

    def lookup(self, key_hash: int) -> str:
        """The node owning ``key_hash`` (a ``stable_hash64``). ``LookupError`` if the ring is empty."""
        if not self._points:
            raise LookupError("the hash ring has no points")
        index = bisect.bisect_left(self._points, key_hash)
        return self._owners[index if index < len(self._points) else 0]


class RendezvousHash:
    """Weighted rendezvous (highest random weight) hashing: a key goes to the node with the highest
    score ``-weight / ln(u)``, where ``u`` in (0, 1) is a uniform hash of the (key, node) pair.

    With this score a node wins a share of keys exactly proportional to its weight, and changing
    one node's weight only moves keys between that node and the others. When every weight is equal
    the score is just the hash (same winner, no logarithm). Ties (2**-64) go to the lower node name.
    """

    __slots__ = ("_nodes", "_uniform")

    def __init__(self, weights: Mapping[str, float] | Iterable[str]) -> None:
        """``weights``: node name -> weight (> 0; a node of weight 0 never wins), or just node names
        (all of weight 1)."""
        pairs = list(weights.items()) if isinstance(weights, Mapping) else [(node, 1.0) for node in weights]
        if any(not weight >= 0 or math.isinf(weight) for _, weight in pairs):
            raise ValueError("rendezvous weights must be finite and >= 0")
        pairs = [(node, float(weight)) for node, weight in sorted(pairs) if weight > 0]
        self._uniform = len({weight for _, weight in pairs}) <= 1
        self._nodes = [(stable_hash64(node), weight, node) for node, weight in pairs]

    def __len__(self) -> int:
        """The number of nodes that can win (weight > 0)."""
        return len(self._nodes)

    def lookup(self, key_hash: int) -> str:
        """The winning node for ``key_hash`` (a ``stable_hash64``). ``LookupError`` without nodes."""
        if not self._nodes:
            raise LookupError("rendezvous hashing has no node of positive weight")
        best_node = ""
        if self._uniform:  # the same winner as the weighted score, without a logarithm per node
            best_hash = -1
            for node_hash, _, node in self._nodes:
                pair_hash = mix64(key_hash ^ node_hash)
                if pair_hash > best_hash:
                    best_hash, best_node = pair_hash, node
            return best_node
        best_score = -math.inf
        for node_hash, weight, node in self._nodes:
            # The top 52 bits, centred: exactly representable, strictly inside (0, 1), so ln(unit) < 0.
            unit = ((mix64(key_hash ^ node_hash) >> 12) + 0.5) / _TWO_TO_52
            score = -weight / math.log(unit)
            if score > best_score:
                best_score, best_node = score, node
        return best_node


def _require_key(key: str | None, balancer: str) -> str:
    if key is None:
        raise ValueError(f"the {balancer} balancer needs pick(key=...)")
    return key


class SourceHashBalancer(WeightAwareBalancer):
    """The same key (e.g. the client's address) always gets the same instance while the set does
    not change: ``stable_hash64(key)`` scaled onto the cumulative effective weights. O(log n).

    Any change of the set or of a weight remaps most keys; use ``ring_hash`` or ``rendezvous`` when
    keys should stay put."""

    name = "source_hash"

    def __init__(self, *, warning_weight: float = 0.5) -> None:
        super().__init__(warning_weight=warning_weight)
        self._cumulative: list[float] = []

    def _rebuild(self) -> None:
        super()._rebuild()
        self._cumulative = list(itertools.accumulate(self._weights))

    def _choose(self, key: str | None) -> Instance:
        point = stable_hash64(_require_key(key, self.name)) / 2.0**64 * self._cumulative[-1]
        return self._pool[bisect.bisect_right(self._cumulative, point, hi=len(self._pool) - 1)]


def _node_name(instance: Instance) -> str:
    """The hash node of an instance: ``service/id`` (neither may contain ``/``)."""
    return f"{instance.service}/{instance.id}"


class _NodeHashed(WeightAwareBalancer):
    """A key-affine balancer over a hashing structure of node names (``_node_name``)."""

    def __init__(self, *, warning_weight: float) -> None:
        super().__init__(warning_weight=warning_weight)
        self._by_node: dict[str, Instance] = {}

    def _rebuild(self) -> None:
        super()._rebuild()
        self._by_node = {_node_name(i): i for i in self._candidates}

    @abstractmethod
    def _lookup(self, key_hash: int) -> str:
        """The node name owning ``key_hash``."""

    def _choose(self, key: str | None) -> Instance:
        return self._by_node[self._lookup(stable_hash64(_require_key(key, self.name)))]


class RingHashBalancer(_NodeHashed):
    """Consistent hashing on a ring (``HashRing``): ``vnodes`` points per candidate (default
    160), or with ``weighted=True`` ``max(1, round(vnodes * effective_weight / 100))`` (weight 100 is
    the default weight). O(log(n * vnodes)) per pick; ``update`` rebuilds the ring only when the
    points change, hashing only the points of the instances that changed.

    Removing or adding an instance moves only the keys it owned or now owns. ``warning_weight``
    applies only with ``weighted=True``."""

    name = "ring_hash"

    def __init__(self, *, vnodes: int = 160, weighted: bool = False, warning_weight: float = 0.5) -> None:
        if vnodes < 1:
            raise ValueError("vnodes must be >= 1")
        super().__init__(warning_weight=warning_weight)
        self.vnodes = vnodes
        self.weighted = weighted
        self._points: dict[str, int] = {}
        self._ring = HashRing({})

    def _rebuild(self) -> None:
        super()._rebuild()
        if self.weighted:
            pairs = zip(self._pool, self._weights, strict=True)
            points = {_node_name(i): max(1, round(self.vnodes * weight / 100)) for i, weight in pairs}
        else:
            points = dict.fromkeys(map(_node_name, self._candidates), self.vnodes)
        if points != self._points:
            self._points, self._ring = points, HashRing(points, reuse=self._ring)

    def _lookup(self, key_hash: int) -> str:
        return self._ring.lookup(key_hash)


class RendezvousBalancer(_NodeHashed):
    """Weighted rendezvous (highest random weight) hashing (``RendezvousHash``): the key goes
    to the candidate scoring highest for it, in proportion to the effective weights. O(n) per pick,
    nothing to build. Chosen over Maglev for its exact minimal disruption (see the module)."""

    name = "rendezvous"

    def __init__(self, *, warning_weight: float = 0.5) -> None:
        super().__init__(warning_weight=warning_weight)
        self._hash = RendezvousHash({})

    def _rebuild(self) -> None:
        super()._rebuild()
        self._hash = RendezvousHash({_node_name(i): w for i, w in zip(self._pool, self._weights, strict=True)})

    def _lookup(self, key_hash: int) -> str:
        return self._hash.lookup(key_hash)
