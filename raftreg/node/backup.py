"""Backups of the running cluster: the snapshot a ``GET /v1/snapshot`` answers, and the
checking of one a ``PUT /v1/snapshot`` brings (``raftreg.backup.archive`` is the file format).

Save: any node answers. It first commits a read barrier (ReadIndex, as a ``?consistent`` read)
and waits until it has applied that index, so the snapshot holds every write acknowledged before
the request; then, under the state lock, it encodes the restorable parts at one applied index
(``raftreg.state.restorable``). The manifest's ``index`` is that applied index, its ``term`` the
node's current term. The encoding runs in a worker thread so the event loop keeps serving; it
holds the state lock while encoding (writes are applied after it, never half in it), and the
archive is gzip'd from the one encoded copy.

Restore (online): the receiving node checks everything before anything changes (the archive's
structure, format version, size and SHA-256, and that the payload decodes into a fresh state
machine): ``InvalidArgument`` (400) naming what is wrong otherwise. Then it stages the payload
through the log in chunks of at most ``raft.max_entry_bytes`` (``RestoreBegin``, ``RestoreChunk``s,
``RestoreCommit``: ``raftreg.state.restore_staging``), so every node switches at the commit's
index, between two entries (a write applies wholly before or wholly after it). A failure while
staging restored nothing (503, retry); a commit is applied at most once (``raftreg.node.proposer``)
and one whose outcome stays unknown answers 504. The
right to restore is checked at the HTTP layer (operator:write and acl:write); the commands go into
the log without an ``Authorized`` wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import uuid

from raftreg import __version__
from raftreg.backup.archive import (
    FORMAT_VERSION,
    ArchiveError,
    Counts,
    Manifest,
    Member,
    read_archive,
    sha256_hex,
    write_archive,
)
from raftreg.config import ClusterConfig
from raftreg.errors import Conflict, InvalidArgument, OutcomeUnknown, RaftregError, Unavailable
from raftreg.node.reads import Reader, ReadOptions
from raftreg.node.watches import CATALOG
from raftreg.node.writes import Writer
from raftreg.raft import RaftNode
from raftreg.state.commands import Command, RestoreBegin, RestoreChunk, RestoreCommit
from raftreg.state.restorable import counts, decode_payload, encode_payload
from raftreg.state.restore_staging import StagedResult

CHUNK_OVERHEAD = 256  # bytes of a RestoreChunk's encoding besides its data, with room to spare
MIN_CHUNK = 4096
DISCARD_TIMEOUT = 2.0


class Backups:
    def __init__(self, config: ClusterConfig, raft: RaftNode, reader: Reader, writer: Writer) -> None:
        self._config = config
        self._raft = raft
        self._reader = reader
        self._writer = writer
        self.chunk_bytes = max(MIN_CHUNK, config.raft.max_entry_bytes - CHUNK_OVERHEAD)

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

    async def restore(self, archive: bytes) -> tuple[int, Manifest]:
        """Restore ``archive`` into the running cluster; returns the commit index and the manifest."""
        manifest, payload = await asyncio.get_running_loop().run_in_executor(None, _checked, archive)
        restore_id = uuid.uuid4().hex
        size = self.chunk_bytes
        chunks = (len(payload) + size - 1) // size or 1
        try:
            await self._stage(RestoreBegin(restore_id, manifest.sha256, len(payload), chunks))
            view = memoryview(payload)
            for seq in range(chunks):
                await self._stage(RestoreChunk(restore_id, seq, bytes(view[seq * size:(seq + 1) * size])))
        except (OutcomeUnknown, Unavailable) as exc:
            await self._discard(restore_id)
            raise Unavailable(f"the restore was not applied (staging failed: {exc.message}); retry",
                              retry_after=1.0) from None
        except Conflict:
            await self._discard(restore_id)
            raise
        committed = await self._writer.commit(RestoreCommit(restore_id), bounded=False)
        result = committed.result
        if not isinstance(result, StagedResult) or not result.restored:
            reason = result.reason if isinstance(result, StagedResult) else str(result)
            raise Conflict(f"the restore was not applied: {reason}")
        return committed.index, manifest

    async def _discard(self, restore_id: str) -> None:
        """Best effort, after a failed staging: drop the chunks staged so far (if the staging is
        still this restore's), so they do not stay in the state and its snapshots."""
        with contextlib.suppress(RaftregError):  # the next restore's Begin replaces the staging anyway
            await self._writer.commit(RestoreCommit(restore_id, abort=True), DISCARD_TIMEOUT, bounded=False)

    async def _stage(self, cmd: Command) -> None:
        result = (await self._writer.commit(cmd, bounded=False)).result
        if not isinstance(result, StagedResult) or not result.ok:
            reason = result.reason if isinstance(result, StagedResult) else str(result)
            raise Conflict(f"the restore was not applied: {reason}")


def _checked(archive: bytes) -> tuple[Manifest, bytes]:
    """The manifest and payload, once the payload decodes into a fresh state machine."""
    try:
        manifest, payload = read_archive(archive)
        decode_payload(payload)
    except ArchiveError as exc:
        raise InvalidArgument(f"the snapshot is refused: {exc}", field="body") from None
    except (ValueError, RaftregError) as exc:
        raise InvalidArgument(f"the snapshot is refused: its state does not decode: {exc}", field="body") from None
    return manifest, payload
