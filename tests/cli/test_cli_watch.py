"""``raftreg lookup SERVICE --watch`` against a real single-node cluster: one output per change
(a compact JSON line with ``-o json``, a table headed by the index otherwise), nothing on writes
that change nothing, and a clean exit on Ctrl-C (SIGINT)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftreg.client import AsyncRegistryClient
from raftreg.testing import LocalCluster, http_json

pytestmark = pytest.mark.cluster

LINE_TIMEOUT = 20.0  # deadline for the next line after a change (loaded 2-core machine)
QUIET_PERIOD = 1.0  # how long "no further output" is checked for after a write that changes nothing


class Watch:
    """``python -m raftreg --addr ADDR [-o json] lookup SERVICE --watch`` as a child process,
    with its stdout lines collected by a thread."""

    def __init__(self, addr: str, service: str, cwd: Path, *, json_output: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RAFTREG_ADDR"}
        env["PYTHONUNBUFFERED"] = "1"
        output = ["-o", "json"] if json_output else []
        cmd = [sys.executable, "-m", "raftreg", "--addr", addr, *output, "lookup", service, "--watch"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     cwd=cwd)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, timeout: float = LINE_TIMEOUT) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout}s") from None
        assert line is not None, f"the watch exited early: rc={self.proc.poll()} stderr={self.stderr()}"
        return line

    def assert_silent(self, period: float = QUIET_PERIOD) -> None:
        try:
            line = self.lines.get(timeout=period)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected output: {line!r}")

    def interrupt(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def watch(addr, tmp_path):
    """``watch(service, json_output=True)`` starts a watch; every one is killed at the end."""
    started: list[Watch] = []

    def start(service: str, *, json_output: bool = True) -> Watch:
        w = Watch(addr, service, tmp_path, json_output=json_output)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


@pytest.fixture(scope="module")
def http(cluster):
    base = cluster.url("n1")

    def call(path: str, method: str = "GET", body: object = None) -> tuple[int, object]:
        return http_json(base + path, method=method, body=body, timeout=10)

    return call


def register(http, service: str, instance_id: str, port: int = 80) -> int:
    code, body = http(f"/v1/services/{service}/instances/{instance_id}", "PUT", {"address": "10.0.0.1", "port": port})
    assert code == 200, body
    return int(body["index"])


def assert_clean_interrupt(w: Watch) -> None:
    rc = w.interrupt()
    err = w.stderr()
    assert "Traceback" not in err, err
    assert "Unclosed" not in err and "was never retrieved" not in err, err
    assert rc == 130, (rc, err)


def test_watch_json_prints_one_compact_line_per_change(http, watch):
    register(http, "elsewhere", "e1")  # the registry is not empty (see the empty-registry test below)
    w = watch("watched-json")
    first = w.next_line()
    body = json.loads(first)
    assert first == json.dumps(body, sort_keys=True, separators=(",", ":")), "not one compact JSON line"
    assert body["service"] == "watched-json" and body["instances"] == []
    seen = [body]

    i1 = register(http, "watched-json", "i1")
    seen.append(json.loads(w.next_line()))
    register(http, "watched-json", "i1")  # identical: changes nothing
    register(http, "elsewhere", "e2")  # another service
    w.assert_silent()
    i2 = register(http, "watched-json", "i2", port=81)
    seen.append(json.loads(w.next_line()))

    assert [len(b["instances"]) for b in seen] == [0, 1, 2]
    indexes = [b["index"] for b in seen]
    assert indexes == sorted(set(indexes)), f"indexes do not increase: {indexes}"
    assert indexes[1:] == [i1, i2]
    assert [i["id"] for i in seen[2]["instances"]] == ["i1", "i2"]
    assert_clean_interrupt(w)


def test_watch_table_prints_the_index_at_each_change(http, watch):
    register(http, "elsewhere", "e3")
    w = watch("watched-table", json_output=False)
    header = re.compile(r"^--- \d\d:\d\d:\d\d index (\d+)$")
    summary = re.compile(r"^\((\d+) instances, index (\d+)\)$")

    def block() -> tuple[int, list[str], int]:
        """One printed state: the '--- time index N' line, the table, the '(k instances, index N)' line."""
        m = header.match(w.next_line())
        assert m, "expected a '--- HH:MM:SS index N' line"
        rows = []
        while not (s := summary.match(line := w.next_line())):
            rows.append(line)
        assert int(s.group(2)) == int(m.group(1))
        return int(m.group(1)), rows, int(s.group(1))

    index0, rows0, count0 = block()
    assert count0 == 0 and len(rows0) == 1 and rows0[0].startswith("ID")
    put = register(http, "watched-table", "t1", port=8080)
    index1, rows1, count1 = block()
    assert (index1, count1) == (put, 1) and index1 > index0
    assert rows1[1].split()[:2] == ["t1", "10.0.0.1:8080"]
    assert_clean_interrupt(w)


def test_interrupt_while_idle_exits_cleanly(http, watch):
    register(http, "elsewhere", "e4")
    w = watch("idle-watch")
    json.loads(w.next_line())
    w.assert_silent(0.5)
    assert_clean_interrupt(w)


# ---- an empty registry ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def empty_cluster() -> Iterator[LocalCluster]:
    """A single node nobody writes to: its registry index is 0."""
    c = LocalCluster(1)
    try:
        c.start(wait=60.0)
        yield c
    finally:
        c.close()


async def test_client_watch_yields_at_once_on_an_empty_registry(empty_cluster):
    assert http_json(empty_cluster.url("n1") + "/v1/services")[1]["index"] == 0
    async with AsyncRegistryClient([empty_cluster.config.node("n1").http]) as client:
        t0 = time.monotonic()
        watch = client.watch("/v1/services/nothing", wait=6.0)
        index, body = await asyncio.wait_for(watch.__anext__(), 20.0)
        elapsed = time.monotonic() - t0
        await watch.aclose()
    assert (index, body["instances"]) == (0, [])
    assert elapsed < 3.0, f"the first result took {elapsed:.1f}s"


def test_watch_prints_at_once_on_an_empty_registry(empty_cluster, tmp_path):
    w = Watch(empty_cluster.config.node("n1").http, "nothing", tmp_path, json_output=True)
    try:
        body = json.loads(w.next_line(timeout=10.0))
        assert body["instances"] == [] and body["index"] == 0
    finally:
        w.kill()


async def test_client_watch_reset_on_an_empty_registry_does_not_spin(empty_cluster):
    """A watch resumed with an index the cluster no longer has (rebuilt: the index went backwards)
    resets to 0 (API.md) and must then wait for a change, not re-poll in a loop."""
    requests = 0

    class Counting(AsyncRegistryClient):
        async def request(self, *args, **kwargs):
            nonlocal requests
            requests += 1
            return await super().request(*args, **kwargs)

    async with Counting([empty_cluster.config.node("n1").http]) as client:

        async def run():
            async for _ in client.watch("/v1/services/nothing", index=5, wait=1.0):
                pass

        task = asyncio.create_task(run())
        await asyncio.sleep(3.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert requests <= 20, f"{requests} requests in 3.5 s with wait=1s"
