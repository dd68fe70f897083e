"""README "From a laptop to three hosts", run on one machine: three loopback addresses
(127.0.0.2-4) stand for the hosts, a temporary directory for /etc/raftreg and /var/lib/raftreg.

The steps are the README's (its raftreg commands are read from the README and run, with the
hosts' addresses and paths substituted): ``raftreg config init --tls``, the files copied into place (the CA's
key stays behind), ``raftreg config check``, each node started with the command line of
deploy/raftreg@.service (``%i`` = the node, the secret handed over as the ``raftreg-secret``
credential in ``$CREDENTIALS_DIRECTORY``, not in the environment), then ``raftreg --config ...
status``, a registration and a lookup over HTTPS with the config's CA. systemd itself does not
run here (no systemd as PID 1 in the container): its part is the unit's command line and
environment, and tests/packaging/test_systemd_unit.py verifies the unit file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from raftreg.testing import free_ports, wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "raftreg@.service"
HOSTS = {"n1": "127.0.0.2", "n2": "127.0.0.3", "n3": "127.0.0.4"}


def readme_commands(etc: Path, var: Path) -> list[tuple[list[str], str | None]]:
    """The raftreg commands of the README's walkthrough, in order, as (arguments after
    ``raftreg``, file their output is redirected to): 10.0.0.N becomes 127.0.0.(N+1),
    /etc/raftreg ``etc`` and /var/lib/raftreg ``var``."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## From a laptop to three hosts\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        line = re.sub(r"\s+# .*$", "", line)
        line = re.sub(r"10\.0\.0\.(\d)", lambda m: f"127.0.0.{int(m.group(1)) + 1}", line)
        line = line.replace("/etc/raftreg", str(etc)).replace("/var/lib/raftreg", str(var))
        command, _, redirect = line.partition(" > ")
        words = shlex.split(command)
        if words and words[0] in ("raftreg", "/opt/raftreg/bin/raftreg"):
            commands.append((words[1:], redirect.strip() or None))
    return commands


def unit_command(node: str, config: Path) -> list[str]:
    """deploy/raftreg@.service's ExecStart for instance ``node``, on this machine's raftreg."""
    line = next(x for x in UNIT.read_text().splitlines() if x.startswith("ExecStart="))
    words = shlex.split(line.removeprefix("ExecStart=").replace("%i", node))
    assert words[:2] == ["/opt/raftreg/bin/raftreg", "serve"]
    words[words.index("--config") + 1] = str(config)
    return [sys.executable, "-m", "raftreg", *words[1:]]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTREG_")}
    return subprocess.run([sys.executable, "-m", "raftreg", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_three_host_walkthrough(tmp_path: Path) -> None:
    etc, var, laptop = tmp_path / "etc" / "raftreg", tmp_path / "var" / "lib" / "raftreg", tmp_path / "laptop"
    laptop.mkdir()
    http_port, raft_port = free_ports(2)
    (init_args, init_out), (check_args, _), (status_args, _) = readme_commands(etc, var)
    assert init_args[:2] == ["config", "init"] and init_out == "prod.toml"
    assert check_args == ["config", "check", str(etc / "cluster.toml")]
    assert status_args == ["--config", str(etc / "cluster.toml"), "status"]
    # 1. on the laptop: the config, the secret and the certificates (the README's command; the
    # options added here put the hosts' paths in the temporary directory and the ports on free ones)
    init = cli(laptop, *init_args, "--install-dir", str(etc), "--data-dir", str(var),
               "--http-port", str(http_port), "--raft-port", str(raft_port))
    assert init.returncode == 0, init.stderr
    assert [f"{n}=127.0.0.{k + 2}" for k, n in enumerate(HOSTS)] == [a for a in init_args if "=127." in a]
    (laptop / init_out).write_text(init.stdout)
    # 2. on each host: the files in place (the CA's key never leaves the laptop), then check
    (etc / "tls").mkdir(parents=True)
    shutil.copy(laptop / "prod.toml", etc / "cluster.toml")
    shutil.copy(laptop / "prod" / "secret", etc / "secret")
    for name in ["ca.pem", *[f"{n}{suffix}.pem" for n in HOSTS for suffix in ("", "-key")]]:
        shutil.copy(laptop / "prod" / "tls" / name, etc / "tls" / name)
    checked = cli(laptop, *check_args)
    assert (checked.returncode, checked.stdout) == (0, f"{etc / 'cluster.toml'}: ok\n"), checked.stdout
    # 3. systemctl enable --now raftreg@nX: the unit's command, its credential, its working directory
    nodes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in HOSTS:
            credentials = tmp_path / "credentials" / name
            credentials.mkdir(parents=True)
            shutil.copy(etc / "secret", credentials / "raftreg-secret")
            env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTREG_")}
            env["CREDENTIALS_DIRECTORY"] = str(credentials)
            var.mkdir(parents=True, exist_ok=True)
            nodes[name] = subprocess.Popen(unit_command(name, etc / "cluster.toml"), cwd=var, env=env,
                                           stdout=subprocess.DEVNULL, stderr=(tmp_path / f"{name}.log").open("wb"),
                                           start_new_session=True)
        # 4. check: every node up over HTTPS, one leader; a registration seen through another host
        def healthy() -> list[dict[str, object]] | None:
            status = cli(laptop, "--config", str(etc / "cluster.toml"), "-o", "json", "status")
            views = json.loads(status.stdout) if status.returncode == 0 else []
            leaders = {v.get("leader") for v in views}
            return views if len(views) == 3 and all(v.get("state") in ("leader", "follower") for v in views) \
                and len(leaders) == 1 and None not in leaders else None

        views = wait_for(healthy, 60.0, "three nodes agreeing on a leader")
        assert sorted(str(v["node"]) for v in views) == sorted(HOSTS)
        table = cli(laptop, *status_args)  # the README's status command: a table of the three nodes
        assert table.returncode == 0, table.stderr
        assert sorted(line.split()[0] for line in table.stdout.splitlines()[1:]) == sorted(HOSTS), table.stdout
        registered = cli(laptop, "--config", str(etc / "cluster.toml"), "--addr", f"{HOSTS['n1']}:{http_port}",
                         "register", "web", "w1", "--address", "10.0.0.5", "--port", "80")
        assert registered.returncode == 0, registered.stderr
        found = cli(laptop, "--config", str(etc / "cluster.toml"), "--addr", f"{HOSTS['n3']}:{http_port}",
                    "-o", "json", "lookup", "web", "--consistent")
        assert found.returncode == 0, found.stderr
        assert [i["id"] for i in json.loads(found.stdout)["instances"]] == ["w1"]
        assert sorted(p.name for p in var.iterdir()) == sorted(HOSTS)  # <data_dir>/<node>, as the unit's StateDirectory
    finally:
        for proc in nodes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in nodes.items():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            print(f"--- {name}\n" + (tmp_path / f"{name}.log").read_text()[-3000:])
