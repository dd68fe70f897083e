"""A free block of ports for ``raftreg dev --port-base`` in tests (raftreg.devcluster.PORT_BLOCK)."""

from __future__ import annotations

import random

from raftreg.devcluster import PORT_BLOCK, dev_config
from raftreg.portcheck import taken_ports


def free_port_base(nodes: int = 5) -> int:
    """A base whose whole block (as ``dev --nodes nodes`` uses it) was free a moment ago."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - PORT_BLOCK)  # below the ephemeral range (32768-)
        if not taken_ports(dev_config(nodes, base)):
            return base
    raise RuntimeError("no free block of ports found")
