"""``raftreg kv ...`` against a real single-node cluster, run as a subprocess: put/get (text, binary,
``--file``, flags), conditional writes that lose exit 1, list/keys, history and rollback, a
prefix delete, export then import under another prefix (a round trip of bytes and flags), and a
watch that prints a change."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

LINE_TIMEOUT = 20.0  # deadline for the watch's next line (loaded 2-core machine)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def fails(done: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and re.search(pattern, done.stderr), done.stderr


def put_index(out: str) -> int:
    match = re.fullmatch(r"put \S+ at index (\d+)\n", out)
    assert match, out
    return int(match.group(1))


def test_put_get_and_a_conditional_write(cli) -> None:
    first = put_index(ok(cli("kv", "put", "t1/name", "héllo wörld", "--flags", "42")))
    assert ok(cli("kv", "get", "t1/name")) == "héllo wörld\n"
    got = json.loads(ok(cli("-o", "json", "kv", "get", "t1/name", "--consistent")))
    assert (got["flags"], got["modify_index"], got["key"]) == (42, first, "t1/name")
    fails(cli("kv", "put", "t1/name", "other", "--cas", str(first - 1)), r"^error: conflict: .*nothing written")
    fails(cli("kv", "put", "t1/name", "other", "--cas", "0"), "conflict")
    second = put_index(ok(cli("kv", "put", "t1/name", "other", "--cas", str(first))))
    assert second > first and ok(cli("kv", "get", "t1/name")) == "other\n"
    fails(cli("kv", "get", "t1/absent"), r"^error: not_found")


def test_binary_values_from_a_file_and_a_detailed_get(cli, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00\xffraw")
    ok(cli("kv", "put", "t2/blob", "--file", str(blob)))
    got = json.loads(ok(cli("-o", "json", "kv", "get", "t2/blob")))
    assert got["value"] == "AP9yYXc="
    assert "base64:AP9yYXc=" in ok(cli("kv", "get", "t2/blob", "--detail"))


def test_list_keys_and_a_recursive_delete(cli) -> None:
    for key in ("t3/a", "t3/b/c", "t3/b/d", "t30"):
        ok(cli("kv", "put", key, key.upper()))
    table = ok(cli("kv", "list", "t3/"))
    assert re.search(r"^t3/b/c +0 +\d+ +T3/B/C$", table, re.M) and "t30" not in table
    assert ok(cli("kv", "list", "t3/", "--keys")).split() == ["t3/a", "t3/b/c", "t3/b/d"]
    assert ok(cli("kv", "list", "t3/", "--separator", "/")).split() == ["t3/a", "t3/b/"]
    assert re.fullmatch(r"deleted 3 keys at index \d+\n", ok(cli("kv", "delete", "t3/", "--recurse")))
    assert json.loads(ok(cli("-o", "json", "kv", "list", "t3/")))["entries"] == []
    assert ok(cli("kv", "get", "t30")) == "T30\n"


def test_history_and_rollback(cli) -> None:
    indexes = [put_index(ok(cli("kv", "put", "t4/cfg", f"v{n}", "--flags", str(n)))) for n in range(3)]
    versions = json.loads(ok(cli("-o", "json", "kv", "history", "t4/cfg")))["versions"]
    assert [v["modify_index"] for v in versions][:2] == [indexes[1], indexes[0]]  # earlier versions, newest first
    assert re.match(r"rolled t4/cfg back", ok(cli("kv", "rollback", "t4/cfg", "--to", str(indexes[0]))))
    got = json.loads(ok(cli("-o", "json", "kv", "get", "t4/cfg")))
    assert (got["flags"], got["value"], got["modify_index"] > indexes[2]) == (0, "djA=", True)
    fails(cli("kv", "rollback", "t4/cfg", "1"), "not_found")  # the positional form works too
    for both_or_neither in (["1", "--to", "2"], []):
        done = cli("kv", "rollback", "t4/cfg", *both_or_neither)
        assert done.returncode == 2 and "--to INDEX" in done.stderr, done


def test_export_then_import_under_another_prefix(cli, tmp_path: Path) -> None:
    ok(cli("kv", "put", "t5/x", "1", "--flags", "7"))
    ok(cli("kv", "put", "t5/y/z", "--file", "/dev/null"))
    export = tmp_path / "t5.json"
    doc = json.loads(ok(cli("kv", "export", "t5/")))
    doc["entries"] += [{"key": f"t5/bulk/{n:03}", "value": "AA==", "flags": n} for n in range(73)]  # 2 txns
    export.write_text(json.dumps(doc))
    out = json.loads(ok(cli("-o", "json", "kv", "import", str(export), "--prefix", "copy5/")))
    assert out["imported"] == len(doc["entries"]) == 75
    copied = json.loads(ok(cli("-o", "json", "kv", "list", "copy5/", "--consistent")))["entries"]
    by_key = {e["key"]: (e["value"], e["flags"]) for e in copied}
    assert by_key["copy5/x"] == ("MQ==", 7) and by_key["copy5/y/z"] == ("", 0)
    assert by_key["copy5/bulk/069"] == ("AA==", 69) and len(by_key) == 75
    fails(cli("kv", "import", str(export), "--prefix", "/lead/"), "invalid_argument")


def test_watch_prints_the_key_now_and_after_a_change(cli, addr: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAFTREG_ADDR"} | {"PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "raftreg", "--addr", addr, "-o", "json", "kv", "watch", "t6/", "--recurse"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=LINE_TIMEOUT))
        assert first["entries"] == []
        ok(cli("kv", "put", "t6/k", "v"))
        second = json.loads(lines.get(timeout=LINE_TIMEOUT))
        assert [e["key"] for e in second["entries"]] == ["t6/k"] and second["index"] > first["index"]
    finally:
        proc.kill()
        proc.wait(10)
