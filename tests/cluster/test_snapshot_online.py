"""Online restore on a real 3-node cluster (issue 16 items 5 and 8): a restore while a writer
runs is applied between two writes on every node, a watcher's index never decreases and every
watcher wakes, TTL instances do not vanish within one ttl of the restore; a damaged file or an
empty body is refused with 400 and changes nothing."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from raftreg.testing import LocalCluster, http_json, wait_for

TTL = 3.0
WATCHED = ["/v1/services/web", "/v1/kv/app/k0", "/v1/services"]


def get_index(url: str, timeout: float = 30.0) -> tuple[int, int]:
    """(status, X-Raftreg-Index) of one read."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read()
            return resp.status, int(resp.headers.get("X-Raftreg-Index") or 0)
    except urllib.error.HTTPError as err:
        return err.code, int(err.headers.get("X-Raftreg-Index") or 0)
    except OSError:
        return 0, 0


def put_ok(url: str, body: Any = None, data: bytes | None = None) -> Any:
    status, answer = http_json(url, method="PUT", body=body, data=data, timeout=10.0,
                               headers={"Content-Type": "application/octet-stream"} if data is not None else None)
    assert status == 200, (url, status, answer)
    return answer


class Watcher(threading.Thread):
    """Blocking queries on ``path`` one after the other, each from the index the last answered."""

    def __init__(self, base: str, path: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.path, self.stop_event = base, path, stop
        self.seen: list[int] = []

    def run(self) -> None:
        index = 0
        while not self.stop_event.is_set():
            status, answered = get_index(f"{self.base}{self.path}?index={index}&wait=2s")
            if status == 200:
                self.seen.append(answered)
                index = answered


class Writer(threading.Thread):
    """Registers writer/wN one after the other, recording each acknowledged write's index."""

    def __init__(self, base: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.stop_event = base, stop
        self.acked: dict[str, int] = {}
        self.errors: list[int] = []

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            n += 1
            status, body = http_json(f"{self.base}/v1/services/writer/instances/w{n}", method="PUT",
                                     body={"address": "10.0.0.5", "port": n}, timeout=10.0)
            if status == 200:
                self.acked[f"w{n}"] = int(body["index"])
            else:
                self.errors.append(status)


def digests(cluster: LocalCluster) -> set[str]:
    out = set()
    for name in cluster.names:
        status, body = cluster.debug(name, "digest")
        assert status == 200
        out.add(json.dumps({k: v for k, v in body.items() if k != "applied_index"}, sort_keys=True))
    return out


def test_online_restore_under_writes_and_watches(make_cluster: Any, tmp_path: Path) -> None:
    cluster = make_cluster()
    base = cluster.url(cluster.leader())
    for i in range(5):
        put_ok(f"{base}/v1/services/web/instances/w{i}", {"address": "10.0.0.1", "port": 8000 + i})
        put_ok(f"{base}/v1/services/ttl/instances/t{i}", {"address": "10.0.0.2", "port": 9000 + i, "ttl": f"{TTL}s"})
        put_ok(f"{base}/v1/kv/app/k{i}", data=f"v{i}".encode())
    beating = threading.Event()

    def heartbeat() -> None:
        while not beating.wait(0.3):
            for i in range(5):
                http_json(f"{base}/v1/services/ttl/instances/t{i}/heartbeat", method="PUT", body={}, timeout=2.0)

    beater = threading.Thread(target=heartbeat, daemon=True)
    beater.start()
    with urllib.request.urlopen(f"{base}/v1/snapshot", timeout=30.0) as resp:
        (tmp_path / "backup.snap").write_bytes(resp.read())
    # Changes after the backup, which the restore undoes.
    put_ok(f"{base}/v1/services/web/instances/late", {"address": "10.0.0.3", "port": 1})
    put_ok(f"{base}/v1/services/gone/instances/g1", {"address": "10.0.0.3", "port": 1})
    put_ok(f"{base}/v1/kv/app/k0", data=b"changed")

    # Damaged files and an empty body: 400 naming the problem, nothing changes.
    good = (tmp_path / "backup.snap").read_bytes()
    raw = bytearray(gzip.decompress(good))
    raw[raw.index(b"10.0.0.2")] ^= 0xFF
    cluster.wait_converged()
    before = digests(cluster)
    for bad, words in ((gzip.compress(bytes(raw)), "sha256"), (good[: len(good) // 2], "truncated"), (b"", "body")):
        status, answer = http_json(f"{base}/v1/snapshot", method="PUT", data=bad, timeout=10.0,
                                   headers={"Content-Type": "application/gzip"})
        assert status == 400 and words in answer["error"]["message"] and answer["error"]["field"] == "body", answer
    assert digests(cluster) == before and len(before) == 1

    stop = threading.Event()
    watchers = [Watcher(base, path, stop) for path in WATCHED]
    writer = Writer(base, stop)
    for thread in [*watchers, writer]:
        thread.start()
    wait_for(lambda: all(w.seen for w in watchers) and len(writer.acked) >= 5, 20.0, "watchers and writer running")
    env = {k: v for k, v in os.environ.items() if k != "RAFTREG_ADDR"}
    beating.set()
    restored = subprocess.run([sys.executable, "-m", "raftreg", "--addr", cluster.config.node("n2").http, "-o",
                               "json", "snapshot", "restore", "backup.snap"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60.0)
    restored_at = time.monotonic()
    assert restored.returncode == 0, restored.stderr
    index = json.loads(restored.stdout)["index"]
    wait_for(lambda: all(w.seen[-1] >= index for w in watchers), 15.0, "every watcher woken past the restore")
    wait_for(lambda: any(i > index for i in writer.acked.values()), 15.0, "a write after the restore")
    stop.set()
    for thread in [*watchers, writer]:
        thread.join(timeout=15.0)

    for w in watchers:
        assert w.seen == sorted(w.seen), f"{w.path}: an index went back: {w.seen}"
    assert not writer.errors, writer.errors
    cluster.wait_converged()
    assert len(digests(cluster)) == 1
    _, writer_now = http_json(f"{base}/v1/services/writer", timeout=5.0)
    present = {inst["id"] for inst in writer_now["instances"]} if writer_now else set()
    # Each acknowledged write is wholly before the restore (gone) or wholly after it (kept).
    assert present == {name for name, at in writer.acked.items() if at > index}
    _, web = http_json(f"{base}/v1/services/web", timeout=5.0)
    assert sorted(i["id"] for i in web["instances"]) == [f"w{i}" for i in range(5)]
    _, gone = http_json(f"{base}/v1/services/gone", timeout=5.0)
    assert not (gone or {}).get("instances")
    with urllib.request.urlopen(f"{base}/v1/kv/app/k0?raw", timeout=5.0) as resp:
        assert resp.read() == b"v0"
    # No heartbeat since just before the restore: the TTL instances still live one ttl later.
    time.sleep(max(0.0, restored_at + TTL * 0.9 - time.monotonic()))
    _, ttl = http_json(f"{cluster.url(cluster.leader())}/v1/services/ttl", timeout=5.0)
    assert len(ttl["instances"]) == 5, ttl
