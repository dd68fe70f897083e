"""``raftreg dev``: every node of a config as child processes (``raftreg serve``, raftreg.cli.serve)."""

from __future__ import annotations

import os
import secrets
import signal
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import msgspec

from raftreg.config import ClusterConfig, dump_config, load_config
from raftreg.devcluster import dev_config
from raftreg.portcheck import taken_ports
from raftreg.supervise import NodeProcess
from raftreg.testing import http_json

DEFAULT_CONFIG = "cluster-configs/local-3.toml"


def _current_leader(http_addrs: list[str], scheme: str = "http", context: ssl.SSLContext | None = None) -> str:
    """The leader named by the first node that answers, or ''."""
    for addr in http_addrs:
        code, body = http_json(f"{scheme}://{addr}/v1/cluster", timeout=0.3, context=context)
        if code == 200 and isinstance(body, dict):
            return str(body.get("leader") or "")
    return ""


class _Console:
    """``dev``'s output: a write that fails (its pipe's reader, e.g. ``tee``, died with the same
    Ctrl-C) silences the console instead of raising, so stopping the nodes never depends on it."""

    def __init__(self) -> None:
        self.broken = False

    def say(self, message: str, *, err: bool = False) -> None:
        if self.broken and not err:
            return
        try:
            click.echo(message, err=err)
        except OSError:  # BrokenPipeError and friends
            if not err:
                self.broken = True
                # Point stdout at /dev/null so the interpreter's final flush cannot fail either.
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)


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


def _dev_tls(config: ClusterConfig, base: Path) -> tuple[ClusterConfig, Path, ssl.SSLContext]:
    """``dev --tls``: certificates under <base>/tls (made on the first run, reused after), and the
    config with that ``[tls]`` written to <base>/cluster-tls.toml for the nodes to read."""
    from raftreg.certgen import Issued
    from raftreg.cli.tls import init_files, tls_config_for
    from raftreg.client.tls import client_context

    out = base / "tls"
    if (out / "ca.pem").exists() and all((out / f"{n.name}.pem").exists() for n in config.nodes):
        issued = Issued(out / "ca.pem", {}, out / "client.pem", out / "client-key.pem")
        section = tls_config_for(issued, out, verify_clients=False)
    else:
        issued, section = init_files(config, out)
    config = msgspec.structs.replace(config, tls=section, data_dir=str(base.resolve()))
    path = base / "cluster-tls.toml"
    path.write_text(dump_config(config))
    return config, path, client_context(str(issued.ca_file))


def _dev_cluster(config_path: str | None, nodes: str | None, port_base: int | None,
                 data_dir: str | None) -> tuple[ClusterConfig, str | None]:
    """The config ``dev`` runs and the path its nodes read it from: ``config_path``, else the
    repository default when present, else the embedded cluster (path None: not written yet)."""
    embedded = nodes is not None or port_base is not None
    if config_path is not None and embedded:
        raise click.UsageError("--nodes and --port-base shape the embedded cluster: not with --config")
    if config_path is None and not embedded and Path(DEFAULT_CONFIG).is_file():
        config_path = DEFAULT_CONFIG
    if config_path is not None:
        return load_config(config_path), config_path
    config = dev_config(int(nodes or 3), port_base)
    if data_dir:
        config = msgspec.structs.replace(config, data_dir=data_dir)
    return config, None


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help=f"Cluster config (TOML) [default: {DEFAULT_CONFIG} if it exists, else the embedded cluster].")
@click.option("--nodes", type=click.Choice(["1", "3", "5"]), default=None,
              help="Size of the embedded cluster (no config file) [default: 3].")
@click.option("--port-base", type=int, default=None, help="Move every port of the embedded cluster into "
              "the 40 ports from N (node k: http N+k-1, raft N+10+k-1, consul N+20+k-1, dns N+30+k-1).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Override the config's data_dir.")
@click.option("--restart-delay", type=float, default=10.0, show_default=True,
              help="Seconds before a node that died is started again (0: never).")
