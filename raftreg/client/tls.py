"""TLS for both clients: which nodes are HTTPS and the ``ssl.SSLContext`` to reach them with.

Contract of ``connect_plan``:
- TLS is on when ``ca_file``, ``cert_file`` or ``key_file`` is given, or ``config`` has a
  ``[tls]`` section; then bare ``host:port`` addresses (and the config's nodes) are ``https``.
- ``ca_file`` defaults to the config's ``tls.ca_file``; without either, the system's trust store.
- The context (built only when some node is ``https``) verifies the certificate and the
  hostname (node certificates carry the node's host in subjectAltName), refuses anything older
  than TLS 1.2, and presents ``cert_file`` (+ ``key_file``; the key may be in the cert file)
  for clusters with ``verify_clients``.
- ``ValueError`` names the option whose file is missing, unreadable or invalid, and says so when
  ``config`` has ``tls.verify_clients = true`` but no ``cert_file`` is given (checked before any
  connection).

Without a client certificate, a node with ``verify_clients`` does not say why it refuses: under
TLS 1.3 the handshake completes on the client's side and the node then closes the connection
without a byte; under TLS 1.2 it closes during the handshake. Either looks like a node lost
mid-request, which clients retry until their deadline. So a client without a certificate that
meets such a close on a fresh connection asks ``refuses_without_certificate``: a fresh
connection with a ``GET /v1/health`` that the node also closes unanswered (a live node answers
health to anyone it lets in) means it wants a certificate, and the call fails at once with
``ClientCertificateRequired`` naming the missing option.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

from raftreg.client.nodes import Node, config_tls, config_verifies_clients, resolve
from raftreg.errors import Unauthenticated

_MISSING = ("give the client cert_file and key_file (--cert-file/--key-file, $RAFTREG_CERT_FILE/"
            "$RAFTREG_KEY_FILE; `raftreg tls init` issues one)")


class ClientCertificateRequired(Unauthenticated):
    """The node requires a client certificate (``tls.verify_clients``) and this client presents
    none. Raised at once, never retried: every node of the cluster would refuse the same way."""


def certificate_required(url: str) -> ClientCertificateRequired:
    return ClientCertificateRequired(f"{url} closes TLS connections that present no client certificate "
                                     f"(its cluster has tls.verify_clients = true): {_MISSING}")


def refuses_without_certificate(node: Node, context: ssl.SSLContext, timeout: float) -> bool:
    """Whether ``node`` closes a fresh TLS connection of ``context`` (which has no client
    certificate) without answering ``GET /v1/health`` (see the module docstring)."""
    request = f"GET /v1/health HTTP/1.1\r\nHost: {node.host}\r\nConnection: close\r\n\r\n".encode()
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout) as raw:
            try:
                tls = context.wrap_socket(raw, server_hostname=node.host)
            except ssl.SSLEOFError:
                return True  # TLS 1.2: closed during the handshake
            with tls:
                tls.sendall(request)
                return tls.recv(1) == b""
    except (ssl.SSLEOFError, ConnectionResetError):
        return True
    except OSError:
        return False


def client_context(ca_file: str | None = None, cert_file: str | None = None,
                   key_file: str | None = None) -> ssl.SSLContext:
    """A verifying TLS >= 1.2 client context (see the module docstring)."""
    if key_file is not None and cert_file is None:
        raise ValueError("key_file needs cert_file")
    context = ssl.create_default_context(cafile=None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"ca_file {ca_file!r}: {_reason(exc)}") from None
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cert_file {cert_file!r} / key_file {key_file!r}: {_reason(exc)}") from None
    return context


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"not a valid PEM certificate or key ({exc.reason or exc})"
    return f"cannot read it ({exc.strerror or exc})"


def connect_plan(addrs: Sequence[str] | str | None, config: str | Path | None, ca_file: str | None = None,
                 cert_file: str | None = None,
                 key_file: str | None = None) -> tuple[tuple[Node, ...], ssl.SSLContext | None]:
    """The nodes to talk to and the TLS context for the ``https`` ones (None when none is)."""
    config_has_tls, config_ca = config_tls(config) if config is not None else (False, None)
    if cert_file is None and config is not None and config_verifies_clients(config):
        raise ValueError(f"cluster config {str(config)!r} has tls.verify_clients = true, so every client needs a "
                         f"certificate: {_MISSING}")
    secure = config_has_tls or any(f is not None for f in (ca_file, cert_file, key_file))
    nodes = resolve(addrs, config, https=secure)
    if not any(n.scheme == "https" for n in nodes):
        return nodes, None
    return nodes, client_context(ca_file or config_ca, cert_file, key_file)

