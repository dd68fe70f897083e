"""ACLs through the Consul-compatible API (one node, ``[acl] enabled``, default policy deny):
tokens from ``X-Consul-Token``, ``Authorization: Bearer`` and ``?token=``; denials are 403 with
Consul's plain text (py-consul raises ``ACLPermissionDenied``), never 401 (``ACLDisabled``);
lists are filtered to what the token may read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import consul
import pytest
from consul_helpers import client, close_cluster, get_json, raw, start_cluster

from raftreg.config import AclSettings
from raftreg.testing import LocalCluster, http_json

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def acl_cluster(request: pytest.FixtureRequest) -> Iterator[tuple[LocalCluster, str, dict[str, Any]]]:
    """The cluster, the management secret, and a token that may write services ``web*`` only."""
    c = start_cluster(nodes=1, acl=AclSettings(enabled=True, default_policy="deny"))
    try:
        code, root = http_json(c.url("n1") + "/v1/acl/bootstrap", method="PUT", body={})
        assert code == 200, root
        code, web = http_json(c.url("n1") + "/v1/acl/tokens", method="PUT",
                              headers={"Authorization": f"Bearer {root['secret_id']}"},
                              body={"description": "web only", "rules": ['service_prefix "web" write']})
        assert code == 200, web
        yield c, root["secret_id"], web
    finally:
        close_cluster(c, request)


def test_a_token_without_the_right_is_denied_with_403(acl_cluster: tuple[LocalCluster, str, dict[str, Any]]) -> None:
    cluster, root, web = acl_cluster
    limited = client(cluster, "n1", token=web["secret_id"])
    assert limited.agent.service.register("web", service_id="web-1", address="10.0.0.1", port=80,
                                          check=consul.Check.ttl("60s"))
    with pytest.raises(consul.ACLPermissionDenied,
                       match=f"Permission denied: token with AccessorID '{web['accessor_id']}' lacks service:write"):
        limited.agent.service.register("db", address="10.0.0.2", port=5432)
    assert client(cluster, "n1", token=root).agent.service.register("db", service_id="db-1", address="10.0.0.2",
                                                                     port=5432, check=consul.Check.ttl("60s"))
    with pytest.raises(consul.ACLPermissionDenied, match="lacks permission 'service:write' on \"db\""):
        limited.agent.check.ttl_pass("service:db-1")
    with pytest.raises(consul.ACLPermissionDenied):
        limited.agent.service.deregister("db-1")
    assert limited.agent.check.ttl_pass("service:web-1")
    status, headers, body = raw(cluster.consul_url("n1") + "/v1/agent/service/deregister/db-1", method="PUT",
                                headers={"X-Consul-Token": web["secret_id"]})
    assert status == 403 and body.startswith(b"Permission denied") and headers["Content-Type"].startswith("text/")
    assert web["secret_id"].encode() not in body


def test_an_unknown_token_is_403_acl_not_found(acl_cluster: tuple[LocalCluster, str, dict[str, Any]]) -> None:
    cluster, _, _ = acl_cluster
    with pytest.raises(consul.ACLPermissionDenied, match="ACL not found"):
        client(cluster, "n1", token="no-such-secret").catalog.services()
    status, _, body = raw(cluster.consul_url("n1") + "/v1/acl/token/self")
    assert (status, body) == (403, b"ACL not found\n")


@pytest.mark.parametrize("how", ["header", "bearer", "query"])
def test_every_token_source_works_and_lists_are_filtered(acl_cluster: tuple[LocalCluster, str, dict[str, Any]],
                                                         how: str) -> None:
    cluster, root, web = acl_cluster
    secret = web["secret_id"]
    client(cluster, "n1", token=root).agent.service.register("db", service_id="db-1", address="10.0.0.2", port=5432)
    client(cluster, "n1", token=secret).agent.service.register("web", service_id="web-1", address="10.0.0.1",
                                                               port=80)
    url = cluster.consul_url("n1") + "/v1/catalog/services"
    headers = {"header": {"X-Consul-Token": secret}, "bearer": {"Authorization": f"Bearer {secret}"},
               "query": {}}[how]
    status, answer_headers, body = get_json(url + (f"?token={secret}" if how == "query" else ""), headers=headers)
    assert status == 200 and set(body) == {"web"}
    assert answer_headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
    status, _, me = get_json(cluster.consul_url("n1") + "/v1/acl/token/self", headers=headers
                             if how != "query" else {"X-Consul-Token": secret})
    assert status == 200 and me["AccessorID"] == web["accessor_id"] and me["SecretID"] == ""


def test_anonymous_requests_see_nothing_and_write_nothing(acl_cluster: tuple[LocalCluster, str, dict[str, Any]]
                                                          ) -> None:
    cluster, _, _ = acl_cluster
    anonymous = client(cluster, "n1")
    assert anonymous.catalog.services()[1] == {}
    assert anonymous.health.service("web")[1] == []
    with pytest.raises(consul.ACLPermissionDenied):
        anonymous.agent.service.register("web", service_id="web-9", address="10.0.0.9", port=80)
    with pytest.raises(consul.ACLPermissionDenied):
        anonymous.operator.raft_config()
    assert anonymous.status.leader()  # open, as in Consul
