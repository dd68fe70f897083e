"""The lab's fault schedule (``lab_plan``), the Raft sockets' liveness options, the root check (no root needed)."""

from __future__ import annotations

import socket

import pytest

from raftreg.chaos.faults import PlannedFault
from raftreg.chaos.netfaults import LabFault, lab_plan
from raftreg.raft.tcp_liveness import ENV, tune_socket, user_timeout_s


def test_lab_plan_is_seeded_round_robin_and_first_of_each_name_hits_the_leader() -> None:
    names = ["isolate", "loss", "kill", "delay-leader", "disk-stall"]
    faults = lab_plan(3, names, 50)
    assert faults == lab_plan(3, names, 50) and faults != lab_plan(4, names, 50)
    assert [f.kind for f in faults[:5]] == ["isolate", "loss", "kill", "delay", "disk-stall"]
    assert all(f.target == "leader" for f in faults[:5])
    assert isinstance(faults[2], PlannedFault) and all(isinstance(f, LabFault) for f in faults if f.kind != "kill")
    assert all(f.target == "leader" for f in faults if f.kind == "delay")  # "-leader" always
    assert {f.target for f in faults if f.kind == "isolate"} == {"leader", "random"}
    lab = [f for f in faults if isinstance(f, LabFault)]
    assert all(5 <= f.amount <= 30 for f in lab if f.kind == "loss")
    assert all(50 <= f.amount <= 200 for f in lab if f.kind == "delay")
    assert all(1 <= f.amount <= 4 for f in lab if f.kind == "disk-stall")
    assert all(2 <= f.hold <= 5 for f in lab)


def test_raft_sockets_get_a_user_timeout_and_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        tune_socket(sock, 2.0)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2000
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    with socket.socket() as sock:
        tune_socket(sock, 0.0)  # off
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 0
    monkeypatch.setenv(ENV, "0")
    assert user_timeout_s() == 0.0
    monkeypatch.setenv(ENV, "nonsense")
    assert user_timeout_s() == 2.0


def test_the_lab_says_clearly_that_it_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from raftreg.cli.main import cli
    from raftreg.lab import netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(netns.LabError, match="needs root"):
        netns.require_root()
    result = CliRunner().invoke(cli, ["lab", "up", "--dir", "/nonexistent/raftreg-lab"])
    assert result.exit_code == 1 and "the lab needs root" in result.output
    result = CliRunner().invoke(cli, ["chaos", "--network", "lab", "--duration", "1s"])
    assert result.exit_code == 2 and "the lab needs root" in result.output
    result = CliRunner().invoke(cli, ["chaos", "--faults", "loss", "--duration", "1s"])
    assert result.exit_code == 2 and "need --network lab" in result.output
