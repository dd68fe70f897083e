"""The answer to one DNS question, decided from catalog data (pure: no I/O, no clock; the random
order comes from the ``rng`` passed in), and its rendering with truncation.

Contract of ``answer(qname, qtype, catalog, settings, serial=, rng=)`` (Consul's DNS rules):
- services: only ``passing`` instances (and ``warning`` ones unless ``only_passing``), filtered by
  the tag when one is asked (case-insensitively), in a random order. None left, or an unknown
  service: NXDOMAIN with the domain's SOA in the authority section.
- A / AAAA (and ANY): the distinct IPv4 (A) and IPv6 (AAAA) addresses. An address that is a host
  name gives a CNAME to it, and only when no IP record answers (one CNAME at most), as Consul.
- SRV: one record per distinct address and port, priority 1, weight = the instance weight
  (clamped to 0..65535), port = the instance port, target = the synthetic node
  ``<node>.node.dc1.<domain>`` (``raftreg.node.hosts``) with its A / AAAA record in the additional
  section; a host-name address is its own target, with no additional record.
- ``<node>.node.<domain>``: the address of the host of that synthetic node (known while any
  instance has that address), as above.
- the domain itself: its SOA and NS.
- a known name without records of the asked type: NOERROR, empty answer, the SOA.
- a name outside the domain: REFUSED, not authoritative (no recursion).
Every record has ``settings.ttl``; the SOA is ``ns.<domain>. hostmaster.<domain>. serial 3600
600 86400 ttl`` as Consul's (the server passes the registry's index as the serial).

``render(query, reply, ttl, max_size=, answer_limit=, truncate=)`` keeps the first answer records
(and their additional records) that fit in ``max_size`` bytes and in ``answer_limit`` records
(0: no limit), setting TC when some were left out and ``truncate`` is on.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from raftreg.config import DnsSettings
from raftreg.dns.names import DATACENTER, Apex, NodeLookup, Outside, ServiceLookup, Unknown, parse
from raftreg.models import Instance
from raftreg.node.hosts import host_node

IN = dns.rdataclass.IN
RdType = dns.rdatatype.RdataType
ADDRESS_TYPES = {RdType.A: frozenset({RdType.A}), RdType.AAAA: frozenset({RdType.AAAA}),
                 RdType.ANY: frozenset({RdType.A, RdType.AAAA})}
MAX_SRV_WEIGHT = 65535
MAX_MESSAGE = 65535  # the largest DNS message (TCP's 2-byte length)
OUR_PAYLOAD = 4096  # the largest UDP answer we send, announced in our EDNS0 record (RFC 6891)
MIN_RECORD = 14  # the smallest answer record on the wire: a compressed owner, 10 bytes, a 2-byte pointer
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 3600, 600, 86400


class Catalog(Protocol):
    """The data DNS answers from (``raftreg.dns.catalog.NodeCatalog`` reads the node facade)."""

    def instances(self, service: str) -> Sequence[Instance]:
        """Every instance of ``service``, whatever its status (empty for an unknown service)."""
        ...

    def addresses(self) -> Iterable[str]:
        """The address of every registered instance (repeats allowed)."""
        ...


@dataclass(frozen=True, slots=True)
class Record:
    name: dns.name.Name
    rdata: dns.rdata.Rdata


@dataclass(frozen=True, slots=True)
class Entry:
    """One answer record and the additional records that go with it."""

    answer: Record
    additional: tuple[Record, ...] = ()


@dataclass(slots=True)
class Reply:
    rcode: dns.rcode.Rcode
    entries: list[Entry] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    authoritative: bool = True


def _make(cls: type[dns.rdata.Rdata], *fields: Any) -> dns.rdata.Rdata:
    """An rdata of class IN built from its fields (dnspython's constructors are untyped)."""
    rdata: dns.rdata.Rdata = cls(IN, dns.rdatatype.from_text(cls.__name__), *fields)
    return rdata


@lru_cache(maxsize=16)
def domain_name(domain: str) -> dns.name.Name:
    return dns.name.from_text(domain)


def soa_record(settings: DnsSettings, serial: int) -> Record:
    return _soa(settings.domain, settings.ttl, serial & 0xFFFFFFFF)


@lru_cache(maxsize=64)
def _soa(domain_text: str, ttl: int, serial: int) -> Record:
    domain = domain_name(domain_text)
    rdata = _make(SOA, dns.name.from_text("ns", domain), dns.name.from_text("hostmaster", domain),
                  serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, ttl)
    return Record(domain, rdata)


@lru_cache(maxsize=65536)
def address_rdata(address: str) -> dns.rdata.Rdata:
    """A (IPv4), AAAA (IPv6, scope dropped) or CNAME (a host name) of an instance address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return _make(CNAME, dns.name.from_text(address))
    if ip.version == 4:
        return _make(A, str(ip))
    return _make(AAAA, str(ipaddress.IPv6Address(int(ip))))


def serves(instance: Instance, settings: DnsSettings) -> bool:
    """Whether DNS shows ``instance``: passing, or warning when ``only_passing`` is off."""
    return instance.status == "passing" or (instance.status == "warning" and not settings.only_passing)


def has_tag(instance: Instance, tag: str) -> bool:
    return any(t.lower() == tag for t in instance.tags)


def answer(qname: dns.name.Name, qtype: int, catalog: Catalog, settings: DnsSettings, *, serial: int,
           rng: random.Random, datacenter: str = DATACENTER) -> Reply:
    """The reply to the question ``qname`` (absolute) / ``qtype`` (class IN); see the module doc.
    ``datacenter`` is the cluster's (``ClusterConfig.datacenter``), the one the Consul API reports."""
    lookup = parse(qname, domain_name(settings.domain), datacenter)
    soa = soa_record(settings, serial)
    if isinstance(lookup, Outside):
        return Reply(dns.rcode.REFUSED, authoritative=False)
    if isinstance(lookup, Unknown):
        return Reply(dns.rcode.NXDOMAIN, authority=[soa])
    if isinstance(lookup, ServiceLookup):
        instances = [i for i in catalog.instances(lookup.service) if serves(i, settings)]
        if lookup.tag is not None:
            instances = [i for i in instances if has_tag(i, lookup.tag)]
        if not instances:
            return Reply(dns.rcode.NXDOMAIN, authority=[soa])
        rng.shuffle(instances)
        if qtype == RdType.SRV:
            entries = srv_entries(qname, instances, settings, datacenter)
        else:
            entries = address_entries(qname, [i.address for i in instances], qtype)
    elif isinstance(lookup, NodeLookup):
        address = next((a for a in catalog.addresses() if host_node(a).name == lookup.node), None)
        if address is None:
            return Reply(dns.rcode.NXDOMAIN, authority=[soa])
        entries = address_entries(qname, [address], qtype)
    else:
        assert isinstance(lookup, Apex)
        entries = apex_entries(qname, qtype, soa)
    return Reply(dns.rcode.NOERROR, entries, [] if entries else [soa])


def address_entries(owner: dns.name.Name, addresses: Iterable[str], qtype: int) -> list[Entry]:
    """A / AAAA records of the distinct ``addresses`` that ``qtype`` asks for; when there are none,
    the CNAME of the first host-name address (if any)."""
    wanted = ADDRESS_TYPES.get(qtype)  # type: ignore[call-overload]
    if wanted is None:
        return []
    records: list[Entry] = []
    cname: Entry | None = None
    seen: set[str] = set()
    for address in addresses:
        if address in seen:
            continue
        seen.add(address)
        rdata = address_rdata(address)
        if rdata.rdtype in wanted:
            records.append(Entry(Record(owner, rdata)))
        elif rdata.rdtype == RdType.CNAME and cname is None:
            cname = Entry(Record(owner, rdata))
    return records or ([cname] if cname is not None else [])


def srv_entries(owner: dns.name.Name, instances: Iterable[Instance], settings: DnsSettings,
                datacenter: str = DATACENTER) -> list[Entry]:
    """One SRV record per distinct (address, port), with the target's address as additional."""
    entries: list[Entry] = []
    seen: set[tuple[str, int]] = set()
    for inst in instances:
        if (inst.address, inst.port) in seen:
            continue
        seen.add((inst.address, inst.port))
        srv, additional = srv_parts(inst.address, inst.port, min(max(inst.weight, 0), MAX_SRV_WEIGHT),
                                    settings.domain, datacenter)
        entries.append(Entry(Record(owner, srv), additional))
    return entries


@lru_cache(maxsize=65536)
def srv_parts(address: str, port: int, weight: int, domain: str,
              datacenter: str = DATACENTER) -> tuple[dns.rdata.Rdata, tuple[Record, ...]]:
    """The SRV rdata of an instance and its additional record (none for a host-name target)."""
    rdata = address_rdata(address)
    if rdata.rdtype == RdType.CNAME:
        assert isinstance(rdata, CNAME)
        return _make(SRV, 1, weight, port, rdata.target), ()
    node_zone = dns.name.from_text(f"node.{datacenter}", domain_name(domain))
    target = dns.name.from_text(host_node(address).name, node_zone)
    return _make(SRV, 1, weight, port, target), (Record(target, rdata),)


def apex_entries(owner: dns.name.Name, qtype: int, soa: Record) -> list[Entry]:
    if qtype in (RdType.SOA, RdType.ANY):
        return [Entry(soa)]
    if qtype == RdType.NS:
        return [Entry(Record(owner, _make(NS, dns.name.from_text("ns", owner))))]
    return []


# ---- rendering ----------------------------------------------------------------------------------
def build(query: dns.message.Message, reply: Reply, count: int, ttl: int, truncated: bool) -> dns.message.Message:
    """The response to ``query`` carrying the first ``count`` entries of ``reply``."""
    response = dns.message.make_response(query, recursion_available=False, our_payload=OUR_PAYLOAD)
    response.set_rcode(reply.rcode)
    if reply.authoritative:
        response.flags |= dns.flags.AA
    if truncated:
        response.flags |= dns.flags.TC
    entries = reply.entries[:count]
    response.answer = _rrsets((entry.answer for entry in entries), ttl)
    response.additional = _rrsets((extra for entry in entries for extra in entry.additional), ttl)
    response.authority = _rrsets(reply.authority, ttl)
    return response


def _rrsets(records: Iterable[Record], ttl: int) -> list[dns.rrset.RRset]:
    """``records`` as RRsets: one per owner name and type, in the order of their first record."""
    grouped: dict[tuple[dns.name.Name, int], list[dns.rdata.Rdata]] = {}
    for record in records:
        grouped.setdefault((record.name, record.rdata.rdtype), []).append(record.rdata)
    return [dns.rrset.from_rdata_list(name, ttl, rdatas) for (name, _), rdatas in grouped.items()]


def _wire(query: dns.message.Message, reply: Reply, count: int, ttl: int, truncated: bool,
          max_size: int) -> bytes | None:
    try:
        wire = build(query, reply, count, ttl, truncated).to_wire(max_size=MAX_MESSAGE)
    except dns.exception.TooBig:
        return None
    return wire if len(wire) <= max_size else None


def render(query: dns.message.Message, reply: Reply, ttl: int, *, max_size: int, answer_limit: int = 0,
           truncate: bool = True) -> bytes:
    """``reply`` as wire bytes of at most ``max_size``: all of it if it fits, else the longest
    prefix of its answer records that does (binary search), with TC when ``truncate``."""
    total = len(reply.entries)
    count = min(total, answer_limit) if answer_limit else total
    # No answer record takes fewer than MIN_RECORD bytes: more than max_size / MIN_RECORD cannot
    # fit, so a large service costs a few small messages, not several of its whole size.
    ceiling = max_size // MIN_RECORD
    if count <= ceiling:
        wire = _wire(query, reply, count, ttl, truncate and count < total, max_size)
        if wire is not None:
            return wire
    flag = truncate
    low, high = 0, min(count - 1, ceiling)
    best = _wire(query, reply, 0, ttl, flag, max_size)
    while low < high:
        mid = (low + high + 1) // 2
        candidate = _wire(query, reply, mid, ttl, flag, max_size)
        if candidate is None:
            high = mid - 1
        else:
            low, best = mid, candidate
    if best is None:  # not even the header and question fit: send them as they are
        best = build(query, reply, 0, ttl, flag).to_wire(max_size=MAX_MESSAGE)
    return best
