"""``GET /v1/snapshot`` and ``PUT /v1/snapshot`` (API.md).

- ``GET``: the whole restorable state as a snapshot file (``raftreg.backup.archive``), with its
  manifest's index in ``X-Raftreg-Index``.
- ``PUT`` (body: a snapshot file, any content type, at most ``MAX_ARCHIVE_BYTES``): restores it
  into the running cluster through the log (``raftreg.node.backup``) and answers
  ``{"restored": true, "index": N, "manifest": {...}}``; 400 naming what is wrong with a damaged
  file (nothing changed), 413 over the limit, 504 when the commit's outcome is unknown.

Rights when ACLs are on: the route table asks ``operator:read`` / ``operator:write``; the file
holds the ACL tables (token secrets only as hashes), so the handler also asks ``acl:read`` /
``acl:write`` (both, fail closed).
"""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from raftreg.errors import InvalidArgument, PayloadTooLarge, PermissionDenied
from raftreg.http.wire import json_response
from raftreg.node.authority import current_authority
from raftreg.node.registry_node import RegistryNode

SNAPSHOT_PATH = "/v1/snapshot"
ARCHIVE_TYPE = "application/gzip"
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
BODY_SECONDS = 300.0  # a big snapshot over a slow link
READ_CHUNK = 1024 * 1024


class SnapshotApi:
    def __init__(self, node: RegistryNode) -> None:
        self.node = node

    def _require_acl(self, access: str) -> None:
        authority = current_authority.get()
        if self.node.acl.enabled and authority is not None and not authority.operator \
                and not self.node.acl.allows(authority, "acl", "", access):
            raise PermissionDenied(f"permission denied: this token lacks acl:{access} (a snapshot holds the ACL "
                                   "tables; operator rights alone are not enough)")

    async def save(self, request: web.Request) -> web.StreamResponse:
        self._require_acl("read")
        manifest, archive = await self.node.snapshot_save()
        return web.Response(body=archive, content_type=ARCHIVE_TYPE, headers={
            "X-Raftreg-Index": str(manifest.index),
            "Content-Disposition": f'attachment; filename="{manifest.cluster}-{manifest.index}.snap"'})

    async def restore(self, request: web.Request) -> web.StreamResponse:
        self._require_acl("write")
        archive = await _read_archive_body(request)
        if not archive:
            raise InvalidArgument("the request body must be a snapshot file (raftreg snapshot save)", field="body")
        index, manifest = await self.node.snapshot_restore(archive)
        return json_response({"restored": True, "index": index, "manifest": msgspec.to_builtins(manifest)},
                                 headers={"X-Raftreg-Index": str(index)})


async def _read_archive_body(request: web.Request) -> bytes:
    """The body, read in pieces (the app's ``client_max_size`` is for JSON bodies), at most
    ``MAX_ARCHIVE_BYTES`` (413 naming ``body``)."""
    too_large = PayloadTooLarge(f"a snapshot file may be at most {MAX_ARCHIVE_BYTES} bytes", field="body")
    if request.content_length is not None and request.content_length > MAX_ARCHIVE_BYTES:
        raise too_large
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            while chunk := await request.content.read(READ_CHUNK):
                size += len(chunk)
                if size > MAX_ARCHIVE_BYTES:
                    raise too_large
                parts.append(chunk)
    except TimeoutError:
        request.protocol.close()
        raise InvalidArgument("the snapshot file did not arrive in time", field="body") from None
    return b"".join(parts)


def add_snapshot_routes(app: web.Application, node: RegistryNode) -> None:
    api = SnapshotApi(node)
    app.router.add_get(SNAPSHOT_PATH, api.save, allow_head=False)
    app.router.add_put(SNAPSHOT_PATH, api.restore)
