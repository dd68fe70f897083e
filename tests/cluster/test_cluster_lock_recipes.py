"""The lock and election recipes on a real 3-process cluster, with real holder processes:

- a ``raftreg lock`` holder killed with kill -9 loses the lock after ttl + lock delay (counted from
  its last renewal, at most ttl/3 before the kill) and a waiter then gets it, never earlier;
- holders looping on one lock while the registry's leader is killed 3 times: fences strictly
  increase and no two holdings overlap, except after a holder's ``lost`` fired;
- ``raftreg elect`` candidates: when the leader's process dies another one is elected, and an
  observer sees each leader once, in order;
- ``AsyncLock``: a second candidate times out (``LockTimeout``), a waiter stays blocked past the
  holder's ttl (renewed in the background) and gets the lock at its release, with fence 2.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest

from raftreg.client import AsyncRegistryClient, LockTimeout, RaftregError, RegistryClient
from raftreg.testing import LocalCluster

pytestmark = pytest.mark.cluster

TTL = 2.0
LOCK_DELAY = 1.0
LINE_TIMEOUT = 30.0


def addresses(cluster: LocalCluster) -> list[str]:
    return [cluster.config.node(n).http for n in cluster.names]


class Proc:
    """``python -m raftreg -o json ARGS`` in a process group of its own; its JSON lines in a queue."""

    def __init__(self, cluster: LocalCluster, cwd: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RAFTREG_ADDR"} | {"PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "raftreg", "--addr", ",".join(addresses(cluster)), "-o", "json", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=cwd, start_new_session=True)
        self.lines: queue.Queue[dict[str, object]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout or ():
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def event(self, name: str, timeout: float = LINE_TIMEOUT) -> dict[str, object]:
        until = time.monotonic() + timeout
        while True:
            found = self.lines.get(timeout=max(0.01, until - time.monotonic()))
            if found.get("event") == name:
                return found

    def kill9(self) -> None:
        """kill -9 the whole process group (the CLI and the command it runs)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def test_a_killed_holder_loses_the_lock_after_ttl_plus_lock_delay(cluster: LocalCluster, tmp_path: Path) -> None:
    holder = Proc(cluster, tmp_path, "lock", "handover", "--ttl", f"{TTL}s", "--lock-delay", f"{LOCK_DELAY}s",
                  "--", sys.executable, "-c", "import time; time.sleep(600)")
    try:
        assert holder.event("acquired")["fence"] == 1
        with RegistryClient(addresses(cluster)) as client:
            got: list[tuple[float, int]] = []
            waiting = client.lock("handover", ttl=10, timeout=TTL + LOCK_DELAY + 20)

            def wait_for_it() -> None:
                fence = waiting.acquire()
                got.append((time.monotonic(), fence))

            waiter = threading.Thread(target=wait_for_it)
            waiter.start()
            time.sleep(TTL / 2)  # a holder that renews keeps it: the waiter is still in its blocking query
            assert not got
            killed_at = time.monotonic()
            holder.kill9()
            waiter.join(TTL + LOCK_DELAY + 30)
            assert got, "the waiter never got the lock"
            waited = got[0][0] - killed_at
            # The last renewal was at most ttl/3 before the kill (plus its round trip).
            assert waited >= TTL + LOCK_DELAY - TTL / 3, f"the lock moved {waited:.2f}s after the kill"
            assert waited <= TTL + LOCK_DELAY + 5.0, f"the lock moved only {waited:.2f}s after the kill"
            assert got[0][1] == 2
            waiting.release()
            print(f"\n[lock] kill -9 -> waiter holds it after {waited:.2f}s (ttl {TTL}s + lock delay {LOCK_DELAY}s)")
    finally:
        if holder.proc.poll() is None:
            holder.kill9()


class Holding(msgspec.Struct, frozen=True):
    fence: int
    enter: float
    exit: float
    lost: bool


