"""``/v1/kv/:key``: Consul's key/value endpoint over the node's key/value store.

Translation only: the key rules are raftreg's (``raftreg.http.kv_validation``: 1-512 bytes of
UTF-8, no leading ``/``, no ``..`` or empty segment, NFC), every read and write goes through the
node facade, so a key written through either API reads the same through both.

Contract (Consul's ``agent/kvs_endpoint.go``, research/registries-compared.md §2.2):
- ``GET``: a JSON array of ``{"LockIndex", "Key", "Flags", "Value" (base64, null when empty),
  "Session" (only while locked), "CreateIndex", "ModifyIndex"}``. ``?recurse`` lists the prefix
  (an empty key lists everything), ``?keys`` (``&separator=``, also Consul's historic
  ``seperator``) the key names, ``?raw`` the bare value as ``text/plain`` (``nosniff``,
  ``sandbox``). Nothing found is 404 with ``X-Consul-Index`` (``?keys`` on the root answers
  ``[]``). ``index``/``wait`` block on the key's or the prefix's topic: only changes under it
  wake the request, and a list whose answer did not change (a value written under a listed key
  name, a key the token may not read) keeps waiting. A plain get needs ``key:read`` on the key;
  lists are filtered to the keys the token may read (``X-Consul-Results-Filtered-By-ACLs``), as
  Consul filters them.
- ``PUT``: the body is the value (at most 512 KiB, else 413); ``?flags``, ``?cas`` (0: create
  only), ``?acquire=<session>``, ``?release=<session>`` (at most one of the last three, as
  Consul). Answers ``true`` or ``false`` (a cas that did not hold, a lock held by another
  session or in its lock delay, a release by a session that does not hold the lock). An unknown
  session is 400 naming ``acquire``/``release`` (Consul answers 500 "Invalid session").
- ``DELETE``: ``?recurse`` (an empty key deletes everything, as Consul), ``?cas`` (not both);
  answers ``true``, or ``false`` when the cas did not hold (also for an absent key, where
  Consul answers ``true``).
- A cas or lock whose outcome is unknown (the write timed out) is 504 ``outcome unknown``
  (``raftreg.errors.OutcomeUnknown``), never ``false``, and is not retried.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from raftreg.consul.acl import decider, require
from raftreg.consul.routes import ConsulRoutes
from raftreg.consul.wire import (
    ConsulError,
    ConsulQuery,
    blocking_content,
    blocking_read,
    check_scope,
    json_response,
    parse_flag,
    parse_query,
    read_headers,
    read_response,
)
from raftreg.errors import Conflict, InvalidArgument, NotFound
from raftreg.http.kv_validation import (
    KV_PATH,
    check_key,
    check_separator,
    key_from_path,
    parse_cas,
    parse_flags,
    parse_lock,
)
from raftreg.http.permissions import BY_COMMAND, Need
from raftreg.http.wire import read_raw_body
from raftreg.models import MAX_KV_VALUE_BYTES, KVEntry
from raftreg.node.reads import kv_key_topic, kv_prefix_topic
from raftreg.node.registry_node import RegistryNode

KEY_WRITE = Need("resource", "key", "write", "key")
# a lock (?acquire/?release) also needs session:write on its session: the write path checks it
KEY_WRITE_LOCK = Need("resource", "key", "write", "key", lock_session=True)
MISSING_KEY = "Missing key name"


def entry_view(entry: KVEntry, *, with_value: bool = True) -> dict[str, Any]:
    """Consul's ``DirEntry`` of ``entry`` (``Value`` null when empty or ``with_value`` is off)."""
    view: dict[str, Any] = {
        "LockIndex": entry.lock_index, "Key": entry.key, "Flags": entry.flags,
        "Value": base64.b64encode(entry.value).decode("ascii") if with_value and entry.value else None,
        "CreateIndex": entry.create_index, "ModifyIndex": entry.modify_index,
    }
    if entry.session:
        view["Session"] = entry.session
    return view


def request_key(request: web.Request) -> str:
    """The key in the request's raw path (percent-decoded once, as the native API reads it)."""
    return key_from_path(request.raw_path)


def conflicting_flags(request: web.Request, *names: str) -> None:
    """Consul's 400 when more than one of ``names`` is in the query."""
    given = [n for n in names if n in request.query]
    if len(given) > 1:
        raise ConsulError(400, f"Conflicting flags: {', '.join('?' + n for n in given)} cannot be combined")


