"""The pure parts of the Consul KV, txn and session translation: the ``DirEntry`` shape, the
mapping of Consul's transaction verbs onto raftreg's ops (and the 400s naming the op index), Go
duration formatting and Consul's reading of ``LockDelay``."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from raftreg.consul.kv import entry_view
from raftreg.consul.session import _duration, go_duration
from raftreg.consul.txn import parse_txn_body
from raftreg.consul.wire import ConsulError
from raftreg.errors import InvalidArgument, PayloadTooLarge
from raftreg.models import KVEntry, TxnOp


def test_entry_view_is_consuls_dir_entry() -> None:
    entry = KVEntry("a/b", b"hi", 7, create_index=3, modify_index=9, lock_index=2, session="s-1")
    assert entry_view(entry) == {"LockIndex": 2, "Key": "a/b", "Flags": 7, "Value": "aGk=", "CreateIndex": 3,
                                 "ModifyIndex": 9, "Session": "s-1"}
    assert entry_view(KVEntry("k", b""))["Value"] is None and "Session" not in entry_view(KVEntry("k", b""))
    assert entry_view(entry, with_value=False)["Value"] is None


def test_txn_verbs_map_onto_raftregs_ops() -> None:
    body = (b'[{"KV": {"Verb": "set", "Key": "a", "Value": "' + base64.b64encode(b"x") + b'", "Flags": 5}},'
            b' {"kv": {"verb": "cas", "key": "a", "index": 0}},'
            b' {"KV": {"Verb": "check-not-exists", "Key": "b"}},'
            b' {"KV": {"Verb": "check-index", "Key": "a", "Index": 4}},'
            b' {"KV": {"Verb": "delete-cas", "Key": "a", "Index": 4, "Namespace": "default"}},'
            b' {"KV": {"Verb": "get", "Key": "a"}}, {"KV": {"Verb": "delete", "Key": "a", "Value": null}}]')
    assert parse_txn_body(body) == [
        ("set", TxnOp("set", "a", b"x", 5, 0)), ("cas", TxnOp("cas", "a", b"", 0, 0)),
        ("check-not-exists", TxnOp("check_index", "b", b"", 0, 0)),
        ("check-index", TxnOp("check_index", "a", b"", 0, 4)), ("delete-cas", TxnOp("delete_cas", "a", b"", 0, 4)),
        ("get", TxnOp("get", "a")), ("delete", TxnOp("delete", "a"))]
    assert parse_txn_body(b"[]") == []


@pytest.mark.parametrize(("ops", "named"), [
    ([{"KV": {"Verb": "lock", "Key": "a"}}], "[0].KV.Verb: 'lock' is not supported"),
    ([{"KV": {"Verb": "set", "Key": "a"}}, {"KV": {"Verb": "delete-tree", "Key": "a"}}], "[1].KV.Verb"),
    ([{"KV": {"Verb": "nope", "Key": "a"}}], "[0].KV.Verb: unknown KV verb"),
    ([{"Service": {"Verb": "set"}}], "[0].Service: Service operations are not supported"),
    ([{"KV": {"Verb": "set", "Key": "a"}, "Extra": 1}], "[0].Extra"),
    ([{"KV": {"Verb": "set", "Key": "a", "Colour": 1}}], "[0].KV.Colour: unknown field"),
    ([{"KV": {"Verb": "set", "Key": 3}}], "[0].KV.Key"),
    ([{"KV": {"Verb": "set", "Key": "a", "Flags": -1}}], "[0].KV.Flags"),
    ([{"KV": {"Verb": "set", "Key": "a", "Flags": True}}], "[0].KV.Flags"),
    ([{"KV": {"Verb": "cas", "Key": "a"}}], "[0].KV.Index: 'cas' needs an Index"),
    ([{"KV": {"Verb": "check-index", "Key": "a", "Index": 0}}], "[0].KV.Index"),
    ([{"KV": {"Verb": "set", "Key": "a", "Value": 12}}], "[0].KV.Value"),
    ([{"KV": {"Verb": "set", "Key": "a", "Session": "s"}}], "[0].KV.Session"),
    ([{"KV": {"Verb": "set", "Key": "a", "Namespace": "team"}}], "[0].KV.Namespace"),
    ([{"KV": {"Verb": "set", "Key": "a", "key": "b"}}], "given twice"),
    ([[1]], "[0]: must be a JSON object"),
])
def test_bad_ops_are_400_naming_the_op(ops: list[Any], named: str) -> None:
    with pytest.raises((ConsulError, InvalidArgument)) as info:
        parse_txn_body(json.dumps(ops).encode())
    err = info.value
    text = err.message if isinstance(err, ConsulError) else f"{err.field}: {err.message}"
    assert getattr(err, "status", 400) == 400 and named in text


def test_bad_keys_name_the_op_and_big_values_are_413() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_txn_body(b'[{"KV": {"Verb": "set", "Key": "ok"}}, {"KV": {"Verb": "set", "Key": "a//b"}}]')
    assert info.value.field == "[1].KV.Key"
    big = base64.b64encode(b"x" * (512 * 1024 + 1)).decode()
    with pytest.raises(PayloadTooLarge):
        parse_txn_body(f'[{{"KV": {{"Verb": "set", "Key": "a", "Value": "{big}"}}}}]'.encode())
    with pytest.raises(ConsulError, match="too many operations"):
        parse_txn_body(b"[" + b",".join([b'{"KV": {"Verb": "get", "Key": "a"}}'] * 65) + b"]")


@pytest.mark.parametrize(("seconds", "text"), [(15.0, "15s"), (90.0, "1m30s"), (3600.0, "1h0m0s"), (0.5, "0.5s"),
                                               (86400.0, "24h0m0s"), (0.0, "0s")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_lock_delay_numbers_are_seconds_below_1000_else_nanoseconds() -> None:
    assert _duration(15, "LockDelay", 0, 60, numbers_in_ns=True) == 15.0
    assert _duration(5_000_000_000, "LockDelay", 0, 60, numbers_in_ns=True) == 5.0
    assert _duration("250ms", "LockDelay", 0, 60, numbers_in_ns=True) == 0.25
    with pytest.raises(ConsulError, match="LockDelay"):
        _duration("2m", "LockDelay", 0, 60, numbers_in_ns=True)
    with pytest.raises(ConsulError, match="TTL"):
        _duration("soon", "TTL", 10, 86400)
