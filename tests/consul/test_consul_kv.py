"""Consul's KV, txn and session endpoints on a real 3-node cluster, driven by py-consul (the PyPI
release) and raw HTTP: put/get with flags and cas, recurse/keys/separator, deletes, 404 with
``X-Consul-Index``, blocking gets that wake only on their key, locks held by sessions, the
session views, transactions (409 applies nothing), the native API and the Consul API reading
each other's keys, and bad input (400 naming the parameter, nothing changed)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from typing import Any

import consul
import pytest
from consul.exceptions import ClientError
from consul_helpers import client, get_json, raw

from raftreg.testing import LocalCluster, http_json, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(consul_cluster: LocalCluster) -> LocalCluster:
    return consul_cluster


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def test_put_get_flags_raw_and_a_404_with_an_index(cluster: LocalCluster) -> None:
    c1, c2 = client(cluster, "n1"), client(cluster, "n2")
    assert c1.kv.put("cfg/db", "postgres://db", flags=42) is True
    index, entry = wait_for(lambda: (r := c2.kv.get("cfg/db"))[1] and r, 10, "the key on n2")
    assert entry["Value"] == b"postgres://db" and entry["Flags"] == 42 and entry["LockIndex"] == 0
    assert entry["CreateIndex"] == entry["ModifyIndex"] == int(index) and "Session" not in entry
    missing_index, missing = c2.kv.get("cfg/absent")
    assert missing is None and int(missing_index) >= 1
    status, headers, body = raw(cluster.consul_url("n1") + "/v1/kv/cfg/db?raw")
    assert (status, body, headers["Content-Type"].split(";")[0]) == (200, b"postgres://db", "text/plain")
    assert headers["X-Consul-Index"] == index
    assert c1.kv.put("cfg/empty", b"") is True
    assert c1.kv.get("cfg/empty")[1]["Value"] is None  # Consul's null for an empty value
    status, headers, body = raw(cluster.consul_url("n3") + "/v1/kv/cfg/absent")
    assert status == 404 and int(headers["X-Consul-Index"]) >= 1 and body == b""


def test_cas_creates_once_and_updates_only_at_the_right_index(cluster: LocalCluster) -> None:
    c = client(cluster, "n2")
    assert c.kv.put("cas/k", "v1", cas=0) is True
    assert c.kv.put("cas/k", "again", cas=0) is False
    modify = c.kv.get("cas/k")[1]["ModifyIndex"]
    assert c.kv.put("cas/k", "v2", cas=modify + 1000) is False
    assert c.kv.put("cas/k", "v2", cas=modify) is True
    assert c.kv.put("cas/k", "v3", cas=modify) is False  # stale now
    entry = c.kv.get("cas/k")[1]
    assert entry["Value"] == b"v2"
    assert c.kv.delete("cas/k", cas=entry["ModifyIndex"] + 1000) is False
    assert c.kv.get("cas/k")[1] is not None
    assert c.kv.delete("cas/k", cas=entry["ModifyIndex"]) is True
    assert c.kv.get("cas/k")[1] is None


def test_recurse_keys_separator_and_recursive_delete(cluster: LocalCluster) -> None:
    c = client(cluster, "n3")
    for key in ("tree/x/1", "tree/x/2", "tree/y"):
        assert c.kv.put(key, key.upper())
    index, entries = c.kv.get("tree/", recurse=True)
    assert [(e["Key"], e["Value"]) for e in entries] == [("tree/x/1", b"TREE/X/1"), ("tree/x/2", b"TREE/X/2"),
                                                         ("tree/y", b"TREE/Y")]
    assert int(index) == max(e["ModifyIndex"] for e in entries)
    assert c.kv.get("tree/", keys=True)[1] == ["tree/x/1", "tree/x/2", "tree/y"]
    assert c.kv.get("tree/", keys=True, separator="/")[1] == ["tree/x/", "tree/y"]
    everything = {e["Key"] for e in c.kv.get("", recurse=True)[1]}
    assert {"tree/x/1", "tree/y"} <= everything
    assert c.kv.get("nothing-here/", recurse=True)[1] is None
    assert c.kv.get("nothing-here/", keys=True)[1] is None
    assert c.kv.delete("tree/x/", recurse=True) is True
    assert c.kv.get("tree/", keys=True)[1] == ["tree/y"]


def test_blocking_get_wakes_on_its_key_only(cluster: LocalCluster) -> None:
    c1 = client(cluster, "n1")
    assert c1.kv.put("watch/k", "old")
    index, _ = c1.kv.get("watch/k")
    started = time.monotonic()
    threading.Timer(0.2, lambda: client(cluster, "n2").kv.put("elsewhere/k", "x")).start()
    same, entry = c1.kv.get("watch/k", index=index, wait="1500ms")
    assert same == index and entry["Value"] == b"old" and time.monotonic() - started >= 1.4
    absent_index, absent = c1.kv.get("watch/new")
    started = time.monotonic()
    again_index, again = c1.kv.get("watch/new", index=absent_index, wait="1s")  # blocks, does not spin
    assert absent is again is None and again_index == absent_index and time.monotonic() - started >= 0.9
    result: dict[str, Any] = {}

    def watch() -> None:
        result["changed"] = c1.kv.get("watch/k", index=index, wait="20s")
        result["created"] = c1.kv.get("watch/new", index=absent_index, wait="20s")

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert client(cluster, "n3").kv.put("watch/k", "new")
    assert client(cluster, "n3").kv.put("watch/new", "born")
    watcher.join(timeout=30)
    assert not watcher.is_alive()
    new_index, entry = result["changed"]
    assert int(new_index) > int(index) and entry["Value"] in (b"new",)
    assert result["created"][1]["Value"] == b"born"  # an absent key's watch blocks until it exists


def test_locks_with_two_sessions_release_and_destroy(cluster: LocalCluster) -> None:
    c1, c2 = client(cluster, "n1"), client(cluster, "n2")
    s1 = c1.session.create(name="lock-a", ttl=30, lock_delay=0)
    s2 = c2.session.create(name="lock-b", ttl=30, lock_delay=0, behavior="release")
    assert c1.kv.put("locks/leader", "n1", acquire=s1) is True
    assert c2.kv.put("locks/leader", "n2", acquire=s2) is False
    entry = wait_for(lambda: c2.kv.get("locks/leader")[1], 10, "the lock on n2")
    assert entry["Session"] == s1 and entry["LockIndex"] == 1 and entry["Value"] == b"n1"
    assert c2.kv.put("locks/leader", "n2", release=s2) is False
    assert c1.kv.put("locks/leader", "n1", release=s1) is True
    assert c2.kv.put("locks/leader", "n2", acquire=s2) is True
    assert c2.session.destroy(s2) is True
    entry = wait_for(lambda: (e := c1.kv.get("locks/leader")[1]) and "Session" not in e
                     and e["LockIndex"] == 2 and e, 10, "the lock released by the destroyed session")
    assert entry["Value"] == b"n2" and entry["LockIndex"] == 2
    assert c1.session.info(s2)[1] is None
    with pytest.raises(consul.NotFound):
        c1.session.renew(s2)


def test_session_info_list_renew_and_node(cluster: LocalCluster) -> None:
    c1, c3 = client(cluster, "n1"), client(cluster, "n3")
    assert c1.agent.service.register("locked", service_id="locked-1", address="10.9.0.1", port=80,
                                     check=consul.Check.ttl("60s"))
    assert c1.agent.check.ttl_pass("service:locked-1")
    sid = c3.session.create(name="tied", ttl=20, behavior="delete", lock_delay=5, checks=["service:locked-1"])
    index, info = wait_for(lambda: (r := c3.session.info(sid))[1] and r, 10, "the session on n3")
    assert int(index) >= info["CreateIndex"] >= 1
    assert {k: info[k] for k in ("ID", "Name", "Node", "LockDelay", "Behavior", "TTL", "NodeChecks")} == {
        "ID": sid, "Name": "tied", "Node": "ip-10-9-0-1", "LockDelay": 5_000_000_000, "Behavior": "delete",
        "TTL": "20s", "NodeChecks": []}
    assert info["ServiceChecks"] == [{"ID": "service:locked-1", "Namespace": ""}]
    assert sid in [s["ID"] for s in c3.session.list()[1]]
    assert [s["ID"] for s in c3.session.node("ip-10-9-0-1")[1]] == [sid]
    assert c3.session.node("ip-10-9-9-9")[1] == []
    assert c3.session.renew(sid)["ID"] == sid
    started = time.monotonic()  # another session's create does not end a watch of this one
    threading.Timer(0.4, lambda: c1.session.destroy(c1.session.create(name="other", ttl=30))).start()
    same_index, same = c3.session.info(sid, index=index, wait="1500ms")
    assert same == info and int(same_index) > int(index) and time.monotonic() - started >= 1.4
    assert c1.session.info(str(uuid.uuid4()))[1] is None  # 200 [] for an unknown session
    assert c1.session.destroy(sid) is True


def test_a_session_as_the_go_client_sends_it(cluster: LocalCluster) -> None:
    body = {"Name": "go", "Node": "n2", "LockDelay": 2_000_000_000, "Behavior": "release", "TTL": "1m30s",
            "Checks": ["serfHealth"], "NodeChecks": None, "ServiceChecks": None, "ID": "", "CreateIndex": 0}
    status, _, created = get_json(cluster.consul_url("n2") + "/v1/session/create", method="PUT",
                                  data=json.dumps(body).encode())
    assert status == 200, created
    info = wait_for(lambda: client(cluster, "n1").session.info(created["ID"])[1], 10, "the session on n1")
    assert (info["Node"], info["LockDelay"], info["TTL"], info["ServiceChecks"]) == ("", 2_000_000_000, "1m30s", None)
    status, _, listed = get_json(cluster.consul_url("n3") + "/v1/session/renew/" + created["ID"], method="PUT")
    assert status == 200 and [s["ID"] for s in listed] == [created["ID"]]
    assert client(cluster, "n3").session.destroy(created["ID"])


def test_txn_applies_all_or_nothing(cluster: LocalCluster) -> None:
    c = client(cluster, "n2")
    done = c.txn.put([{"KV": {"Verb": "set", "Key": "txn/a", "Value": b64(b"A"), "Flags": 3}},
                      {"KV": {"Verb": "cas", "Key": "txn/b", "Value": b64(b"B"), "Index": 0}}])
    assert done["Errors"] is None
    assert [(r["KV"]["Key"], r["KV"]["Value"], r["KV"]["Flags"]) for r in done["Results"]] == [
        ("txn/a", None, 3), ("txn/b", None, 0)]
    a_index = done["Results"][0]["KV"]["ModifyIndex"]
    ops = [{"KV": {"Verb": "set", "Key": "txn/c", "Value": b64(b"C")}},
           {"KV": {"Verb": "check-index", "Key": "txn/a", "Index": a_index + 1000}}]
    status, _, body = raw(cluster.consul_url("n3") + "/v1/txn", method="PUT", data=json.dumps(ops).encode())
    failed = json.loads(body)
    assert status == 409 and failed["Results"] is None
    assert [e["OpIndex"] for e in failed["Errors"]] == [1] and "txn/a" in failed["Errors"][0]["What"]
    with pytest.raises(ClientError, match="409"):
        c.txn.put(ops)
    assert c.kv.get("txn/c")[1] is None  # nothing applied
    got = c.txn.put([{"KV": {"Verb": "get", "Key": "txn/a"}},
                     {"KV": {"Verb": "check-not-exists", "Key": "txn/c"}},
                     {"KV": {"Verb": "delete", "Key": "txn/b"}}])
    assert [r["KV"]["Value"] for r in got["Results"]] == [b64(b"A")]
    assert c.kv.get("txn/b")[1] is None
    missing = [{"KV": {"Verb": "get", "Key": "txn/never"}}]
    status, _, body = raw(cluster.consul_url("n1") + "/v1/txn", method="PUT", data=json.dumps(missing).encode())
    assert status == 409 and json.loads(body)["Errors"][0]["OpIndex"] == 0


def test_native_and_consul_kv_see_each_other(cluster: LocalCluster) -> None:
    code, _ = http_json(cluster.url("n1") + "/v1/kv/shared/native?flags=7", method="PUT", data=b"from-native")
    assert code == 200
    entry = wait_for(lambda: client(cluster, "n2").kv.get("shared/native")[1], 10, "the native key via Consul")
    assert entry["Value"] == b"from-native" and entry["Flags"] == 7
    assert client(cluster, "n3").kv.put("shared/consul", "from-consul", flags=9)
    code, body = wait_for(lambda: (r := http_json(cluster.url("n1") + "/v1/kv/shared/consul"))[0] == 200 and r,
                          10, "the Consul key via the native API")
    assert body["value"] == b64(b"from-consul") and body["flags"] == 9


BAD_KV = [
    ("PUT", "bad/k?flags=abc", "flags"),
    ("PUT", "bad/k?flags=-1", "flags"),
    ("PUT", "bad/k?cas=x", "cas"),
    ("PUT", "bad/k?cas=1&acquire=" + "0" * 8 + "-0000-0000-0000-" + "0" * 12, "Conflicting flags"),
    ("PUT", "bad/k?acquire=not-a-session", "acquire"),
    ("PUT", "bad/k?acquire=" + "1" * 8 + "-1111-1111-1111-" + "1" * 12, "acquire"),
    ("PUT", "bad/../k", "key"),
    ("PUT", "bad//k", "key"),
    ("PUT", "", "Missing key name"),
    ("GET", "", "Missing key name"),
    ("GET", "bad/k?index=x", "index"),
    ("GET", "bad/k?wait=forever", "wait"),
    ("GET", "bad/?keys&separator=" + "x" * 65, "separator"),
    ("GET", "bad/k?dc=elsewhere", "datacenter"),
    ("DELETE", "bad/k?recurse&cas=1", "Conflicting flags"),
    ("DELETE", "bad/k?cas=nope", "cas"),
]


@pytest.mark.parametrize(("method", "path", "named"), BAD_KV)
def test_bad_kv_input_is_a_400_naming_the_parameter(cluster: LocalCluster, method: str, path: str,
                                                    named: str) -> None:
    status, _, body = raw(cluster.consul_url("n1") + "/v1/kv/" + path, method=method,
                          data=b"v" if method == "PUT" else None)
    assert status == 400 and named in body.decode(), body
    assert client(cluster, "n1").kv.get("bad/", recurse=True)[1] is None


BAD_BODIES = [
    ("/v1/session/create", {"Name": "x"}, "TTL"),
    ("/v1/session/create", {"TTL": "5s"}, "TTL"),
    ("/v1/session/create", {"TTL": "15s", "Behavior": "explode"}, "Behavior"),
    ("/v1/session/create", {"TTL": "15s", "LockDelay": "2m"}, "LockDelay"),
    ("/v1/session/create", {"TTL": "15s", "NodeChecks": ["some-node-check"]}, "NodeChecks[0]"),
    ("/v1/session/create", {"TTL": "15s", "ServiceChecks": [{"ID": "service:nobody"}]}, "ServiceChecks[0].ID"),
    ("/v1/session/create", {"TTL": "15s", "Node": "some-other-host"}, "Node"),
    ("/v1/session/create", {"TTL": "15s", "Colour": "red"}, "Colour"),
    ("/v1/session/create", None, "TTL"),
    ("/v1/session/create", [1], "body"),
    ("/v1/session/create", "{", "Request decode failed"),
    ("/v1/txn", [{"KV": {"Verb": "lock", "Key": "bad/t", "Session": "x"}}], "[0].KV.Verb"),
    ("/v1/txn", [{"KV": {"Verb": "set", "Key": "bad/t"}}, {"KV": {"Verb": "explode", "Key": "bad/t"}}],
     "[1].KV.Verb"),
    ("/v1/txn", [{"Node": {"Verb": "set"}}], "[0].Node"),
    ("/v1/txn", [{"KV": {"Verb": "set", "Key": "bad/t", "Value": "%%%"}}], "[0].KV.Value"),
    ("/v1/txn", [{"KV": {"Verb": "cas", "Key": "bad/t"}}], "[0].KV.Index"),
    ("/v1/txn", [{"KV": {"Verb": "set", "Key": "/bad"}}], "[0].KV.Key"),
    ("/v1/txn", {"KV": {}}, "array"),
    ("/v1/txn", "not json", "Failed to parse body"),
]


@pytest.mark.parametrize(("path", "body", "named"), BAD_BODIES)
def test_bad_session_and_txn_bodies_are_a_400_naming_the_field(cluster: LocalCluster, path: str, body: Any,
                                                               named: str) -> None:
    c = client(cluster, "n2")
    before = {s["ID"] for s in c.session.list()[1]}
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    status, _, answer = raw(cluster.consul_url("n2") + path, method="PUT", data=data)
    assert status == 400 and named in answer.decode(), answer
    assert {s["ID"] for s in c.session.list()[1]} == before and c.kv.get("bad/", recurse=True)[1] is None


def test_txn_with_too_many_ops_is_413(cluster: LocalCluster) -> None:
    ops = [{"KV": {"Verb": "set", "Key": f"bad/many/{i}"}} for i in range(65)]
    status, _, body = get_json(cluster.consul_url("n3") + "/v1/txn", method="PUT", data=json.dumps(ops).encode())
    assert status == 413 and "too many operations" in body
    assert client(cluster, "n3").kv.get("bad/", recurse=True)[1] is None


def test_a_cas_whose_outcome_is_unknown_is_504_not_false(cluster: LocalCluster) -> None:
    """Last in the module: it pauses the followers. The leader cannot commit, so the cas times out:
    504 "outcome unknown" (py-consul raises ``ConsulException``), never ``false``, never retried."""
    leader = cluster.leader()
    c = client(cluster, leader)
    assert c.kv.put("unknown/k", "v1", cas=0) is True
    paused = cluster.followers()
    try:
        for name in paused:
            cluster.pause(name)
        with pytest.raises(consul.ConsulException, match=r"504.*outcome is unknown"):
            c.kv.put("unknown/k", "v2", cas=c.kv.get("unknown/k")[1]["ModifyIndex"])
    finally:
        for name in paused:
            cluster.resume(name)
