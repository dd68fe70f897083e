"""deploy/raftreg@.service: what it runs, and ``systemd-analyze verify`` accepts it (Debian's
systemd package, installed by .ci/ensure-systemd; systemd itself does not run in CI's container,
so the unit is verified, not started: tests/cluster/test_three_hosts.py runs its command line)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "raftreg@.service"
BINARY = "/opt/raftreg/bin/raftreg"


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_unit_runs_the_node_named_by_the_instance_with_the_secret_as_a_credential() -> None:
    unit = directives(UNIT.read_text())
    assert unit["ExecStart"] == [f"{BINARY} serve --config /etc/raftreg/cluster.toml --node %i --log-format json"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["User"] == ["raftreg"] and unit["Group"] == ["raftreg"]
    assert unit["LoadCredential"] == ["raftreg-secret:/etc/raftreg/secret"]  # ClusterConfig.read_secret's name
    assert unit["StateDirectory"] == ["raftreg"]  # data_dir = "/var/lib/raftreg" in `raftreg config init`'s config
    assert unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"]
    assert unit["WantedBy"] == ["multi-user.target"]


def verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: run .ci/ensure-systemd (make test does)")
    instance = tmp_path / "raftreg@n1.service"  # a template is verified through one of its instances
    instance.write_text(text)
    return subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True, timeout=60, check=False)


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this environment's raftreg.
    raftreg = Path(sys.executable).parent / "raftreg"
    assert raftreg.is_file()
    result = verify(UNIT.read_text().replace(BINARY, str(raftreg)), tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a directive systemd cannot parse is reported (on stderr)."""
    result = verify(UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes"), tmp_path)
    assert "Failed to parse service restart specifier" in result.stderr
