"""The package stands alone: ``python -m build`` makes an sdist and a wheel (built from the sdist,
so the sdist is complete too); the wheel, installed into a fresh virtual environment outside the
checkout, runs from an empty directory: ``raftreg --version``, ``import raftreg.client``, and
``raftreg dev`` (an embedded 3-node cluster: register, look up, Ctrl-C stops every node).

The build and the install happen once per session (``installed``). The build uses the hatchling
of the dev extra (``--no-isolation``: an isolated build would install it into a fresh environment
twice, about 7 s on a loaded 2-core machine); pip installs the wheel's dependencies from the
configured index as CI does (its cache makes a second run quick). pip byte-compiles them: left to
the first imports, the compiling happens in the three nodes at once and costs more (measured:
16.6 s of CPU for this file without, 12.1 s with).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

import pytest

from raftreg import __version__
from raftreg.testing import http_json, wait_for
from tests.cli.port_block import free_port_base

pytestmark = pytest.mark.cluster

CHECKOUT = Path(__file__).resolve().parents[2]
PID_LINE = re.compile(r"^\s+(n\d)\s+http://\S+\s+raft \S+.*\spid (\d+)$")


class Installed(NamedTuple):
    dist: Path  # the sdist and the wheel
    bin: Path  # the fresh venv's bin/
    env: dict[str, str]  # no trace of the checkout or of a cluster in the environment


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(CHECKOUT)], check=True,
                   capture_output=True, timeout=300)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    wheel = next(dist.glob("raftreg-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    str(wheel)], check=True, capture_output=True, timeout=600)
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "RAFTREG_ADDR", "RAFTREG_SECRET", "RAFTREG_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return Installed(dist, venv / "bin", env)


def run(installed: Installed, cwd: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(installed.bin / cmd[0]), *cmd[1:]], cwd=cwd, env=installed.env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_sdist_and_the_wheel_hold_every_file_the_package_needs(installed: Installed) -> None:
    wheel = zipfile.ZipFile(next(installed.dist.glob("raftreg-*.whl")))
    in_wheel = set(wheel.namelist())
    package_files = {str(p.relative_to(CHECKOUT)) for p in (CHECKOUT / "raftreg").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts}
    assert package_files <= in_wheel, sorted(package_files - in_wheel)
    assert {"raftreg/ui/index.html", "raftreg/ui/style.css", "raftreg/py.typed"} <= in_wheel
    with tarfile.open(next(installed.dist.glob("raftreg-*.tar.gz"))) as sdist:
        names = {n.partition("/")[2] for n in sdist.getnames()}
    assert {"deploy/raftreg@.service", "CHANGELOG.md", "README.md", "cluster-configs/local-3.toml",
            "raftreg/ui/index.html"} <= names


def test_version_and_the_client_from_an_empty_directory(installed: Installed, tmp_path: Path) -> None:
    version = run(installed, tmp_path, "raftreg", "--version")
    assert (version.returncode, version.stdout) == (0, f"raftreg {__version__} (pysyncobj 0.3.17, pinned ==0.3.17)\n")
    imported = run(installed, tmp_path, "python", "-c", "import raftreg.client, raftreg; print(raftreg.__file__)")
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()).is_relative_to(installed.bin.parent)  # the wheel's, not the checkout's


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()
    except OSError:
        return False


def leader(addr: str) -> str | None:
    code, body = http_json(f"http://{addr}/v1/cluster")
    return str(body.get("leader") or "") or None if code == 200 and isinstance(body, dict) else None


def test_dev_runs_a_cluster_from_an_empty_directory(installed: Installed, tmp_path: Path) -> None:
    base = free_port_base(3)
    dev = subprocess.Popen([str(installed.bin / "raftreg"), "dev", "--nodes", "3", "--port-base", str(base)],
                           cwd=tmp_path, env={**installed.env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    pids: dict[str, int] = {}
    try:
        assert dev.stdout is not None
        deadline = time.monotonic() + 30
        while len(pids) < 3 and time.monotonic() < deadline:
            line = dev.stdout.readline()
            assert line, "raftreg dev ended early"
            if match := PID_LINE.match(line.rstrip("\n")):
                pids[match.group(1)] = int(match.group(2))
        assert sorted(pids) == ["n1", "n2", "n3"]
        wait_for(lambda: leader(f"127.0.0.1:{base}"), 30.0, "a leader")
        registered = run(installed, tmp_path, "raftreg", "--addr", f"127.0.0.1:{base}", "register", "web", "w1",
                         "--address", "10.0.0.5", "--port", "8080")
        assert registered.returncode == 0, registered.stderr
        found = run(installed, tmp_path, "raftreg", "--addr", f"127.0.0.1:{base + 2}", "-o", "json", "lookup", "web",
                    "--consistent")
        assert found.returncode == 0, found.stderr
        assert '"address": "10.0.0.5"' in found.stdout and '"id": "w1"' in found.stdout
        assert (tmp_path / "raftreg-data" / f"local-3-p{base}" / "n1" / "FORMAT").is_file()
        with urllib.request.urlopen(f"http://127.0.0.1:{base + 1}/ui/", timeout=10) as page:  # from the wheel
            assert page.status == 200 and b"<html" in page.read().lower()
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=30) == 0
        wait_for(lambda: not any(alive(pid) for pid in pids.values()), 15.0, "every node process to end")
    finally:
        if dev.poll() is None:
            dev.kill()
        for pid in pids.values():
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
