"""One 3-node cluster with everything on at once: TLS with client certificates, ACLs (default
``deny``, audit) and a per-client rate limit. Bootstrap, a scoped token that registers and reads
its service and is denied another, a client without a certificate refused, random bogus tokens
throttled as one client (they share their address's bucket), and the canary secrets in no node
log and no client-visible answer."""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from raftreg.client import ClientCertificateRequired, Registration, RegistryClient
from raftreg.client.tls import client_context
from raftreg.config import AclSettings, LimitsTuning, split_hostport
from raftreg.errors import PermissionDenied
from raftreg.testing import LocalCluster, http_json
from tests.conftest import START_TIMEOUT
from tests.secret_watch import remember_secret

pytestmark = pytest.mark.cluster

CANARY = "canary-7e3a-secure-cluster-never-log"
remember_secret(CANARY)
# Generous enough for LocalCluster's own polling (about 20 requests/s per node), small enough
# that a few hundred quick requests empty a bucket.
LIMITS = LimitsTuning(rate=50.0, burst=100)
INST = Registration(address="10.0.0.7", port=443)


@dataclass
class Secure:
    """The cluster, its bootstrap secret and every answer body a client saw (for the canary check)."""

    cluster: LocalCluster
    root: str = ""
    seen: list[bytes] = field(default_factory=list)

    def files(self) -> dict[str, str]:
        assert self.cluster.tls_files is not None
        tls = self.cluster.tls_files
        return {"ca_file": str(tls.ca_file), "cert_file": str(tls.client_cert), "key_file": str(tls.client_key)}

    def connect(self, node: str) -> http.client.HTTPSConnection:
        """A keep-alive HTTPS connection to ``node`` presenting the client certificate."""
        host, port = split_hostport(self.cluster.config.node(node).http)
        return http.client.HTTPSConnection(host, port, timeout=10.0, context=self.cluster.ssl_context)

    def call(self, conn: http.client.HTTPSConnection, method: str, path: str, token: str | None,
             body: Any = None) -> tuple[int, dict[str, str], Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        self.seen.append(raw)
        body = json.loads(raw) if raw else None
        if isinstance(body, dict) and "secret_id" in body:
            remember_secret(body["secret_id"])
        return resp.status, dict(resp.getheaders()), body

    def token(self, *rules: str) -> tuple[str, str]:
        """A new token with ``rules``: (accessor_id, secret_id)."""
        with_conn = self.connect("n1")
        try:
            status, _, body = self.call(with_conn, "PUT", "/v1/acl/tokens", self.root,
                                        {"description": "scoped", "rules": list(rules)})
        finally:
            with_conn.close()
        assert status == 200, body
        return body["accessor_id"], body["secret_id"]


@pytest.fixture(scope="module")
def secure() -> Iterator[Secure]:
    c = LocalCluster(3, name="secure", verify_clients=True, limits=LIMITS,
                     acl=AclSettings(enabled=True, default_policy="deny", audit=True))
    try:
        c.start(wait=START_TIMEOUT)
        out = Secure(c)
        conn = out.connect(c.followers()[0])  # through a follower: forwarded to the leader
        try:
            status, _, body = out.call(conn, "PUT", "/v1/acl/bootstrap", None, {})
        finally:
            conn.close()
        assert status == 200, body
        out.root = body["secret_id"]
        yield out
    finally:
        c.close()


def test_a_scoped_token_registers_and_reads_its_service_and_is_denied_another(secure: Secure) -> None:
    _, secret = secure.token('service "cart" write')
    with RegistryClient(secure.cluster.urls(), token=secret, **secure.files()) as client:
        stored = client.register("cart", "c1", INST)
        assert [i.id for i in client.instances("cart", min_index=stored.index).items] == ["c1"]
        with pytest.raises(PermissionDenied) as denied:
            client.register("billing", "b1", INST)
        assert secret not in str(denied.value)


def test_a_client_without_a_certificate_is_refused(secure: Secure) -> None:
    url = secure.cluster.url("n1") + "/v1/health"
    ca_only = secure.files()["ca_file"]
    assert http_json(url, context=client_context(ca_only))[0] == 0
    assert http_json(url, context=secure.cluster.ssl_context)[0] == 200
    with RegistryClient(secure.cluster.urls(), ca_file=ca_only, token=secure.root) as client, \
            pytest.raises(ClientCertificateRequired) as refused:
        client.services()
    assert secure.root not in str(refused.value)


def test_random_bogus_tokens_share_one_bucket_and_a_real_token_keeps_its_own(secure: Secure) -> None:
    """Before tokens were validated, each invented token got a fresh bucket: no 429 at all."""
    accessor, secret = secure.token('service "cart" read')
    conn = secure.connect("n2")
    try:
        statuses = []
        for _ in range(3 * LIMITS.burst):
            status, headers, _ = secure.call(conn, "GET", "/v1/services", secrets.token_hex(16))
            statuses.append(status)
            if status == 429:
                assert int(headers["Retry-After"]) >= 1
        assert set(statuses) <= {401, 429}
        assert statuses.count(429) >= LIMITS.burst, statuses.count(429)
        # the validated token is its own client: served while its address's bucket is empty
        status, _, body = secure.call(conn, "GET", "/v1/services/cart", secret)
        assert status == 200, body
        # a flood with one valid token is limited too, by its accessor
        throttled = sum(secure.call(conn, "GET", "/v1/services/cart", secret)[0] == 429
                        for _ in range(3 * LIMITS.burst))
        assert throttled >= LIMITS.burst
    finally:
        conn.close()
    assert accessor


def test_no_secret_in_any_log_or_answer(secure: Secure) -> None:
    """Last: the canary sent as a token, a query parameter and a header, then every node's log
    and every answer seen in this module is scanned for it and for every real secret."""
    conn = secure.connect("n3")
    try:
        secure.call(conn, "GET", "/v1/services", CANARY)
        secure.call(conn, "PUT", "/v1/services/x/instances/i", CANARY, {"address": "10.0.0.1", "port": 80})
        secure.call(conn, "GET", f"/v1/services?token={CANARY}", None)
    finally:
        conn.close()
    _, scoped = secure.token('service "web" read')
    leaked = [(where, s) for s in (CANARY, secure.root, scoped)
              for where, text in [(n, secure.cluster.log_text(n)) for n in secure.cluster.names]
              if s in text]
    assert leaked == []
    # the only answers that may carry a secret are the ones that minted it (bootstrap, token create)
    minted = [raw for raw in secure.seen if b'"secret_id"' in raw]
    assert not [raw for raw in secure.seen if raw not in minted and CANARY.encode() in raw]
    assert not [raw for raw in secure.seen if raw not in minted and secure.root.encode() in raw]
    assert "event=audit" in secure.cluster.log_text(secure.cluster.leader())
