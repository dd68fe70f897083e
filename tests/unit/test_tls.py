"""``[tls]`` config, the node's TLS contexts, certificate generation and the clients' TLS plan."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from raftreg.certgen import Issued, generate
from raftreg.client.tls import client_context, connect_plan
from raftreg.config import ConfigError, NodeConfig, TlsConfig, dump_config, load_config
from raftreg.tls import peer_context, server_context

NODES = [NodeConfig("n1", "127.0.0.1:7001", "127.0.0.1:8001"), NodeConfig("n2", "db2.example:7002", "db2:8002"),
         NodeConfig("n3", "10.1.2.3:7003", "10.1.2.3:8003")]
BASE = """name = "c"
[[nodes]]
name = "n1"
http = "127.0.0.1:7001"
raft = "127.0.0.1:8001"
"""


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return generate(NODES, tmp_path_factory.mktemp("tls") / "certs", cluster="c", days=30)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def tls_for(issued: Issued, **kw: object) -> TlsConfig:
    out = issued.ca_file.parent
    fields: dict[str, object] = {"cert_file": str(out / "{node}.pem"), "key_file": str(out / "{node}-key.pem"),
                                 "ca_file": str(issued.ca_file), **kw}
    return TlsConfig(**fields)  # type: ignore[arg-type]


# ---- config ---------------------------------------------------------------------------------
def test_config_reads_tls_and_dumps_it_back(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(BASE + '[tls]\ncert_file = "t/{node}.pem"\nkey_file = "t/{node}-key.pem"\nca_file = "t/ca.pem"\n'
                    "verify_clients = true\n")
    config = load_config(path)
    assert config.tls == TlsConfig("t/{node}.pem", "t/{node}-key.pem", "t/ca.pem", True)
    assert config.tls.node_files("n1") == ("t/n1.pem", "t/n1-key.pem")
    assert config.url("n1") == "https://127.0.0.1:7001" and config.scheme == "https"
    path.write_text(dump_config(config))
    assert load_config(path) == config
    path.write_text(BASE)
    assert load_config(path).tls is None and load_config(path).url("n1") == "http://127.0.0.1:7001"


@pytest.mark.parametrize(("section", "message"), [
    ('cert_file = "a"\nkey_file = "b"\nverify_clients = true', "tls.verify_clients needs tls.ca_file"),
    ('cert_file = "{node}.pem"\nkey_file = "k.pem"', "both contain {node}"),
    ('cert_file = "a"', "key_file"),
    ('cert_file = "a"\nkey_file = "b"\nverify = true', "verify"),
])
def test_config_errors_name_the_field(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(BASE + "[tls]\n" + section + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


# ---- the node's contexts --------------------------------------------------------------------
def test_server_and_peer_contexts(issued: Issued) -> None:
    one_way = server_context(tls_for(issued), "n1")
    assert one_way.minimum_version == ssl.TLSVersion.TLSv1_2 and one_way.verify_mode == ssl.CERT_NONE
    mutual = server_context(tls_for(issued, verify_clients=True), "n1")
    assert mutual.verify_mode == ssl.CERT_REQUIRED
    peer = peer_context(tls_for(issued), "n2")
    assert peer.minimum_version == ssl.TLSVersion.TLSv1_2
    assert peer.check_hostname and peer.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(("change", "field"), [
    ({"cert_file": "/nonexistent/{node}.pem", "key_file": "/nonexistent/{node}-key.pem"}, "tls.cert_file"),
    ({"ca_file": "/nonexistent/ca.pem", "verify_clients": True}, "tls.ca_file"),
])
def test_missing_files_are_config_errors_naming_the_field(issued: Issued, change: dict[str, object],
                                                          field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field} = .*No such file"):
        server_context(tls_for(issued, **change), "n1")


def test_a_key_that_does_not_match_or_a_non_pem_file_is_a_config_error(issued: Issued, tmp_path: Path) -> None:
    out = issued.ca_file.parent
    with pytest.raises(ConfigError, match=r"tls\.cert_file .* tls\.key_file .*not a matching"):
        server_context(TlsConfig(str(out / "n1.pem"), str(out / "n2-key.pem")), "n1")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"tls\.ca_file .*not a PEM certificate"):
        peer_context(tls_for(issued, ca_file=str(junk)), "n1")


# ---- generated certificates -----------------------------------------------------------------
def test_node_certificates_carry_their_hosts_and_are_signed_by_the_ca(issued: Issued) -> None:
    ca = load(issued.ca_file)
    sans = {}
    for name, (cert_path, _) in issued.node_files.items():
        cert = load(cert_path)
        cert.verify_directly_issued_by(ca)
        sans[name] = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans["n1"].get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("127.0.0.1")}
    assert sans["n1"].get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans["n2"].get_values_for_type(x509.DNSName) == ["db2.example"]
    assert not sans["n2"].get_values_for_type(x509.IPAddress)
    assert sans["n3"].get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert not sans["n3"].get_values_for_type(x509.DNSName)
    load(issued.client_cert).verify_directly_issued_by(ca)


def test_validity_and_key_usage(issued: Issued) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca, node, client = load(issued.ca_file), load(issued.node_files["n1"][0]), load(issued.client_cert)
    for cert in (ca, node, client):
        assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
        assert datetime.timedelta(days=29) < cert.not_valid_after_utc - now <= datetime.timedelta(days=30)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    for leaf in (node, client):
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and not usage.key_cert_sign
    node_eku = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(node_eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_keys_are_private_files(issued: Issued) -> None:
    out = issued.ca_file.parent
    for path in out.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.name.endswith("-key.pem") else 0o644), path.name
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_node_names_that_would_overwrite_the_ca_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="overwrite the ca"):
        generate([NodeConfig("ca", "127.0.0.1:1", "127.0.0.1:2")], tmp_path)


# ---- the clients' plan ----------------------------------------------------------------------
def test_client_plan(issued: Issued, tmp_path: Path) -> None:
    nodes, context = connect_plan(["127.0.0.1:7001"], None)
    assert nodes[0].scheme == "http" and context is None
    nodes, context = connect_plan(["127.0.0.1:7001", "http://127.0.0.1:7002"], None, ca_file=str(issued.ca_file))
    assert [n.scheme for n in nodes] == ["https", "http"] and context is not None
    assert context.check_hostname and context.minimum_version == ssl.TLSVersion.TLSv1_2
    path = tmp_path / "c.toml"
    path.write_text(BASE + f'[tls]\ncert_file = "x"\nkey_file = "y"\nca_file = "{issued.ca_file}"\n')
    nodes, context = connect_plan(None, path)
    assert nodes[0].url == "https://127.0.0.1:7001" and context is not None
    with pytest.raises(ValueError, match=r"^ca_file '/nonexistent': cannot read"):
        client_context("/nonexistent")
    with pytest.raises(ValueError, match="key_file needs cert_file"):
        client_context(key_file=str(issued.client_key))
