"""Run-time membership on a real cluster (issue 16 items 1 and 3): one 3-node cluster goes
through every check in turn, to keep the CI time low.

bad input 400s -> preflight refusals -> forced compaction -> two concurrent adds (one accepted)
-> the winner starts with ``--join`` under a write load, installs the snapshot before it reports
ready, serves every acknowledged write and is counted -> removing the leader is refused,
transfer, then it works -> the removed node keeps running, the others' term does not move, and
it reports its removal (not ready) -> preflight with a member down (add and remove refused) ->
forced compaction, kill -9 of every member and restart with the original, unedited config file:
every member comes back with the current membership.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import WriteLoad, force_snapshot, service_ids

from raftreg.config import AclSettings, NodeConfig
from raftreg.signing import Signer
from raftreg.testing import LocalCluster, free_ports, http_json
from tests.secret_watch import remember_secret

pytestmark = pytest.mark.cluster

MEMBERS = "/v1/cluster/members"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def call(cluster: LocalCluster, node: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return http_json(cluster.url(node) + path, method=method, body=body, timeout=15.0)


def new_node(name: str) -> NodeConfig:
    http, raft = free_ports(2)
    return NodeConfig(name=name, http=f"127.0.0.1:{http}", raft=f"127.0.0.1:{raft}")


def spec(node: NodeConfig) -> dict[str, str]:
    return {"name": node.name, "raft": node.raft, "http": node.http}


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def member_names(cluster: LocalCluster, node: str) -> list[str] | None:
    headers = Signer(cluster.secret, "test").headers("GET", "/v1/cluster/config?format=json")
    code, body = http_json(cluster.url(node) + "/v1/cluster/config?format=json", headers=headers, timeout=2.0)
    return sorted(n["name"] for n in body["nodes"]) if code == 200 else None


def run_cli(cluster: LocalCluster, *args: str) -> str:
    addrs = ",".join(cluster.config.node(n).http for n in cluster.running())
    done = subprocess.run([sys.executable, "-m", "raftreg", "--addr", addrs, *args], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_refused(answer: tuple[int, Any], status: int, words: str, field: str | None = None) -> None:
    code, body = answer
    assert code == status, answer
    assert words in body["error"]["message"], answer
    if field is not None:
        assert body["error"].get("field") == field, answer


async def test_membership_lifecycle(make_cluster: Callable[..., LocalCluster]) -> None:
    cluster = make_cluster(3)
    leader = cluster.leader()
    follower = next(n for n in cluster.names if n != leader)
    before = member_names(cluster, leader)
    assert before == ["n1", "n2", "n3"]

    # Bad input: 400 naming the field, nothing changed.
    for body, field in [({"raft": "127.0.0.1:1", "http": "127.0.0.1:2"}, "name"),
                        ({"name": "x", "raft": "nohost", "http": "127.0.0.1:2"}, "raft"),
                        ({"name": "x", "raft": "127.0.0.1:1", "http": "127.0.0.1:2", "role": "boss"}, "role"),
                        ({"name": "x y", "raft": "127.0.0.1:1", "http": "127.0.0.1:2"}, "name"),
                        ({"name": "x", "raft": "127.0.0.1:1", "http": "127.0.0.1:2", "extra": 1}, "extra")]:
        code, answer = call(cluster, leader, "POST", MEMBERS, body)
        assert code == 400 and answer["error"]["field"] == field, (body, code, answer)
    assert call(cluster, leader, "POST", "/v1/cluster/transfer-leader", {"to": 5})[0] == 400

    # Preflight refusals.
    n1 = cluster.config.node("n1")
    assert_refused(call(cluster, leader, "POST", MEMBERS, {**spec(new_node("n1"))}), 409, "already named", "name")
    assert_refused(call(cluster, leader, "POST", MEMBERS, {**spec(new_node("x")), "raft": n1.raft}), 409,
                   "already used", "raft")
    assert_refused(call(cluster, leader, "DELETE", MEMBERS + "/nobody"), 404, "no member")
    assert_refused(call(cluster, leader, "DELETE", f"{MEMBERS}/{leader}"), 409, "transfer leadership first")
    assert_refused(call(cluster, follower, "POST", MEMBERS, spec(new_node("x"))), 503, f"the leader is {leader}")
    assert member_names(cluster, leader) == before

    # Compacted logs: the new member gets a snapshot, and is ready only once it is installed.
    force_snapshot(cluster, cluster.names)

    # Two concurrent adds: exactly one accepted.
    a, b = new_node("n4"), new_node("n5")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda n: call(cluster, leader, "POST", MEMBERS, spec(n)), [a, b]))
    codes = sorted(code for code, _ in answers)
    assert codes == [200, 409], answers
    joined, added_at = (a, answers[0][1]["index"]) if answers[0][0] == 200 else (b, answers[1][1]["index"])

    # The new member starts with --join under a write load, catches up, and is counted.
    load = WriteLoad(cluster, "svc", writers=4, nodes=list(cluster.names)).start()
    try:
        await load.wait_acks(20, timeout=20)
        cluster.add_process(joined)
        cluster.start_node(joined.name)
        await asyncio.to_thread(cluster.wait_node_ready, joined.name, 30.0)
        await load.wait_acks(len(load.acks) + 20, timeout=20)
    finally:
        await load.stop()
    assert not load.unexpected, load.unexpected[:3]
    caught_up = re.search(r"event=caught_up applied_index=(\d+)", cluster.log_text(joined.name))
    assert caught_up is not None and int(caught_up.group(1)) > added_at, caught_up
    cluster.wait_converged(timeout=30)
    missing = load.acked - service_ids(cluster, joined.name, "svc")
    assert not missing, f"{joined.name} misses {len(missing)} acknowledged writes"
    st = cluster.status(leader)
    assert st is not None
    row = next(m for m in st["members"] if m["name"] == joined.name)
    assert row["status"] == "follower" and row["role"] == "voter" and row["lag"] is not None, row
    for name in cluster.names:
        assert wait_until(lambda n=name: member_names(cluster, n) == sorted([*before, joined.name]), 10,
                          f"{name} to list {joined.name}")

    table = run_cli(cluster, "cluster", "members")
    assert f"* {leader}" in table and joined.name in table, table
    live = tomllib.loads(run_cli(cluster, "cluster", "config"))
    assert sorted(n["name"] for n in live["nodes"]) == sorted([*before, joined.name]), live

    # Remove the leader: refused; transfer to the new member; then it works.
    assert_refused(call(cluster, leader, "DELETE", f"{MEMBERS}/{leader}"), 409, "transfer leadership first")
    code, body = call(cluster, leader, "POST", "/v1/cluster/transfer-leader", {"to": joined.name})
    assert (code, body) == (200, {"leader": joined.name})
    new_leader = cluster.leader()
    assert new_leader == joined.name
    code, body = wait_until(lambda: (ans := call(cluster, new_leader, "DELETE", f"{MEMBERS}/{leader}"))[0] == 200
                            and ans, 10, "the old leader's removal")
    survivors = [n for n in cluster.names if n != leader]
    for name in survivors:
        assert wait_until(lambda n=name: member_names(cluster, n) == sorted(survivors), 10, f"{name} to drop {leader}")

    # The removed node keeps running: the others' term does not move.
    term = cluster.status(new_leader)["term"]  # type: ignore[index]
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        for name in survivors:
            st = cluster.status(name)
            assert st is not None and st["term"] == term, (name, st and st["term"], term)
        time.sleep(0.2)
    # ... and notices it was removed: not ready, saying why.
    wait_until(lambda: "removed from the cluster" in str(http_json(cluster.url(leader) + "/v1/ready")[1]), 15,
               f"{leader} to report its removal")
    assert "event=removed_from_cluster" in cluster.log_text(leader)
    cluster.kill(leader)

    # Preflight with one of three voters down: an add and removing a live voter are refused.
    down = next(n for n in survivors if n != new_leader)
    live = next(n for n in survivors if n not in (new_leader, down))
    cluster.kill(down)
    wait_until(lambda: next(m for m in cluster.status(new_leader)["members"]  # type: ignore[index]
                            if m["name"] == down)["status"] == "unreachable", 10, f"{down} to be seen down")
    assert_refused(call(cluster, new_leader, "POST", MEMBERS, spec(new_node("n6"))), 409, "are up")
    assert_refused(call(cluster, new_leader, "DELETE", f"{MEMBERS}/{live}"), 409, "are up")
    cluster.start_node(down)
    cluster.wait_node_ready(down, timeout=30)

    # Forced compaction, kill -9 of every member, restart with the original config file.
    force_snapshot(cluster, survivors)
    for name in survivors:
        cluster.kill(name)
    for name in survivors:
        cluster.start_node(name)
    for name in survivors:
        cluster.wait_node_ready(name, timeout=30)
        assert member_names(cluster, name) == sorted(survivors), name


def test_membership_routes_need_operator_rights_and_join_needs_an_add(make_cluster: Callable[..., LocalCluster],
                                                                       tmp_path: Path) -> None:
    cluster = make_cluster(1, acl=AclSettings(enabled=True, default_policy="deny"))
    url = cluster.url("n1")
    code, root = http_json(url + "/v1/acl/bootstrap", method="PUT", body={})
    assert code == 200, root
    remember_secret(root["secret_id"])
    tokens = {}
    for rule in ('operator read', 'service_prefix "" write'):
        code, body = http_json(url + "/v1/acl/tokens", method="PUT", body={"rules": [rule]},
                               headers=bearer(root["secret_id"]))
        assert code == 200, body
        remember_secret(body["secret_id"])
        tokens[rule] = body["secret_id"]
    replica = {"name": "r1", "raft": "127.0.0.1:1", "http": "127.0.0.1:2", "role": "replica"}
    assert http_json(url + MEMBERS, method="POST", body=replica)[0] == 401
    for secret in tokens.values():
        code, body = http_json(url + MEMBERS, method="POST", body=replica, headers=bearer(secret))
        assert code == 403 and "operator" in body["error"]["message"], body
    code, body = http_json(url + "/v1/cluster/config", headers=bearer(tokens['operator read']))
    assert code == 200 and [n["name"] for n in body["nodes"]] == ["n1"], body
    # The management token may: a replica is recorded (no Raft change), and listed.
    code, body = http_json(url + MEMBERS, method="POST", body=replica, headers=bearer(root["secret_id"]))
    assert code == 200, body
    code, body = http_json(url + "/v1/cluster/config", headers=bearer(root["secret_id"]))
    assert [(n["name"], n["role"]) for n in body["nodes"]] == [("n1", "voter"), ("r1", "replica")], body

    # serve --join for a name that was never added: a clear error, nothing started.
    env = {**os.environ, "RAFTREG_SECRET": cluster.secret}
    done = subprocess.run([sys.executable, "-m", "raftreg", "serve", "--config", str(cluster.config_path),
                           "--node", "ghost", "--join", "--data-dir", str(tmp_path / "ghost")],
                          capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode != 0 and "add it first" in done.stderr, done.stderr
