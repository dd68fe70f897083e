"""``GET /v1/snapshot`` (API.md): the whole restorable state as a snapshot file
(``raftreg.backup.archive``), with its manifest's index in ``X-Raftreg-Index``.

Rights when ACLs are on: the route table asks ``operator:read``; the file holds the ACL tables
(token secrets only as hashes), so the handler also asks ``acl:read`` (both, fail closed).
"""

from __future__ import annotations

from aiohttp import web

from raftreg.errors import PermissionDenied
from raftreg.node.authority import current_authority
from raftreg.node.registry_node import RegistryNode

SNAPSHOT_PATH = "/v1/snapshot"
ARCHIVE_TYPE = "application/gzip"


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


def add_snapshot_routes(app: web.Application, node: RegistryNode) -> None:
    api = SnapshotApi(node)
    app.router.add_get(SNAPSHOT_PATH, api.save, allow_head=False)