class KVApi:
    def __init__(self, node: RegistryNode) -> None:
        self.node = node
        self.dc = node.config.datacenter

    def _not_found(self, index: int) -> web.Response:
        """Consul's 404 for nothing found: an empty body and the read headers (py-consul raises
        without ``X-Consul-Index``; the index lets a client block until the key appears)."""
        return web.Response(status=404, headers=read_headers(self.node, index))

    async def get(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        opts = parse_query(query, self.dc)
        key = request_key(request)
        keys, recurse, raw = (parse_flag(query, name) for name in ("keys", "recurse", "raw"))
        if keys:  # Consul checks ?keys first; ?recurse and ?raw are then ignored
            return await self._keys(request, check_key(key, prefix=True), opts)
        if recurse:
            return await self._recurse(check_key(key, prefix=True), opts)
        if not key:
            raise ConsulError(400, MISSING_KEY)
        check_key(key)
        require(self.node, "key", key, "read")
        await blocking_read(self.node, opts, kv_key_topic(key))
        index, entry = self.node.kv_get(key)
        if entry is None:
            return self._not_found(index)
        if raw:
            headers = read_headers(self.node, index)
            headers.update({"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})
            return web.Response(body=entry.value, content_type="text/plain", headers=headers)
        return read_response(self.node, index, [entry_view(entry)])

    async def _recurse(self, prefix: str, opts: ConsulQuery) -> web.Response:
        def build() -> tuple[int, tuple[list[dict[str, Any]], bool]]:
            index, entries = self.node.kv_list(prefix)
            allows = decider(self.node)
            kept = [entry_view(e) for e in entries if allows("key", e.key, "read")]
            return index, (kept, len(kept) != len(entries))

        # a change under the prefix that leaves the answer as it was (a key the token may not
        # read) does not end a blocking query
        index, (views, filtered) = await blocking_content(self.node, opts, kv_prefix_topic(prefix), build)
        if not views:
            return self._not_found(index)
        return read_response(self.node, index, views, filtered=filtered)

    async def _keys(self, request: web.Request, prefix: str, opts: ConsulQuery) -> web.Response:
        query = request.query
        raw_sep = query.get("separator", query.get("seperator", ""))
        separator = check_separator(raw_sep) if raw_sep else ""

        def build() -> tuple[int, tuple[list[str], bool]]:
            index, names = self.node.kv_keys(prefix, separator)
            allows = decider(self.node)
            kept = [n for n in names if allows("key", n, "read")]
            return index, (kept, len(kept) != len(names))

        # a value written under a listed key leaves the key names as they were: keep waiting
        index, (kept, filtered) = await blocking_content(self.node, opts, kv_prefix_topic(prefix), build)
        if not kept and prefix:
            return self._not_found(index)
        return read_response(self.node, index, kept, filtered=filtered)

    async def put(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.dc)
        key = request_key(request)
        if not key:
            raise ConsulError(400, MISSING_KEY)
        check_key(key)
        conflicting_flags(request, "cas", "acquire", "release")
        lock, session = parse_lock(request.query)
        flags, cas = parse_flags(request.query), parse_cas(request.query)
        self.node.check_write_capacity()
        value = await read_raw_body(request, MAX_KV_VALUE_BYTES, field="value")
        try:
            _, ok = await self.node.kv_set(key, value, flags, cas, lock=lock, session=session)
        except Conflict:
            ok = False
        except NotFound as err:
            if not lock:
                raise
            raise InvalidArgument(f"invalid session {session!r}: {err.message}", field=lock) from None
        return json_response(ok)

    async def delete(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.dc)
        key = request_key(request)
        conflicting_flags(request, "recurse", "cas")
        recurse = parse_flag(request.query, "recurse")
        if not key and not recurse:
            raise ConsulError(400, MISSING_KEY)
        check_key(key, prefix=recurse)
        cas = parse_cas(request.query)
        self.node.check_write_capacity()
        try:
            await self.node.kv_delete(key, recurse=recurse, cas=cas)
        except Conflict:
            return json_response(False)
        return json_response(True)


def add_kv_routes(routes: ConsulRoutes) -> None:
    """Reads decide in the handler (a plain get needs ``key:read``; lists are filtered); writes
    need ``key:write`` on the key here, and the write path checks the command again (a recursive
    delete: every key under the prefix; a lock: ``session:write`` on its session's name too, as
    the native route)."""
    api = KVApi(routes.node)
    path = KV_PATH + r"{key:[\s\S]*}"  # any rest of the path, newlines (%0A) included
    routes.add("GET", path, api.get, BY_COMMAND)
    routes.add("PUT", path, api.put, KEY_WRITE_LOCK)
    routes.add("DELETE", path, api.delete, KEY_WRITE)
