"""The node-to-node and debug endpoints accept only requests signed with the cluster secret
(one real node; debug endpoints are on in LocalCluster). A refused request answers 403
``permission_denied`` with the usual error body and changes nothing."""

from __future__ import annotations

import json

import pytest
from conftest import Http

from raftreg.signing import HEADER, Signer

TTL_BODY = {"address": "10.0.0.9", "port": 80, "ttl": "1h"}
FORWARD = "/v1/internal/heartbeats"
DIGEST = "/v1/internal/lease-digest"
BATCH = {"instances": [["sg", "a"]]}


def refused(api: Http, method: str, path: str, body: bytes | None, headers: dict[str, str] | None = None) -> None:
    resp = api.request(method, path, body, headers=headers)
    err = api.assert_error(resp, 403, "permission_denied", None)
    assert "secret" not in err["message"].lower() or "signed" in err["message"]


@pytest.mark.parametrize("path", [FORWARD, DIGEST, "/v1/debug/resync", "/v1/debug/snapshot", "/v1/debug/partition",
                                  "/v1/debug/wedge"])
def test_unsigned_requests_are_refused_and_change_nothing(api: Http, path: str) -> None:
    api.put_ok("sg", "a", TTL_BODY)
    with api.unchanged("/v1/services/sg"):
        refused(api, "POST", path, json.dumps(BATCH if "internal" in path else {"block": []}).encode())
        refused(api, "POST", path, None)
        refused(api, "POST", path, b"{}", {HEADER: "v1 t=1 n=2 s=n9 h=00"})
        refused(api, "POST", path, b"{}", {"User-Agent": "raftreg-node", "X-Raftreg-Node": "n1"})
    assert api.cluster()["state"] == "leader"  # not wiped, not wedged


def test_unsigned_digest_is_refused(api: Http) -> None:
    refused(api, "GET", "/v1/debug/digest", None)
    assert api.signed("GET", "/v1/debug/digest").status == 200


def test_a_wrong_secret_a_tampered_body_and_a_replay_are_refused(api: Http) -> None:
    api.put_ok("sg", "a", TTL_BODY)
    body = json.dumps(BATCH).encode()
    with api.unchanged("/v1/services/sg"):
        refused(api, "POST", FORWARD, body, Signer("not-the-secret", "n2").headers("POST", FORWARD, body))
        headers = Signer(api.secret or "", "n2").headers("POST", FORWARD, body)
        refused(api, "POST", FORWARD, json.dumps({"instances": [["sg", "zz"]]}).encode(), headers)
        # Another spelling of the path reaches no handler at all (no route), signed or not.
        api.assert_error(api.request("POST", FORWARD + "/", body, headers=headers), 404, "not_found")
        api.assert_error(api.request("POST", "/v1//internal/heartbeats", body, headers=headers), 404, "not_found")
        stale = Signer(api.secret or "", "n2", clock=lambda: 1_000.0).headers("POST", FORWARD, body)
        refused(api, "POST", FORWARD, body, stale)
    fresh = Signer(api.secret or "", "n2").headers("POST", FORWARD, body)
    assert api.request("POST", FORWARD, body, headers=fresh).status == 200
    refused(api, "POST", FORWARD, body, fresh)  # the same request again: a replay


def test_signed_requests_work(api: Http) -> None:
    api.put_ok("sg", "a", TTL_BODY)
    resp = api.signed("POST", FORWARD, BATCH)
    assert resp.status == 200, resp.body
    assert resp.json() == {"results": [{"ttl": 3600.0}]}
    resp = api.signed("POST", "/v1/debug/partition", {"block": []})
    assert resp.status == 200 and resp.json() == {"blocked": []}
    api.assert_error(api.signed("POST", "/v1/debug/partition", {"block": ["n7"]}), 400, "invalid_argument", "block")


def test_gossip_about_unknown_instances_is_not_remembered(api: Http) -> None:
    api.put_ok("sg", "a", TTL_BODY)
    api.put_ok("sg", "plain", {"address": "10.0.0.9", "port": 80})
    before = api.cluster()["leases"]["seen"]
    junk = [["sg", f"ghost-{i}"] for i in range(2000)] + [["sg", "plain"], ["nosuch", "x"]]
    resp = api.signed("POST", DIGEST, {"instances": [*junk, ["sg", "a"]]})
    assert resp.status == 200, resp.body
    after = api.cluster()["leases"]["seen"]
    assert after <= max(before, 1) + 1, (before, after)
