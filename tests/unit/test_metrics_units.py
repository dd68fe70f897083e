"""Pure parts of the metrics (the leader-change count, the request instruments' labels), and
``/metrics`` absent when a node has metrics off."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from raftreg.config import LimitsTuning, LoggingSettings
from raftreg.http.app import build_app
from raftreg.http.metrics import RequestMetrics
from raftreg.node.metrics import LeaderChanges
from raftreg.raft.status import STOPPED


def test_leader_changes_count_each_new_known_leader() -> None:
    changes = LeaderChanges()
    samples = [None, "a:1", "a:1", None, "a:1", "b:1", "b:1", "a:1"]  # losing contact is no change
    for leader in samples:
        changes(dataclasses.replace(STOPPED, leader=leader), leader is not None)
    assert changes.count == 3


def test_requests_are_counted_by_template_and_denials_by_code() -> None:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    inst = "/v1/services/{service}/instances/{id}"
    for _ in range(2):
        metrics.observe(inst, "PUT", 200, 0.002)
    metrics.observe(inst, "PUT", 403, 0.001)
    metrics.observe("/v1/services", "GET", 401, 0.001)
    metrics.observe("/v1/kv/{key}", "GET", 403, 0.001, api="consul")  # Consul answers both denials 403
    metrics.observe("/v1/kv/{key}", "GET", 200, 0.001, api="consul")

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    native = {"api": "native", "route": inst, "method": "PUT"}
    assert sample("raftreg_http_requests_total", **native, status="200") == 2
    assert sample("raftreg_http_request_duration_seconds_count", **native) == 3
    assert sample("raftreg_acl_denials_total", api="native", code="permission_denied") == 1
    assert sample("raftreg_acl_denials_total", api="native", code="unauthenticated") == 1
    assert sample("raftreg_acl_denials_total", api="consul", code="permission_denied") == 1
    assert sample("raftreg_http_requests_total", api="consul", route="/v1/kv/{key}", method="GET", status="200") == 1
    assert sample("raftreg_http_requests_total", api="native", route="/v1/kv/{key}", method="GET", status="200") is None


async def test_metrics_off_means_no_route_and_no_middleware() -> None:
    node: Any = SimpleNamespace(acl=SimpleNamespace(enabled=False), metrics=None, acl_conflict=None,
                                config=SimpleNamespace(limits=LimitsTuning(), logging=LoggingSettings()))
    app = build_app(node, secret="s", debug_endpoints=False)
    assert not any(getattr(m, "__name__", "") == "count_requests" for m in app.middlewares)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/metrics")
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


def test_the_batch_histogram_is_cumulative_with_fixed_buckets() -> None:
    from raftreg.node.metrics import BATCH_BUCKETS, NodeCollector
    from raftreg.node.proposer import ProposerStats

    stats = ProposerStats(entries=4, commands=1 + 3 + 3 + 100)
    stats.batch_sizes.update({1: 1, 4: 2, 128: 1})  # entries of 1, 3, 3 and 100 commands
    metrics: Any = SimpleNamespace(proposer=SimpleNamespace(stats=stats))
    info = {"group_commit": {"entries": 4, "commands": 107, "retries": 0, "refused": 0, "expired": 0, "timed_out": 0,
                             "queued": 0}}
    families = {f.name: f for f in NodeCollector(metrics)._group_commit(info)}
    samples = {s.labels.get("le"): s.value for s in families["raftreg_group_commit_batch_commands"].samples
               if s.name.endswith("_bucket")}
    assert len(samples) == len(BATCH_BUCKETS) + 1
    assert (samples["1.0"], samples["2.0"], samples["4.0"], samples["64.0"], samples["128.0"], samples["+Inf"]) == (
        1, 1, 3, 3, 4, 4)
    total = {s.name: s.value for s in families["raftreg_group_commit_batch_commands"].samples}
    assert total["raftreg_group_commit_batch_commands_count"] == 4
    assert total["raftreg_group_commit_batch_commands_sum"] == 107
