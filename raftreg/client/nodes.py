"""Where the nodes are: addresses given by the caller and the nodes of a cluster config file.

A node address is ``host:port`` or a URL ``http://host:port`` (``https://`` too); it is kept as
its base URL (``http://host:port``). A cluster config is the TOML file of ``raftreg serve``
(``cluster-configs/local-3.toml``): only each ``[[nodes]]`` entry's ``http`` and the ``[tls]``
section's presence and ``ca_file`` are read here, with the standard library (the client does not
depend on the server's config module). A bare ``host:port`` becomes ``https://`` when the caller
asks for TLS (``resolve(..., https=True)``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit


class Node(NamedTuple):
    """A node's HTTP endpoint."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_node(addr: str, default_scheme: str = "http") -> Node:
    """``host:port`` (taken as ``default_scheme``) or ``http(s)://host:port[/]`` as a ``Node``;
    ``ValueError`` if it is neither."""
    text = addr.strip()
    parts = urlsplit(text if "://" in text else f"{default_scheme}://{text}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        raise ValueError(f"not a node address (host:port or http://host:port): {addr!r}")
    return Node(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))


def _read(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read cluster config {str(path)!r}: {exc}") from None


def config_tls(path: str | Path) -> tuple[bool, str | None]:
    """Whether a cluster config has a ``[tls]`` section, and its ``ca_file`` (None if absent)."""
    tls = _read(path).get("tls")
    if not isinstance(tls, dict):
        return False, None
    ca_file = tls.get("ca_file")
    return True, ca_file if isinstance(ca_file, str) else None


def config_verifies_clients(path: str | Path) -> bool:
    """Whether a cluster config says ``tls.verify_clients = true`` (clients need a certificate)."""
    tls = _read(path).get("tls")
    return isinstance(tls, dict) and tls.get("verify_clients") is True


def config_addresses(path: str | Path) -> list[str]:
    """The ``http`` address of every node of a cluster config, in file order.

    ``ValueError`` names the file when it is unreadable or has no ``[[nodes]]`` with ``http``."""
    doc = _read(path)
    nodes = doc.get("nodes")
    addrs = [n["http"] for n in nodes if isinstance(n, dict) and isinstance(n.get("http"), str)] \
        if isinstance(nodes, list) else []
    if not addrs:
        raise ValueError(f"cluster config {str(path)!r} lists no [[nodes]] with an http address")
    return addrs


def resolve(addrs: Iterable[str] | None, config: str | Path | None, *, https: bool = False) -> tuple[Node, ...]:
    """The nodes of ``addrs`` then those of ``config`` not already given, without duplicates;
    bare ``host:port`` addresses are ``https`` when ``https`` is true."""
    given = [addrs] if isinstance(addrs, str) else list(addrs or ())
    if config is not None:
        given += config_addresses(config)
    nodes: list[Node] = []
    for addr in given:
        node = parse_node(addr, "https" if https else "http")
        if node not in nodes:
            nodes.append(node)
    if not nodes:
        raise ValueError("no node address: pass addresses or a cluster config")
    return tuple(nodes)
