"""The embedded ``raftreg dev`` cluster (raftreg.devcluster) and the port check run before it
starts (raftreg.portcheck)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from raftreg.cli.local import DEFAULT_CONFIG
from raftreg.config import load_config, split_hostport
from raftreg.devcluster import PORT_BLOCK, default_http_addrs, dev_config
from raftreg.portcheck import endpoints, taken_ports
from tests.cli.port_block import free_port_base

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_default_is_the_repository_local_3_config() -> None:
    shipped = load_config(os.path.join(REPO, DEFAULT_CONFIG))
    embedded = dev_config()
    assert (embedded.name, embedded.data_dir) == (shipped.name, shipped.data_dir)
    assert embedded.nodes == shipped.nodes
    assert default_http_addrs() == ["127.0.0.1:8501", "127.0.0.1:8502", "127.0.0.1:8503"]


@pytest.mark.parametrize("nodes", [1, 3, 5])
def test_port_base_moves_every_port_into_one_block(nodes: int) -> None:
    config = dev_config(nodes, 30000)
    assert [n.name for n in config.nodes] == [f"n{k}" for k in range(1, nodes + 1)]
    ports = [split_hostport(e.host + ":" + str(e.port))[1] for e in endpoints(config) if not e.udp]
    assert len(ports) == len(set(ports)) == 4 * nodes
    assert all(30000 <= p < 30000 + PORT_BLOCK for p in ports)
    assert config.nodes[-1].dns == f"127.0.0.1:{30030 + nodes - 1}"
    assert config.data_dir == f"raftreg-data/local-{nodes}-p30000"


def test_unsupported_sizes_and_bases_are_refused() -> None:
    with pytest.raises(ValueError, match="--nodes must be one of 1, 3, 5"):
        dev_config(2)
    with pytest.raises(ValueError, match="--port-base"):
        dev_config(3, 65500)


def test_a_taken_port_is_named_with_its_holder() -> None:
    base = free_port_base()
    config = dev_config(1, base)
    assert taken_ports(config) == []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", base + 10))  # n1's raft port
        sock.listen()
        problems = taken_ports(config)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"port {base + 10} (tcp 127.0.0.1, the raft of n1) is already in use, "
                                  f"used by pid {os.getpid()} (")


def test_a_taken_udp_dns_port_is_found_too() -> None:
    base = free_port_base()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", base + 30))
        problems = taken_ports(dev_config(1, base))
    assert problems == [f"port {base + 30} (udp 127.0.0.1, the dns (udp) of n1) is already in use"]


def test_clients_outside_the_repository_default_to_the_embedded_cluster(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from raftreg.cli.main import _addresses

    monkeypatch.chdir(tmp_path)
    assert _addresses(None, None) == (["127.0.0.1:8501", "127.0.0.1:8502", "127.0.0.1:8503"], None)
    assert _addresses("10.0.0.1:1", None) == (["10.0.0.1:1"], None)
    monkeypatch.chdir(REPO)  # inside the repository: cluster-configs/local-3.toml, as before
    assert _addresses(None, None) == (default_http_addrs(), None)
