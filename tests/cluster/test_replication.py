"""Writes through a follower are visible everywhere; the follower reflects its own acknowledged
writes at once (read-your-writes without ``min_index``)."""

from __future__ import annotations

import pytest
from cluster_helpers import instance_body, put_instance, service_ids

from raftreg.testing import LocalCluster, http_json

pytestmark = pytest.mark.cluster


def test_register_through_follower_is_read_back_from_every_node(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    followers = cluster.followers()
    assert len(followers) == 2 and leader not in followers

    acked: dict[str, int] = {}
    for i in range(20):
        follower = followers[i % 2]
        instance_id = f"web-{i}"
        code, body = put_instance(cluster, follower, "web", instance_id)
        assert code == 200, f"PUT through follower {follower}: {code} {body}"
        assert body["id"] == instance_id and body["service"] == "web"
        assert body["index"] > 0 and body["modify_index"] == body["index"]
        acked[instance_id] = body["index"]

        # The follower that acknowledged the write reflects it immediately.
        code, got = http_json(f"{cluster.url(follower)}/v1/services/web/instances/{instance_id}")
        assert code == 200, f"{follower} does not reflect its own acknowledged write {instance_id}: {code} {got}"
        expected = instance_body(instance_id)
        assert (got["address"], got["port"], got["tags"], got["meta"]) == (
            expected["address"], expected["port"], expected["tags"], expected["meta"])
        assert got["modify_index"] == body["index"]
        assert instance_id in service_ids(cluster, follower, "web")

    index = cluster.wait_converged(timeout=30.0, min_index=max(acked.values()))
    assert index >= max(acked.values())

    reference = None
    for name in cluster.names:
        code, listing = http_json(f"{cluster.url(name)}/v1/services/web")
        assert code == 200
        assert [inst["id"] for inst in listing["instances"]] == sorted(acked), f"node {name}"
        assert listing["index"] == max(acked.values()), f"node {name}"
        for inst in listing["instances"]:
            assert inst["modify_index"] == acked[inst["id"]]
        if reference is None:
            reference = listing
        assert listing == reference, f"node {name} answers differently from {cluster.names[0]}"

        code, services = http_json(f"{cluster.url(name)}/v1/services")
        assert code == 200
        assert services["services"] == [{"name": "web", "instances": 20, "passing": 20, "warning": 0, "critical": 0,
                                         "tags": ["load"]}]
