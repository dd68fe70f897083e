"""TLS for both clients: which nodes are HTTPS and the ``ssl.SSLContext`` to reach them with.

Contract of ``connect_plan``:
- TLS is on when ``ca_file``, ``cert_file`` or ``key_file`` is given, or ``config`` has a
  ``[tls]`` section; then bare ``host:port`` addresses (and the config's nodes) are ``https``.
- ``ca_file`` defaults to the config's ``tls.ca_file``; without either, the system's trust store.
- The context (built only when some node is ``https``) verifies the certificate and the
  hostname (node certificates carry the node's host in subjectAltName), refuses anything older
  than TLS 1.2, and presents ``cert_file`` (+ ``key_file``; the key may be in the cert file)
  for clusters with ``verify_clients``.
- ``ValueError`` names the option whose file is missing, unreadable or invalid.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from raftreg.client.nodes import Node, config_tls, resolve


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
    secure = config_has_tls or any(f is not None for f in (ca_file, cert_file, key_file))
    nodes = resolve(addrs, config, https=secure)
    if not any(n.scheme == "https" for n in nodes):
        return nodes, None
    return nodes, client_context(ca_file or config_ca, cert_file, key_file)
