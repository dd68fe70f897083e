"""One DNS packet in, at most one packet out: the protocol rules around ``answers`` (pure).

Contract of ``respond(packet, catalog, settings, udp=, serial=, rng=)``:
- a packet dnspython cannot parse gets FORMERR when its 12-byte header is there (same id, opcode
  and RD), else nothing; a packet with QR set (a response) never gets an answer;
- opcode other than QUERY: NOTIMP; not exactly one question: FORMERR; a class other than IN:
  REFUSED; EDNS version above 0: BADVERS;
- over UDP the answer fits in 512 bytes, or in the client's EDNS0 payload size when it sent
  one, up to the 4,096 bytes we announce (``answers.render`` trims and sets TC);
  ``udp_answer_limit`` applies to UDP queries without EDNS0 (as Consul's); over TCP everything
  is answered (up to 65,535 bytes);
- ``outcome`` says too whether the answer may be kept for the same packet (the server's cache);
- the catalog failing (``Unavailable``: a node that has not caught up since it started, or
  anything unexpected) gives SERVFAIL, never an exception to the caller.
"""

from __future__ import annotations

import logging
import random
from typing import NamedTuple

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass

from raftreg.config import DnsSettings
from raftreg.dns.answers import MAX_MESSAGE, OUR_PAYLOAD, Catalog, answer, render
from raftreg.dns.names import DATACENTER
from raftreg.errors import Unavailable

log = logging.getLogger("raftreg.dns")

HEADER = 12
CLASSIC_UDP = 512  # RFC 1035's UDP limit without EDNS0


class Outcome(NamedTuple):
    """The answer packet (None: send nothing) and how many rendered variants of it are worth
    keeping for the same query at the same catalog version: 0 (an error: do not keep), 1 (one
    answer record at most: always the same) or ``SHUFFLES`` (a random order)."""

    wire: bytes | None
    variants: int = 0


SHUFFLES = 8


def respond(packet: bytes, catalog: Catalog, settings: DnsSettings, *, udp: bool, serial: int,
            rng: random.Random, datacenter: str = DATACENTER) -> bytes | None:
    """The answer to ``packet`` as wire bytes, or None when nothing must be sent."""
    return outcome(packet, catalog, settings, udp=udp, serial=serial, rng=rng, datacenter=datacenter).wire


def outcome(packet: bytes, catalog: Catalog, settings: DnsSettings, *, udp: bool, serial: int,
            rng: random.Random, datacenter: str = DATACENTER) -> Outcome:
    """``respond``, saying also whether the answer may be reused (``Outcome``)."""
    try:
        query = dns.message.from_wire(packet)
    except Exception:  # dnspython raises many kinds on malformed input (FormError, ValueError, ...)
        return Outcome(formerr(packet))
    if query.flags & dns.flags.QR:
        return Outcome(None)
    if query.opcode() != dns.opcode.QUERY:
        return Outcome(error(query, dns.rcode.NOTIMP))
    if len(query.question) != 1:
        return Outcome(error(query, dns.rcode.FORMERR))
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        return Outcome(error(query, dns.rcode.REFUSED))
    if query.edns > 0:
        return Outcome(error(query, dns.rcode.BADVERS))
    if udp:
        max_size = max(CLASSIC_UDP, min(query.payload, OUR_PAYLOAD)) if query.edns >= 0 else CLASSIC_UDP
        limit = settings.udp_answer_limit if query.edns < 0 else 0
        truncate = settings.enable_truncate
    else:
        max_size, limit, truncate = MAX_MESSAGE, 0, True
    try:
        reply = answer(question.name, question.rdtype, catalog, settings, serial=serial, rng=rng,
                       datacenter=datacenter)
        wire = render(query, reply, settings.ttl, max_size=max_size, answer_limit=limit, truncate=truncate)
    except Unavailable:
        return Outcome(error(query, dns.rcode.SERVFAIL))
    except Exception:
        log.exception("event=dns_answer_failed qname=%s qtype=%s", question.name, question.rdtype)
        return Outcome(error(query, dns.rcode.SERVFAIL))
    return Outcome(wire, SHUFFLES if len(reply.entries) > 1 else 1)


def error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    """An empty response to ``query`` with ``rcode`` (not authoritative, no recursion)."""
    response = dns.message.make_response(query, recursion_available=False, our_payload=OUR_PAYLOAD)
    response.set_rcode(rcode)
    if rcode in (dns.rcode.FORMERR, dns.rcode.NOTIMP):
        response.question = []
    return response.to_wire(max_size=MAX_MESSAGE)


def formerr(packet: bytes) -> bytes | None:
    """FORMERR for a packet whose header (id, flags) is readable but whose rest is not."""
    if len(packet) < HEADER:
        return None
    flags = int.from_bytes(packet[2:4], "big")
    if flags & dns.flags.QR:
        return None
    response = dns.message.Message(id=int.from_bytes(packet[0:2], "big"))
    response.flags = dns.flags.QR | (flags & dns.flags.RD)
    response.set_opcode(dns.opcode.from_flags(flags))
    response.set_rcode(dns.rcode.FORMERR)
    return response.to_wire()
