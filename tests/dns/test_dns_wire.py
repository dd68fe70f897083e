"""``raftreg.dns.wire``: truncation over UDP (512 bytes, EDNS0 sizes, the answer limit), TCP answers
in full, and the protocol errors (FORMERR, NOTIMP, REFUSED, BADVERS, SERVFAIL, silence)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from raftreg.config import DnsSettings
from raftreg.dns.wire import respond
from raftreg.errors import Unavailable
from raftreg.models import Instance
from tests.dns.dns_data import ListCatalog, ask, inst, texts

BIG = ListCatalog([inst("big", n, f"10.2.{n // 250}.{n % 250 + 1}", 9000 + n) for n in range(200)])
ALL_BIG = {f"10.2.{n // 250}.{n % 250 + 1}" for n in range(200)}


def answer_bytes(query: dns.message.Message, *, udp: bool = True, catalog: ListCatalog = BIG,
                 settings_: DnsSettings | None = None) -> bytes:
    wire = respond(query.to_wire(), catalog, settings_ or DnsSettings(), udp=udp, serial=1, rng=random.Random(3))
    assert wire is not None
    return wire


def test_udp_answer_is_truncated_to_512_bytes_with_tc() -> None:
    wire = answer_bytes(dns.message.make_query("big.service.consul.", "A"))
    reply = dns.message.from_wire(wire)
    assert len(wire) <= 512
    assert reply.flags & dns.flags.TC
    got = texts(reply.answer)
    assert 20 <= len(got) < 200 and set(got) <= ALL_BIG
    assert len(wire) + 16 > 512  # as many as fit: one more A record (16 bytes compressed) would not


def test_tcp_answers_everything_without_tc() -> None:
    reply = dns.message.from_wire(answer_bytes(dns.message.make_query("big.service.consul.", "A"), udp=False))
    assert not reply.flags & dns.flags.TC
    assert set(texts(reply.answer)) == ALL_BIG
    srv = dns.message.from_wire(answer_bytes(dns.message.make_query("big.service.consul.", "SRV"), udp=False))
    assert len(texts(srv.answer)) == 200 and len(srv.additional) == 200


def test_edns0_payload_size_is_honoured() -> None:
    query = dns.message.make_query("big.service.consul.", "A", use_edns=0, payload=1232)
    wire = answer_bytes(query)
    reply = dns.message.from_wire(wire)
    assert 512 < len(wire) <= 1232 and reply.flags & dns.flags.TC and reply.edns == 0
    assert len(texts(reply.answer)) > 40
    roomy = dns.message.make_query("big.service.consul.", "A", use_edns=0, payload=4096)
    whole = dns.message.from_wire(answer_bytes(roomy))
    assert not whole.flags & dns.flags.TC and set(texts(whole.answer)) == ALL_BIG
    tiny = dns.message.make_query("big.service.consul.", "A", use_edns=0, payload=100)  # below 512: 512 applies
    assert 400 < len(answer_bytes(tiny)) <= 512
    huge = dns.message.make_query("_big._tcp.service.consul.", "SRV", use_edns=0, payload=65000)  # capped at 4096
    capped = answer_bytes(huge)
    assert 3500 < len(capped) <= 4096 and dns.message.from_wire(capped).flags & dns.flags.TC


def test_truncated_srv_keeps_the_additional_records_of_the_answers_kept() -> None:
    reply = dns.message.from_wire(answer_bytes(dns.message.make_query("_big._tcp.service.consul.", "SRV")))
    assert reply.flags & dns.flags.TC
    targets = sorted(rd.target.to_text() for rrset in reply.answer for rd in rrset)
    assert 0 < len(targets) < 200
    assert sorted(r.name.to_text() for r in reply.additional) == targets


def test_enable_truncate_off_trims_without_tc() -> None:
    query = dns.message.make_query("big.service.consul.", "A")
    wire = answer_bytes(query, settings_=DnsSettings(enable_truncate=False))
    reply = dns.message.from_wire(wire)
    assert len(wire) <= 512 and not reply.flags & dns.flags.TC and 0 < len(texts(reply.answer)) < 200


def test_udp_answer_limit_applies_to_queries_without_edns() -> None:
    limited = DnsSettings(udp_answer_limit=3)
    reply = dns.message.from_wire(answer_bytes(dns.message.make_query("big.service.consul.", "A"), settings_=limited))
    assert len(texts(reply.answer)) == 3 and reply.flags & dns.flags.TC
    edns = dns.message.make_query("big.service.consul.", "A", use_edns=0, payload=4096)
    assert len(texts(dns.message.from_wire(answer_bytes(edns, settings_=limited)).answer)) == 200
    tcp = dns.message.from_wire(answer_bytes(dns.message.make_query("big.service.consul.", "A"), udp=False,
                                             settings_=limited))
    assert len(texts(tcp.answer)) == 200
    few = ListCatalog([inst("few", 1, "10.3.0.1"), inst("few", 2, "10.3.0.2")])
    small = dns.message.from_wire(answer_bytes(dns.message.make_query("few.service.consul.", "A"), catalog=few,
                                               settings_=limited))
    assert len(texts(small.answer)) == 2 and not small.flags & dns.flags.TC


# ---- protocol errors --------------------------------------------------------------------------
def test_garbage_without_a_header_gets_no_answer() -> None:
    for packet in (b"", b"\x00", b"\x12\x34\x01\x00\x00"):
        assert respond(packet, BIG, DnsSettings(), udp=True, serial=1, rng=random.Random()) is None


def test_malformed_packet_with_a_header_gets_formerr_with_its_id() -> None:
    good = dns.message.make_query("big.service.consul.", "A", id=4242).to_wire()
    for packet in (good[:15], good + b"junk", good[:12] + b"\xff" * 20):
        wire = respond(packet, BIG, DnsSettings(), udp=True, serial=1, rng=random.Random())
        assert wire is not None, packet
        reply = dns.message.from_wire(wire)
        assert reply.id == 4242 and reply.rcode() == dns.rcode.FORMERR and reply.flags & dns.flags.QR


def test_a_response_is_never_answered() -> None:
    query = dns.message.make_query("big.service.consul.", "A")
    response = dns.message.make_response(query)
    assert respond(response.to_wire(), BIG, DnsSettings(), udp=True, serial=1, rng=random.Random()) is None
    broken = bytearray(response.to_wire()[:12]) + b"\xff\xff"
    assert respond(bytes(broken), BIG, DnsSettings(), udp=True, serial=1, rng=random.Random()) is None


def test_other_opcodes_are_not_implemented() -> None:
    query = dns.message.make_query("big.service.consul.", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    reply = dns.message.from_wire(answer_bytes(query))
    assert reply.rcode() == dns.rcode.NOTIMP and reply.opcode() == dns.opcode.NOTIFY


def test_not_exactly_one_question_is_formerr() -> None:
    query = dns.message.make_query("big.service.consul.", "A")
    query.question.append(dns.rrset.RRset(dns.name.from_text("x.service.consul."), dns.rdataclass.IN,
                                          dns.rdatatype.A))
    assert dns.message.from_wire(answer_bytes(query)).rcode() == dns.rcode.FORMERR
    query.question = []
    assert dns.message.from_wire(answer_bytes(query)).rcode() == dns.rcode.FORMERR


def test_other_classes_are_refused_and_edns_versions_above_0_get_badvers() -> None:
    chaos = dns.message.make_query("version.bind.", "TXT", rdclass=dns.rdataclass.CH)
    assert dns.message.from_wire(answer_bytes(chaos)).rcode() == dns.rcode.REFUSED
    future = dns.message.make_query("big.service.consul.", "A", use_edns=1)
    assert dns.message.from_wire(answer_bytes(future)).rcode() == dns.rcode.BADVERS


class FailingCatalog:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def instances(self, service: str) -> Sequence[Instance]:
        raise self.exc

    def addresses(self) -> Iterable[str]:
        raise self.exc


def test_a_catalog_that_cannot_answer_gives_servfail() -> None:
    for exc in (Unavailable("not caught up"), RuntimeError("bug")):
        wire = respond(dns.message.make_query("big.service.consul.", "A").to_wire(), FailingCatalog(exc),
                       DnsSettings(), udp=True, serial=1, rng=random.Random())
        assert wire is not None
        assert dns.message.from_wire(wire).rcode() == dns.rcode.SERVFAIL


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_an_answer_or_silence_never_an_exception(packet: bytes) -> None:
    wire = respond(packet, BIG, DnsSettings(), udp=True, serial=1, rng=random.Random())
    if wire is not None:
        assert len(wire) <= 512
        dns.message.from_wire(wire)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_queries_never_raise(data: st.DataObject) -> None:
    packet = bytearray(dns.message.make_query("_big._tcp.service.consul.", "SRV", use_edns=0).to_wire())
    for _ in range(data.draw(st.integers(1, 4))):
        packet[data.draw(st.integers(0, len(packet) - 1))] = data.draw(st.integers(0, 255))
    respond(bytes(packet), BIG, DnsSettings(), udp=True, serial=1, rng=random.Random())


def test_case_of_the_question_is_kept_in_the_answer() -> None:
    reply = ask(BIG, "BIG.Service.Consul.", udp=False)
    assert reply.question[0].name.to_text() == "BIG.Service.Consul." and len(texts(reply.answer)) == 200
    assert reply.answer[0].name.to_text() == "BIG.Service.Consul."


def test_edns_answer_carries_an_opt_record() -> None:
    reply = dns.message.from_wire(answer_bytes(dns.message.make_query("big.service.consul.", "A", use_edns=0)))
    assert reply.edns == 0 and reply.payload == 4096
    plain = dns.message.from_wire(answer_bytes(dns.message.make_query("big.service.consul.", "A")))
    assert plain.edns == -1
