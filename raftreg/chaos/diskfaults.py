"""Disk faults for ``raftreg chaos --network lab``: ``disk-stall`` and ``disk-eio``.

With a disk fault in ``--faults``, each node's data directory is a FUSE pass-through
(``raftreg.lab.stallfs``) of ``<lab>/disk/<node>`` mounted at ``<lab>/mnt/<node>``; a fault
writes the node's control file: ``stall <s>`` delays every write, create, rename and fsync
(1-4 s), ``eio`` fails them. The heal writes ``ok``. What the node does about it is
``raftreg.node.disk_watch``'s policy (README "Testing on a real network"): a failed write makes
it exit loudly and the injector restarts it once the disk is healthy again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from raftreg.lab.cluster import LabCluster
from raftreg.lab.netns import LabError, run
from raftreg.lab.topology import LabState, is_mounted

MOUNT_TIMEOUT = 10.0


def control_file(directory: Path, name: str) -> Path:
    return directory / "disk" / f"{name}.mode"


def set_disk_mode(cluster: LabCluster, name: str, mode: str) -> None:
    """``ok``, ``stall <s>`` or ``eio`` for node ``name``'s data directory."""
    path = control_file(Path(cluster.state.dir), name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(mode)
    os.replace(tmp, path)


class DiskFaults:
    """The FUSE mounts of one lab (one per node)."""

    def __init__(self, directory: Path, nodes: int) -> None:
        self.directory = directory.resolve()
        self.names = [f"n{i}" for i in range(1, nodes + 1)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.mounts: dict[str, Path] = {}

    def mount_all(self) -> dict[str, Path]:
        """Mount every node's pass-through; node name -> data directory to give it."""
        for name in self.names:
            backing = self.directory / "disk" / name
            mount = self.directory / "mnt" / name
            backing.mkdir(parents=True, exist_ok=True)
            mount.mkdir(parents=True, exist_ok=True)
            control_file(self.directory, name).write_text("ok")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "raftreg.lab.stallfs", str(backing), str(mount),
                 str(control_file(self.directory, name))],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self.mounts[name] = mount
        deadline = time.monotonic() + MOUNT_TIMEOUT
        for name, mount in self.mounts.items():
            while not os.path.ismount(mount):
                if time.monotonic() > deadline or self.procs[name].poll() is not None:
                    self.unmount_all()
                    raise LabError(f"the FUSE pass-through for {name} did not mount at {mount}")
                time.sleep(0.02)
        return dict(self.mounts)

    def record(self, state: LabState) -> None:
        """Put the mounts and daemons into the lab's state (``lab down`` removes them)."""
        state.mounts.update({name: str(m) for name, m in self.mounts.items()})
        state.helpers += [p.pid for p in self.procs.values()]
        state.save()

    def unmount_all(self) -> None:
        for mount in self.mounts.values():
            if is_mounted(str(mount)):
                run(["fusermount3", "-u", "-z", str(mount)], check=False)
        for proc in self.procs.values():
            proc.kill()
            proc.wait()
