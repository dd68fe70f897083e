"""The key/value routes of API.md ("Key/value"): ``/v1/kv/{key}`` and ``/v1/txn``.

Handlers are thin: validate (``raftreg.http.kv_validation``), call the node facade, encode.
- ``GET /v1/kv/{key}``: the entry (``value`` base64), ``?raw`` the bare value, ``?recurse`` every
  entry under the prefix, ``?keys`` (``&separator=``) the key names, ``?history`` the kept earlier
  versions; at most one of the four. A missing key is 404 with ``X-Raftreg-Index`` (watchable);
  lists are never 404. Reads take ``?consistent``, ``?min_index`` and ``?index&wait`` like every
  read; a blocking query on a key or prefix wakes only for changes under it.
- ``PUT /v1/kv/{key}`` (body = the value, any content type; ``?flags``, ``?cas``;
  ``?acquire=SESSION`` / ``?release=SESSION``: ``{"ok": false}`` when the lock is held by another
  session, in its lock delay, or not held by that session; 404 for an unknown session) and
  ``DELETE /v1/kv/{key}`` (``?recurse``, ``?cas``); ``PUT /v1/txn``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from raftreg.errors import InvalidArgument, NotFound
from raftreg.http.kv_validation import (
    KV_PATH,
    check_key,
    check_separator,
    key_from_path,
    parse_cas,
    parse_flags,
    parse_lock,
    parse_txn,
)
from raftreg.http.validation import parse_flag, parse_read_options
from raftreg.http.wire import JSON, encode, json_response, read_body, read_headers, read_raw_body
from raftreg.models import MAX_KV_VALUE_BYTES
from raftreg.node.reads import kv_key_topic, kv_prefix_topic
from raftreg.node.registry_node import RegistryNode

_READ_MODES = ("recurse", "keys", "history", "raw")


def _write_headers(index: int) -> dict[str, str]:
    return {"X-Raftreg-Index": str(index)}


class KVApi:
    """KV route handlers bound to one node."""

    def __init__(self, node: RegistryNode) -> None:
        self.node = node

    def _json(self, index: int, doc: Any) -> web.Response:
        return web.Response(body=encode(doc), content_type=JSON, headers=read_headers(self.node.read_context(index)))

    async def get(self, request: web.Request) -> web.Response:
        query = request.query
        key = key_from_path(request.raw_path)
        modes = [m for m in _READ_MODES if parse_flag(query.get(m), m)]
        if len(modes) > 1:
            raise InvalidArgument(f"use one of ?{', ?'.join(_READ_MODES)} at a time, not ?{modes[0]} and "
                                  f"?{modes[1]}", field=modes[1])
        mode = modes[0] if modes else ""
        if "separator" in query and mode != "keys":
            raise InvalidArgument("separator works only with ?keys", field="separator")
        separator = check_separator(query["separator"]) if "separator" in query else ""
        opts = parse_read_options(query)  # every input is checked before a blocking query waits
        if mode in ("recurse", "keys"):
            prefix = check_key(key, prefix=True)
            await self.node.prepare_read(opts, kv_prefix_topic(prefix))
            if mode == "recurse":
                index, entries = self.node.kv_list(prefix)
                return self._json(index, {"index": index, "entries": entries})
            index, names = self.node.kv_keys(prefix, separator)
            return self._json(index, {"index": index, "keys": names})
        check_key(key)
        await self.node.prepare_read(opts, kv_key_topic(key))
        if mode == "history":
            index, versions = self.node.kv_history(key)
            return self._json(index, {"index": index, "key": key, "versions": versions})
        index, entry = self.node.kv_get(key)
        headers = read_headers(self.node.read_context(index))
        if entry is None:
            return json_response(NotFound(f"no key {key!r}").to_body(), status=404, headers=headers)
        if mode == "raw":
            return web.Response(body=entry.value, content_type="application/octet-stream", headers=headers)
        return json_response(entry, headers=headers)

    async def put(self, request: web.Request) -> web.Response:
        query = request.query
        key = check_key(key_from_path(request.raw_path))
        lock, session = parse_lock(query)
        flags, cas = parse_flags(query), parse_cas(query)
        self.node.check_write_capacity()
        value = await read_raw_body(request, MAX_KV_VALUE_BYTES, field="value")
        index, ok = await self.node.kv_set(key, value, flags, cas, lock=lock, session=session)
        return json_response({"ok": ok, "index": index}, headers=_write_headers(index))

    async def delete(self, request: web.Request) -> web.Response:
        query = request.query
        key = key_from_path(request.raw_path)
        recurse = parse_flag(query.get("recurse"), "recurse")
        cas = parse_cas(query)
        if recurse and cas is not None:
            raise InvalidArgument("cas cannot be combined with recurse", field="cas")
        if recurse and not key:
            raise InvalidArgument("a recursive delete needs a non-empty prefix (deleting every key at once "
                                  "is refused)", field="key")
        check_key(key, prefix=recurse)
        self.node.check_write_capacity()
        index, deleted = await self.node.kv_delete(key, recurse=recurse, cas=cas)
        return json_response({"deleted": deleted, "index": index}, headers=_write_headers(index))

    async def txn(self, request: web.Request) -> web.Response:
        self.node.check_write_capacity()
        ops = parse_txn(await read_body(request))
        index, results = await self.node.kv_txn(ops)
        out = [{"deleted": r} if isinstance(r, int) else r for r in results]
        return json_response({"index": index, "results": out}, headers=_write_headers(index))


def add_kv_routes(app: web.Application, node: RegistryNode) -> None:
    """Serve the KV routes of ``node`` on ``app``."""
    api = KVApi(node)
    path = KV_PATH + r"{key:[\s\S]*}"  # any rest of the path, newlines (%0A) included
    app.router.add_get(path, api.get, allow_head=False)
    app.router.add_put(path, api.put)
    app.router.add_delete(path, api.delete)
    app.router.add_put("/v1/txn", api.txn)

