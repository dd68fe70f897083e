"""Plain catalog data for the unit tests of ``raftreg.dns`` (a list of instances, no node)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

import dns.message
import dns.rdatatype
import dns.rrset

from raftreg.config import DnsSettings
from raftreg.dns.wire import respond
from raftreg.models import Instance


class ListCatalog:
    """``raftreg.dns.answers.Catalog`` over a list of instances."""

    def __init__(self, instances: Iterable[Instance]) -> None:
        self.items = list(instances)

    def instances(self, service: str) -> Sequence[Instance]:
        return [i for i in self.items if i.service == service]

    def addresses(self) -> Iterable[str]:
        return [i.address for i in self.items]


def inst(service: str, n: int | str, address: str, port: int = 8080, **kw: Any) -> Instance:
    return Instance(service=service, id=f"{service}-{n}", address=address, port=port, **kw)


def ask(catalog: ListCatalog, name: str, rdtype: str = "A", *, settings: DnsSettings | None = None,
        udp: bool = True, seed: int = 0, **query_kw: Any) -> dns.message.Message:
    """Send one query through ``respond`` and decode the answer (which must be there)."""
    query = dns.message.make_query(name, rdtype, **query_kw)
    wire = respond(query.to_wire(), catalog, settings or DnsSettings(), udp=udp, serial=7, rng=random.Random(seed))
    assert wire is not None
    return dns.message.from_wire(wire)


def texts(section: list[dns.rrset.RRset], rdtype: str | None = None) -> list[str]:
    """Every record's rdata as text (in order), optionally only of one type."""
    return [rd.to_text() for rrset in section if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype)
            for rd in rrset]
