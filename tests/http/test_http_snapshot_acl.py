"""``GET /v1/snapshot`` with ACLs on (one real node): it needs operator:read AND acl:read, and the
file holds token secrets only as hashes."""

from __future__ import annotations

import gzip

from raftreg.backup.archive import read_archive
from tests.http.test_http_acl import TokenHttp, acl_cluster, anon, make_token, root  # noqa: F401  (fixtures)


def test_snapshot_needs_operator_and_acl_read(root: TokenHttp, anon: TokenHttp) -> None:  # noqa: F811
    assert anon.get("/v1/snapshot").status == 401
    operator_only, _ = make_token(root, "operator read")
    acl_only, _ = make_token(root, "acl read")
    both, _ = make_token(root, "operator read", "acl read")
    refused = operator_only.get("/v1/snapshot")
    assert refused.status == 403 and "acl:read" in refused.body.decode()
    assert acl_only.get("/v1/snapshot").status == 403
    resp = both.get("/v1/snapshot")
    assert resp.status == 200, resp.body
    manifest, payload = read_archive(resp.body)
    assert manifest.counts.tokens >= 4 and resp.headers["X-Raftreg-Index"] == str(manifest.index)
    assert root.token is not None and root.token.encode() not in gzip.decompress(resp.body)
    assert root.token.encode() not in payload


def test_restore_needs_operator_and_acl_write_and_tokens_still_work(root: TokenHttp) -> None:  # noqa: F811
    reader, _ = make_token(root, "operator read", "acl read")
    archive = reader.get("/v1/snapshot").body
    operator_only, _ = make_token(root, "operator write")
    both, _ = make_token(root, "operator write", "acl write")
    gz = {"Content-Type": "application/gzip"}
    refused = operator_only.request("PUT", "/v1/snapshot", archive, headers=gz)
    assert refused.status == 403 and "acl:write" in refused.body.decode()
    assert reader.request("PUT", "/v1/snapshot", archive, headers=gz).status == 403
    later, _ = make_token(root, "operator read", "acl read")  # created after the backup: gone after the restore
    resp = both.request("PUT", "/v1/snapshot", archive, headers=gz)
    assert resp.status == 200, resp.body
    assert resp.json()["index"] > read_archive(archive)[0].index
    assert reader.get("/v1/snapshot").status == 200  # a token of the backup authenticates (hash restored)
    assert later.get("/v1/snapshot").status == 401
