"""Write backpressure on a real node: a burst of whole write requests against a queue of one.

Every answer is a 2xx or the documented 503 (``unavailable``, ``Retry-After``); the accepted
writes are stored, the refused ones are not; refusals are answered from the bytes
(``refused_at_once``), and no slot reserved for an admitted write stays reserved."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from raftreg.config import RaftTuning
from raftreg.testing import LocalCluster, wait_for
from tests.conftest import START_TIMEOUT
from tests.http.conftest import Http

BURST = 200
DEADLINE = 60.0
BODY = b'{"address":"10.0.0.1","port":8080}'


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(1, name="backpressure", tuning=RaftTuning(max_queued_commands=1))
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


def burst(port: int, prefix: str) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """One connection per write, every request sent whole before any answer is read; the answers
    by instance id."""
    socks: dict[str, socket.socket] = {}
    try:
        for i in range(BURST):
            sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
            socks[f"{prefix}-{i}"] = sock
        for instance, sock in socks.items():
            sock.sendall(f"PUT /v1/services/bp/instances/{instance} HTTP/1.1\r\nHost: n1\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
        return {instance: read_answer(sock) for instance, sock in socks.items()}
    finally:
        for sock in socks.values():
            sock.close()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the answer's head"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the answer's body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def group_commit(api: Http) -> dict[str, int]:
    stats: dict[str, int] = api.get("/v1/cluster").json()["group_commit"]
    return stats


def test_a_burst_is_answered_2xx_or_503_at_once_and_only_the_accepted_are_stored(cluster: LocalCluster) -> None:
    api = Http(cluster.url("n1"), cluster.secret)
    port = int(cluster.url("n1").rsplit(":", 1)[1])
    before = group_commit(api)
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
    deadline = time.monotonic() + DEADLINE
    round_no = 0
    while not any(status == 503 for status, _, _ in answers.values()):  # almost always the first burst
        assert time.monotonic() < deadline, "no write was refused: the queue bound is not enforced"
        answers.update(burst(port, f"r{round_no}"))
        round_no += 1
    accepted = {i for i, (status, _, _) in answers.items() if status == 200}
    refused = {i for i, (status, _, _) in answers.items() if status == 503}
    assert accepted and accepted | refused == set(answers), {s for s, _, _ in answers.values()}
    for instance in refused:
        _, headers, body = answers[instance]
        assert headers["retry-after"] == "1"
        error = json.loads(body)["error"]
        assert error["code"] == "unavailable" and ("queued" in error["message"] or "waited" in error["message"]), error
    after = group_commit(api)
    assert after["refused_at_once"] - before["refused_at_once"] >= 1
    queue_503s = after["refused"] - before["refused"] + after["expired"] - before["expired"]
    assert queue_503s == len(refused), "a 503 that was not the write queue's"
    wait_for(lambda: group_commit(api)["reserved"] == 0, timeout=10, what="the reserved write slots given back")
    listed = {x["id"] for x in api.get("/v1/services/bp").json()["instances"]}
    assert accepted <= listed, "an acknowledged write is missing"
    assert not refused & listed, "a refused write was applied"
