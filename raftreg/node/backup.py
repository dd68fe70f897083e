"""Backups of the running cluster: the snapshot a ``GET /v1/snapshot`` answers, and the
checking of one a ``PUT /v1/snapshot`` brings (``raftreg.backup.archive`` is the file format).

Save: any node answers. It first commits a read barrier (ReadIndex, as a ``?consistent`` read)
and waits until it has applied that index, so the snapshot holds every write acknowledged before
the request; then, under the state lock, it encodes the restorable parts at one applied index
(``raftreg.state.restorable``). The manifest's ``index`` is that applied index, its ``term`` the
node's current term. The encoding runs in a worker thread so the event loop keeps serving; it
holds the state lock while encoding (writes are applied after it, never half in it), and the
archive is gzip'd from the one encoded copy.
"""

from __future__ import annotations

import asyncio
import datetime
import io

from raftreg import __version__
from raftreg.backup.archive import FORMAT_VERSION, Counts, Manifest, Member, sha256_hex, write_archive
from raftreg.config import ClusterConfig
from raftreg.node.reads import Reader, ReadOptions
from raftreg.node.watches import CATALOG
from raftreg.raft import RaftNode
from raftreg.state.restorable import counts, encode_payload


class Backups:
    def __init__(self, config: ClusterConfig, raft: RaftNode, reader: Reader) -> None:
        self._config = config
        self._raft = raft
        self._reader = reader

    async def save(self) -> tuple[Manifest, bytes]:
        """The manifest and the whole archive (gzip'd tar) of the state after a read barrier."""
        await self._reader.prepare(ReadOptions(consistent=True), CATALOG)
        return await asyncio.get_running_loop().run_in_executor(None, self._save_now)

    def _save_now(self) -> tuple[Manifest, bytes]:
        raft = self._raft
        with raft.lock:
            state = raft.state
            index = max(state.applied_index, raft.applied_index)
            payload, numbers = encode_payload(state), counts(state)
        manifest = Manifest(
            format_version=FORMAT_VERSION, cluster=self._config.name, index=index, term=raft.status().term,
            members=[Member(n.name, n.raft, n.http, n.role) for n in self._config.nodes],
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            raftreg_version=__version__, counts=Counts(**numbers), sha256=sha256_hex(payload), size=len(payload))
        out = io.BytesIO()
        write_archive(out, manifest, payload)
        return manifest, out.getvalue()
