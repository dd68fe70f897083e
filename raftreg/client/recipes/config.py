"""A live configuration view: the keys under a prefix, decoded, kept current by one watch.

    view = client.config("app/")                 # decoder=json.loads by default
    view.wait_ready(5)                           # the first answer is loaded
    view["db/url"], view.values, view.stale      # read at any time; never blocks
    view.add_listener(lambda old, new: ...)      # called once per change, from the watch

``ConfigView`` (blocking client) runs one daemon thread, ``AsyncConfigView`` one asyncio task;
both keep a blocking query on the prefix (``kv_list(prefix, index=, wait=)``).

Contract:
- ``values`` maps each key's suffix after the prefix (``"app/db/url"`` -> ``"db/url"``) to
  ``decoder(value bytes)``. It is replaced, never mutated: a reader holds a consistent snapshot.
- Listeners are called once per change of ``values`` with ``(old, new)`` (the first load too,
  from ``{}``, when it is not empty), in the watch's thread or
  task, in the order added; an exception in one is logged and does not stop the watch or others.
- **Last good values.** A value that fails to decode keeps the key's last good value (a key never
  decoded stays out of ``values``); ``undecodable`` names such keys with the error. When the
  registry is unreachable (every node failed for ``QUERY_DEADLINE`` plus the query's hold, about
  13.6 s), the last good ``values`` stay. Either makes ``stale`` true, as ``raftreg.client.discovery`` does:
  one log line per change of state (stale, fresh again), ``stale_events`` counts them.
- A key deleted in the registry leaves ``values`` (a deletion is not a failure).
- Any other API error (``PermissionDenied``, ``InvalidArgument``) ends the watch: ``error`` holds
  it and ``wait_ready``/``wait_for`` raise it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from raftreg.client.background import TaskWatch, ThreadedWatch, ViewState
from raftreg.client.kv_results import KVList
from raftreg.client.policy import WatchCursor
from raftreg.errors import RaftregError, Timeout, Unavailable

if TYPE_CHECKING:
    from raftreg.client.kv_async import AsyncKVCalls
    from raftreg.client.kv_sync import KVCalls

log = logging.getLogger("raftreg.client")

# As in ``raftreg.client.discovery``: a blocking query's call retries for QUERY_DEADLINE plus its
# hold (about 1.06 x WATCH_WAIT), so the view turns stale within about 13.6 s of the registry going.
WATCH_WAIT = 10.0  # seconds a blocking query of the view is held by the server
QUERY_DEADLINE = 3.0  # every node failing this long (plus the query's hold) makes the view stale
MAX_BACKOFF = 2.0
Listener = Callable[[Mapping[str, Any], Mapping[str, Any]], None]
Decoder = Callable[[bytes], Any]


class ConfigCore(ViewState):
    """The view's rules without I/O: ``query()`` gives the next read's ``index``/``wait``; the shell
    reports ``answered(KVList)`` or ``failed(error)``."""

    def __init__(self, prefix: str, decoder: Decoder, on_change: Callable[[], None], *,
                 rng: random.Random | None = None) -> None:
        self.prefix = prefix
        self.values: Mapping[str, Any] = MappingProxyType({})
        self.undecodable: Mapping[str, str] = MappingProxyType({})  # suffix -> decode error
        self.index = 0
        self.version = 0
        self.stale = False
        self.stale_events = 0
        self.ready = False
        self.error: RaftregError | None = None
        self._decoder = decoder
        self._on_change = on_change
        self._listeners: list[Listener] = []
        self._decoded: dict[str, tuple[int, Any]] = {}  # suffix -> (modify_index, last good value)
        self._rng = rng or random.Random()
        self._cursor = WatchCursor(0, max_backoff=MAX_BACKOFF)
        self._unreachable = False

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(old, new)`` at every later change of ``values``. The blocking view's
        thread may load the first values before this is called: read ``values`` after adding."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def __getitem__(self, suffix: str) -> Any:
        return self.values[suffix]

    def get(self, suffix: str, default: Any = None) -> Any:
        return self.values.get(suffix, default)

    def query(self) -> dict[str, Any]:
        """The keyword arguments of the next ``kv_list``: a plain read first and after a failure
        (so a registry that comes back is noticed at once), a blocking query otherwise."""
        at = None if self._unreachable else self._cursor.blocking_index
        return {"index": at, "wait": WATCH_WAIT if at is not None else None, "deadline": QUERY_DEADLINE}

    def answered(self, found: KVList) -> None:
        recovering, self._unreachable = self._unreachable, False
        if not (self._cursor.answered(found.index) or recovering or not self.ready):
            return
        decoded: dict[str, tuple[int, Any]] = {}
        bad: dict[str, str] = {}
        for entry in found.entries:
            if not entry.key.startswith(self.prefix):
                continue
            suffix = entry.key[len(self.prefix):]
            known = self._decoded.get(suffix)
            if known is not None and known[0] == entry.modify_index:
                decoded[suffix] = known
                continue
            try:
                decoded[suffix] = (entry.modify_index, self._decoder(entry.value))
            except Exception as exc:  # any decoder's error: keep the last good value
                bad[suffix] = f"{type(exc).__name__}: {exc}"
                if known is not None:
                    decoded[suffix] = known
        self._decoded = decoded
        self.index = found.index
        self.undecodable = MappingProxyType(bad)
        old, new = self.values, MappingProxyType({k: v for k, (_, v) in sorted(decoded.items())})
        self.ready = True
        changed = dict(old) != dict(new)
        if changed:
            self.values = new
            self.version += 1
        if bad:
            self._set_stale(f"{len(bad)} values do not decode ({', '.join(sorted(bad)[:3])}); keeping their "
                            "last good values")
        else:
            self._set_stale(None)
        if changed:
            self._notify(old, new)
        self._on_change()

    def failed(self, err: RaftregError) -> float:
        """A query failed; returns the pause before the next, or -1 when the watch ends."""
        if not isinstance(err, Unavailable | Timeout):
            self.error = err
            log.error("config %s: stopped: %s", self.prefix, err)
            self._on_change()
            return -1.0
        self._unreachable = True
        self._set_stale(f"registry unreachable ({err.message}); serving the last good values")
        return self._cursor.failed(self._rng)

    def _set_stale(self, reason: str | None) -> None:
        if (reason is not None) == self.stale:
            return
        self.stale = reason is not None
        if reason is not None:
            self.stale_events += 1
            log.warning("config %s: %s [stale]", self.prefix, reason)
        else:
            log.info("config %s: fresh again, %d keys at index %d", self.prefix, len(self.values), self.index)
        self._on_change()

    def _notify(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(old, new)
            except Exception:
                log.exception("config %s: a listener failed", self.prefix)

    def __repr__(self) -> str:
        flag = " stale" if self.stale else ""
        return f"<{type(self).__name__} {self.prefix!r} {len(self.values)} keys index={self.index}{flag}>"


class ConfigView(ConfigCore):
    """The live view on a blocking client, kept by a daemon thread (module docstring)."""

    def __init__(self, client: KVCalls, prefix: str, decoder: Decoder) -> None:
        self._watch = ThreadedWatch(self._step, self.satisfied, f"raftreg-config-{prefix}")
        super().__init__(prefix, decoder, self._watch.notify)
        self._client = client
        self._watch.start()

    def _step(self) -> float:
        try:
            found = self._client.kv_list(self.prefix, **self.query())
        except RaftregError as err:
            return self.failed(err)
        self.answered(found)
        return 0.0

    def wait_ready(self, timeout: float | None = None) -> None:
        """Return once the first answer is loaded; ``TimeoutError`` after ``timeout`` seconds."""
        self.wait_for(lambda values: True, timeout)

    def wait_for(self, predicate: Callable[[Mapping[str, Any]], bool],
                 timeout: float | None = None) -> Mapping[str, Any]:
        """Return ``values`` once loaded and ``predicate(values)`` holds; ``TimeoutError`` after
        ``timeout`` seconds."""
        self._watch.wait_until(lambda: predicate(self.values), timeout, f"config {self.prefix!r}")
        return self.values

    def close(self) -> None:
        """Stop the watch; the thread ends when its query in flight returns."""
        self._watch.close()

    def __enter__(self) -> ConfigView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncConfigView(ConfigCore):
    """The live view on an ``AsyncRegistryClient``, kept by one task (module docstring)."""

    def __init__(self, client: AsyncKVCalls, prefix: str, decoder: Decoder) -> None:
        self._watch = TaskWatch(self._step, self.satisfied, f"raftreg-config-{prefix}")
        super().__init__(prefix, decoder, self._watch.notify)
        self._client = client
        self._watch.start()

    async def _step(self) -> float:
        try:
            found = await self._client.kv_list(self.prefix, **self.query())
        except RaftregError as err:
            return self.failed(err)
        self.answered(found)
        return 0.0

    async def wait_ready(self, timeout: float | None = None) -> None:
        await self.wait_for(lambda values: True, timeout)

    async def wait_for(self, predicate: Callable[[Mapping[str, Any]], bool],
                       timeout: float | None = None) -> Mapping[str, Any]:
        await self._watch.wait_until(lambda: predicate(self.values), timeout)
        return self.values

    async def aclose(self) -> None:
        """Stop the watch and wait for its task."""
        await self._watch.aclose()

    async def __aenter__(self) -> AsyncConfigView:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
