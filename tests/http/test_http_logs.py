"""Logs of a real node (``raftreg serve --log-format json``, ACLs on under ``default_policy =
"deny"``, ``[logging] requests = true``): one JSON object per line, one request line per request
naming the route template (the native API and the Consul-compatible one, which takes ``?token=``),
and no token secret anywhere, the redaction marker standing in for it.
Its ``/metrics`` stays open without a token and counts the denials."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from raftreg.config import AclSettings, LoggingSettings
from raftreg.logs import REDACTED
from raftreg.testing import LocalCluster, http_json, wait_for
from tests.conftest import START_TIMEOUT
from tests.secret_watch import remember_secret

HEADER_CANARY = "hdr-canary-5b9e1f0c7d2a"
QUERY_CANARY = "qry-canary-3e7a9c1b4f6d"


@pytest.fixture(scope="module")
def node() -> Iterator[LocalCluster]:
    remember_secret(HEADER_CANARY, QUERY_CANARY)
    c = LocalCluster(1, name="logs", acl=AclSettings(enabled=True, audit=True),
                     logging=LoggingSettings(requests=True), log_format="json", consul=True)
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


def _json_lines(cluster: LocalCluster) -> list[dict[str, Any]]:
    text = cluster.log_files()[0].read_text()
    return [json.loads(line) for line in text.splitlines() if line and not line.startswith("==== start")]


def test_tokens_never_reach_the_log(node: LocalCluster) -> None:
    url = node.url("n1")
    code, root = http_json(url + "/v1/acl/bootstrap", method="PUT", body={})
    assert code == 200
    secret = root["secret_id"]
    remember_secret(secret)
    assert http_json(url + "/v1/services", headers={"Authorization": f"Bearer {secret}"})[0] == 200
    assert http_json(url + "/v1/services", headers={"X-Raftreg-Token": secret})[0] == 200
    assert http_json(url + "/v1/services", headers={"X-Raftreg-Token": HEADER_CANARY})[0] == 401
    assert http_json(url + "/v1/services", headers={"Authorization": f"Bearer {HEADER_CANARY}"})[0] == 401
    code, _ = http_json(f"{url}/v1/services?index=1&token={QUERY_CANARY}")
    assert code == 400  # refused: tokens go in headers only
    code, _ = http_json(f"{url}/v1/services/web?token={secret}", headers={"X-Raftreg-Token": secret})
    assert code == 400
    consul = node.consul_url("n1")  # the Consul API takes ?token= (Consul's clients send it there)
    assert http_json(f"{consul}/v1/catalog/services?token={secret}")[0] == 200
    assert http_json(f"{consul}/v1/catalog/services?stale&token={QUERY_CANARY}")[0] == 403
    assert http_json(f"{consul}/v1/catalog/services", headers={"X-Consul-Token": HEADER_CANARY})[0] == 403

    def logged() -> list[dict[str, Any]] | None:
        lines = [line for line in _json_lines(node) if line.get("event") == "request"]
        native = sum(1 for line in lines if line["route"].startswith("/v1/services"))
        consul = sum(1 for line in lines if line["api"] == "consul")
        return lines if native >= 6 and consul >= 3 else None

    requests = wait_for(logged, 10, "the request lines")
    text = node.log_files()[0].read_text()
    for leaked in (secret, HEADER_CANARY, QUERY_CANARY):
        assert leaked not in text
    assert REDACTED in text
    refused = [line for line in requests if line["status"] == 400]
    assert {line["route"] for line in refused} == {"/v1/services", "/v1/services/{service}"}
    assert all(line["query"].count(f"token={REDACTED}") == 1 for line in refused)
    assert any(line["query"] == f"index=1&token={REDACTED}" for line in refused)
    first = requests[0]
    assert {"time", "level", "logger", "event", "method", "route", "status", "duration_ms", "client"} <= set(first)
    assert first["logger"] == "raftreg.request" and first["client"] == "127.0.0.1"
    assert [line["status"] for line in requests if line["route"] == "/v1/services"].count(401) == 2
    by_consul = [line for line in requests if line["api"] == "consul"]
    assert [line.get("query") for line in by_consul] == [f"token={REDACTED}", f"stale&token={REDACTED}", None]
    assert [line["status"] for line in by_consul] == [200, 403, 403]
    assert {line["route"] for line in by_consul} == {"/v1/catalog/services"}


def test_every_line_is_json(node: LocalCluster) -> None:
    lines = _json_lines(node)
    assert lines, "the node logged nothing"
    for line in lines:
        assert {"time", "level", "logger", "event"} <= set(line), line
    assert any(line["event"] == "serving" and line["logger"] == "raftreg.server" for line in lines)


def test_metrics_are_open_and_count_denials(node: LocalCluster) -> None:
    """Runs after the token test, refused twice with 401 (native) and twice with 403 (Consul)."""
    with urllib.request.urlopen(node.url("n1") + "/metrics", timeout=5) as resp:  # no token
        assert resp.status == 200
        text = resp.read().decode()
    samples = {(s.name, s.labels.get("api"), s.labels.get("code")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("raftreg_acl_denials_total", "native", "unauthenticated")] >= 2
    assert samples[("raftreg_acl_denials_total", "consul", "permission_denied")] >= 2
    assert http_json(node.url("n1") + "/v1/services")[0] == 401  # while the API itself is closed
