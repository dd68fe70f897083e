"""The blocking client's transport and failover against small scripted HTTP servers in threads.

Each ``Node`` is a real ``http.server`` on 127.0.0.1 that answers with a scripted action and
counts, server-side, every request and connection it saw."""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from raftreg.client import OutcomeUnknown, Registration, RegistryClient, Unavailable
from raftreg.testing import free_ports

SERVICES = {"index": 7, "services": [{"name": "web", "instances": 1, "passing": 1}]}
STORED = {"service": "s", "id": "i", "address": "10.0.0.1", "port": 80, "index": 9, "create_index": 9,
          "modify_index": 9}

Action = Callable[["Handler"], None]


def ok(body: Any, index: int = 7) -> Action:
    def act(h: Handler) -> None:
        h.reply(200, body, {"X-Raftreg-Index": str(index)})
    return act


def unavailable(retry_after: str = "1") -> Action:
    def act(h: Handler) -> None:
        h.reply(503, {"error": {"code": "unavailable", "message": "no leader"}}, {"Retry-After": retry_after})
    return act


def drop(h: Handler) -> None:
    """Read the whole request, then close the connection without answering."""
    h.close_connection = True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append((time.monotonic(), self.command, self.path))
        self.server.action(self)

    do_GET = do_PUT = do_POST = do_DELETE = _any

    def reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)
        if self.server.close_after_reply:  # closes the connection without saying so (no Connection: close)
            self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, action: Action) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.action = action
        self.lock = threading.Lock()
        self.requests: list[tuple[float, str, str]] = []
        self.connections = 0
        self.close_after_reply = False
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def serve() -> Iterator[Callable[[Action], Server]]:
    started: list[Server] = []

    def start(action: Action) -> Server:
        server = Server(action)
        started.append(server)
        return server

    yield start
    for s in started:
        s.shutdown()
        s.server_close()


def dead_addr() -> str:
    return f"127.0.0.1:{free_ports(1)[0]}"


def rng_reading_first(node: int, count: int) -> random.Random:
    """A seeded generator with which a new client's first plain read goes to ``nodes[node]``."""
    seed = next(s for s in range(1000) if random.Random(s).randrange(count) == node)
    return random.Random(seed)


def test_connection_refused_moves_on_to_the_next_node(serve: Callable[[Action], Server]) -> None:
    live = serve(ok(SERVICES))
    with RegistryClient([dead_addr(), live.addr], rng=rng_reading_first(0, 2)) as client:
        assert client.services().items[0].name == "web"
        live.action = ok(STORED, index=9)
        stored = client.register("s", "i", Registration(address="10.0.0.1", port=80))
        assert stored.index == 9
    assert [m for _, m, _ in live.requests] == ["GET", "PUT"]


def test_every_node_unreachable_is_unavailable_within_the_deadline() -> None:
    with RegistryClient([dead_addr(), dead_addr()], deadline=1.0) as client:
        t0 = time.monotonic()
        with pytest.raises(Unavailable, match="unreachable"):
            client.services()
        assert time.monotonic() - t0 < 1.5


def test_503_moves_on_and_the_node_is_left_for_its_retry_after(serve: Callable[[Action], Server]) -> None:
    busy, good = serve(unavailable("30")), serve(ok(STORED, index=9))
    with RegistryClient([busy.addr, good.addr]) as client:
        for _ in range(3):
            assert client.register("s", "i", Registration(address="10.0.0.1", port=80)).index == 9
        for _ in range(4):
            client.request("GET", "/v1/anything")
    assert len(busy.requests) == 1, busy.requests  # asked once, then left alone for 30 s
    assert len(good.requests) == 7


def test_retry_after_paces_the_rounds_when_every_node_is_busy(serve: Callable[[Action], Server]) -> None:
    a, b = serve(unavailable("1")), serve(unavailable("1"))
    with RegistryClient([a.addr, b.addr], deadline=2.5) as client, pytest.raises(Unavailable, match="no leader"):
        client.register("s", "i", Registration(address="10.0.0.1", port=80))
    times = sorted(t for s in (a, b) for t, _, _ in s.requests)
    rounds = [times[k:k + 2] for k in range(0, len(times), 2)]
    assert len(rounds) >= 2 and all(len(r) == 2 for r in rounds), times  # each round asks both nodes
    assert all(later[0] - earlier[1] >= 0.95 for earlier, later in itertools.pairwise(rounds)), times
    assert times[-1] - times[0] < 2.5, times