@click.option("--tls", "use_tls", is_flag=True, help="Serve HTTPS with certificates generated under "
              "<data_dir>/tls (a config that has [tls] serves HTTPS without this flag).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="The nodes' log format (passed to each); default: the config's [logging] format.")
def dev(config_path: str | None, nodes: str | None, port_base: int | None, data_dir: str | None,
        restart_delay: float, use_tls: bool, log_format: str | None) -> None:
    """Start every node of a config as child processes, in the foreground.

    With no --config (and no cluster-configs/local-3.toml in the current directory), or with
    --nodes/--port-base, an embedded cluster on 127.0.0.1 (raftreg.devcluster): no files needed.
    Data stays in the config's data_dir, so a second run continues where the first stopped.
    A node that dies (you may kill -9 one to watch a failover) is started again after
    --restart-delay seconds. Ctrl-C or SIGTERM stops every node cleanly. Every port is checked
    before any node starts.
    """
    config, config_path = _dev_cluster(config_path, nodes, port_base, data_dir)
    base = Path(data_dir or config.data_dir)
    taken = taken_ports(config)
    if taken:
        raise click.ClickException(taken[0] + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else "")
                                   + "; stop it or choose other ports (raftreg dev --port-base N)")
    if config_path is None:  # the embedded cluster: its nodes read it from <data_dir>/cluster.toml
        base.mkdir(parents=True, exist_ok=True)
        config_path = str(base / "cluster.toml")
        Path(config_path).write_text(dump_config(config))
    secret = os.environ.get(config.secret_env) or _dev_secret(base)
    context: ssl.SSLContext | None = None
    if use_tls:
        config, tls_path, context = _dev_tls(config, base)
        config_path = str(tls_path)
    elif config.tls is not None:
        from raftreg.client.tls import client_context
        context = client_context(config.tls.ca_file)
    procs = [
        NodeProcess(n.name, config_path=Path(config_path), data_dir=base / n.name, secret=secret,
                    secret_env=config.secret_env, log_path=base / "logs" / f"{n.name}.log",
                    log_format=log_format)
        for n in config.nodes
    ]
    stopping = False
    console = _Console()

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        for proc in procs:
            proc.start()
        console.say(f"raftreg dev: cluster {config.name!r}, data in {base}/, logs in {base}/logs/")
        for n, proc in zip(config.nodes, procs, strict=True):
            consul = f"  consul {config.scheme}://{n.consul_http}" if n.consul_http else ""
            dns = f"  dns {n.dns}" if n.dns else ""
            raft = "read replica" if n.role == "replica" else f"raft {n.raft}"
            console.say(f"  {n.name}  {config.url(n.name)}  {raft}{consul}{dns}  pid {proc.pid}")
        cacert = f"--cacert {config.tls.ca_file} " if config.tls is not None and config.tls.ca_file else ""
        console.say(f"  try: curl -s {cacert}{config.url(config.nodes[0].name)}/v1/cluster")
        if use_tls:
            console.say(f"  clients: raftreg --config {config_path} status")
        _supervise(config, procs, restart_delay, console, lambda: stopping, context)
    finally:
        # Stop the nodes first: nothing printed (into a pipe that may be dead) may stand in the way.
        for proc in procs:
            proc.signal_group(signal.SIGTERM)
        console.say("stopping nodes...")
        for proc in procs:
            proc.stop(timeout=10)
        console.say("stopped.")


def _supervise(config: ClusterConfig, procs: list[NodeProcess], restart_delay: float, console: _Console,
               stopping: Callable[[], bool], context: ssl.SSLContext | None = None) -> None:
    """Restart nodes that died (after ``restart_delay``) and report leader changes until ``stopping()``."""
    last_leader = ""
    died_at: dict[str, float] = {}
    while not stopping():
        time.sleep(0.2)
        now = time.monotonic()
        for proc in procs:
            if stopping() or proc.alive():
                continue
            if proc.name not in died_at:
                died_at[proc.name] = now
                code = proc.proc.returncode if proc.proc else None
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                again = f"; starting it again in {restart_delay:g}s" if restart_delay > 0 else ""
                console.say(f"node {proc.name} died ({how}){again}. Log: {proc.log_path}", err=True)
            elif restart_delay > 0 and now - died_at[proc.name] >= restart_delay:
                del died_at[proc.name]
                proc.start()
                console.say(f"node {proc.name} started again (pid {proc.pid})")
        leader = _current_leader([n.http for n, p in zip(config.nodes, procs, strict=True) if p.alive()],
                                 config.scheme, context)
        if leader and leader != last_leader:
            console.say(f"leader: {leader}. Ctrl-C stops the cluster.")
            last_leader = leader
