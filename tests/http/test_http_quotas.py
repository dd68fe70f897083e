"""Store quotas (``[quotas]``, raftreg.node.quotas; checklist row 9): a client write that would
create an object past a cap is 507 ``quota_exceeded`` and changes nothing, while reads, writes to
existing objects and deletions keep working. One single-node cluster with tiny caps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raftreg.config import QuotaSettings
from raftreg.testing import LocalCluster
from tests.conftest import START_TIMEOUT
from tests.http.conftest import Http

QUOTAS = QuotaSettings(max_services=2, max_instances_per_service=2, max_instances=3, max_keys=2, max_sessions=1)
GOOD = {"address": "10.0.0.5", "port": 8080}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(1, quotas=QUOTAS)
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


def refused(api: Http, method: str, path: str, body: object, cap: str, *watched: str) -> None:
    """``method path`` is 507 naming ``quotas.<cap>`` and proposes nothing."""
    with api.unchanged(*watched):
        resp = api.request(method, path, json_body=body)
    err = Http.assert_error(resp, 507, "quota_exceeded", field=None)
    assert f"quotas.{cap}" in err["message"], err


def test_instance_caps_refuse_new_instances_and_keep_existing_ones_writable(api: Http) -> None:
    api.put_ok("a", "a1", GOOD)
    api.put_ok("a", "a2", GOOD)
    refused(api, "PUT", "/v1/services/a/instances/a3", GOOD, "max_instances_per_service", "/v1/services/a")
    api.put_ok("b", "b1", GOOD)
    refused(api, "PUT", "/v1/services/c/instances/c1", GOOD, "max_services", "/v1/services/c")
    refused(api, "PUT", "/v1/services/b/instances/b2", GOOD, "max_instances", "/v1/services/b")
    # a full store: re-registrations (a changed definition too), reads and deletions still work
    assert api.put_ok("a", "a1", {**GOOD, "port": 9090})["port"] == 9090
    assert [i["id"] for i in api.get("/v1/services/a").json()["instances"]] == ["a1", "a2"]
    api.delete_ok("a", "a2")
    api.put_ok("b", "b2", GOOD)  # room again
    for service, instance in (("a", "a1"), ("b", "b1"), ("b", "b2")):
        api.delete_ok(service, instance)


def test_key_cap_counts_new_keys_of_writes_and_transactions(api: Http) -> None:
    assert api.request("PUT", "/v1/kv/q/k1", b"v", content_type=None).status == 200
    assert api.request("PUT", "/v1/kv/q/k2", b"v", content_type=None).status == 200
    with api.unchanged("/v1/kv/q/k3"):
        resp = api.request("PUT", "/v1/kv/q/k3", b"v", content_type=None)
    assert "quotas.max_keys" in Http.assert_error(resp, 507, "quota_exceeded", field=None)["message"]
    txn = {"ops": [{"op": "set", "key": "q/k1", "value": "dg=="}, {"op": "set", "key": "q/k9", "value": "dg=="}]}
    refused(api, "PUT", "/v1/txn", txn, "max_keys", "/v1/kv/q/k1")
    assert api.request("PUT", "/v1/kv/q/k1", b"new", content_type=None).status == 200  # existing key: fine
    assert api.get("/v1/kv/q/k1?raw").body == b"new"
    assert api.delete("/v1/kv/q/?recurse").status == 200


def test_session_cap(api: Http) -> None:
    first = api.put("/v1/sessions", {"ttl": "60s"})
    assert first.status == 200, first.body
    refused(api, "PUT", "/v1/sessions", {"ttl": "60s"}, "max_sessions", "/v1/sessions")
    assert api.delete(f"/v1/sessions/{first.json()['id']}").status == 200
    second = api.put("/v1/sessions", {"ttl": "60s"})
    assert second.status == 200, second.body
    assert api.delete(f"/v1/sessions/{second.json()['id']}").status == 200
