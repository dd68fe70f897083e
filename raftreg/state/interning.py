"""Bounded sharing of the repetitive parts of stored instances (service names, addresses, tag
lists, meta maps): one copy of each distinct value, so a large registry costs less memory."""

from __future__ import annotations

import sys
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

import msgspec

from raftreg.models import Instance

T = TypeVar("T")


class _Shared(Generic[T]):
    """Stores one copy of each distinct value, up to ``limit`` of them; beyond the limit new values
    are returned as they are. Replicas of a service repeat their tag lists, meta maps, meta values
    and often addresses: sharing those saves hundreds of bytes per instance. ``sys.intern`` would
    share without a bound, and a unique string costs more in the intern table than it saves (about
    40 bytes per instance for unique addresses). Shared values are never mutated: instances are
    replaced, not edited."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.values: dict[Hashable, T] = {}  # key -> its shared copy (read with ``values.get``)

    def keep(self, key: Hashable, value: T) -> T:
        """``value``, kept as the shared copy of ``key`` if there is room. The caller looked
        ``key`` up in ``values`` first (two plain steps instead of a callback: this runs for every
        registration applied on every node)."""
        if len(self.values) < self._limit:
            self.values[key] = value
        return value


_SHORT = 64  # longer meta values are rarely repeated: not worth a table slot
_strings: _Shared[str] = _Shared(16384)
_tag_sets: _Shared[tuple[str, ...]] = _Shared(4096)
_meta_maps: _Shared[dict[str, str]] = _Shared(4096)


def _shared_str(value: str) -> str:
    shared = _strings.values.get(value)
    return shared if shared is not None else _strings.keep(value, value)


def _shared_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    shared = _tag_sets.values.get(tags)
    return shared if shared is not None else _tag_sets.keep(tags, tuple(sys.intern(t) for t in tags))


def _shared_meta(meta: dict[str, str]) -> dict[str, str]:
    items = tuple(meta.items())
    shared = _meta_maps.values.get(items)
    if shared is not None:
        return shared
    return _meta_maps.keep(items, {sys.intern(k): _shared_str(v) if len(v) <= _SHORT else v for k, v in items})


def shared_strings(inst: Instance, create_index: int, modify_index: int, **fields: Any) -> Instance:
    """``inst`` with its indexes set, ``fields`` replaced (one copy) and its repetitive parts shared.

    Service names and meta keys are interned (few distinct ones); addresses, tag lists, meta maps
    and short meta values are shared through bounded tables. With the benchmark's 300-byte bodies
    (every instance the same meta) an instance costs about 350 bytes instead of 800; an instance
    with a meta map of its own still pays for it.
    """
    return msgspec.structs.replace(
        inst,
        service=sys.intern(inst.service),
        address=_shared_str(inst.address),
        tags=_shared_tags(inst.tags),
        meta=_shared_meta(inst.meta),
        create_index=create_index,
        modify_index=modify_index,
        **fields,
    )
