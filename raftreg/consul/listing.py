"""What the Consul read endpoints share: listing instances through the node facade, the
``filter`` / ``node-meta`` / ``tag`` parameters, and the ACL filtering of lists (Consul
filters lists to what the token may read instead of refusing them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from raftreg.consul.acl import decider
from raftreg.consul.filter import FilterError, predicate
from raftreg.consul.wire import ConsulQuery, bad_request, blocking_read, parse_query
from raftreg.http.body_cache import BodyCache
from raftreg.models import Instance
from raftreg.node.reads import CATALOG
from raftreg.node.registry_node import RegistryNode


class ConsulReads:
    """Base of the Consul read handlers: the node, its datacenter, a cache of encoded bodies per
    (query, index), and the preamble of every read (parse the query, then wait as it asks)."""

    def __init__(self, node: RegistryNode) -> None:
        self.node = node
        self.dc = node.config.datacenter
        self.bodies = BodyCache()

    async def _prepare(self, request: web.Request, topic: str) -> ConsulQuery:
        query = parse_query(request.query, self.dc)
        await blocking_read(self.node, query, topic)
        return query


def all_instances(node: RegistryNode) -> tuple[int, list[Instance]]:
    """Every instance of the cluster (service by service, each sorted by id), and the catalog index."""
    index = node.query_index(CATALOG)
    out: list[Instance] = []
    for summary in node.list_services()[1]:
        out.extend(node.list_instances(summary.name)[1])
    return index, out


def find_instance(node: RegistryNode, service_id: str) -> Instance | None:
    """The instance whose id is ``service_id``, in any service."""
    for summary in node.list_services()[1]:
        inst = node.get_instance(summary.name, service_id)[1]
        if inst is not None:
            return inst
    return None


def compile_filter(request: web.Request, schema: dict[str, Any]) -> Callable[[Any], bool] | None:
    """The request's ``filter`` as a predicate on answer items (None without one); 400 naming
    ``filter`` with the position and the reason for anything this API does not understand."""
    text = request.query.get("filter", "")
    if not text.strip():
        return None
    try:
        return predicate(text, schema)
    except FilterError as exc:
        raise bad_request("filter", f"position {exc.position}: {exc.reason}") from None


def node_meta(request: web.Request) -> list[tuple[str, str]]:
    """``node-meta=key:value`` (repeatable). Synthetic nodes carry no meta, so any such filter
    matches no node."""
    out = []
    for value in request.query.getall("node-meta", []):
        key, sep, val = value.partition(":")
        if not sep or not key:
            raise bad_request("node-meta", "must be key:value")
        out.append((key, val))
    return out


def readable(node: RegistryNode, instances: list[Instance]) -> tuple[list[Instance], bool]:
    """The instances whose service the request's token may read, and whether any was left out."""
    if not node.acl.enabled:
        return instances, False
    allows = decider(node)
    kept = [i for i in instances if allows("service", i.service, "read")]
    return kept, len(kept) != len(instances)
