"""Time from ``cluster add`` to the new member being ready, on a 3-node cluster holding 0 and then
100,000 instances (issue 16 item 9).

Each phase starts a fresh 3-node cluster, registers ``--instances`` instances through the leader
(the harness's closed-loop ``put`` jobs), forces a compaction on every node (so the new member
gets a snapshot, as it would in a cluster that has run for a while), then times:
``POST /v1/cluster/members`` (the change committed) -> ``raftreg serve --join`` started ->
``GET /v1/ready`` 200 on the new member (it applied up to the leader's commit index).

Run from the repository root::

    .venv/bin/python benchmarks/membership_bench.py                 # 0 and 100,000 instances
    .venv/bin/python benchmarks/membership_bench.py --quick         # 0 and 10,000
"""

from __future__ import annotations

import sys
import time
from typing import Any, ClassVar

from harness.bench import Bench, node_pids
from harness.cli import add_size_options, check_common_args, common_parser, run_and_report
from harness.closed_loop import put_jobs, run_closed_loop
from harness.report import fmt_s, log

from raftreg.config import NodeConfig
from raftreg.signing import Signer
from raftreg.testing import LocalCluster, free_ports, http_json

PHASES = ("empty", "loaded")
SIZES: dict[str, tuple[Any, Any]] = {"instances": (100_000, 10_000)}


def _signed(cluster: LocalCluster, node: str, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    headers = Signer(cluster.secret, "bench").headers(method, path, body)
    return http_json(cluster.url(node) + path, method=method, data=body or None, headers=headers, timeout=60)


class MembershipBench(Bench):
    PHASES: ClassVar[tuple[str, ...]] = PHASES
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = SIZES

    def phase_empty(self) -> dict[str, Any]:
        return self._add_one(0)

    def phase_loaded(self) -> dict[str, Any]:
        return self._add_one(self.size("instances"))

    def _add_one(self, instances: int) -> dict[str, Any]:
        with self.fresh_cluster() as cluster:
            leader = cluster.leader()
            if instances:
                log(f"registering {instances:,} instances via {leader}")
                jobs = put_jobs(self.args.procs, [cluster.url(leader)], 64, "m", instances, max(1, instances // 200),
                                300)
                run_closed_loop(self.client_pool(), jobs, node_pids(cluster), 1800)
            index = cluster.wait_converged(timeout=300)
            for name in cluster.names:
                code, body = _signed(cluster, name, "POST", "/v1/debug/snapshot")
                if code != 200:
                    raise RuntimeError(f"snapshot on {name}: {code} {body}")
            time.sleep(2.0)  # the forked snapshot writers finish (not timed)
            http_port, raft_port = free_ports(2)
            new = NodeConfig(name="n4", http=f"127.0.0.1:{http_port}", raft=f"127.0.0.1:{raft_port}")
            t0 = time.perf_counter()
            body = f'{{"name":"n4","raft":"{new.raft}","http":"{new.http}"}}'.encode()
            code, answer = _signed(cluster, leader, "POST", "/v1/cluster/members", body)
            if code != 200:
                raise RuntimeError(f"cluster add answered {code}: {answer}")
            added = time.perf_counter() - t0
            cluster.add_process(new)
            cluster.start_node("n4")
            cluster.wait_node_ready("n4", timeout=600)
            ready = time.perf_counter() - t0
            st = cluster.status("n4") or {}
        out = {"instances": instances, "applied_index_before": index, "add_s": round(added, 3),
               "ready_s": round(ready, 3), "new_member_applied": st.get("applied_index")}
        log(f"{instances:,} instances: add committed in {fmt_s(added)}, new member ready after {fmt_s(ready)}")
        self.note("empty" if not instances else "loaded", f"add -> ready at {instances:,} inst", fmt_s(ready))
        return out


def main(argv: list[str] | None = None) -> int:
    p = common_parser(__doc__, "membership_bench", PHASES, procs=2, quick="10,000 instances instead of 100,000",
                      tuning_example="raft_max_timeout=1.0")
    add_size_options(p, SIZES)
    args = p.parse_args(argv)
    phases, tuning, overrides = check_common_args(args, PHASES)
    return run_and_report(MembershipBench(args, tuning, overrides), phases, argv, "membership_bench",
                          "raftreg membership benchmark")


if __name__ == "__main__":
    sys.exit(main())
