"""Backup and restore on real clusters (issue 16 items 4, 5, 8): save from a 3-node cluster,
restore with ``--new-cluster`` into a fresh 3-node cluster whose state digests equal the
source's, writes above the snapshot's index, a node without the new cluster identity kept out;
corrupted and truncated files refused before anything is written."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from raftreg.backup.archive import read_archive
from raftreg.testing import LocalCluster, http_json, wait_for

CLI_TIMEOUT = 60.0


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAFTREG_ADDR"}
    return subprocess.run([sys.executable, "-m", "raftreg", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT)


def put(url: str, body: Any) -> Any:
    status, answer = http_json(url, method="PUT", body=body, timeout=10.0)
    assert status == 200, (url, status, answer)
    return answer


def fill(cluster: LocalCluster) -> None:
    """Services (with and without a ttl), keys and a session through the leader."""
    base = cluster.url(cluster.leader())
    for i in range(5):
        put(f"{base}/v1/services/web/instances/w{i}", {"address": "10.0.0.1", "port": 8000 + i, "tags": ["a"]})
        put(f"{base}/v1/services/ttl/instances/t{i}", {"address": "10.0.0.2", "port": 9000 + i, "ttl": "30s"})
        status, _ = http_json(f"{base}/v1/kv/app/k{i}", method="PUT", data=f"v{i}".encode(),
                              headers={"Content-Type": "application/octet-stream"}, timeout=10.0)
        assert status == 200
    put(f"{base}/v1/sessions", {"name": "backup-test", "ttl": "60s"})


def digests(cluster: LocalCluster, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    out = {}
    for name in names or cluster.names:
        status, body = cluster.debug(name, "digest")
        assert status == 200, body
        out[name] = body
    return out


def same_state(cluster: LocalCluster, names: list[str] | None = None) -> dict[str, Any] | None:
    """The one state digest of ``names`` (fields that depend on the log alone dropped, and the
    whole-state digests: members and identities are each cluster's own), if they agree."""
    seen = {json.dumps({k: v for k, v in d.items() if k not in ("applied_index", "digest", "content")},
                       sort_keys=True)
            for d in digests(cluster, names).values()}
    return json.loads(seen.pop()) if len(seen) == 1 else None


def test_save_and_restore_into_a_new_cluster(make_cluster: Any, tmp_path: Path) -> None:
    source = make_cluster()
    fill(source)
    source.wait_converged()
    saved = run_cli("--addr", source.config.node(source.followers()[0]).http, "-o", "json", "snapshot", "save",
                    "backup.snap", cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    report = json.loads(saved.stdout)
    assert report["sha256_verified"] is True
    assert report["counts"]["instances"] == 10 and report["counts"]["keys"] == 5
    assert report["counts"]["sessions"] == 1 and report["counts"]["services"] == 2
    assert [m["name"] for m in report["members"]] == ["n1", "n2", "n3"]
    expected = same_state(source)
    assert expected is not None
    manifest, _ = read_archive((tmp_path / "backup.snap").read_bytes())
    assert manifest.index >= expected["index"]
    inspected = run_cli("snapshot", "inspect", "backup.snap", cwd=tmp_path)
    assert inspected.returncode == 0 and "sha256 verified" in inspected.stdout and "yes" in inspected.stdout

    target = LocalCluster(3, name="restored")
    try:
        restored = run_cli("-o", "json", "snapshot", "restore", "backup.snap",
                           "--new-cluster", "--config", str(target.config_path), cwd=tmp_path)
        assert restored.returncode == 0, restored.stderr
        assert json.loads(restored.stdout)["index"] == manifest.index
        again = run_cli("snapshot", "restore", "backup.snap", "--new-cluster", "--config",
                        str(target.config_path), cwd=tmp_path)
        assert again.returncode != 0 and "not empty" in again.stderr
        # n3 loses its seeded directory: it starts empty, without the new cluster's identity,
        # as a node of another cluster sharing the secret would (its Raft password differs).
        shutil.rmtree(target.config.node_data_dir("n3"))
        for name in ("n1", "n2"):
            target.start_node(name)
        target.start_node("n3")
        for name in ("n1", "n2"):
            target.wait_node_ready(name, timeout=30.0)
        assert wait_for(lambda: same_state(target, ["n1", "n2"]), 15.0, "identical digests") == expected

        base = target.url(target.leader(among=["n1", "n2"]))
        written = put(f"{base}/v1/services/web/instances/after", {"address": "10.0.0.9", "port": 1})
        assert written["modify_index"] > manifest.index
        status, inst = http_json(f"{base}/v1/services/ttl/instances/t0")
        assert status == 200 and inst["ttl"] == 30.0  # TTL instances re-armed, not expired
        n3 = target.status("n3")
        assert n3 is None or (n3["applied_index"] < manifest.index and not target.is_ready("n3"))
        assert "n3" not in {m["name"] for m in target.status("n1")["members"] if m["status"] != "unreachable"}
    finally:
        target.close()


def test_damaged_files_are_refused_before_anything_is_written(tmp_path: Path, make_cluster: Any) -> None:
    source = make_cluster(1)
    fill(source)
    assert run_cli("--addr", source.config.node("n1").http, "snapshot", "save", "good.snap",
                   cwd=tmp_path).returncode == 0
    good = (tmp_path / "good.snap").read_bytes()
    raw = bytearray(gzip.decompress(good))
    raw[raw.index(b"10.0.0.2")] ^= 0xFF  # a flipped byte inside state.msgpack
    (tmp_path / "flipped.snap").write_bytes(gzip.compress(bytes(raw)))
    (tmp_path / "truncated.snap").write_bytes(good[: len(good) // 2])
    target = LocalCluster(3, name="never")
    try:
        for bad, message in (("flipped.snap", "sha256"), ("truncated.snap", "truncated")):
            result = run_cli("snapshot", "restore", bad, "--new-cluster", "--config",
                             str(target.config_path), cwd=tmp_path)
            assert result.returncode != 0 and message in result.stderr, result.stderr
            inspected = run_cli("snapshot", "inspect", bad, cwd=tmp_path)
            assert inspected.returncode != 0
            assert not Path(target.config.data_dir).exists() or not any(Path(target.config.data_dir).rglob("*"))
    finally:
        target.close()
