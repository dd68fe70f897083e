"""Helpers of the Consul API tests: starting and closing a cluster that serves the Consul API,
raw HTTP with headers, and a py-consul client per node."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import consul
import pytest

from raftreg.testing import LocalCluster

LOG_TAIL_CHARS = 8000


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


def start_cluster(**kwargs: Any) -> LocalCluster:
    """A started ``LocalCluster(consul=True, **kwargs)`` (3 nodes unless ``nodes`` says otherwise)."""
    cluster = LocalCluster(kwargs.pop("nodes", 3), consul=True, **kwargs)
    try:  # not ``with``: a start that times out must still kill the processes
        cluster.start(wait=60.0)
    except BaseException:
        cluster.close()
        raise
    return cluster


def close_cluster(cluster: LocalCluster, request: pytest.FixtureRequest) -> None:
    """Close ``cluster``, printing each node's log tail first if a test of the module failed."""
    if request.module.__dict__.get("_consul_tests_failed"):
        for name in cluster.names:
            print(f"\n----- log of {name} (last {LOG_TAIL_CHARS} chars) -----")
            print(cluster.log_text(name)[-LOG_TAIL_CHARS:])
    cluster.close()
