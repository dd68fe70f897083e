"""Members must agree on ``[acl]`` (raftreg.node.acl_agreement): a real 3-node cluster where n3's
config says ``default_policy = "allow"`` while the leader's says ``deny``. n3 refuses to serve
(503, not ready, one clear log line) instead of letting anonymous requests through, the others
serve as configured, and n3 serves again once restarted with the cluster's config."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest

from raftreg.config import AclSettings, dump_config
from raftreg.testing import LocalCluster, http_json, wait_for
from tests.conftest import START_TIMEOUT

pytestmark = pytest.mark.cluster

ACL = AclSettings(enabled=True, default_policy="deny")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(3, name="aclagree", acl=ACL)
    try:
        odd = msgspec.structs.replace(c.config, acl=AclSettings(enabled=True, default_policy="allow"))
        odd_path = c.base_dir / "n3-odd.toml"
        odd_path.write_text(dump_config(odd))
        c.procs["n3"].config_path = odd_path
        for name in ("n1", "n2"):  # a leader with the cluster's config first
            c.start_node(name)
        c.leader(timeout=START_TIMEOUT, among=["n1", "n2"])
        c.start_node("n3")
        yield c
    finally:
        c.close()


def test_a_node_with_other_acl_settings_refuses_to_serve(cluster: LocalCluster) -> None:
    def conflict() -> str | None:
        status = cluster.status("n3")
        return status["acl_conflict"] if status is not None else None

    reason = wait_for(conflict, START_TIMEOUT, "n3 to notice its [acl] differs from the leader's")
    assert "default_policy=allow" in reason and "default_policy=deny" in reason
    code, body = http_json(cluster.url("n3") + "/v1/ready")
    assert code == 503 and body["error"]["code"] == "unavailable" and "[acl]" in body["error"]["message"]
    # under its own "allow" policy n3 would have answered this anonymous request 200
    code, body = http_json(cluster.url("n3") + "/v1/services")
    assert code == 503 and "[acl]" in body["error"]["message"], body
    code, _ = http_json(cluster.url("n3") + "/v1/services/x/instances/i1", method="PUT",
                        body={"address": "10.0.0.1", "port": 80})
    assert code == 503
    assert http_json(cluster.url("n1") + "/v1/services")[0] == 401  # the others enforce "deny"
    assert http_json(cluster.url("n3") + "/v1/health")[0] == 200
    assert cluster.log_text("n3").count("event=acl_settings_mismatch ") == 1


def test_restarted_with_the_clusters_config_it_serves_again(cluster: LocalCluster) -> None:
    cluster.procs["n3"].config_path = cluster.config_path
    cluster.restart("n3", wait=START_TIMEOUT)
    status = cluster.status("n3")
    assert status is not None and status["acl_conflict"] == "" and status["acl"] == {"enabled": True,
                                                                                    "default_policy": "deny"}
    assert http_json(cluster.url("n3") + "/v1/services")[0] == 401
