"""A cluster's identity: the ``cluster_id`` file of a data directory, and the Raft password it
implies.

A cluster restored with ``raftreg snapshot restore --new-cluster`` gets a fresh random id,
written into every node's data directory. When the file is there, pysyncobj's password (its
encrypted handshake) is ``HMAC-SHA256(cluster secret, "raftreg-cluster:" + id)``, so a node of the
old cluster, which shares the secret but not the id, cannot even complete the handshake with a
node of the new one (nor the reverse). A data directory without the file (every cluster created
before, or by ``raftreg serve`` on an empty directory) keeps the plain secret as its password.
A node added to a restored cluster needs the same file in its data directory (copy it).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

CLUSTER_ID_FILE = "cluster_id"


def read_cluster_id(data_dir: Path) -> str | None:
    """The id in ``data_dir/cluster_id``; None when the file is absent."""
    path = Path(data_dir) / CLUSTER_ID_FILE
    return path.read_text().strip() if path.exists() else None


def raft_password(secret: str, data_dir: Path) -> str:
    """The password pysyncobj uses for this data directory (see the module docstring)."""
    cluster_id = read_cluster_id(data_dir)
    if cluster_id is None:
        return secret
    return hmac.new(secret.encode(), f"raftreg-cluster:{cluster_id}".encode(), hashlib.sha256).hexdigest()
