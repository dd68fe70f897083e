"""Sample services and keys for the UI tests and the screenshots, written through the HTTP API."""

from __future__ import annotations

import base64
import socket
from typing import Any

from raftreg.testing import http_json, wait_for

CLOSED_TCP = "127.0.0.1:1"  # nothing listens there: a check against it fails, the instance is critical


def api(base: str, method: str, path: str, body: Any = None, data: bytes | None = None) -> Any:
    """One API call that must succeed; returns the decoded body."""
    code, out = http_json(base + path, method=method, body=body, data=data, timeout=10.0)
    assert code == 200, (method, path, code, out)
    return out


def register(base: str, service: str, instance_id: str, **fields: Any) -> Any:
    body = {"address": "10.0.0.1", "port": 8080, **fields}
    return api(base, "PUT", f"/v1/services/{service}/instances/{instance_id}", body)


def put_key(base: str, key: str, value: str) -> Any:
    return api(base, "PUT", f"/v1/kv/{key}", data=value.encode())


def get_key(base: str, key: str) -> tuple[str, int]:
    """(value as text, modify index) of a key."""
    entry = api(base, "GET", f"/v1/kv/{key}")
    return base64.b64decode(entry["value"]).decode(), int(entry["modify_index"])


def status(base: str, service: str, instance_id: str) -> str:
    return str(api(base, "GET", f"/v1/services/{service}/instances/{instance_id}")["status"])


def fail_check_after_passing(base: str, service: str, instance_id: str, **fields: Any) -> None:
    """Register an instance whose TCP check passes (a port this process listens on), then close
    the port: the check turns critical and stores its output (a check that never passed has
    none: an instance with a check starts critical without running it)."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        register(base, service, instance_id, **fields,
                 check={"tcp": f"127.0.0.1:{port}", "interval": "500ms", "timeout": "500ms"})
        wait_for(lambda: status(base, service, instance_id) == "passing", 20, f"{instance_id}'s check to pass")
    finally:
        listener.close()


def seed(base: str) -> None:
    """A small catalog: web (3 instances, one failing its check), api (2, one in maintenance),
    billing and search; and a few configuration keys."""
    register(base, "web", "web-1", address="10.0.1.11", tags=["v2", "blue"], meta={"zone": "eu-1a", "build": "8c1f"})
    register(base, "web", "web-2", address="10.0.1.12", tags=["v2", "green"], meta={"zone": "eu-1b", "build": "8c1f"},
             weight=50)
    fail_check_after_passing(base, "web", "web-3", address="10.0.1.13", tags=["v2"], meta={"zone": "eu-1c"})
    register(base, "api", "api-1", address="10.0.2.21", port=9000, tags=["grpc"], meta={"zone": "eu-1a"}, ttl="1h")
    register(base, "api", "api-2", address="10.0.2.22", port=9000, tags=["grpc"], meta={"zone": "eu-1b"}, ttl="1h")
    api(base, "PUT", "/v1/services/api/instances/api-2/status", {"status": "warning", "note": "draining for deploy"})
    register(base, "billing", "billing-1", address="10.0.3.31", port=7000, tags=["internal"])
    register(base, "search", "search-1", address="10.0.4.41", port=9200, tags=["es", "v8"])
    put_key(base, "config/web/feature-flags", '{"new_checkout": true, "dark_mode": false}')
    put_key(base, "config/web/max-connections", "512")
    put_key(base, "config/api/timeout", "2s")
    put_key(base, "locks/billing-leader", "billing-1")
