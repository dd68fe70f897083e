"""``raftreg lab up|down|status``: a cluster on a real (namespaced) network (README "Testing on a
real network"). Needs root."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from raftreg.lab.control import DEFAULT_DIR

_dir_option = click.option("--dir", "directory", type=click.Path(file_okay=False), default=str(DEFAULT_DIR),
                           show_default=True, help="Where the lab keeps its record, config, data and logs.")


@click.group()
def lab() -> None:
    """N hosts as network namespaces on a bridge (198.18.0.0/24), one raftreg node on each."""


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@lab.command()
@click.option("--nodes", type=click.IntRange(1, 9), default=3, show_default=True)
@_dir_option
def up(nodes: int, directory: str) -> None:
    """Build the network, write the cluster config, start one node per host."""
    from raftreg.lab.control import up as lab_up
    from raftreg.lab.netns import LabError

    try:
        cluster = lab_up(Path(directory), nodes)
    except (LabError, TimeoutError) as exc:
        _fail(exc)
        return
    state = cluster.state
    click.echo(f"lab {state.prefix}: {nodes} nodes up, leader {cluster.leader()}")
    for name in cluster.names:
        click.echo(f"  {name}  {cluster.config.node(name).http}  in {cluster.host_of(name)}")
    click.echo(f"config {cluster.config_path}; clients run in {state.client} (198.18.0.100), e.g.\n"
               f"  ip netns exec {state.client} {sys.executable} -m raftreg --config {cluster.config_path} status\n"
               f"stop with: raftreg lab down --dir {directory}")


@lab.command()
@_dir_option
def down(directory: str) -> None:
    """Remove every namespace, rule, qdisc, mount and process of the lab (also after a crash)."""
    from raftreg.lab.control import down as lab_down
    from raftreg.lab.netns import LabError
    from raftreg.lab.topology import STATE_FILE

    if not (Path(directory) / STATE_FILE).exists():
        click.echo(f"no lab recorded in {directory}: nothing to remove")
        return
    try:
        removed = lab_down(Path(directory))
    except LabError as exc:
        _fail(exc)
        return
    for line in removed:
        click.echo(f"removed {line}")


@lab.command()
@_dir_option
def status(directory: str) -> None:
    """The lab's namespaces and every node's Raft view (JSON)."""
    from raftreg.lab.control import status as lab_status
    from raftreg.lab.netns import LabError

    try:
        click.echo(json.dumps(lab_status(Path(directory)), indent=2))
    except LabError as exc:
        _fail(exc)
