"""Fixtures for the HTTP API tests: one real single-node cluster per test module, and a small
HTTP helper (stdlib ``http.client``: it sends paths, headers and raw bodies exactly as given)."""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import pytest

from raftreg.signing import Signer
from raftreg.testing import LocalCluster, wait_for
from tests.secret_watch import remember_secret

REQUEST_TIMEOUT = 15.0

ANY = object()  # "any value" for assert_error's field
_NO_BODY = object()


@dataclass
class Resp:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Http:
    """Requests against one node, plus the observations the tests share."""

    ANY = ANY

    def __init__(self, base_url: str, secret: str | None = None, *, source_host: str | None = None) -> None:
        """``source_host``: the local address requests are sent from (any 127.x.y.z on loopback:
        a distinct client for the node's per-address limits); the default one when None."""
        self.base_url = base_url
        self.secret = secret
        self.source_host = source_host
        parts = urlsplit(base_url)
        assert parts.hostname is not None and parts.port is not None
        self.host, self.port = parts.hostname, parts.port

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        json_body: Any = _NO_BODY,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> Resp:
        if json_body is not _NO_BODY:
            body = json.dumps(json_body).encode()
        hdrs = {} if content_type is None else {"Content-Type": content_type}
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT,
                                          source_address=(self.source_host, 0) if self.source_host else None)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            answer = Resp(resp.status, resp.headers, resp.read())
            if b'"secret_id"' in answer.body:  # a minted token: no node log may ever show it
                remember_secret(str(answer.json().get("secret_id", "")))
            return answer
        finally:
            conn.close()

    def signed(self, method: str, path: str, json_body: Any = None, *, secret: str | None = None) -> Resp:
        """A request signed as a cluster member would (node-to-node and debug endpoints)."""
        body = json.dumps(json_body).encode() if json_body is not None else b""
        key = secret or self.secret
        assert key, "this Http helper was made without the cluster secret"
        headers = Signer(key, "test").headers(method, path, body)
        return self.request(method, path, body or None, headers=headers)

    def get(self, path: str) -> Resp:
        return self.request("GET", path, content_type=None)

    def put(self, path: str, body: Any) -> Resp:
        return self.request("PUT", path, json_body=body)

    def delete(self, path: str) -> Resp:
        return self.request("DELETE", path, content_type=None)

    def put_ok(self, service: str, instance_id: str, body: Any) -> dict[str, Any]:
        resp = self.put(f"/v1/services/{service}/instances/{instance_id}", body)
        assert resp.status == 200, resp.body
        return resp.json()  # type: ignore[no-any-return]

    def delete_ok(self, service: str, instance_id: str) -> int:
        resp = self.delete(f"/v1/services/{service}/instances/{instance_id}")
        assert resp.status == 200, resp.body
        return int(resp.json()["index"])

    def cluster(self) -> dict[str, Any]:
        resp = self.get("/v1/cluster")
        assert resp.status == 200, resp.body
        return resp.json()  # type: ignore[no-any-return]

    def commit_index(self) -> int:
        return int(self.cluster()["commit_index"])

    @contextlib.contextmanager
    def unchanged(self, *paths: str) -> Iterator[None]:
        """Assert the block proposes no Raft command (same commit index) and leaves the service
        list and every GET of ``paths`` (instances, services) byte-identical."""
        watched = ["/v1/services", *paths]
        before_commit = self.commit_index()
        before = {p: (r.status, r.body) for p in watched for r in [self.get(p)]}
        yield
        assert self.commit_index() == before_commit, "a rejected request changed the Raft log"
        after = {p: (r.status, r.body) for p in watched for r in [self.get(p)]}
        assert after == before, "a rejected request changed the registry"

    @staticmethod
    def assert_no_traceback(body: bytes) -> None:
        assert b"Traceback" not in body, body
        assert b'File "' not in body, body

    @staticmethod
    def assert_error(resp: Resp, status: int, code: str, field: object = ANY) -> dict[str, Any]:
        """The response is API.md's error: ``{"error": {"code", "message", "field"?}}``.

        ``field=None`` requires that no field is named; ``ANY`` accepts anything."""
        assert resp.status == status, (resp.status, resp.body)
        Http.assert_no_traceback(resp.body)
        assert (resp.header("Content-Type") or "").startswith("application/json"), resp.headers
        body = resp.json()
        assert isinstance(body, dict) and set(body) == {"error"}, body
        err = body["error"]
        assert isinstance(err, dict), body
        assert set(err) <= {"code", "message", "field"}, err
        assert err["code"] == code, err
        assert isinstance(err["message"], str) and err["message"], err
        if field is None:
            assert "field" not in err, err
        elif field is not ANY:
            assert err.get("field") == field, err
        return err


@pytest.fixture(scope="module")
def cluster(single_node: LocalCluster) -> LocalCluster:
    """The module's single-node cluster (``single_node`` in tests/conftest.py)."""
    return single_node


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Http:
    return Http(cluster.url("n1"), cluster.secret)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads for requests that park (blocking queries)."""
    executor = ThreadPoolExecutor(max_workers=32)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)  # a failed test may leave requests parked


@pytest.fixture
def quiet(api: Http) -> dict[str, int]:
    """Nothing parked when the test starts (a failed earlier test may have left requests parked);
    returns the node's watch counters at that moment."""
    def watches() -> dict[str, int]:
        return api.cluster()["watches"]  # type: ignore[no-any-return]

    wait_for(lambda: watches()["waiting"] == 0 and watches()["applied_waiting"] == 0, 90.0, "no parked requests")
    return watches()
