"""What a DNS question asks for: the query names of Consul's DNS interface, parsed (pure).

Names are case-insensitive and live under the configured domain (``consul`` by default):

- ``<svc>.service.<domain>`` and ``<tag>.<svc>.service.<domain>``;
- RFC 2782 ``_<svc>._tcp.service.<domain>`` (``_tcp`` is the protocol, not a tag) and
  ``_<svc>._<tag>.service.<domain>``;
- ``<node>.node.<domain>``;
- each also with the datacenter before the domain (``<svc>.service.dc1.<domain>``);
- the domain itself (its SOA and NS).

Anything else under the domain (another datacenter, more labels, a label that is not ASCII) is
``Unknown`` (NXDOMAIN); a name outside the domain is ``Outside`` (REFUSED: no recursion).
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.name

DATACENTER = "dc1"  # Consul's default name; a cluster config's ``datacenter`` replaces it
RFC2782_PROTOCOL = "tcp"


@dataclass(frozen=True, slots=True)
class ServiceLookup:
    """Instances of ``service`` (lower case), with ``tag`` (lower case) when one is asked for."""

    service: str
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class NodeLookup:
    """The synthetic node called ``node`` (``raftreg.node.hosts``)."""

    node: str


@dataclass(frozen=True, slots=True)
class Apex:
    """The domain itself."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """A name under the domain that names nothing."""


@dataclass(frozen=True, slots=True)
class Outside:
    """A name outside the domain."""


Lookup = ServiceLookup | NodeLookup | Apex | Unknown | Outside


def parse(qname: dns.name.Name, domain: dns.name.Name, datacenter: str = "dc1") -> Lookup:
    """What ``qname`` (absolute) asks for under ``domain`` (absolute) in ``datacenter``."""
    if not qname.is_subdomain(domain):
        return Outside()
    raw = qname.relativize(domain).labels
    try:
        labels = [label.decode("ascii").lower() for label in raw]
    except UnicodeDecodeError:
        return Unknown()
    if not labels:
        return Apex()
    if len(labels) >= 3 and labels[-2] in ("service", "node"):
        if labels[-1] != datacenter:
            return Unknown()
        labels.pop()
    return _lookup(labels)


def _lookup(labels: list[str]) -> Lookup:
    kind = labels[-1]
    if kind == "node" and len(labels) == 2 and labels[0]:
        return NodeLookup(labels[0])
    if kind != "service":
        return Unknown()
    if len(labels) == 2 and not labels[0].startswith("_"):
        return ServiceLookup(labels[0])
    if len(labels) == 3:
        first, second = labels[0], labels[1]
        if first.startswith("_") and second.startswith("_"):
            tag = second[1:]
            return ServiceLookup(first[1:], None if tag == RFC2782_PROTOCOL else tag)
        if not first.startswith("_") and not second.startswith("_"):
            return ServiceLookup(second, first)
    return Unknown()
