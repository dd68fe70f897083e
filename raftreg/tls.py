"""TLS contexts of a node, built from the cluster config's ``[tls]`` (``raftreg.config.TlsConfig``).

Contract:
- ``server_context``: TLS >= 1.2, the node's certificate and key; with ``verify_clients`` a
  client certificate signed by ``ca_file`` is required (``CERT_REQUIRED``: a handshake without
  one fails), otherwise none is asked for.
- ``peer_context``: what a node uses to call another node: TLS >= 1.2, the peer verified against
  ``ca_file`` (else the system's trust store) with hostname checking on, and the node's own
  certificate presented (so ``verify_clients`` clusters accept their own nodes).
- Both raise ``ConfigError`` naming the ``tls.*`` field whose file is missing, unreadable or not
  a valid certificate/key, or when the key does not match the certificate.
"""

from __future__ import annotations

import ssl

from raftreg.config import ConfigError, TlsConfig


def _readable(field: str, path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise ConfigError(f"{field} = {path!r}: cannot read it: {exc.strerror}") from None
    return path


def _load_chain(context: ssl.SSLContext, tls: TlsConfig, node: str) -> None:
    cert, key = tls.node_files(node)
    _readable("tls.cert_file", cert)
    _readable("tls.key_file", key)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ConfigError(f"tls.cert_file = {cert!r} / tls.key_file = {key!r}: not a matching PEM certificate "
                          f"and key ({exc.reason or exc})") from None


def _load_ca(context: ssl.SSLContext, tls: TlsConfig) -> None:
    if tls.ca_file is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH if context.check_hostname else ssl.Purpose.CLIENT_AUTH)
        return
    _readable("tls.ca_file", tls.ca_file)
    try:
        context.load_verify_locations(cafile=tls.ca_file)
    except ssl.SSLError as exc:
        raise ConfigError(f"tls.ca_file = {tls.ca_file!r}: not a PEM certificate ({exc.reason or exc})") from None


def server_context(tls: TlsConfig, node: str) -> ssl.SSLContext:
    """The context node ``node`` serves its HTTP API with (see the module docstring)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, tls, node)
    if tls.verify_clients:
        context.verify_mode = ssl.CERT_REQUIRED
        _load_ca(context, tls)
    return context


def peer_context(tls: TlsConfig, node: str) -> ssl.SSLContext:
    """The context node ``node`` calls the other nodes with (see the module docstring)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_ca(context, tls)
    _load_chain(context, tls, node)
    return context
