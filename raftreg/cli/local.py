"""``raftreg serve`` (one node) and ``raftreg dev`` (every node of a config, as child processes)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from pathlib import Path

import click

from raftreg.config import load_config
from raftreg.supervise import NodeProcess
from raftreg.testing import http_json

DEFAULT_CONFIG = "cluster-configs/local-3.toml"


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Cluster config (TOML).")
@click.option("--node", "node_name", required=True, help="Which member of the config this process is.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Override <config data_dir>/<node>.")
@click.option("--log-level", default="INFO", show_default=True)
def serve(config_path: str, node_name: str, data_dir: str | None, log_level: str) -> None:
    """Run one node in the foreground until SIGINT/SIGTERM."""
    from raftreg.http.server import serve as serve_node
    from raftreg.http.server import setup_logging

    config = load_config(config_path)
    config.node(node_name)
    secret = config.read_secret()
    setup_logging(log_level)
    path = Path(data_dir) if data_dir else config.node_data_dir(node_name)
    asyncio.run(serve_node(config, node_name, data_dir=path, secret=secret))


def _dev_secret(data_dir: Path) -> str:
    """The local cluster's secret: generated once into <data_dir>/secret (mode 600)."""
    path = data_dir / "secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


@click.command()
@click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True,
              type=click.Path(dir_okay=False), help="Cluster config (TOML).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Override the config's data_dir.")
def dev(config_path: str, data_dir: str | None) -> None:
    """Start every node of a config as child processes, in the foreground.

    Data stays in the config's data_dir, so a second run continues where the first stopped.
    Ctrl-C or SIGTERM stops every node cleanly.
    """
    config = load_config(config_path)
    base = Path(data_dir or config.data_dir)
    secret = os.environ.get(config.secret_env) or _dev_secret(base)
    procs = [
        NodeProcess(n.name, config_path=Path(config_path), data_dir=base / n.name, secret=secret,
                    secret_env=config.secret_env, log_path=base / "logs" / f"{n.name}.log")
        for n in config.nodes
    ]
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for proc in procs:
        proc.start()
    click.echo(f"raftreg dev: cluster {config.name!r}, data in {base}/, logs in {base}/logs/")
    for n, proc in zip(config.nodes, procs, strict=True):
        click.echo(f"  {n.name}  http://{n.http}  raft {n.raft}  pid {proc.pid}")
    click.echo(f"  try: curl -s http://{config.nodes[0].http}/v1/cluster")
    leader_reported = False
    try:
        while not stopping:
            time.sleep(0.2)
            for proc in procs:
                if not proc.alive() and not stopping:
                    click.echo(f"node {proc.name} exited (code {proc.proc.returncode if proc.proc else '?'}); "
                               f"see {proc.log_path}. Restarting it.", err=True)
                    proc.start()
            if not leader_reported:
                code, body = http_json(f"http://{config.nodes[0].http}/v1/cluster", timeout=0.5)
                if code == 200 and body.get("leader"):
                    click.echo(f"leader elected: {body['leader']} (term {body['term']}). Ctrl-C stops the cluster.")
                    leader_reported = True
    finally:
        click.echo("stopping nodes...")
        for proc in procs:
            proc.signal_group(signal.SIGTERM)
        for proc in procs:
            proc.stop(timeout=10)
        click.echo("stopped.")
