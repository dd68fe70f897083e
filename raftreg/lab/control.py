"""``lab up`` / ``lab down`` / ``lab status`` as functions (the CLI and the tests call these).

``up`` records the lab on disk first (``topology.new_state``), builds the network, writes the
cluster config (a fresh secret; data and logs under the lab's directory) and starts one node per
host. Any failure on the way tears down what was built. ``down`` works from the record alone, so
it also cleans up after a crash of whatever ran ``up``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raftreg.config import RaftTuning
from raftreg.lab.cluster import LabCluster
from raftreg.lab.netns import LabError, require_root
from raftreg.lab.topology import LabState, build, destroy, lab_namespaces, new_state

DEFAULT_DIR = Path("/tmp/raftreg-lab")


def up(directory: Path, nodes: int = 3, *, tuning: RaftTuning | None = None, wait: float = 60.0,
       data_dirs: dict[str, Path] | None = None, extra_env: dict[str, str] | None = None) -> LabCluster:
    """Build a lab of ``nodes`` hosts and start its cluster; returns it once every node is ready."""
    require_root()
    if not 1 <= nodes <= 9:
        raise LabError("--nodes must be between 1 and 9")
    state = new_state(directory, nodes)
    try:
        build(state)
        cluster = LabCluster(state, tuning=tuning, data_dirs=data_dirs, extra_env=extra_env)
        cluster.start(wait=wait)
    except BaseException:
        destroy(state)
        raise
    return cluster


def down(directory: Path) -> list[str]:
    """Remove the lab recorded in ``directory``; what was removed."""
    require_root()
    return destroy(LabState.load(directory))


def status(directory: Path) -> dict[str, Any]:
    """The lab's namespaces and each node's view (state, leader, applied index), or ``down``."""
    state = LabState.load(directory)
    cluster = LabCluster(state)
    nodes = {}
    for name in cluster.names:
        st = cluster.status(name, timeout=2.0)
        nodes[name] = ({"address": cluster.config.node(name).http, "state": st.get("state"),
                        "leader": st.get("leader"), "term": st.get("term"), "applied_index": st.get("applied_index")}
                       if st else {"address": cluster.config.node(name).http, "state": "down"})
    return {"prefix": state.prefix, "dir": state.dir, "namespaces": lab_namespaces(state),
            "client": f"{state.client} (198.18.0.100)", "config": str(cluster.config_path), "nodes": nodes}
