"""The embedded default cluster of ``raftreg dev``: no config file needed.

``dev_config(nodes, port_base)``: ``nodes`` members called n1..nN on 127.0.0.1, each with the
native API, the Raft port, the Consul-compatible API and DNS.
- Without ``port_base``, member k (1-based) gets the ports of cluster-configs/local-3.toml
  extended: http 8500+k, raft 7000+k, consul_http 8510+k, dns 8610+k.
- With ``port_base`` B, every port moves into one block of 40 from B: member k gets http B+k-1,
  raft B+10+k-1, consul_http B+20+k-1, dns B+30+k-1 (B must leave the block below 65536).
The data directory is ``raftreg-data/local-N`` (``-pB`` appended when ``port_base`` is given, so
clusters on other ports never share Raft files); ``raftreg dev --data-dir`` overrides it. The
secret is not part of the config: ``dev`` generates one into the data directory.
"""

from __future__ import annotations

from raftreg.config import ClusterConfig, NodeConfig

NODE_COUNTS = (1, 3, 5)
PORT_BLOCK = 40  # ports one --port-base cluster uses, from the base up (4 kinds x 10 slots)
HOST = "127.0.0.1"


def dev_config(nodes: int = 3, port_base: int | None = None) -> ClusterConfig:
    """The embedded dev cluster (module docstring); ValueError for an unsupported size or base."""
    if nodes not in NODE_COUNTS:
        raise ValueError(f"--nodes must be one of {', '.join(map(str, NODE_COUNTS))}, not {nodes}")
    if port_base is not None and not 1024 <= port_base <= 65536 - PORT_BLOCK:
        raise ValueError(f"--port-base must be between 1024 and {65536 - PORT_BLOCK}, not {port_base}")
    members = []
    for k in range(1, nodes + 1):
        if port_base is None:
            http, raft, consul, dns = 8500 + k, 7000 + k, 8510 + k, 8610 + k
        else:
            http, raft, consul, dns = (port_base + offset + k - 1 for offset in (0, 10, 20, 30))
        members.append(NodeConfig(name=f"n{k}", http=f"{HOST}:{http}", raft=f"{HOST}:{raft}",
                                  consul_http=f"{HOST}:{consul}", dns=f"{HOST}:{dns}"))
    suffix = f"-p{port_base}" if port_base is not None else ""
    return ClusterConfig(name=f"local-{nodes}", nodes=members, data_dir=f"raftreg-data/local-{nodes}{suffix}")


def default_http_addrs() -> list[str]:
    """The native API addresses of the default dev cluster (where clients look with no config)."""
    return [n.http for n in dev_config().nodes]
