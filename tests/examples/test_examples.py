"""The examples run for real: a 3-node raftreg cluster, three ``examples/cart_service.py`` replicas
(separate processes registering themselves), and ``examples/cart_caller.py`` balancing calls over
them while one replica is killed with SIGKILL halfway: the caller must see no failed call, and the
surviving replicas must serve the calls after the kill.

With the replicas' health check (the registry marks the dead replica critical within about a
second and discovery drops it), and with a TTL lease only (10 s: the dead replica stays listed for
the rest of the run, so the caller's retries and outlier ejection alone keep calls from failing);
over HTTP (aiohttp) and over gRPC (``grpc_cart_*``, skipped without grpcio)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftreg.client import RegistryClient
from raftreg.testing import LocalCluster, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START_TIMEOUT = 60.0  # other engineers may run clusters on this 2-core machine
CALLS = 400
# kind -> (service script, caller script, service name)
KINDS = {
    "http": ("cart_service.py", "cart_caller.py", "cart"),
    "grpc": ("grpc_cart_service.py", "grpc_cart_caller.py", "cart-grpc"),
}


class Proc:
    """A child process whose stdout lines are read by a thread into a queue (so reads can time out)."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output

    def _pump_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.stderr.append(line)

    def next_line(self, deadline: float, what: str) -> str:
        """The next stdout line; AssertionError if the process ends or ``deadline`` (monotonic) passes."""
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"timed out waiting for {what}; stderr:\n{''.join(self.stderr)[-4000:]}") from None
        if line is None:
            raise AssertionError(f"the process ended (status {self.popen.wait()}) before {what}; "
                                 f"stderr:\n{''.join(self.stderr)[-4000:]}")
        return line

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(3, name="examples")
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.mark.parametrize(("kind", "health"), [("http", "check"), ("http", "ttl_only"), ("grpc", "check")])
def test_caller_sees_no_failure_when_a_replica_is_killed_halfway(cluster: LocalCluster, procs: list[Proc],
                                                                 kind: str, health: str) -> None:
    if kind == "grpc":
        pytest.importorskip("grpc", reason="the gRPC example needs the examples extra (grpcio)")
    service_script, caller_script, service = KINDS[kind]
    registry = ",".join(cluster.config.node(name).http for name in cluster.names)
    options = ["--check-interval", "0.5"] if health == "check" else ["--no-check"]
    replicas = {}
    for n in (1, 2, 3):
        replicas[f"cart-{n}"] = proc = Proc(str(EXAMPLES / service_script), "--id", f"cart-{n}", "--port", "0",
                                            "--registry", registry, "--ttl", "10s", *options)
        procs.append(proc)
    for name, proc in replicas.items():
        line = proc.next_line(time.monotonic() + 60, f"{name} to register")
        assert line.startswith(f"ready {name} "), line

    with RegistryClient(registry.split(",")) as client:
        wait_for(lambda: len(client.instances(service, passing=True).items) == 3, 60,
                 f"3 passing {service} instances (their first check)")

    caller = Proc(str(EXAMPLES / caller_script), "--registry", registry, "--calls", str(CALLS), "--interval",
                  "0.01", "--replicas", "3", "--balancer", "round_robin", "--trace", "--json")
    procs.append(caller)
    deadline = time.monotonic() + 120
    victim = "cart-2"
    before: list[tuple[int, str]] = []  # (call number, replica) read before the kill
    after: list[tuple[int, str]] = []
    summary = None
    while summary is None:
        line = caller.next_line(deadline, "the caller's summary")
        if line.startswith("summary "):
            summary = json.loads(line.removeprefix("summary "))
            break
        if not line.startswith("call "):
            continue
        _, number, outcome, rest = line.split(" ", 3)
        assert outcome == "ok", f"the caller saw a failed call: {line}"
        (after if replicas[victim].popen.returncode is not None else before).append((int(number), rest.split()[0]))
        if int(number) == CALLS // 2 and replicas[victim].popen.returncode is None:
            replicas[victim].kill()

    assert caller.popen.wait(timeout=30) == 0, "".join(caller.stderr)[-4000:]
    print(f"caller: {summary}; {len(before)} calls read before the kill, {len(after)} after")
    assert summary["failed"] == 0 and sum(summary["served"].values()) == CALLS, summary
    if health == "ttl_only":
        # Listed all along, the dead replica got 3 attempts (each retried elsewhere) until it was
        # ejected, then one per backoff (1 s, 2 s): not one in three calls, as without ejection.
        assert 3 <= summary["retried"] <= 10, summary
    # (With the check, the registry may mark it critical before the balancer's turn comes.)
    assert {replica for _, replica in before} == set(replicas), before  # all three served before the kill
    survivors = set(replicas) - {victim}
    served_after = {replica for _, replica in after}
    assert survivors <= served_after, f"after the kill calls went to {served_after}"
    last_before = max(number for number, _ in before)
    late = [(number, replica) for number, replica in after if replica == victim and number > last_before + 10]
    assert not late, f"the killed replica served calls started after its death: {late}"
    assert len(after) >= CALLS // 3  # the kill really was halfway
