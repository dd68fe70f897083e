"""ACLs on Consul's KV, txn and session endpoints (one node, ``[acl] enabled``, default policy
deny): a key outside the token's rules is 403 for reads and writes (py-consul raises
``ACLPermissionDenied``), lists are filtered to the readable keys and sessions, a recursive delete
needs every key under the prefix, a transaction with one denied op applies nothing, and session
rules name the session's ``Name``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import consul
import pytest
from consul_helpers import client, close_cluster, raw, start_cluster

from raftreg.config import AclSettings
from raftreg.testing import LocalCluster, http_json

pytestmark = pytest.mark.cluster

RULES = ['key_prefix "app/" write', 'key "app/secret" deny', 'session_prefix "app" write']


@pytest.fixture(scope="module")
def acl(request: pytest.FixtureRequest) -> Iterator[tuple[LocalCluster, consul.Consul, consul.Consul]]:
    """The cluster, a management client, and a client whose token has ``RULES``."""
    c = start_cluster(nodes=1, acl=AclSettings(enabled=True, default_policy="deny"))
    try:
        code, root = http_json(c.url("n1") + "/v1/acl/bootstrap", method="PUT", body={})
        assert code == 200, root
        code, token = http_json(c.url("n1") + "/v1/acl/tokens", method="PUT",
                                headers={"Authorization": f"Bearer {root['secret_id']}"},
                                body={"description": "app keys", "rules": RULES})
        assert code == 200, token
        admin = client(c, "n1", token=root["secret_id"])
        for key in ("app/a", "app/b c", "app/secret", "other/x"):
            assert admin.kv.put(key, key)
        yield c, admin, client(c, "n1", token=token["secret_id"])
    finally:
        close_cluster(c, request)


def test_keys_outside_the_rules_are_denied(acl: tuple[LocalCluster, consul.Consul, consul.Consul]) -> None:
    _, admin, app = acl
    assert app.kv.put("app/new", "v") is True
    assert app.kv.put("app/b c", "percent-encoded in the URL") is True
    assert app.kv.get("app/b c")[1]["Value"] == b"percent-encoded in the URL"
    for denied in (lambda: app.kv.put("other/x", "v"), lambda: app.kv.get("other/x"),
                   lambda: app.kv.get("app/secret"), lambda: app.kv.delete("other/x"),
                   lambda: app.kv.delete("app/", recurse=True)):
        with pytest.raises(consul.ACLPermissionDenied):
            denied()
    assert admin.kv.get("other/x")[1]["Value"] == b"other/x" and admin.kv.get("app/secret")[1] is not None


def test_lists_are_filtered_to_readable_keys(acl: tuple[LocalCluster, consul.Consul, consul.Consul]) -> None:
    cluster, _, app = acl
    keys = app.kv.get("", keys=True)[1]
    assert "app/a" in keys and "other/x" not in keys and "app/secret" not in keys
    entries = app.kv.get("", recurse=True)[1]
    assert {e["Key"] for e in entries} >= {"app/a"} and not {"other/x", "app/secret"} & {e["Key"] for e in entries}
    token = app.token
    status, headers, _ = raw(cluster.consul_url("n1") + "/v1/kv/?recurse", headers={"X-Consul-Token": token})
    assert status == 200 and headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
    assert app.kv.get("other/", recurse=True)[1] is None  # nothing readable: Consul's 404


def test_a_txn_with_one_denied_op_applies_nothing(acl: tuple[LocalCluster, consul.Consul, consul.Consul]) -> None:
    cluster, admin, app = acl
    ops = [{"KV": {"Verb": "set", "Key": "app/txn", "Value": base64.b64encode(b"1").decode()}},
           {"KV": {"Verb": "get", "Key": "other/x"}}]
    status, _, body = raw(cluster.consul_url("n1") + "/v1/txn", method="PUT", data=json.dumps(ops).encode(),
                          headers={"X-Consul-Token": app.token})
    assert status == 403 and body.startswith(b"Permission denied"), body
    assert admin.kv.get("app/txn")[1] is None


def test_session_rules_name_the_session(acl: tuple[LocalCluster, consul.Consul, consul.Consul]) -> None:
    _, admin, app = acl
    mine = app.session.create(name="app-lock", ttl=30)
    with pytest.raises(consul.ACLPermissionDenied):
        app.session.create(name="db-lock", ttl=30)
    theirs = admin.session.create(name="db-lock", ttl=30)
    assert [s["ID"] for s in app.session.list()[1]] == [mine]
    assert app.session.info(theirs)[1] is None
    with pytest.raises(consul.ACLPermissionDenied):
        app.session.renew(theirs)
    with pytest.raises(consul.ACLPermissionDenied):
        app.session.destroy(theirs)
    assert app.kv.put("app/lock", "me", acquire=mine) is True
    with pytest.raises(consul.ACLPermissionDenied):  # a lock needs session:write on its session too
        app.kv.put("app/lock2", "me", acquire=theirs)
    assert admin.kv.get("app/lock2")[1] is None
    assert admin.session.info(theirs)[1]["ID"] == theirs and app.session.destroy(mine) is True
