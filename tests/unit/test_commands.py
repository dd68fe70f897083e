"""The Raft entry envelope: round trips for every command, loud failure on what we cannot read."""

from __future__ import annotations

import msgspec
import pytest

from raftreg.models import Check, Instance
from raftreg.state.commands import (
    ENVELOPE_VERSION,
    Command,
    Deregister,
    Envelope,
    Expire,
    Noop,
    Register,
    SetCheckStatus,
    UnsupportedEntry,
    decode_entry,
    decode_envelope,
    encode_command,
    encode_entry,
    encode_entry_from,
)

FULL_INSTANCE = Instance(
    service="cart",
    id="cart-1",
    address="10.0.0.5",
    port=8080,
    tags=("v2", "canary"),
    meta={"zone": "a", "env": "prod"},
    weight=7,
    ttl=10.0,
    check=Check(
        http="http://10.0.0.5:8080/health",
        interval=5.0,
        timeout=1.0,
        failures_before_critical=3,
        successes_before_passing=2,
        deregister_critical_after=60.0,
    ),
    status="critical",
    create_index=12,
    modify_index=40,
)

CASES: dict[str, list[Command]] = {
    "register-minimal": [Register(Instance("cart", "c1", "h", 1))],
    "register-full": [Register(FULL_INSTANCE)],
    "register-tcp-check": [Register(Instance("db", "d1", "::1", 5432, check=Check(tcp="db:5432")))],
    "deregister": [Deregister("cart", "cart-1")],
    "noop": [Noop()],
    "empty": [],
    "mixed": [Noop(), Register(FULL_INSTANCE), Deregister("cart", "cart-1"), Register(Instance("a", "b", "c", 2))],
}


@pytest.mark.parametrize("cmds", list(CASES.values()), ids=list(CASES))
def test_round_trip(cmds: list[Command]) -> None:
    raw = encode_entry(cmds)
    assert isinstance(raw, bytes)
    decoded = decode_entry(raw)
    assert decoded == cmds
    assert [type(c) for c in decoded] == [type(c) for c in cmds]
    assert encode_entry(decoded) == raw  # stable bytes


def test_round_trip_keeps_field_types() -> None:
    (cmd,) = decode_entry(encode_entry([Register(FULL_INSTANCE)]))
    assert isinstance(cmd, Register)
    inst = cmd.instance
    assert inst.tags == ("v2", "canary")
    assert isinstance(inst.tags, tuple)
    assert list(inst.meta.items()) == [("zone", "a"), ("env", "prod")]
    assert isinstance(inst.check, Check)
    assert inst.check.deregister_critical_after == 60.0
    assert (inst.create_index, inst.modify_index) == (12, 40)


def test_commands_are_distinguished_by_tag() -> None:
    raw = encode_entry([Deregister("a", "b", 7.5), Noop()])
    assert msgspec.msgpack.decode(raw) == [ENVELOPE_VERSION, [["dereg", "a", "b", 7.5], ["noop"]], "", 0]


def test_an_entry_carries_its_origin_and_version_1_entries_still_decode() -> None:
    raw = encode_entry([Noop()], "3f2a9c", 41)
    assert decode_envelope(raw) == Envelope(2, [Noop()], "3f2a9c", 41)
    assert decode_envelope(encode_entry_from([encode_command(Noop())], "3f2a9c", 41)) == decode_envelope(raw)
    assert decode_envelope(msgspec.msgpack.encode([1, [["noop"]]])) == Envelope(1, [Noop()], "", 0)


def test_entries_written_before_the_time_field_still_decode() -> None:
    """``at`` was added last, with a default: entries from before it decode with ``at`` 0."""
    raw = msgspec.msgpack.encode([ENVELOPE_VERSION, [["dereg", "a", "b"], ["expire", "s", "i", 4, "ttl"],
                                                     ["check", "s", "i", 3, "critical", ""]]])
    assert decode_entry(raw) == [Deregister("a", "b"), Expire("s", "i", 4), SetCheckStatus("s", "i", 3, "critical")]


@pytest.mark.parametrize("version", [0, ENVELOPE_VERSION + 1, 99])
def test_other_envelope_version_is_unsupported(version: int) -> None:
    raw = msgspec.msgpack.encode(Envelope(version, [Noop()]))
    with pytest.raises(UnsupportedEntry, match="version"):
        decode_entry(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",  # a byte msgpack never uses
        b"garbage that is not msgpack",
        b"\x92\x01",  # truncated array
        msgspec.msgpack.encode({"v": 1, "cmds": []}),  # a map, not the array-like envelope
        msgspec.msgpack.encode([1, [["bogus", 1]]]),  # unknown command tag
        msgspec.msgpack.encode([1, [["dereg", "only-one-field"]]]),
        msgspec.msgpack.encode([1, [["reg", {"service": "s"}]]]),  # instance missing fields
        msgspec.msgpack.encode(["1", []]),  # version of the wrong type
    ],
)
def test_garbage_is_unsupported(raw: bytes) -> None:
    with pytest.raises(UnsupportedEntry):
        decode_entry(raw)


def test_an_entry_of_encoded_commands_is_byte_identical_to_encoding_them_together() -> None:
    from raftreg.state.commands import Deregister, Expire, Noop, SetManualStatus, encode_command, encode_entry_from

    cmds = [Deregister("a", "b"), Noop(), Expire("s", "i", 5, "ttl"), SetManualStatus("s", "i", "warning", "n" * 300)]
    for n in range(len(cmds) + 1):
        assert encode_entry_from([encode_command(c) for c in cmds[:n]]) == encode_entry(cmds[:n])
        assert decode_entry(encode_entry_from([encode_command(c) for c in cmds[:n]])) == cmds[:n]
