"""Helpers of the Consul API tests: raw HTTP with headers, and a py-consul client per node."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import consul

from raftreg.testing import LocalCluster


def raw(url: str, *, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None,
        timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One request: (status, headers, body bytes), error statuses included."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def get_json(url: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    status, headers, body = raw(url, **kwargs)
    return status, headers, json.loads(body) if status == 200 and body else body.decode()


def client(cluster: LocalCluster, name: str, token: str | None = None) -> consul.Consul:
    host, _, port = cluster.consul_url(name).removeprefix("http://").rpartition(":")
    return consul.Consul(host=host, port=int(port), token=token)
