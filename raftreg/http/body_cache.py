"""Encoded read responses, reused while the query's index has not moved.

A change that wakes 1,000 watchers of one service then costs one listing and one JSON encoding,
not 1,000. Correct because a query's answer is a function of the query and its answering index:
the index moves on every change the query could see (``RegistryNode.query_index``).
"""

from __future__ import annotations

import collections
from collections.abc import Hashable


class BodyCache:
    """A bounded LRU map ``query key -> (index, encoded body)``."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._entries: collections.OrderedDict[Hashable, tuple[int, bytes]] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, index: int) -> bytes | None:
        """The body cached for ``key`` if it was encoded at ``index``, else None."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != index:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Hashable, index: int, body: bytes) -> None:
        self._entries[key] = (index, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
