"""``raftreg serve --join``: start a node that was added at run time (``raftreg cluster add``).

The node is not in the config file it is given; it asks the members listed there for the live
membership (``GET /v1/cluster/config``, signed with the cluster secret like any node-to-node
request), finds itself in it, records it in its data directory (``members.json``, so later
restarts need neither ``--join`` nor an edited config) and starts with the current voters as its
Raft peers. A node that was not added first is refused with a clear error.
"""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.node.membership import read_members, write_members
from raftreg.signing import Signer
from raftreg.testing import http_json
from raftreg.tls import peer_context

CONFIG_TARGET = "/v1/cluster/config?format=json"


def live_config(config: ClusterConfig, name: str, secret: str, data_dir: Path, *,
                timeout: float = 3.0) -> ClusterConfig:
    """The config with the live membership, which must hold ``name`` (``ClickException`` if not,
    or if no member answers). An earlier join's ``members.json`` is used as it is."""
    if read_members(data_dir):
        return config
    signer = Signer(secret, name)
    context = peer_context(config.tls, name) if config.tls is not None else None
    answered = []
    for member in config.nodes:
        code, body = http_json(config.url(member.name) + CONFIG_TARGET, timeout=timeout, context=context,
                               headers=signer.headers("GET", CONFIG_TARGET))
        if code != 200 or not isinstance(body, dict) or not isinstance(body.get("nodes"), list):
            continue
        answered.append(member.name)
        try:
            nodes = msgspec.convert(body["nodes"], list[NodeConfig])
        except msgspec.ValidationError:
            continue
        if name not in {n.name for n in nodes}:
            raise click.ClickException(
                f"{name} is not a member of cluster {config.name!r} (members: {[n.name for n in nodes]}); "
                f"add it first: raftreg cluster add {name} --raft HOST:PORT --http HOST:PORT")
        write_members(data_dir, nodes)
        return msgspec.structs.replace(config, nodes=nodes)
    raise click.ClickException(f"--join: no member of {[n.name for n in config.nodes]} answered with the "
                               f"live membership (answered: {answered})")
