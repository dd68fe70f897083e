"""Helpers for the lease, heartbeat and check tests on real clusters (issue 5): instance requests
on a given node, a heartbeat sender thread, an HTTP check target whose answer can be flipped, a
TCP listener, and a module-scoped cluster that prints the node logs when a test using it failed."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from raftreg.testing import LocalCluster, http_json, wait_for

START_TIMEOUT = 60.0  # a loaded 2-core machine (another helper may run a benchmark)
LOG_TAIL_CHARS = 12000


# ---- clusters ------------------------------------------------------------------------------------

def print_logs(cluster: LocalCluster) -> None:
    for name in cluster.names:
        print(f"\n----- log of {name} (last {LOG_TAIL_CHARS} chars) -----")
        print(cluster.log_text(name)[-LOG_TAIL_CHARS:])


@contextlib.contextmanager
def running_cluster(**kwargs: Any) -> Iterator[LocalCluster]:
    """A started 3-node LocalCluster, killed (and its directory removed) at the end."""
    cluster = LocalCluster(3, **kwargs)
    try:
        cluster.start(wait=START_TIMEOUT)
        yield cluster
    finally:
        cluster.close()


@contextlib.contextmanager
def logs_on_failure(request: pytest.FixtureRequest, cluster: LocalCluster) -> Iterator[None]:
    """Around one test on a shared cluster: print the node logs when that test failed (pytest
    shows output captured during teardown with the failure report)."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        print_logs(cluster)


# ---- instance requests ---------------------------------------------------------------------------

def inst_url(cluster: LocalCluster, node: str, service: str, instance_id: str) -> str:
    return f"{cluster.url(node)}/v1/services/{service}/instances/{instance_id}"


def register(cluster: LocalCluster, node: str, service: str, instance_id: str, body: dict[str, Any],
             timeout: float = 20.0) -> dict[str, Any]:
    """PUT the instance on ``node``; asserts 200 and returns the stored instance (with ``index``)."""
    code, stored = http_json(inst_url(cluster, node, service, instance_id), method="PUT", body=body,
                             timeout=timeout)
    assert code == 200, f"register {service}/{instance_id} on {node}: {code} {stored}"
    assert isinstance(stored, dict)
    return stored


def deregister(cluster: LocalCluster, service: str, instance_id: str) -> None:
    """Best-effort cleanup (any node, 200 or 404)."""
    for node in cluster.running():
        code, _ = http_json(inst_url(cluster, node, service, instance_id), method="DELETE", timeout=20.0)
        if code in (200, 404):
            return


def heartbeat(cluster: LocalCluster, node: str, service: str, instance_id: str,
              timeout: float = 5.0) -> tuple[int, Any]:
    return http_json(inst_url(cluster, node, service, instance_id) + "/heartbeat", method="PUT", body={},
                     timeout=timeout)


def get_instance(cluster: LocalCluster, node: str, service: str, instance_id: str,
                 query: str = "", timeout: float = 5.0) -> tuple[int, Any]:
    return http_json(inst_url(cluster, node, service, instance_id) + query, timeout=timeout)


def set_status(cluster: LocalCluster, node: str, service: str, instance_id: str, status: str,
               note: str = "") -> dict[str, Any]:
    code, body = http_json(inst_url(cluster, node, service, instance_id) + "/status", method="PUT",
                           body={"status": status, "note": note}, timeout=20.0)
    assert code == 200, f"PUT status {status} on {service}/{instance_id} via {node}: {code} {body}"
    assert isinstance(body, dict)
    return body


def listing(cluster: LocalCluster, node: str, service: str, query: str = "") -> dict[str, dict[str, Any]]:
    """id -> instance as ``node`` lists ``service`` (``query``: e.g. ``?passing``)."""
    code, body = http_json(f"{cluster.url(node)}/v1/services/{service}{query}", timeout=5.0)
    assert code == 200, f"GET /v1/services/{service}{query} on {node}: {code} {body}"
    return {inst["id"]: inst for inst in body["instances"]}


def codes_everywhere(cluster: LocalCluster, service: str, instance_id: str,
                     nodes: list[str] | None = None) -> dict[str, int]:
    return {n: get_instance(cluster, n, service, instance_id, timeout=2.0)[0] for n in nodes or cluster.running()}


def gone_everywhere(cluster: LocalCluster, service: str, instance_id: str, nodes: list[str] | None = None) -> bool:
    return all(code == 404 for code in codes_everywhere(cluster, service, instance_id, nodes).values())


def cluster_info(cluster: LocalCluster, node: str) -> dict[str, Any]:
    """GET /v1/cluster on ``node`` (retried for up to 20 s)."""
    return wait_for(lambda: cluster.status(node, timeout=5.0), 20.0, f"/v1/cluster on {node}")


