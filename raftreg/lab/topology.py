"""The lab's network: N hosts and one client as network namespaces on a bridge in its own namespace.

::

    <prefix>-sw   the switch: bridge br0, one port v<i> per host (v1..vN, vc for the client)
    <prefix>-n<i> host i: eth0 = 198.18.0.<i>/24 (a raftreg node binds it)
    <prefix>-c    the client: eth0 = 198.18.0.100/24 (the chaos workload and the tests' calls)

No veth touches the root namespace, so nothing in the lab can reach (or be reached from) the
machine's own network; addresses come from the benchmarking range 198.18.0.0/24 only. The
prefix is ``rr`` + 4 random hex digits, unique per lab, so two labs cannot collide.

State on disk (``<dir>/lab.json``, ``LabState``) is written *before* anything is created and
updated as processes and mounts appear, so ``destroy`` removes everything after a crash too:
the processes in the lab's namespaces (``ip netns pids``), the FUSE mounts it recorded, then the
namespaces; deleting a namespace deletes its veths, nft tables, iptables rules and qdiscs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from raftreg.lab.netns import LabError, in_ns, namespaces, pids_in, require_root, run

SUBNET = "198.18.0"
CLIENT_HOST = 100
STATE_FILE = "lab.json"


def host_address(index: int) -> str:
    """Host ``index``'s address (1-based; the client is ``CLIENT_HOST``)."""
    return f"{SUBNET}.{index}"


@dataclass
class LabState:
    """What a lab created, recorded in ``<dir>/lab.json``."""

    prefix: str
    nodes: int
    dir: str
    secret: str = ""
    pids: dict[str, int] = field(default_factory=dict)  # node name -> pid of its raftreg serve
    mounts: dict[str, str] = field(default_factory=dict)  # node name -> FUSE mount point (disk faults)
    helpers: list[int] = field(default_factory=list)  # FUSE daemons, NFQUEUE holders
    created: float = 0.0

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def client(self) -> str:
        return f"{self.prefix}-c"

    def host(self, index: int) -> str:
        return f"{self.prefix}-n{index}"

    @property
    def namespaces(self) -> list[str]:
        return [self.switch, self.client, *(self.host(i) for i in range(1, self.nodes + 1))]

    def save(self) -> None:
        path = Path(self.dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)

    @staticmethod
    def load(directory: Path) -> LabState:
        path = directory / STATE_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab in {directory} (no {STATE_FILE})") from None
        return LabState(**raw)


def new_state(directory: Path, nodes: int) -> LabState:
    """A fresh state with an unused prefix, saved before anything is created."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE_FILE).exists():
        raise LabError(f"a lab already runs from {directory} (see {STATE_FILE}): run raftreg lab down --dir "
                       f"{directory} first")
    taken = set(namespaces())
    while True:
        prefix = f"rr{secrets.token_hex(2)}"
        if not any(ns.startswith(prefix + "-") for ns in taken):
            break
    state = LabState(prefix=prefix, nodes=nodes, dir=str(directory.resolve()), created=time.time())
    state.save()
    return state


def _attach(state: LabState, ns: str, port: str, address: str) -> None:
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", state.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "-n", state.switch, "link", "set", port, "master", "br0"])
    run(["ip", "-n", state.switch, "link", "set", port, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])


def build(state: LabState) -> None:
    """Create the switch, the hosts and the client (``state`` is already on disk)."""
    require_root()
    run(["ip", "netns", "add", state.switch])
    run(["ip", "-n", state.switch, "link", "set", "lo", "up"])
    run(["ip", "-n", state.switch, "link", "add", "br0", "type", "bridge"])
    run(["ip", "-n", state.switch, "link", "set", "br0", "up"])
    for i in range(1, state.nodes + 1):
        _attach(state, state.host(i), switch_port(i), host_address(i))
    _attach(state, state.client, "vc", host_address(CLIENT_HOST))


def switch_port(index: int) -> str:
    """The switch's port (veth name inside the switch namespace) towards host ``index``."""
    return f"v{index}"


def lab_namespaces(state: LabState) -> list[str]:
    """The lab's namespaces that exist now (recorded or carrying its prefix)."""
    existing = namespaces()
    return [ns for ns in existing if ns in state.namespaces or ns.startswith(state.prefix + "-")]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)


def destroy(state: LabState) -> list[str]:
    """Remove everything the lab created; what was removed (for ``lab down``'s output). Safe to
    call again, and after a crash of the tool that built the lab."""
    require_root()
    removed: list[str] = []
    for name, mount in state.mounts.items():  # first: a FUSE mount whose daemon died looks unmounted to stat
        if is_mounted(mount):
            run(["fusermount3", "-u", "-z", mount], check=False)
            if is_mounted(mount):
                run(["umount", "-l", mount], check=False)
            removed.append(f"FUSE mount of {name} at {mount}")
    for ns in lab_namespaces(state):
        for pid in pids_in(ns):
            _kill(pid)
            removed.append(f"process {pid} in {ns}")
    for pid in [*state.pids.values(), *state.helpers]:
        if _ours(state, pid):
            _kill(pid)
    for ns in lab_namespaces(state):
        deadline = time.monotonic() + 5.0
        while pids_in(ns) and time.monotonic() < deadline:
            time.sleep(0.05)
        in_ns(ns, "nft", "flush", "ruleset", check=False)
        run(["ip", "netns", "del", ns], check=False)
        removed.append(f"namespace {ns} (its veths, nft tables, iptables rules and qdiscs)")
    leftover = lab_namespaces(state)
    if leftover:
        raise LabError(f"could not remove namespaces {leftover}")
    with contextlib.suppress(FileNotFoundError):
        (Path(state.dir) / STATE_FILE).unlink()
    return removed


def leftovers(state: LabState) -> list[str]:
    """Anything of this lab still present: namespaces, live recorded processes, mounts (tests
    assert this is empty after ``destroy``)."""
    found = [f"namespace {ns}" for ns in lab_namespaces(state)]
    for pid in [*state.pids.values(), *state.helpers]:
        if _alive(pid) and _ours(state, pid):
            found.append(f"process {pid}")
    found += [f"mount {m}" for m in state.mounts.values() if is_mounted(m)]
    return found


def is_mounted(path: str) -> bool:
    """Whether ``path`` is a mount point (from /proc/self/mounts: ``os.path.ismount`` says no for a
    FUSE mount whose daemon is gone)."""
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f if len(line.split()) > 1)


def _ours(state: LabState, pid: int) -> bool:
    """Whether ``pid`` still runs a program of this lab (its command line names the lab's
    directory or prefix): a recorded pid may have been reused since a crash."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state.dir in cmdline or state.prefix in cmdline


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return False
