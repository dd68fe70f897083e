"""A small in-process fake of the KV API (API.md "Key/value"), the transport edge of the client's
KV shell tests: one aiohttp app in a thread of its own, so blocking and async clients both use it.

It keeps versions and indexes, answers ``cas`` with 409, holds blocking queries on a key or prefix
until something under it changes, and can be switched to answer 503 (``down``) or to answer bodies
that are not JSON for a prefix (``garbage``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from typing import Any

from aiohttp import web


class FakeKV:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.index = 1
        self.down = False
        self.requests: list[tuple[str, str]] = []
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> str:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("fake KV server did not start")
        return f"127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._start())
        ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/v1/kv/{key:.*}", self._kv)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        assert self._loop is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def put(self, key: str, value: bytes) -> None:
        """A write from another client (from the test's thread)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._write(key, value, 0), self._loop).result(5)

    # ---- the API -------------------------------------------------------------------------------------
    def _answer(self, status: int, body: Any, index: int | None = None) -> web.Response:
        return web.json_response(body, status=status, headers={"X-Raftreg-Index": str(index or self.index)})

    async def _write(self, key: str, value: bytes, flags: int) -> int:
        assert self._changed is not None
        self.index += 1
        old = self.data.get(key)
        entry = {"key": key, "value": base64.b64encode(value).decode(), "flags": flags,
                 "create_index": old["create_index"] if old else self.index, "modify_index": self.index,
                 "lock_index": 0, "session": None}
        self.data[key] = entry
        self.history.setdefault(key, []).insert(0, {k: entry[k] for k in
                                                    ("value", "flags", "create_index", "modify_index", "session")})
        async with self._changed:
            self._changed.notify_all()
        return self.index

    async def _kv(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path_qs))
        if self.down:
            return web.json_response({"error": {"code": "unavailable", "message": "down"}}, status=503,
                                     headers={"Retry-After": "0"})
        key, q = request.match_info["key"], request.query
        if request.method == "PUT":
            current = self.data.get(key)
            if "cas" in q and int(q["cas"]) != (current["modify_index"] if current else 0):
                return self._answer(409, {"error": {"code": "conflict", "message": "cas mismatch"}})
            index = await self._write(key, await request.read(), int(q.get("flags", "0")))
            return self._answer(200, {"ok": True, "index": index}, index)
        if request.method == "DELETE":
            gone = [k for k in self.data if (k.startswith(key) if "recurse" in q else k == key)]
            if not gone:
                return self._answer(404, {"error": {"code": "not_found", "message": key}})
            for k in gone:
                del self.data[k]
            self.index += 1
            return self._answer(200, {"deleted": len(gone), "index": self.index})
        under = "recurse" in q or "keys" in q
        if "index" in q:
            await self._block(key, under, int(q["index"]), float(q.get("wait", "5s").rstrip("s")))
        if "history" in q:
            versions = self.history.get(key)
            if not versions:
                return self._answer(404, {"error": {"code": "not_found", "message": key}})
            return self._answer(200, {"index": self.index, "key": key, "versions": versions})
        if under:
            found = sorted(k for k in self.data if k.startswith(key))
            index = max((self.data[k]["modify_index"] for k in found), default=1)
            if "keys" in q:
                return self._answer(200, {"index": index, "keys": found}, index)
            return self._answer(200, {"index": index, "entries": [self.data[k] for k in found]}, index)
        entry = self.data.get(key)
        if entry is None:
            return self._answer(404, {"error": {"code": "not_found", "message": key}})
        return self._answer(200, entry, entry["modify_index"])

    async def _block(self, key: str, under: bool, index: int, wait: float) -> None:
        assert self._changed is not None

        def moved() -> bool:
            found = [v for k, v in self.data.items() if (k.startswith(key) if under else k == key)]
            return max((v["modify_index"] for v in found), default=0) > index

        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(moved), wait)

