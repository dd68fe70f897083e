"""What every Consul-compatible handler shares: query parsing, the ``X-Consul-*`` headers,
blocking reads over the node facade, and Consul-style errors (plain-text bodies).

Contract (research/registries-compared.md §2.1-2.3):
- ``X-Consul-Index`` is the raftreg index of the answer (``node.query_index(topic)``: replicated,
  so every node reports the same number for the same state), never below 1, and it moves whenever
  the answer's content moves. ``X-Consul-KnownLeader`` is ``true|false``, ``X-Consul-LastContact``
  milliseconds since this node last heard from the leader (0 on the leader). Error answers that
  name an index (a KV 404) carry the same headers: py-consul raises without them.
- Query flags arrive as Go sends them (``?stale=``, empty values) or as py-consul sends them
  (``stale=1``); ``wait`` in any Go unit (``120000ms``, ``10s``, ``5m``) or as plain seconds, clamped
  to 10 minutes; the node adds at most wait/16 of jitter (``raftreg.node.reads``).
- ``index`` 0, or an index above the current one (a restore, another cluster), answers at once so
  the client resets, as Consul does.
- Errors: ``ConsulError`` (status, plain-text message); bad input is 400 naming the parameter.
  ``?dc=`` other than this cluster's datacenter: 400 ``No path to datacenter``; namespaces and
  partitions other than ``default``: 400 (Consul Enterprise features).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from raftreg.durations import parse_duration
from raftreg.node.reads import MAX_BLOCKING_WAIT, ReadOptions
from raftreg.node.registry_node import RegistryNode

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
encode = msgspec.json.Encoder().encode

T = TypeVar("T")

INDEX_HEADER = "X-Consul-Index"
FILTERED_HEADER = "X-Consul-Results-Filtered-By-ACLs"


class ConsulError(Exception):
    """An answer other than 2xx, in Consul's form: ``status`` and a plain-text ``message``.
    ``index``: set ``X-Consul-Index`` and the other read headers on it too (a KV 404)."""

    def __init__(self, status: int, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.index = index


def bad_request(param: str, reason: str) -> ConsulError:
    """400 naming the parameter (or body field) at fault: ``Invalid <param>: <reason>``."""
    return ConsulError(400, f"Invalid {param}: {reason}")


@dataclass(frozen=True)
class ConsulQuery:
    """The options every Consul read takes. ``read`` is what the node facade understands;
    ``stale``/``cached``/``near`` are accepted (raftreg's default reads already come from the
    answering node's applied state; no cache and no network coordinates)."""

    read: ReadOptions
    stale: bool = False
    filter: str = ""


def parse_flag(query: Mapping[str, str], name: str) -> bool:
    """A flag as Go (``?stale=``) and py-consul (``stale=1``) send it; ``false``/``0`` turn it off."""
    value = query.get(name)
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("", "1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise bad_request(name, "must be a flag (empty, true/false or 1/0)")


def parse_uint(query: Mapping[str, str], name: str) -> int | None:
    """An unsigned 64-bit integer parameter, or None when absent."""
    value = query.get(name)
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) >= 2**64:
        raise bad_request(name, "must be a non-negative integer")
    return int(text)


def parse_wait(query: Mapping[str, str]) -> float | None:
    """``wait`` in seconds (``120000ms``, ``10s``, ``5m``, ``1h``, plain seconds), at most 10 m."""
    value = query.get("wait")
    if value is None or value.strip() == "":
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise bad_request("wait", str(exc)) from None
    return min(seconds, MAX_BLOCKING_WAIT)


def check_scope(query: Mapping[str, str], datacenter: str) -> None:
    """``dc``, ``ns`` and ``partition``: empty, or the ones this cluster is."""
    dc = query.get("dc", "").strip()
    if dc and dc != datacenter:
        raise ConsulError(400, f"No path to datacenter: {dc!r} (this cluster is datacenter {datacenter!r}; "
                               "raftreg serves one datacenter)")
    for name, what in (("ns", "Namespaces"), ("partition", "Admin partitions")):
        value = query.get(name, "").strip()
        if value and value != "default":
            raise bad_request(name, f"{what} are not supported by raftreg (only 'default')")


def parse_query(query: Mapping[str, str], datacenter: str) -> ConsulQuery:
    """Every read parameter this API shares: ``index``, ``wait``, ``stale``, ``consistent``,
    ``cached``, ``dc``, ``ns``, ``partition``, ``filter`` (parsed by the endpoint)."""
    check_scope(query, datacenter)
    stale = parse_flag(query, "stale")
    consistent = parse_flag(query, "consistent")
    parse_flag(query, "cached")
    if stale and consistent:
        raise bad_request("consistent", "cannot be combined with stale (conflicting semantics)")
    read = ReadOptions(consistent=consistent, index=parse_uint(query, "index"), wait=parse_wait(query))
    return ConsulQuery(read=read, stale=stale, filter=query.get("filter", ""))


async def blocking_read(node: RegistryNode, query: ConsulQuery, topic: str) -> None:
    """Wait for what ``query`` asks before reading ``topic``: a blocking query parks until the
    topic's index passes ``index`` (or wait + jitter); index 0, or an index above the current one,
    answers at once (so the client resets)."""
    opts = query.read
    if opts.index is not None and (opts.index == 0 or opts.index > consul_index(node, topic)):
        opts = dataclasses.replace(opts, index=None)
    await node.prepare_read(opts, topic)


def consul_index(node: RegistryNode, topic: str) -> int:
    """The ``X-Consul-Index`` of ``topic``: its raftreg index, at least 1 (Consul clients treat 0
    as "no index"); a client holding 1 for a topic still at 0 waits for its first change."""
    return max(1, node.query_index(topic))


async def blocking_content(node: RegistryNode, query: ConsulQuery, topic: str,
                           build: Callable[[], tuple[int, T]]) -> tuple[int, T]:
    """A blocking read whose wake-ups are filtered by the answer's content: ``build()`` gives
    ``(index, answer)``. When the client holds the current index, park until ``build()``'s answer
    differs (a change of the topic that leaves the answer as it was, a health status under
    ``/v1/catalog/services``, parks again), or until wait (+ at most wait/16) passes; then answer
    with the current index. Otherwise as ``blocking_read``."""
    opts = query.read
    if opts.index is None or opts.index == 0 or opts.index != consul_index(node, topic):
        await blocking_read(node, query, topic)
        return build()
    index, before = build()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + opts.blocking_wait
    while (remaining := deadline - loop.time()) > 0:
        await node.prepare_read(dataclasses.replace(opts, index=index, wait=remaining), topic)
        index, after = build()
        if after != before:
            return index, after
    return index, before


def read_headers(node: RegistryNode, index: int) -> dict[str, str]:
    """``X-Consul-Index`` (at least 1), ``X-Consul-KnownLeader``, ``X-Consul-LastContact``."""
    ctx = node.read_context(index)
    return {
        INDEX_HEADER: str(max(1, index)),
        "X-Consul-KnownLeader": "true" if ctx.leader else "false",
        "X-Consul-LastContact": str(ctx.last_contact_ms),
    }


def read_response(node: RegistryNode, index: int, body: Any, *, filtered: bool = False) -> web.Response:
    """A JSON read answer with the read headers (``body`` already encoded when it is bytes)."""
    headers = read_headers(node, index)
    if filtered:
        headers[FILTERED_HEADER] = "true"
    data = body if isinstance(body, bytes) else encode(body)
    return web.Response(body=data, content_type=JSON, headers=headers)


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=encode(body), status=status, content_type=JSON, headers=headers)


def text_response(message: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """A plain-text answer, as Consul gives its errors."""
    return web.Response(text=message if message.endswith("\n") else message + "\n", status=status,
                        content_type="text/plain", charset="utf-8", headers=headers)
