"""``raftreg tls init``, CLI commands over TLS (flags, environment, a config with ``[tls]``) and
``raftreg dev --tls``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftreg.config import ClusterConfig, NodeConfig, dump_config, load_config
from raftreg.testing import LocalCluster, free_ports
from raftreg.tls import server_context

pytestmark = pytest.mark.cluster


def raftreg(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAFTREG_")}
    return subprocess.run([sys.executable, "-m", "raftreg", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**clean, **(env or {})}, check=False)


def write_config(tmp_path: Path, nodes: int = 1) -> Path:
    ports = free_ports(2 * nodes)
    config = ClusterConfig(name="clitls", data_dir=str(tmp_path / "data"), nodes=[
        NodeConfig(f"n{i + 1}", f"127.0.0.1:{ports[2 * i]}", f"127.0.0.1:{ports[2 * i + 1]}") for i in range(nodes)])
    path = tmp_path / "cluster.toml"
    path.write_text(dump_config(config))
    return path


def test_tls_init_writes_the_files_and_prints_a_working_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, nodes=2)
    done = raftreg("tls", "init", "--config", str(path), "--verify-clients", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "data" / "tls"
    assert sorted(p.name for p in out.iterdir()) == ["ca-key.pem", "ca.pem", "client-key.pem", "client.pem",
                                                     "n1-key.pem", "n1.pem", "n2-key.pem", "n2.pem"]
    section = done.stdout[done.stdout.index("[tls]"):done.stdout.index("verify_clients = true")] + \
        "verify_clients = true\n"
    path.write_text(path.read_text() + "\n" + section)
    config = load_config(path)
    assert config.tls is not None and config.tls.verify_clients
    for name in ("n1", "n2"):
        server_context(config.tls, name)  # every file exists and each key matches its certificate
    again = raftreg("tls", "init", "--config", str(path), cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.fixture(scope="module")
def mutual() -> Iterator[LocalCluster]:
    with LocalCluster(1, name="clim", verify_clients=True) as cluster:
        yield cluster


def test_commands_over_tls_with_flags_environment_and_config(mutual: LocalCluster, tmp_path: Path) -> None:
    files = mutual.tls_files
    assert files is not None
    addr = mutual.config.node("n1").http
    env = {"RAFTREG_CA_FILE": str(files.ca_file), "RAFTREG_CERT_FILE": str(files.client_cert),
           "RAFTREG_KEY_FILE": str(files.client_key)}
    done = raftreg("--addr", addr, "register", "cart", "c1", "--address", "10.0.0.1", "--port", "80",
                   cwd=tmp_path, env=env)
    assert done.returncode == 0 and "registered cart/c1" in done.stdout, done.stderr
    # The config gives https and the CA; the client certificate comes from the flags.
    done = raftreg("--config", str(mutual.config_path), "--cert-file", str(files.client_cert), "--key-file",
                   str(files.client_key), "-o", "json", "lookup", "cart", cwd=tmp_path)
    assert done.returncode == 0 and '"c1"' in done.stdout, done.stderr
    # (Without a client certificate the same command fails after its deadline: tests/cluster/test_tls_cluster.py.)


def test_dev_tls_starts_an_https_cluster(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    dev = subprocess.Popen([sys.executable, "-m", "raftreg", "dev", "--tls", "--config", str(path)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=tmp_path,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True)
    assert dev.stdout is not None
    lines: list[str] = []
    try:
        while not any("leader:" in line for line in lines):
            line = dev.stdout.readline()
            assert line, f"dev ended: {lines}"
            lines.append(line)
        text = "".join(lines)
        tls_config = tmp_path / "data" / "cluster-tls.toml"
        assert f"curl -s --cacert {tmp_path / 'data' / 'tls' / 'ca.pem'} https://127.0.0.1:" in text
        assert f"raftreg --config {tls_config} status" in text
        done = raftreg("--config", str(tls_config), "-o", "json", "status", cwd=tmp_path)
        assert done.returncode == 0 and '"state": "leader"' in done.stdout, done.stderr
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
            raise
