"""Backup and restore at scale: the time to save a snapshot of a 3-node cluster holding N
instances (100,000 by default), the file's size, the time of an online restore of it
(``PUT /v1/snapshot``: checked, staged through the log in chunks, committed), and the time of a
new-cluster restore (``raftreg snapshot restore --new-cluster``: seeding 3 data directories) and
from then until the new cluster is ready with every instance on every node.

Run from the repository root::

    .venv/bin/python benchmarks/snapshot_bench.py              # 100,000 instances
    .venv/bin/python benchmarks/snapshot_bench.py --quick      # 10,000

Numbers only, nothing asserted; the machine may be shared (the load average is in the results).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

from harness.bench import Bench, catalog_counts, node_pids
from harness.cli import add_size_options, check_common_args, common_parser, run_and_report
from harness.closed_loop import put_jobs, run_closed_loop
from harness.report import log, print_table

from raftreg.backup.archive import read_archive
from raftreg.testing import LocalCluster, wait_for

PHASES = ("snapshot",)
SIZES: dict[str, tuple[Any, Any]] = {"instances": (100_000, 10_000)}
PREFIX = "snap-"
MIB = 1024 * 1024


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAFTREG_ADDR"}
    result = subprocess.run([sys.executable, "-m", "raftreg", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"raftreg {' '.join(args)} failed: {result.stderr}")
    return result


def _stored_everywhere(cluster: LocalCluster, n: int) -> bool:
    return all((catalog_counts(cluster.url(name), PREFIX) or (0, 0))[0] == n for name in cluster.names)


class SnapshotBench(Bench):
    PHASES = PHASES
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = SIZES

    def phase_snapshot(self) -> dict[str, Any]:
        n = self.size("instances")
        work = Path(tempfile.mkdtemp(prefix="raftreg-snapbench-"))
        out: dict[str, Any] = {"instances": n}
        with self.fresh_cluster() as cluster:
            leader = cluster.leader()
            log(f"snapshot: registering {n:,} instances via {leader}")
            jobs = put_jobs(self.args.procs, [cluster.url(leader)], self.args.concurrency, PREFIX, n,
                            max(1, n // 200), self.args.payload_bytes)
            run_closed_loop(self.client_pool(), jobs, node_pids(cluster), 1800)
            wait_for(lambda: _stored_everywhere(cluster, n), 300, f"{n} instances on every node")
            follower = cluster.followers()[0]

            t0 = time.perf_counter()
            _cli("--addr", cluster.config.node(follower).http, "snapshot", "save", "backup.snap", cwd=work)
            out["save_s"] = round(time.perf_counter() - t0, 2)
            archive = (work / "backup.snap").read_bytes()
            manifest, payload = read_archive(archive)
            out.update(file_mib=round(len(archive) / MIB, 2), state_mib=round(len(payload) / MIB, 2),
                       index=manifest.index)
            log(f"saved in {out['save_s']}s: {out['file_mib']} MiB file, {out['state_mib']} MiB state")

            t0 = time.perf_counter()
            with urllib.request.urlopen(urllib.request.Request(
                    f"{cluster.url(leader)}/v1/snapshot", data=archive, method="PUT",
                    headers={"Content-Type": "application/gzip"}), timeout=900) as resp:
                answer = json.loads(resp.read())
            out["online_restore_s"] = round(time.perf_counter() - t0, 2)
            wait_for(lambda: _stored_everywhere(cluster, n), 300, "the restored instances on every node")
            out["online_restore_everywhere_s"] = round(time.perf_counter() - t0, 2)
            out["online_restore_index"] = answer["index"]
            log(f"online restore in {out['online_restore_s']}s (on every node after "
                f"{out['online_restore_everywhere_s']}s)")

        target = LocalCluster(3, tuning=self.tuning, name="restored")
        self.cluster = target
        try:
            t0 = time.perf_counter()
            _cli("snapshot", "restore", str(work / "backup.snap"), "--new-cluster", "--config",
                 str(target.config_path), cwd=work)
            out["new_cluster_seed_s"] = round(time.perf_counter() - t0, 2)
            target.start(wait=300)
            wait_for(lambda: _stored_everywhere(target, n), 300, "every instance on every new node")
            out["new_cluster_ready_s"] = round(time.perf_counter() - t0, 2)
            log(f"new cluster: seeded in {out['new_cluster_seed_s']}s, ready with every instance after "
                f"{out['new_cluster_ready_s']}s")
        finally:
            target.close()
            self.cluster = None
            shutil.rmtree(work, ignore_errors=True)
        print_table(f"snapshot at {n:,} instances", ["metric", "value"], [
            ["save (GET /v1/snapshot to a verified file)", f"{out['save_s']} s"],
            ["file size (gzip'd) / state (msgpack)", f"{out['file_mib']} MiB / {out['state_mib']} MiB"],
            ["online restore (PUT, answered)", f"{out['online_restore_s']} s"],
            ["online restore (on every node)", f"{out['online_restore_everywhere_s']} s"],
            ["new-cluster restore (seed 3 dirs)", f"{out['new_cluster_seed_s']} s"],
            ["new-cluster restore to ready (all nodes)", f"{out['new_cluster_ready_s']} s"],
        ])
        self.note("snapshot", f"save at {n:,} inst", f"{out['save_s']} s")
        self.note("snapshot", "file size", f"{out['file_mib']} MiB")
        self.note("snapshot", "online restore", f"{out['online_restore_s']} s")
        self.note("snapshot", "new-cluster restore to ready", f"{out['new_cluster_ready_s']} s")
        return out


def main(argv: list[str] | None = None) -> int:
    p = common_parser(__doc__, "snapshot_bench", PHASES, procs=2, quick="10,000 instances",
                      tuning_example="max_entry_bytes=262144")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent registrations in total (default 64)")
    p.add_argument("--payload-bytes", type=int, default=300, help="size of one registration body (default 300)")
    add_size_options(p, SIZES)
    args = p.parse_args(argv)
    phases, tuning, overrides = check_common_args(args, PHASES)
    bench = SnapshotBench(args, tuning, overrides)
    return run_and_report(bench, phases, argv, "snapshot_bench", "raftreg snapshot benchmark",
                          detail=f", {bench.size('instances'):,} instances")


if __name__ == "__main__":
    sys.exit(main())