def test_mutual_exclusion_while_the_leader_is_killed_3_times(cluster: LocalCluster) -> None:
    records: list[Holding] = []
    errors: list[str] = []
    stop = threading.Event()

    def holder() -> None:
        with RegistryClient(addresses(cluster)) as client:
            while not stop.is_set():
                try:
                    with client.lock("mutex", ttl=TTL, lock_delay=LOCK_DELAY, timeout=30) as held:
                        assert held.fence is not None
                        enter = time.monotonic()
                        held.lost.wait(0.1)  # the critical section
                        records.append(Holding(held.fence, enter, time.monotonic(), held.lost.is_set()))
                except RaftregError as err:  # an unknown session creation, no leader for too long
                    errors.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=holder) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            before = len(records)
            leader = cluster.leader()
            cluster.kill(leader)
            cluster.leader(timeout=20, among=[n for n in cluster.names if n != leader])
            cluster.start_node(leader)
            cluster.wait_ready(timeout=30)
            deadline = time.monotonic() + 20  # holdings go on after each failover
            while len(records) < before + 3 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert len(records) >= 9, (records, errors)
    ordered = sorted(records, key=lambda h: h.enter)
    for earlier, later in itertools.pairwise(ordered):
        assert later.fence > earlier.fence, (earlier, later)
        assert earlier.exit <= later.enter or earlier.lost, (earlier, later)
    print(f"\n[lock] {len(records)} holdings through 3 leader kills, fences {ordered[0].fence}..{ordered[-1].fence}, "
          f"{sum(h.lost for h in records)} lost, {len(errors)} errors")


def test_an_elected_leader_is_replaced_when_its_process_dies(cluster: LocalCluster, tmp_path: Path) -> None:
    seen: list[str | None] = []
    ready = threading.Event()
    done = threading.Event()

    async def observe() -> None:
        async with AsyncRegistryClient(addresses(cluster)) as client:
            watch = client.election("jobs", "observer").observe(wait=5.0)
            async for leader in watch:
                seen.append(leader)
                ready.set()
                if done.is_set() and leader is None:
                    break
            await watch.aclose()

    observer = threading.Thread(target=lambda: asyncio.run(observe()))
    observer.start()
    assert ready.wait(LINE_TIMEOUT)
    candidates = {name: Proc(cluster, tmp_path, "elect", "jobs", "--identity", name, "--ttl", f"{TTL}s",
                             "--lock-delay", f"{LOCK_DELAY}s") for name in ("a", "b", "c")}
    elected: list[str] = []
    try:
        for _ in range(3):
            alive = [n for n in candidates if n not in elected]
            winner = wait_elected(candidates, alive)
            elected.append(winner)
            if len(elected) < 3:
                candidates[winner].kill9()
        done.set()
        candidates[elected[-1]].proc.send_signal(signal.SIGINT)  # resigns: the observer sees None
        assert candidates[elected[-1]].event("resigned")["identity"] == elected[-1]
        observer.join(LINE_TIMEOUT)
        assert not observer.is_alive()
    finally:
        done.set()
        for proc in candidates.values():
            if proc.proc.poll() is None:
                proc.kill9()
    leaders = [s for s in seen if s is not None]
    assert leaders == elected, (seen, elected)  # each leader once, in order
    assert all(a != b for a, b in itertools.pairwise(seen)) and seen[0] is None and seen[-1] is None


def wait_elected(candidates: dict[str, Proc], alive: list[str]) -> str:
    """The one candidate among ``alive`` that prints ``elected`` next."""
    until = time.monotonic() + LINE_TIMEOUT
    while time.monotonic() < until:
        for name in alive:
            try:
                event = candidates[name].lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if event.get("event") == "elected":
                return name
    raise AssertionError("no candidate was elected")


def test_async_lock_waits_times_out_and_hands_over_with_a_larger_fence(cluster: LocalCluster) -> None:
    async def scenario() -> None:
        async with AsyncRegistryClient(addresses(cluster)) as client:
            async with client.lock("async", ttl=TTL, lock_delay=0) as first:
                assert first.fence == 1 and not first.lost.is_set()
                started = time.monotonic()
                with pytest.raises(LockTimeout):
                    await client.lock("async", ttl=TTL, timeout=0.5).acquire()
                assert 0.5 <= time.monotonic() - started < 5.0
                second = client.lock("async", ttl=TTL, timeout=20)
                waiter = asyncio.create_task(second.acquire())
                await asyncio.sleep(TTL)  # a renewed holder keeps it past its ttl
                assert not waiter.done() and not first.lost.is_set()
            assert await asyncio.wait_for(waiter, 20) == 2  # woken by the release
            await second.release()
            assert await client.election("async-none", "x").leader() is None

    asyncio.run(scenario())
