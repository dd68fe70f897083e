"""``AnswerCache``: rendered answers kept for one catalog version, so a repeated question costs a
dictionary look-up instead of dnspython's parse, build and render (about 0.2-0.5 ms each).

Contract:
- the key is everything a query packet holds after its 2-byte id (flags, question with its exact
  case, EDNS0 record) and the transport: the same key at the same catalog version always has
  the same answer but for its id and the order of its records;
- ``pick(key, version, rng)`` gives a kept answer body (without its id) only once ``variants``
  renderings of it were kept (``add``), one of them at random: answers with several records
  keep a random order per query among that many shuffles; answers with one record keep one;
- a new ``version`` (the registry's index, with the ACL index when ACLs are on) drops
  everything; at most ``max_keys`` questions are kept (the oldest go first).
"""

from __future__ import annotations

import random
from collections.abc import Hashable

Key = tuple[bool, bytes]


class AnswerCache:
    def __init__(self, max_keys: int = 2048) -> None:
        self._max_keys = max_keys
        self._version: Hashable = None
        self._kept: dict[Key, tuple[int, list[bytes]]] = {}
        self.hits = 0

    def pick(self, key: Key, version: Hashable, rng: random.Random) -> bytes | None:
        if version != self._version:
            self._kept.clear()
            self._version = version
            return None
        kept = self._kept.get(key)
        if kept is None or len(kept[1]) < kept[0]:
            return None
        self.hits += 1
        bodies = kept[1]
        return bodies[0] if len(bodies) == 1 else rng.choice(bodies)

    def add(self, key: Key, version: Hashable, body: bytes, variants: int) -> None:
        if version != self._version or variants < 1:
            return
        kept = self._kept.get(key)
        if kept is None:
            if len(self._kept) >= self._max_keys:
                del self._kept[next(iter(self._kept))]
            kept = self._kept[key] = (variants, [])
        if len(kept[1]) < kept[0]:
            kept[1].append(body)
