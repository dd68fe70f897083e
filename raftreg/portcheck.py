"""Is a port free? Checked before a local cluster starts, so a taken port is one clear line
naming it (and, when cheap to find, the process that holds it) instead of a node that dies.

``taken_ports`` binds each address the way the node will (TCP with SO_REUSEADDR, as aiohttp and
pysyncobj do, so sockets in TIME_WAIT do not count; UDP for DNS), and closes it at once. The
holder is looked up on Linux only, in /proc (listening TCP sockets of processes this user may
inspect); anywhere else, or when it is not visible, the message names the port alone.

``free_ports`` picks ports for the nodes of test and benchmark clusters (``raftreg.testing``).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
from pathlib import Path
from typing import NamedTuple

from raftreg.config import ClusterConfig, split_hostport


class Endpoint(NamedTuple):
    """One address a node of a config binds: ``what`` is e.g. ``"http of n1"``."""

    host: str
    port: int
    udp: bool
    what: str


def endpoints(config: ClusterConfig) -> list[Endpoint]:
    """Every address the nodes of ``config`` bind (DNS: UDP and TCP)."""
    found: list[Endpoint] = []
    for node in config.nodes:
        for kind in ("http", "raft", "consul_http", "dns"):
            addr = getattr(node, kind)
            if addr is None:
                continue
            host, port = split_hostport(addr)
            found.append(Endpoint(host, port, False, f"{kind} of {node.name}"))
            if kind == "dns":
                found.append(Endpoint(host, port, True, f"{kind} (udp) of {node.name}"))
    return found


def _bindable(endpoint: Endpoint) -> bool:
    family = socket.AF_INET6 if ":" in endpoint.host.strip("[]") else socket.AF_INET
    kind = socket.SOCK_DGRAM if endpoint.udp else socket.SOCK_STREAM
    with socket.socket(family, kind) as sock:
        if not endpoint.udp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((endpoint.host.strip("[]"), endpoint.port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str | None:
    """``"pid N (command line)"`` of a process listening on TCP ``port``, or None if not found."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for pid in filter(str.isdigit, _listdir("/proc")):
        for fd in _listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return f"pid {pid} ({_cmdline(pid)})"
    return None


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _cmdline(pid: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= 80 else text[:77] + "..."


def taken_ports(config: ClusterConfig) -> list[str]:
    """One line per address of ``config`` that cannot be bound now (empty: all free)."""
    problems = []
    for endpoint in endpoints(config):
        if _bindable(endpoint):
            continue
        holder = None if endpoint.udp else port_holder(endpoint.port)
        used_by = f", used by {holder}" if holder else ""
        proto = "udp" if endpoint.udp else "tcp"
        problems.append(f"port {endpoint.port} ({proto} {endpoint.host}, the {endpoint.what}) is already in use"
                        f"{used_by}")
    return problems


# Ports for test and benchmark servers come from below the kernel's ephemeral range (see free_ports).
FREE_PORT_FLOOR = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_low() -> int | None:
    """The first port the kernel hands to outgoing connections (Linux), None where unknown."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports of ``host`` that were free a moment ago.

    Drawn at random from ``FREE_PORT_FLOOR`` up to the kernel's ephemeral range (Linux's
    ``ip_local_port_range``) when that leaves room, so that no outgoing connection can be given
    one of them before the server binds it. The kernel's own choice (bind to port 0) is an
    ephemeral port, which any connect() may take next: a node of a benchmark cluster started
    right after etcd's members had connected to each other once found its port taken that way.
    Elsewhere, and for what the draw does not find, the kernel's choice.
    """
    ports: list[int] = []
    socks: list[socket.socket] = []
    low = ephemeral_low()
    try:
        if low is not None and low - FREE_PORT_FLOOR >= 1_000:
            for _ in range(50 * count):
                if len(ports) == count:
                    break
                port = random.randrange(FREE_PORT_FLOOR, low)
                if port in ports:
                    continue
                sock = socket.socket()
                socks.append(sock)
                try:
                    sock.bind((host, port))  # no SO_REUSEADDR: a port with connections in TIME_WAIT is skipped
                except OSError:
                    continue
                ports.append(port)
        while len(ports) < count:
            sock = socket.socket()
            socks.append(sock)
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
    finally:
        for sock in socks:
            sock.close()
    return ports