def test_a_dropped_non_idempotent_write_is_an_unknown_outcome_sent_once(serve: Callable[[Action], Server]) -> None:
    dropping, other = serve(drop), serve(ok({"ok": True}))
    with RegistryClient([dropping.addr, other.addr]) as client, pytest.raises(OutcomeUnknown, match="not sent again"):
        client.request("POST", "/v1/cluster/transfer-leader", json={"to": "n2"})
    assert len(dropping.requests) == 1
    assert other.requests == []


def test_a_dropped_idempotent_write_is_retried_on_the_next_node(serve: Callable[[Action], Server]) -> None:
    dropping, other = serve(drop), serve(ok(STORED, index=9))
    with RegistryClient([dropping.addr, other.addr]) as client:
        assert client.register("s", "i", Registration(address="10.0.0.1", port=80)).index == 9
    assert (len(dropping.requests), len(other.requests)) == (1, 1)


def test_a_dropped_idempotent_write_that_never_succeeds_is_an_unknown_outcome(
        serve: Callable[[Action], Server]) -> None:
    dropping = serve(drop)
    with RegistryClient([dropping.addr, dead_addr()], deadline=1.0) as client, \
            pytest.raises(OutcomeUnknown, match="outcome is unknown"):
        client.deregister("s", "i")
    assert len(dropping.requests) >= 1


def test_a_read_that_times_out_moves_on(serve: Callable[[Action], Server]) -> None:
    release = threading.Event()

    def slow(h: Handler) -> None:
        release.wait(10)
        ok(SERVICES)(h)

    stuck, good = serve(slow), serve(ok(SERVICES))
    try:
        with RegistryClient([stuck.addr, good.addr], timeout=0.3, rng=rng_reading_first(0, 2)) as client:
            assert client.services().index == 7
    finally:
        release.set()
    assert (len(stuck.requests), len(good.requests)) == (1, 1)


def test_connections_are_reused_and_a_closed_idle_one_is_never_used(serve: Callable[[Action], Server]) -> None:
    server = serve(ok(SERVICES))
    with RegistryClient([server.addr]) as client:
        for _ in range(5):
            client.services()
        assert server.connections == 1
        server.close_after_reply = True  # the server now closes each connection after answering
        for _ in range(3):
            client.services()
            client.request("POST", "/v1/x", json={})  # not idempotent: a lost connection would be fatal
    assert len(server.requests) == 11


def test_one_client_serves_many_threads(serve: Callable[[Action], Server]) -> None:
    a, b = serve(ok(SERVICES)), serve(ok(SERVICES))
    errors: list[BaseException] = []
    with RegistryClient([a.addr, b.addr]) as client:

        def work() -> None:
            try:
                for _ in range(20):
                    assert client.services().index == 7
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    assert len(a.requests) + len(b.requests) == 160
    assert len(a.requests) > 20 and len(b.requests) > 20  # reads are spread


async def test_the_blocking_client_works_inside_a_running_event_loop(serve: Callable[[Action], Server]) -> None:
    server = serve(ok(SERVICES))
    asyncio.get_running_loop()
    with RegistryClient([server.addr]) as client:
        assert client.services().index == 7
    await asyncio.sleep(0)  # the loop is still usable


def test_config_file_nodes_are_used(serve: Callable[[Action], Server], tmp_path: Any) -> None:
    server = serve(ok(SERVICES))
    config = tmp_path / "c.toml"
    config.write_text(f'name = "t"\n[[nodes]]\nname = "n1"\nhttp = "{dead_addr()}"\nraft = "x"\n'
                      f'[[nodes]]\nname = "n2"\nhttp = "{server.addr}"\nraft = "y"\n')
    with RegistryClient(config=config) as client:
        assert len(client.nodes) == 2
        assert client.services().index == 7
    with pytest.raises(ValueError, match="no node address"):
        RegistryClient()
    with pytest.raises(ValueError, match="not a node address"):
        RegistryClient(["http://h:1/path"])
