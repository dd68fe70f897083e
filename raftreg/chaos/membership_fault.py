"""The chaos ``membership`` fault: replace a follower the documented way, under the workload.

Steps (README "Day-2 operations", the replacement flow): remove the follower from the cluster
(``DELETE /v1/cluster/members/{name}`` on the leader), stop it (kill -9), wipe its data directory,
add it back under the same name and addresses (``POST /v1/cluster/members``), start it with
``raftreg serve --join`` and wait until it is ready. Each call goes to the current leader and is
retried on the answers that mean "not now" (503: no leader or not the leader; 409: the previous
change not committed yet) until ``timeout``; any other refusal fails the fault.
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Any

from raftreg.signing import Signer
from raftreg.testing import LocalCluster, http_json

MEMBERS = "/v1/cluster/members"
RETRY_STATUSES = {0, 409, 503, 504}


def _leader_call(cluster: LocalCluster, method: str, path: str, body: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: tuple[int, Any] = (0, None)
    while time.monotonic() < deadline:
        try:
            leader = cluster.leader(timeout=2.0)
        except TimeoutError:
            continue
        data = json.dumps(body).encode() if body is not None else b""
        headers = Signer(cluster.secret, "chaos").headers(method, path, data)  # the operator
        last = http_json(cluster.url(leader) + path, method=method, data=data or None, headers=headers,
                         timeout=10.0, context=cluster.ssl_context)
        if last[0] == 200:
            return last[1]
        if last[0] not in RETRY_STATUSES:
            break
        time.sleep(0.2)
    raise RuntimeError(f"{method} {path} answered {last[0]}: {last[1]}")


def remove_member(cluster: LocalCluster, name: str, timeout: float = 30.0) -> None:
    """Remove ``name`` (a follower) from the cluster, then kill it and wipe its data directory."""
    _leader_call(cluster, "DELETE", f"{MEMBERS}/{name}", None, timeout)
    cluster.kill(name)
    shutil.rmtree(cluster.config.node_data_dir(name), ignore_errors=True)


def add_back(cluster: LocalCluster, name: str, timeout: float = 30.0) -> None:
    """Add ``name`` back with its addresses and start it with ``--join`` (does not wait)."""
    node = cluster.config.node(name)
    body = {"name": node.name, "raft": node.raft, "http": node.http, "role": node.role}
    body.update({k: v for k, v in (("consul_http", node.consul_http), ("dns", node.dns)) if v is not None})
    _leader_call(cluster, "POST", MEMBERS, body, timeout)
    cluster.procs[name].extra_args = ["--join"]
    cluster.start_node(name)
