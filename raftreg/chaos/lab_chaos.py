"""``raftreg chaos --network lab``: the chaos run against a ``LabCluster`` (one node per network
namespace), with network and disk faults besides the process ones.

The lab is built first (``raftreg.lab.control.up``); then this process's main thread enters the
lab's client namespace (198.18.0.100) *before* the event loop and its worker threads exist, so
the workload, the monitor and the checks all talk to the nodes over the lab's bridge, through
whatever faults the switch and the hosts apply. The runner (``runner._run``) is the same as for
a local run; only the injector (``LabFaultInjector``) and the schedule (``lab_plan``) differ.
The lab is always torn down (``lab down``), the data kept only with ``keep_data``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from raftreg.chaos.netfaults import DISK_FAULT_KINDS, LabFaultInjector, lab_plan
from raftreg.chaos.runner import ChaosOptions, ChaosReport, _run
from raftreg.lab.control import up
from raftreg.lab.netns import entered
from raftreg.lab.topology import destroy


def run_lab_chaos(opts: ChaosOptions) -> ChaosReport:
    """The whole lab run (blocking; needs root)."""
    own_dir = opts.lab_dir is None
    directory = opts.lab_dir or Path(tempfile.mkdtemp(prefix="raftreg-lab-"))
    disk = any(name.removesuffix("-leader") in DISK_FAULT_KINDS for name in opts.faults)
    mounts = None
    if disk:
        from raftreg.chaos.diskfaults import DiskFaults

        mounts = DiskFaults(directory, opts.nodes)
    cluster = None
    try:
        data_dirs = mounts.mount_all() if mounts else None
        cluster = up(directory, opts.nodes, tuning=opts.tuning, data_dirs=data_dirs)
        if mounts:
            mounts.record(cluster.state)
        with entered(cluster.state.client):
            injector = LabFaultInjector(cluster)
            return asyncio.run(_run(cluster, opts, injector, lab_plan(opts.seed, list(opts.faults), 100_000)))
    finally:
        if cluster is not None:
            cluster.close()
            destroy(cluster.state)
        if mounts:
            mounts.unmount_all()
        if own_dir and not opts.keep_data:
            shutil.rmtree(directory, ignore_errors=True)
