"""``NodeCatalog``: what DNS answers from, read from the node facade (``RegistryNode``).

Contract:
- ``version()`` changes whenever an answer may change (the server's ``AnswerCache`` key);
- every read first checks that the node has caught up with the cluster since it started
  (``Unavailable`` otherwise, which DNS answers SERVFAIL: an empty registry must never be
  told to resolvers as NXDOMAIN, which they would cache);
- with ACLs on, DNS answers as a request without a token (as Consul's DNS answers with the
  agent's default token): a service it may not read does not exist for DNS, and its addresses
  name no node. Security fails closed: under ``default_policy = "deny"`` no service is visible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from raftreg.models import Instance
from raftreg.node.reads import CATALOG
from raftreg.node.registry_node import RegistryNode


class NodeCatalog:
    def __init__(self, node: RegistryNode) -> None:
        self._node = node

    def _readable(self) -> Callable[[str], bool]:
        acl = self._node.acl
        if not acl.enabled:
            return lambda _service: True
        decide = acl.reader(acl.anonymous())
        return lambda service: decide("service", service, "read")

    def version(self) -> tuple[int, int]:
        """What every answer depends on: the registry's index (any change to any instance moves
        it) and, with ACLs on, the ACL index. ``Unavailable`` as the reads."""
        self._node.check_readable()
        acl = self._node.acl
        return self._node.query_index(CATALOG), acl.anonymous().acl_index if acl.enabled else 0

    def instances(self, service: str) -> list[Instance]:
        self._node.check_readable()
        if not self._readable()(service):
            return []
        return self._node.list_instances(service)[1]

    def addresses(self) -> Iterator[str]:
        self._node.check_readable()
        readable = self._readable()
        for summary in self._node.list_services()[1]:
            if readable(summary.name):
                for inst in self._node.list_instances(summary.name)[1]:
                    yield inst.address
