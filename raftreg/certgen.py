"""Certificates for a TLS cluster, made with ``cryptography`` (``raftreg tls init``, ``raftreg dev
--tls``, ``LocalCluster(tls=True)``). Never imported by the client package.

Contract of ``generate``:
- one CA (``ca.pem``, ``ca-key.pem``): self-signed, ``BasicConstraints(ca=True, path_length=0)``,
  key usage keyCertSign + cRLSign;
- one certificate per node (``<node>.pem``, ``<node>-key.pem``) whose subjectAltName holds the
  host of the node's ``http`` address (an IP address entry for an IP, a DNS entry otherwise),
  plus ``localhost`` and ``127.0.0.1`` when that host is a loopback one; extended key usage
  serverAuth + clientAuth (a node is a client of the other nodes);
- one client certificate (``client.pem``, ``client-key.pem``), clientAuth only, no SAN;
- every key is ECDSA P-256; every certificate is valid from one hour ago (clock skew) for
  ``days`` days; key files are written mode 600, certificates 644; existing files are replaced.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raftreg.config import NodeConfig, split_hostport

DEFAULT_DAYS = 825  # the longest validity browsers and most tools accept for a leaf certificate
Key = ec.EllipticCurvePrivateKey


class Issued(NamedTuple):
    """Where ``generate`` wrote the files."""

    ca_file: Path
    node_files: dict[str, tuple[Path, Path]]  # node name -> (cert, key)
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "raftreg"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


def subject_alt_names(host: str) -> list[x509.GeneralName]:
    """The SAN entries for a node reached at ``host``: the host itself, and both loopback names
    when it is a loopback one (so ``localhost`` and ``127.0.0.1`` both verify)."""
    names: list[x509.GeneralName] = []
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        names.append(x509.DNSName(host))
        loopback = host == "localhost"
    else:
        names.append(x509.IPAddress(ip))
        loopback = ip.is_loopback
    if loopback:
        for extra in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
            if extra not in names:
                names.append(extra)
    return names


def _build(subject: str, key: Key, issuer: x509.Name, issuer_key: Key, days: int, *, ca: bool,
           eku: Iterable[x509.ObjectIdentifier], sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
               .add_extension(_usage(cert_sign=ca), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    eku = list(eku)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data``, created with ``mode`` (never readable by others meanwhile)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _save(out: Path, stem: str, cert: x509.Certificate, key: Key) -> tuple[Path, Path]:
    cert_path, key_path = out / f"{stem}.pem", out / f"{stem}-key.pem"
    _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def generate(nodes: Iterable[NodeConfig], out: Path, *, cluster: str = "raftreg", days: int = DEFAULT_DAYS) -> Issued:
    """Create a CA, one certificate per node and a client certificate under ``out`` (see the
    module docstring). ``out`` is created mode 700 if missing."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{cluster} CA")
    ca_cert = _build(f"{cluster} CA", ca_key, ca_name, ca_key, days, ca=True, eku=())
    ca_file, _ = _save(out, "ca", ca_cert, ca_key)
    node_files = {}
    for node in nodes:
        if node.name in ("ca", "client"):
            raise ValueError(f"a node named {node.name!r} would overwrite the {node.name} certificate")
        host, _port = split_hostport(node.http)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _build(node.name, key, ca_name, ca_key, days, ca=False, sans=subject_alt_names(host),
                      eku=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH))
        node_files[node.name] = _save(out, node.name, cert, key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _build(f"{cluster} client", client_key, ca_name, ca_key, days, ca=False,
                         eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    client = _save(out, "client", client_cert, client_key)
    return Issued(ca_file, node_files, *client)
