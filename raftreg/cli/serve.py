"""``raftreg serve``: run one node in the foreground.

Contract: at import time this module loads only click and ``raftreg.config``; the node's own
modules load when the command runs. ``raftreg.cli.entry`` runs this command
without loading the rest of the CLI, so a node's process does not carry the client SDK, the other
commands or the test helpers (5 MiB of a node's memory, measured 2026-12-07).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from raftreg.config import load_config

EXIT_IDENTITY_REFUSED = 78  # sysexits' EX_CONFIG: a supervisor should not restart the node in a loop


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Cluster config (TOML).")
@click.option("--node", "node_name", required=True, help="Which member of the config this process is.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Override <config data_dir>/<node>.")
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="text (key=value lines) or json (one object per line); default: the config's [logging] format.")
@click.option("--join", is_flag=True, help="NODE was added at run time (raftreg cluster add): fetch the live "
              "membership from the config's members.")
@click.option("--replace-identity", is_flag=True,
              help="Start on an empty data directory under a name the cluster already holds, with a new "
              "identity (accepted only if the leader confirms a majority of the others holds every committed entry).")
def serve(config_path: str, node_name: str, data_dir: str | None, log_level: str, log_format: str | None,
          replace_identity: bool, join: bool) -> None:
    """Run one node in the foreground until SIGINT/SIGTERM."""
    from raftreg.http.peer_client import PeerClient
    from raftreg.http.server import serve as serve_node
    from raftreg.logs import setup_logging
    from raftreg.node.identity_check import IdentityRefused, LocalIdentity, check_identity
    from raftreg.node.membership import with_persisted
    from raftreg.raft.data_format import prepare_data_dir

    config = load_config(config_path)
    secret = config.read_secret()
    path = Path(data_dir) if data_dir else config.node_data_dir(node_name)
    prepare_data_dir(path)  # a newer format is refused before anything (the incarnation file) is written
    if join:
        from raftreg.cli.join import live_config

        config = live_config(config, node_name, secret, path)
    config = with_persisted(config, path)  # the membership this node last knew (raftreg.node.membership)
    config.node(node_name)
    setup_logging(log_level, "json" if (log_format or config.logging.format) == "json" else "text", [secret])

    async def checked_identity() -> LocalIdentity:  # raftreg.node.identity_check, before the Raft port opens
        peers = PeerClient(config, node_name, secret, timeout=1.5)
        try:
            return await check_identity(config, node_name, path, peers, replace=replace_identity)
        finally:
            await peers.close()

    try:
        identity = asyncio.run(checked_identity())
    except IdentityRefused as exc:
        click.echo(f"raftreg serve: {exc}", err=True)
        sys.exit(EXIT_IDENTITY_REFUSED)
    asyncio.run(serve_node(config, node_name, data_dir=path, secret=secret, identity=identity))
