"""Real TLS clusters (``LocalCluster(tls=True)``): HTTPS only, node-to-node calls over TLS, both
clients with the cluster's CA, and ``verify_clients`` refusing a client without a certificate."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from raftreg.client import AsyncRegistryClient, ClientCertificateRequired, Registration, RegistryClient, Unavailable
from raftreg.client.tls import client_context
from raftreg.config import split_hostport
from raftreg.testing import LocalCluster, http_json

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def mutual() -> Iterator[LocalCluster]:
    """Three nodes with ``verify_clients = true``: every client needs a certificate from the CA."""
    with LocalCluster(3, name="tlsm", verify_clients=True) as cluster:
        yield cluster


def files(cluster: LocalCluster) -> dict[str, str]:
    assert cluster.tls_files is not None
    return {"ca_file": str(cluster.tls_files.ca_file), "cert_file": str(cluster.tls_files.client_cert),
            "key_file": str(cluster.tls_files.client_key)}


def test_follower_takes_writes_and_forwards_heartbeats_over_tls(mutual: LocalCluster) -> None:
    """A registration and a heartbeat through a follower: the heartbeat reaches the leader only
    through the follower's node-to-node HTTPS call (PeerClient presenting its node certificate)."""
    follower = mutual.followers()[0]
    with RegistryClient([mutual.url(follower)], **files(mutual)) as client:
        stored = client.register("cart", "c1", Registration(address="10.0.0.1", port=80, ttl=30.0))
        assert stored.index > 0
        lease = client.heartbeat("cart", "c1")
        assert lease.ttl == 30.0
    leader = mutual.leader()
    code, body = http_json(f"{mutual.url(leader)}/v1/services/cart?min_index={stored.index}",
                           context=mutual.ssl_context)
    assert code == 200 and [i["id"] for i in body["instances"]] == ["c1"]


def test_plain_http_is_refused(mutual: LocalCluster) -> None:
    host, port = split_hostport(mutual.config.node("n1").http)
    code, _ = http_json(f"http://{host}:{port}/v1/cluster", timeout=2.0)
    assert code == 0  # the TLS server answers no HTTP
    with socket.create_connection((host, port), timeout=2.0) as sock:
        sock.sendall(b"GET /v1/cluster HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            reply = sock.recv(1024)
        except ConnectionResetError:  # closed with our request unread
            reply = b""
        assert not reply.startswith(b"HTTP/")


def answer(cluster: LocalCluster, tls_version: ssl.TLSVersion, *, certificate: bool = False) -> bytes:
    """What n1 answers a client that trusts its CA and presents the client certificate or none
    (b"" = nothing); raises ``ssl.SSLError`` when the handshake itself is refused."""
    host, port = split_hostport(cluster.config.node("n1").http)
    given = files(cluster)
    context = client_context(given["ca_file"], *((given["cert_file"], given["key_file"]) if certificate else ()))
    context.minimum_version = context.maximum_version = tls_version
    with socket.create_connection((host, port), timeout=5.0) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(b"GET /v1/cluster HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            return tls.recv(1024)
        except (ssl.SSLError, ConnectionResetError):
            return b""


def test_client_without_certificate_is_refused(mutual: LocalCluster) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert answer(mutual, version, certificate=True).startswith(b"HTTP/1.1 200")
    with pytest.raises(ssl.SSLError):
        answer(mutual, ssl.TLSVersion.TLSv1_2)  # the handshake fails
    # TLS 1.3: the client finishes its half of the handshake before the server checks the
    # certificate; the server then closes without a word.
    assert answer(mutual, ssl.TLSVersion.TLSv1_3) == b""


def test_clients_without_a_certificate_fail_fast_naming_it(mutual: LocalCluster) -> None:
    """Not at their deadline after retrying every node: at the first refusal, with an error that
    names the missing option (raftreg.client.tls)."""
    start = time.monotonic()
    with RegistryClient(mutual.urls(), ca_file=files(mutual)["ca_file"], deadline=30.0) as client, \
            pytest.raises(ClientCertificateRequired, match="cert_file") as refused:
        client.services()
    assert "verify_clients" in str(refused.value)
    with RegistryClient(mutual.urls(), ca_file=files(mutual)["ca_file"], deadline=30.0) as client, \
            pytest.raises(ClientCertificateRequired):
        client.register("cart", "c9", Registration(address="10.0.0.9", port=80))

    async def run() -> None:
        async with AsyncRegistryClient(mutual.urls(), ca_file=files(mutual)["ca_file"], deadline=30.0) as client:
            await client.services()

    with pytest.raises(ClientCertificateRequired, match="cert_file"):
        asyncio.run(run())
    assert time.monotonic() - start < 10.0
    # with the cluster config, before any connection
    with pytest.raises(ValueError, match=r"verify_clients.*cert_file"):
        RegistryClient(config=mutual.config_path)


def test_async_client_with_ca_and_certificate(mutual: LocalCluster) -> None:
    async def run() -> list[str]:
        async with AsyncRegistryClient(config=mutual.config_path, cert_file=files(mutual)["cert_file"],
                                       key_file=files(mutual)["key_file"]) as client:
            assert all(url.startswith("https://") for url in client.nodes)
            stored = await client.register("web", "w1", Registration(address="10.0.0.2", port=81))
            found = await client.instances("web", min_index=stored.index)
            return [i.id for i in found.items]

    assert asyncio.run(run()) == ["w1"]


def test_one_way_tls_clients_need_only_the_ca() -> None:
    """Without ``verify_clients``, a config with ``[tls]`` is all a client needs (https and the
    CA are taken from it); a client trusting another CA is refused by its own verification."""
    with LocalCluster(1, name="tls1", tls=True) as cluster:
        with RegistryClient(config=cluster.config_path) as client:
            assert client.nodes[0].startswith("https://")
            assert client.register("db", "d1", Registration(address="10.0.0.3", port=5432)).index > 0

        async def run() -> int:
            async with AsyncRegistryClient(cluster.urls(), ca_file=files(cluster)["ca_file"]) as client:
                return len((await client.instances("db")).items)

        assert asyncio.run(run()) == 1
        with RegistryClient(cluster.urls(), deadline=1.0) as client, pytest.raises(Unavailable):
            client.services()  # the system trust store does not know the cluster's CA
