"""ACLs over HTTP on one real node (``[acl] enabled``, default policy ``deny``, audit on):
bootstrap once, 401/403, rules on services, keys and sessions, filtered lists, path variants,
spoofed headers, tokens never in URLs, and no secret ever in the node's log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from raftreg.client import AsyncRegistryClient, RegistryClient
from raftreg.config import AclSettings
from raftreg.errors import PermissionDenied, Unauthenticated
from raftreg.testing import LocalCluster
from tests.conftest import START_TIMEOUT
from tests.http.conftest import Http, Resp
from tests.secret_watch import remember_secret

CANARY = "canary-4b1d-never-log-me"
remember_secret(CANARY)
INST = {"address": "10.0.0.1", "port": 80}


@pytest.fixture(scope="module")
def acl_cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(1, acl=AclSettings(enabled=True, default_policy="deny", audit=True))
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


class TokenHttp(Http):
    """``Http`` sending ``token`` (when set) as a bearer token."""

    token: str | None = None

    def as_token(self, token: str | None) -> TokenHttp:
        other = TokenHttp(self.base_url, self.secret)
        other.token = token
        return other

    def request(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> Resp:
        if self.token is not None:
            kw["headers"] = {"Authorization": f"Bearer {self.token}", **(kw.get("headers") or {})}
        return super().request(method, path, body, **kw)


@pytest.fixture(scope="module")
def anon(acl_cluster: LocalCluster) -> TokenHttp:
    return TokenHttp(acl_cluster.url("n1"), acl_cluster.secret)


@pytest.fixture(scope="module")
def root(anon: TokenHttp) -> TokenHttp:
    resp = anon.put("/v1/acl/bootstrap", {})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["accessor_id"] and body["secret_id"] and "acl write" in body["rules"]
    return anon.as_token(body["secret_id"])


def make_token(root: TokenHttp, *rules: str, policies: list[str] | None = None) -> tuple[TokenHttp, str]:
    resp = root.put("/v1/acl/tokens", {"description": "t", "rules": list(rules), "policies": policies or []})
    assert resp.status == 200, resp.body
    body = resp.json()
    return root.as_token(body["secret_id"]), body["accessor_id"]


def test_bootstrap_once_then_403(root: TokenHttp, anon: TokenHttp) -> None:
    Http.assert_error(anon.put("/v1/acl/bootstrap", {}), 403, "permission_denied")
    self_resp = root.get("/v1/acl/token/self")
    assert self_resp.status == 200 and "secret_id" not in self_resp.json()
    assert "secret_sha256" not in self_resp.body.decode()


def test_open_routes_missing_and_unknown_tokens(root: TokenHttp, anon: TokenHttp) -> None:
    assert anon.get("/v1/health").status == 200 and anon.get("/v1/ready").status == 200
    Http.assert_error(anon.get("/v1/services"), 401, "unauthenticated")
    unknown = anon.as_token(CANARY).get("/v1/services")
    Http.assert_error(unknown, 401, "unauthenticated")
    assert CANARY.encode() not in unknown.body
    Http.assert_error(anon.request("GET", "/v1/services", headers={"X-Raftreg-Token": CANARY}), 401,
                      "unauthenticated")
    # a token in the URL is refused even when valid
    Http.assert_error(anon.get(f"/v1/services?token={root.token}"), 400, "invalid_argument", "token")
    assert root.get("/v1/cluster").status == 200
    Http.assert_error(anon.get("/v1/cluster"), 401, "unauthenticated")


def test_spoofed_headers_grant_nothing(anon: TokenHttp) -> None:
    spoof = {"User-Agent": "Nacos-Server", "X-Forwarded-For": "127.0.0.1", "X-Raftreg-Node": "n1",
             "X-Real-IP": "127.0.0.1", "serverIdentity": "security"}
    Http.assert_error(anon.request("GET", "/v1/services", headers=spoof), 401, "unauthenticated")
    Http.assert_error(anon.request("PUT", "/v1/services/x/instances/i", headers=spoof, json_body=INST), 401,
                      "unauthenticated")
    bad_sig = {"X-Raftreg-Signature": "v1 t=1 n=x s=n1 h=00"}
    Http.assert_error(anon.request("GET", "/v1/cluster", headers=bad_sig), 401, "unauthenticated")


def test_service_rules_and_filtered_lists(root: TokenHttp) -> None:
    assert root.put("/v1/services/cart-api/instances/i1", INST).status == 200
    assert root.put("/v1/services/web/instances/i1", INST).status == 200
    cart, _ = make_token(root, 'service_prefix "cart" write')
    assert cart.put("/v1/services/cart-db/instances/i1", INST).status == 200
    err = Http.assert_error(cart.put("/v1/services/web/instances/i2", INST), 403, "permission_denied")
    assert "service:write on 'web'" in err["message"] and cart.token not in err["message"]
    Http.assert_error(cart.get("/v1/services/web"), 403, "permission_denied")
    Http.assert_error(cart.get("/v1/cluster"), 403, "permission_denied")
    Http.assert_error(cart.get("/v1/acl/tokens"), 403, "permission_denied")
    listed = cart.get("/v1/services")
    assert listed.status == 200 and listed.header("X-Raftreg-Results-Filtered-By-ACLs") == "true"
    assert {s["name"] for s in listed.json()["services"]} == {"cart-api", "cart-db"}
    full = root.get("/v1/services")
    assert full.header("X-Raftreg-Results-Filtered-By-ACLs") is None
    assert {"web", "cart-api"} <= {s["name"] for s in full.json()["services"]}


def test_key_rules_policies_txn_and_recursive_delete(root: TokenHttp) -> None:
    pol = root.put("/v1/acl/policies", {"name": "app-rw", "rules": ['key_prefix "app/" write', 'key "app/ro" read']})
    assert pol.status == 200, pol.body
    tok, _ = make_token(root, policies=["app-rw"])
    assert root.request("PUT", "/v1/kv/app/ro", b"x", content_type=None).status == 200
    assert root.request("PUT", "/v1/kv/other", b"x", content_type=None).status == 200
    assert tok.request("PUT", "/v1/kv/app/a", b"1", content_type=None).status == 200
    Http.assert_error(tok.request("PUT", "/v1/kv/app/ro", b"1", content_type=None), 403, "permission_denied")
    Http.assert_error(tok.get("/v1/kv/other"), 403, "permission_denied")
    for flags in ("recurse=false", "keys=0", "recurse=no&raw", "raw"):  # a list flag that is off lists nothing
        Http.assert_error(tok.get(f"/v1/kv/other?{flags}"), 403, "permission_denied")
    Http.assert_error(tok.get("/v1/kv/other?recurse=maybe"), 400, "invalid_argument")
    keys = tok.get("/v1/kv/?keys")
    assert keys.status == 200 and keys.json()["keys"] == ["app/a", "app/ro"]
    assert keys.header("X-Raftreg-Results-Filtered-By-ACLs") == "true"
    txn = [{"op": "set", "key": "app/b", "value": "eA=="}, {"op": "set", "key": "other", "value": "eA=="}]
    Http.assert_error(tok.put("/v1/txn", {"ops": txn}), 403, "permission_denied")
    assert root.get("/v1/kv/app/b").status == 404  # nothing of the refused transaction applied
    Http.assert_error(tok.delete("/v1/kv/app/?recurse"), 403, "permission_denied")
    assert root.get("/v1/kv/app/ro").status == 200


@pytest.mark.parametrize("path", [
    "/v1/services/web/instances/i9", "/v1/services/web/instances/i9/", "//v1/services/web/instances/i9",
    "/v1/services/web%2Finstances/i9", "/V1/services/web/instances/i9", "/v1/services/WEB/instances/i9",
    "/v1/services/web/./instances/i9", "/v1/services/cart/../web/instances/i9", "/v1/services/w%65b/instances/i9",
])
def test_path_variants_never_get_past_the_decision(root: TokenHttp, path: str) -> None:
    """A token with rights on ``cart*`` only: no spelling of a path to ``web`` writes to it."""
    cart, _ = make_token(root, 'service_prefix "cart" write')
    resp = cart.put(path, INST)
    assert resp.status in (400, 403, 404, 405), (path, resp.status, resp.body)
    assert root.get("/v1/services/web/instances/i9").status == 404
    assert cart.put("/v1/services/cart/instances/i9", INST).status == 200  # the token itself works


def test_kv_path_variants_get_the_same_decision(root: TokenHttp) -> None:
    tok, _ = make_token(root, 'key_prefix "pub/" write')
    for path in ("/v1/kv/priv/x", "/v1/kv/pub/../priv/x", "/v1/kv/pub%2F..%2Fpriv/x", "//v1/kv/priv/x",
                 "/v1/kv/priv%2Fx", "/v1/kv//priv/x"):
        resp = tok.request("PUT", path, b"v", content_type=None)
        assert resp.status in (400, 403, 404), (path, resp.status, resp.body)
    assert root.get("/v1/kv/priv/x").status == 404


def test_token_update_and_delete_take_effect(root: TokenHttp) -> None:
    tok, accessor = make_token(root, 'service "svc-u" read')
    Http.assert_error(tok.put("/v1/services/svc-u/instances/i1", INST), 403, "permission_denied")
    upd = root.put(f"/v1/acl/tokens/{accessor}", {"rules": ['service "svc-u" write']})
    assert upd.status == 200 and "secret_id" not in upd.json()
    assert tok.put("/v1/services/svc-u/instances/i1", INST).status == 200
    assert root.delete(f"/v1/acl/tokens/{accessor}").status == 200
    Http.assert_error(tok.put("/v1/services/svc-u/instances/i1", INST), 401, "unauthenticated")
    listed = root.get("/v1/acl/tokens").json()["tokens"]
    assert accessor not in {t["accessor_id"] for t in listed}
    assert all("secret_id" not in t for t in listed)


def test_sessions_are_checked_by_name(root: TokenHttp) -> None:
    tok, _ = make_token(root, 'session_prefix "worker" write')
    assert tok.put("/v1/sessions", {"name": "worker-1", "ttl": 30}).status == 200
    Http.assert_error(tok.put("/v1/sessions", {"name": "other", "ttl": 30}), 403, "permission_denied")
    other = root.put("/v1/sessions", {"name": "other", "ttl": 30}).json()["id"]
    Http.assert_error(tok.delete(f"/v1/sessions/{other}"), 403, "permission_denied")
    names = {s["name"] for s in tok.get("/v1/sessions").json()["sessions"]}
    assert names == {"worker-1"}


def test_a_lock_needs_session_write_too(root: TokenHttp) -> None:
    session = root.put("/v1/sessions", {"ttl": "60s", "name": "locker"})
    assert session.status == 200, session.body
    sid = session.json()["id"]
    keys_only, _ = make_token(root, 'key_prefix "locks/" write')
    for lock in ("acquire", "release"):
        with root.unchanged("/v1/kv/locks/a"):
            resp = keys_only.request("PUT", f"/v1/kv/locks/a?{lock}={sid}", b"me", content_type=None)
        err = Http.assert_error(resp, 403, "permission_denied")
        assert "session:write on 'locker'" in err["message"], err
    both, _ = make_token(root, 'key_prefix "locks/" write', 'session_prefix "lock" write')
    assert both.request("PUT", f"/v1/kv/locks/a?acquire={sid}", b"me", content_type=None).status == 200
    assert both.request("PUT", f"/v1/kv/locks/a?release={sid}", b"me", content_type=None).status == 200
    assert keys_only.request("PUT", "/v1/kv/locks/a", b"plain", content_type=None).status == 200
    assert root.delete(f"/v1/sessions/{sid}").status == 200


async def test_both_clients_send_their_token(root: TokenHttp, acl_cluster: LocalCluster) -> None:
    tok, _ = make_token(root, 'service_prefix "cli" write')
    addr = acl_cluster.url("n1")
    with RegistryClient(addr, token=tok.token) as client:
        assert client.register("cli-sync", "i1", INST).index > 0
        assert {s.name for s in client.services().items} <= {"cli-sync", "cli-async"}
        with pytest.raises(PermissionDenied):
            client.register("web", "i5", INST)
    async with AsyncRegistryClient(addr, token=tok.token) as aclient:
        assert (await aclient.register("cli-async", "i1", INST)).index > 0
    with RegistryClient(addr) as anonymous, pytest.raises(Unauthenticated):
        anonymous.services()


def test_no_secret_in_the_log_and_audit_lines_name_accessors(acl_cluster: LocalCluster, root: TokenHttp) -> None:
    """Last in the module: every secret used above (bootstrap, created tokens, the canary) must be
    absent from the node's log, while the audit lines are there."""
    root.get(f"/v1/services?token={CANARY}")
    root.as_token(CANARY).put("/v1/services/x/instances/i", INST)
    assert root.token is not None
    text = acl_cluster.log_text("n1")
    assert "event=audit" in text and "outcome=ok" in text and "outcome=denied:" in text
    me = root.get("/v1/acl/token/self").json()["accessor_id"]
    assert f"event=audit accessor={me} method=PUT route=/v1/services/{{service}}/instances/{{id}} outcome=ok" in text
    assert CANARY not in text and root.token not in text
