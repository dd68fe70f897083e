"""Synthetic catalog nodes: the hosts that registered instances, as Consul's catalog and DNS show them.

raftreg has no per-host agents: an instance is a service, an id and an address. Consul's data
model hangs every service on a *node* (the host running it). The Consul-compatible API and the
DNS interface derive one node per distinct instance address, so node-level fields are filled
and a problem on one host never touches another host's services.

Contract (shared by ``raftreg.consul`` and ``raftreg.dns``; changing it renames every node):
- ``host_node(address).name`` is a valid DNS label (``[a-z0-9-]``, at most 63 characters, no
  leading or trailing ``-``): ``10.0.0.5`` -> ``ip-10-0-0-5``, ``::1`` -> ``ip6-0-0-0-0-0-0-0-1``
  (the exploded form), ``Web-1.example.com`` -> ``web-1-example-com``;
- ``host_node(address).id`` is a UUID derived from the address alone (uuid5), stable across
  nodes, restarts and releases;
- the same address always gives the same node; different IP addresses give different names.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

# A fixed namespace so every raftreg node derives the same IDs (uuid5 of this + the address).
HOST_NAMESPACE = uuid.UUID("6f1c4a52-9a4e-4c1e-9a57-2d0f6c1b7e41")

_NOT_LABEL = re.compile(r"[^a-z0-9-]+")
MAX_LABEL = 63


@dataclass(frozen=True, slots=True)
class HostNode:
    name: str
    id: str
    address: str


def _label(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raw = address.lower()
    else:
        if ip.version == 4:
            raw = "ip-" + str(ip).replace(".", "-")
        else:
            raw = "ip6-" + "-".join(part.lstrip("0") or "0" for part in ip.exploded.split(":"))
    label = _NOT_LABEL.sub("-", raw).strip("-")[:MAX_LABEL].strip("-")
    return label or "host"


@lru_cache(maxsize=65536)
def host_node(address: str) -> HostNode:
    """The synthetic node of the host at ``address`` (an IP address or a DNS host name)."""
    return HostNode(name=_label(address), id=str(uuid.uuid5(HOST_NAMESPACE, address)), address=address)
