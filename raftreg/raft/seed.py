"""Seed a fresh data directory with a restored state (``raftreg snapshot restore --new-cluster``).

The node then starts as if it had compacted its log at the snapshot's index ``N``: the directory
gets a pysyncobj full dump (``raft.dump``) in the format pysyncobj 0.3.17 writes and loads
(``SyncObj.__tryLogCompaction`` / ``__loadDumpFile``): a gzip'd pickle of
``(data, last entry, entry before it, cluster)``, where ``data`` is ``[SyncObj attributes,
consumer data]`` and the consumer data is what ``_RegistryConsumer._serialize`` returns
(``{"registry": SnapshotBlob}``). The two entries are pysyncobj no-ops at ``N - 1`` and ``N``,
in term 0 (a fresh cluster's first entry has term 0 too, so every later entry has a higher term
and Raft's "up-to-date log" comparison stays sound). pysyncobj loads the dump at its first tick,
sets its applied index to ``N`` and appends the new leader's entries from ``N + 1`` on.
The directory also gets a ``cluster_id`` (``raftreg.raft.identity``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from pysyncobj import pickle as pysyncobj_pickle
from pysyncobj.node import TCPNode
from pysyncobj.syncobj import _COMMAND_TYPE

from raftreg.raft.identity import CLUSTER_ID_FILE
from raftreg.raft.snapshot import SnapshotBlob
from raftreg.raft.storage import RaftFiles

_NOOP = bytes([_COMMAND_TYPE.NO_OP])
MIN_INDEX = 2  # the dump holds two entries, N - 1 and N


def seed_data_dir(data_dir: Path, payload: bytes, index: int, cluster_id: str, raft_addrs: list[str]) -> int:
    """Write the dump and the cluster id into ``data_dir`` (created; it must be empty).
    ``payload``: ``StateMachine.restore`` bytes. Returns the index the node starts at
    (``index``, at least ``MIN_INDEX``). ``FileExistsError`` if the directory holds anything."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if any(data_dir.iterdir()):
        raise FileExistsError(f"{data_dir} is not empty")
    index = max(index, MIN_INDEX)
    files = RaftFiles(data_dir)
    dump = ([{}, {"registry": SnapshotBlob(data=payload)}], (_NOOP, index, 0), (_NOOP, index - 1, 0),
            {TCPNode(addr) for addr in raft_addrs})
    tmp = files.dump.with_name(files.dump.name + ".seed")
    with open(tmp, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb") as gz:
            pysyncobj_pickle.dump(dump, gz)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, files.dump)
    (data_dir / CLUSTER_ID_FILE).write_text(cluster_id + "\n")
    return index
