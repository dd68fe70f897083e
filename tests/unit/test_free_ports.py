"""``free_ports``: ports for test and benchmark servers, out of the kernel's ephemeral range."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest

from raftreg import portcheck
from raftreg.portcheck import FREE_PORT_FLOOR, free_ports


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_ports_come_from_below_the_ephemeral_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port_range = tmp_path / "ip_local_port_range"
    port_range.write_text("40000\t60999\n")
    monkeypatch.setattr(portcheck, "EPHEMERAL_RANGE", port_range)
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(FREE_PORT_FLOOR <= port < 40000 for port in ports), ports
    assert all(_bindable(port) for port in ports)


def test_a_taken_port_is_never_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port_range = tmp_path / "ip_local_port_range"
    port_range.write_text(f"{FREE_PORT_FLOOR + 1002} 60999\n")  # room for 1,002 ports only
    monkeypatch.setattr(portcheck, "EPHEMERAL_RANGE", port_range)
    held = []
    try:
        for port in range(FREE_PORT_FLOOR, FREE_PORT_FLOOR + 1000):  # all but two taken (or already in use)
            sock = socket.socket()
            held.append(sock)
            with contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", port))
        ports = free_ports(3)
    finally:
        for sock in held:
            sock.close()
    assert len(set(ports)) == 3
    assert not any(FREE_PORT_FLOOR <= port < FREE_PORT_FLOOR + 1000 for port in ports), ports


def test_without_the_kernels_range_the_kernel_chooses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portcheck, "EPHEMERAL_RANGE", tmp_path / "absent")
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(_bindable(port) for port in ports)