def leader_info(cluster: LocalCluster, leader: str) -> dict[str, Any]:
    """/v1/cluster of ``leader``; asserts it still leads (a test's premise: no failover)."""
    st = cluster_info(cluster, leader)
    assert st["state"] == "leader", f"{leader} no longer leads: {st['state']} (leader {st['leader']!r})"
    return st


def leases(cluster: LocalCluster, node: str) -> dict[str, Any]:
    return dict(cluster_info(cluster, node)["leases"])


def guard_warning(cluster: LocalCluster, node: str, state: str) -> bool:
    """The node's log has the mass-expiry guard's WARNING line for ``state`` (on/off)."""
    return any(" WARNING " in line and f"event=mass_expiry_guard state={state}" in line
               for line in cluster.log_text(node).splitlines())


# ---- heartbeats ------------------------------------------------------------------------------------

@dataclass
class Beat:
    sent: float
    done: float
    node: str
    status: int


@dataclass
class Heartbeater:
    """A thread sending ``PUT .../heartbeat`` for each active id every ``period`` seconds, round-robin
    over ``nodes``. ``pause(ids)`` stops the heartbeats of some ids, ``resume(ids)`` restarts them."""

    cluster: LocalCluster
    service: str
    ids: list[str]
    period: float
    nodes: list[str] | None = None
    beats: dict[str, list[Beat]] = field(default_factory=dict)
    _active: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Heartbeater:
        self._active = set(self.ids)
        self.beats = {i: [] for i in self.ids}
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeats-{self.service}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)

    def pause(self, ids: list[str]) -> None:
        """Stop heartbeating ``ids``; returns once no heartbeat of theirs is in flight."""
        with self._lock:
            self._active -= set(ids)

    def resume(self, ids: list[str]) -> None:
        with self._lock:
            self._active |= set(ids)

    def _run(self) -> None:
        nodes = self.nodes or self.cluster.names
        turn = 0
        while not self._stop.is_set():
            start = time.monotonic()
            for instance_id in self.ids:
                with self._lock:  # held while sending: pause() waits for an in-flight heartbeat
                    if instance_id not in self._active or self._stop.is_set():
                        continue
                    node = nodes[turn % len(nodes)]
                    turn += 1
                    sent = time.monotonic()
                    code, _ = heartbeat(self.cluster, node, self.service, instance_id)
                    self.beats[instance_id].append(Beat(sent, time.monotonic(), node, code))
            self._stop.wait(max(0.0, self.period - (time.monotonic() - start)))

    def last_ack(self, instance_id: str) -> float:
        """When the last acknowledged (200) heartbeat of ``instance_id`` was answered."""
        with self._lock:
            acks = [b.done for b in self.beats[instance_id] if b.status == 200]
        assert acks, f"no acknowledged heartbeat for {instance_id}"
        return acks[-1]

    def last_sent_ok(self, instance_id: str) -> float:
        """When the last acknowledged heartbeat of ``instance_id`` was sent."""
        with self._lock:
            acks = [b.sent for b in self.beats[instance_id] if b.status == 200]
        assert acks, f"no acknowledged heartbeat for {instance_id}"
        return acks[-1]

    def since(self, instance_id: str, t0: float) -> list[Beat]:
        with self._lock:
            return [b for b in self.beats[instance_id] if b.sent >= t0]

    def failures(self, ids: list[str] | None = None) -> list[tuple[str, Beat]]:
        with self._lock:
            return [(i, b) for i in ids or self.ids for b in self.beats[i] if b.status != 200]


# ---- check targets --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    at: float
    path: str
    code: int


class CheckTarget:
    """A small HTTP server on 127.0.0.1 in a thread: answers each path with its configured code
    (200 unless set) and records every request (monotonic time, path, code answered)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, int] = {}
        self.hits: list[Hit] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with target._lock:
                    code = target._codes.get(self.path, 200)
                    target.hits.append(Hit(time.monotonic(), self.path, code))
                body = b"ok" if code < 400 else b"failing"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="check-target")
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set_code(self, path: str, code: int) -> None:
        with self._lock:
            self._codes[path] = code

    def count(self, path: str, since: float = 0.0, code: int | None = None) -> int:
        with self._lock:
            return sum(1 for h in self.hits if h.path == path and h.at >= since and (code is None or h.code == code))

    def last_hit(self, path: str) -> float | None:
        with self._lock:
            times = [h.at for h in self.hits if h.path == path]
        return times[-1] if times else None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TcpListener:
    """A listening TCP socket on 127.0.0.1 that accepts and closes every connection, until ``close()``."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="tcp-target")
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5.0)
        self.sock.close()


def watch_instance(cluster: LocalCluster, node: str, service: str, instance_id: str, after: int,
                   wait: float = 20.0) -> tuple[int, Any]:
    """Blocking query: the instance once its service's index exceeds ``after`` (or after ``wait``)."""
    return get_instance(cluster, node, service, instance_id, query=f"?index={after}&wait={wait:g}s",
                        timeout=wait + 10.0)
