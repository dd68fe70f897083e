"""The lab: a cluster on a real (namespaced) network. One lab serves the first tests; the last
test of the module takes it down and asserts nothing is left. A short chaos run builds its own."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftreg.chaos.lab_chaos import run_lab_chaos
from raftreg.chaos.runner import ChaosOptions
from raftreg.lab.cluster import LabCluster
from raftreg.lab.control import down, up
from raftreg.lab.netns import entered, in_ns, namespaces, run
from raftreg.lab.topology import LabState, leftovers, switch_port
from raftreg.testing import http_json

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    directory = tmp_path_factory.mktemp("lab")
    cluster = up(directory, 3, wait=60.0)
    try:
        yield cluster
    finally:
        if (directory / "lab.json").exists():
            down(directory)


def _register(cluster: LabCluster, node: str, instance: str, value: str) -> int:
    code, _ = http_json(f"{cluster.url(node)}/v1/services/web/instances/{instance}", method="PUT",
                        body={"address": "198.18.0.100", "port": 80, "meta": {"v": value}}, timeout=5.0)
    return code


def test_lab_serves_registrations_across_hosts(lab: LabCluster) -> None:
    addresses = {lab.config.node(n).http.split(":")[0] for n in lab.names}
    assert addresses == {"198.18.0.1", "198.18.0.2", "198.18.0.3"}
    for name in lab.names:  # each node listens on its own host's address only, nothing on loopback
        listening = in_ns(lab.host_of(name), "ss", "-Hltn")
        local = {line.split()[3] for line in listening.splitlines() if line.strip()}
        assert local and all(addr.startswith(lab.config.node(name).http.split(":")[0] + ":") for addr in local), local
    with entered(lab.state.client):
        assert _register(lab, "n1", "a", "1") == 200
        code, body = http_json(f"{lab.url('n3')}/v1/services/web/instances/a?consistent", timeout=5.0)
    assert code == 200 and body["meta"]["v"] == "1"
    # The lab is closed: no host has a route beyond 198.18.0.0/24, and the root namespace has no
    # interface in that range (read-only checks; nothing is sent outside the lab).
    for ns in [lab.state.client, *(lab.host_of(n) for n in lab.names)]:
        assert in_ns(ns, "ip", "-4", "route").split() == ["198.18.0.0/24", "dev", "eth0", "proto", "kernel",
                                                            "scope", "link", "src", in_ns(ns, "ip", "-4", "-o", "addr",
                                                            "show", "eth0").split()[3].split("/")[0]]
    assert "198.18.0." not in run(["ip", "-4", "-o", "addr"])


def test_partial_partition_of_the_leader_from_one_follower_does_not_stop_writes(lab: LabCluster) -> None:
    leader = lab.leader(timeout=30.0)
    cut, bridge = [n for n in lab.names if n != leader]
    a, b = switch_port(lab.index_of(leader)), switch_port(lab.index_of(cut))
    rules = "\n".join(["table bridge t17 {", "chain forward_filter {", "type filter hook forward priority 0;",
                       f'iifname "{a}" oifname "{b}" drop', f'iifname "{b}" oifname "{a}" drop', "}", "}", ""])
    in_ns(lab.state.switch, "nft", "-f", "-", stdin=rules)
    try:
        with entered(lab.state.client):
            for i in range(20):  # every write succeeds within one election's time, through any node
                deadline = time.monotonic() + 10.0
                while (code := _register(lab, lab.names[i % 3], f"p{i}", str(i))) != 200:
                    assert code in (503, 504, 0) and time.monotonic() < deadline, (i, code)
            code, body = http_json(f"{lab.url(bridge)}/v1/services/web/instances/p19?consistent", timeout=5.0)
            assert code == 200 and body["meta"]["v"] == "19"
    finally:
        in_ns(lab.state.switch, "nft", "delete", "table", "bridge", "t17")
    lab.wait_converged(timeout=30.0)


def test_lab_down_leaves_nothing_behind(lab: LabCluster) -> None:
    state = LabState.load(Path(lab.state.dir))
    pids = list(state.pids.values())
    root_rules = run(["nft", "list", "ruleset"])
    down(Path(state.dir))
    assert leftovers(state) == []
    assert not [ns for ns in namespaces() if ns.startswith(state.prefix)]
    assert all(not Path(f"/proc/{pid}").exists() or "raftreg" not in Path(f"/proc/{pid}/cmdline").read_text()
               for pid in pids)
    assert run(["nft", "list", "ruleset"]) == root_rules  # the root namespace's firewall is untouched
    assert not (Path(state.dir) / "lab.json").exists()


def test_short_lab_chaos_run_with_partitions_loss_and_delay_passes(tmp_path: Path) -> None:
    opts = ChaosOptions(nodes=3, duration=30.0, faults=("partial-leader", "loss", "isolate", "delay", "oneway"),
                        rate=50.0, clients=4, seed=5, report_path=tmp_path / "report.json", progress=False,
                        network="lab", lab_dir=tmp_path / "lab")
    before = set(namespaces())
    report = run_lab_chaos(opts)
    summary = json.loads((tmp_path / "report.json").read_text())
    print(json.dumps(summary["faults"]["by_kind"]), summary["faults"]["catch_up_s"])
    assert report.passed, "\n".join(report.violations) + "\n" + report.failing_history
    kinds = " ".join(summary["faults"]["by_kind"])
    assert all(k in kinds for k in ("partial", "loss", "isolate", "delay")), kinds
    assert summary["ok"] > 200
    assert not (tmp_path / "lab" / "lab.json").exists()  # torn down
    assert not {ns for ns in set(namespaces()) - before if ns.startswith("rr")}
