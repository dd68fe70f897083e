"""An in-memory fake of the session and lock calls a ``Lock`` makes on a ``RegistryClient`` (the
API edge of the recipe's unit tests): sessions, ``?acquire``/``?release`` with a lock delay
counted in acquire attempts, blocking reads of a key, and scripted failures."""

from __future__ import annotations

import threading
from collections.abc import Callable

from raftreg.client.kv_results import KVEntry, KVList, KVWrite
from raftreg.client.session_core import SessionCreated, SessionDestroyed, SessionRenewed
from raftreg.errors import NotFound


class FakeLocks:
    def __init__(self) -> None:
        self.index = 1
        self.sessions: set[str] = set()
        self.keys: dict[str, KVEntry] = {}
        self.delayed = 0  # the next N acquires of a free key answer ok=False (a lock delay)
        self.fail_acquire: Callable[[], Exception | None] = lambda: None  # raised AFTER applying
        self.calls: list[str] = []
        self.waits: list[float] = []
        self._changed = threading.Condition()

    def _bump(self) -> int:
        with self._changed:
            self.index += 1
            self._changed.notify_all()
        return self.index

    def session_create(self, ttl: float, *, name: str = "", lock_delay: float = 15.0) -> SessionCreated:
        sid = f"s{len(self.sessions) + len(self.calls)}"
        self.sessions.add(sid)
        self.calls.append(f"create {sid}")
        return SessionCreated(sid, self._bump())

    def session_renew(self, session: str, *, deadline: float | None = None) -> SessionRenewed:
        if session not in self.sessions:
            raise NotFound(f"no session {session!r}")
        return SessionRenewed(session, 1.0)

    def session_destroy(self, session: str) -> SessionDestroyed:
        self.calls.append(f"destroy {session}")
        existed = session in self.sessions
        self.sessions.discard(session)
        self.expire_locks(session)
        return SessionDestroyed(existed, self._bump())

    def expire_locks(self, session: str) -> None:
        for key, entry in list(self.keys.items()):
            if entry.session == session:
                self.keys[key] = KVEntry(key, entry.value, lock_index=entry.lock_index, modify_index=self._bump())

    def kv_acquire(self, key: str, session: str, value: bytes | str = b"") -> KVWrite:
        self.calls.append(f"acquire {session}")
        entry = self.keys.get(key)
        ok = False
        if entry is None or entry.session is None:
            if self.delayed:
                self.delayed -= 1
            else:
                ok = True
                lock_index = (entry.lock_index if entry else 0) + 1
                self.keys[key] = KVEntry(key, bytes(value, "utf-8") if isinstance(value, str) else value,
                                         lock_index=lock_index, session=session, modify_index=self.index + 1)
                self._bump()
        error = self.fail_acquire()
        if error is not None:
            raise error
        return KVWrite(ok or (entry is not None and entry.session == session), self.index)

    def kv_release(self, key: str, session: str, value: bytes | str = b"") -> KVWrite:
        self.calls.append(f"release {session}")
        entry = self.keys.get(key)
        if entry is None or entry.session != session:
            return KVWrite(False, self.index)
        self.keys[key] = KVEntry(key, b"", lock_index=entry.lock_index, modify_index=self.index + 1)
        return KVWrite(True, self._bump())

    def kv_key(self, key: str, *, consistent: bool = False, index: int | None = None,
               wait: float | None = None) -> KVList:
        if index is not None:
            self.waits.append(wait or 0.0)
            with self._changed:
                self._changed.wait_for(lambda: self.index > index, timeout=wait)
        entry = self.keys.get(key)
        return KVList(self.index, (entry,) if entry else ())
