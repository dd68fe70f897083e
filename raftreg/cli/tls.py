"""``raftreg tls init``: a CA and per-node certificates for a cluster config, so a TLS cluster
is one command away. The config file is not modified: the ``[tls]`` section to add is printed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from raftreg.config import ClusterConfig, TlsConfig, load_config, tls_section

if TYPE_CHECKING:
    from raftreg.certgen import Issued

DAYS = 825  # raftreg.certgen.DEFAULT_DAYS (not imported here: cryptography loads only for `tls init`)


@click.group()
def tls() -> None:
    """TLS certificates for a cluster."""


def tls_config_for(issued: Issued, out: Path, *, verify_clients: bool) -> TlsConfig:
    """The ``[tls]`` section that uses ``generate``'s files in ``out`` (absolute paths)."""
    out = out.resolve()
    return TlsConfig(cert_file=str(out / "{node}.pem"), key_file=str(out / "{node}-key.pem"),
                     ca_file=str(issued.ca_file.resolve()), verify_clients=verify_clients)


def init_files(config: ClusterConfig, out: Path, *, verify_clients: bool = False,
               days: int = DAYS) -> tuple[Issued, TlsConfig]:
    """Generate the CA and the node and client certificates of ``config`` under ``out``."""
    from raftreg.certgen import generate

    issued = generate(config.nodes, out, cluster=config.name, days=days)
    return issued, tls_config_for(issued, out, verify_clients=verify_clients)


@tls.command("init")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Cluster config (TOML) whose nodes get certificates.")
@click.option("--out", type=click.Path(file_okay=False), help="Where to write them [default: <data_dir>/tls].")
@click.option("--verify-clients", is_flag=True, help="Print verify_clients = true (clients need client.pem).")
@click.option("--days", type=click.IntRange(1, 3650), default=DAYS, show_default=True,
              help="Validity of every certificate.")
@click.option("--force", is_flag=True, help="Replace the files of an earlier run (a new CA: every node and "
              "client must get the new files).")
def init(config_path: str, out: str | None, verify_clients: bool, days: int, force: bool) -> None:
    """Create a CA (ca.pem), a certificate per node (<node>.pem, SAN = its HTTP host) and a client
    certificate (client.pem); keys (*-key.pem) are mode 600. Prints the [tls] section to add to
    the config (the config file itself is left unchanged)."""
    config = load_config(config_path)
    target = Path(out) if out else Path(config.data_dir) / "tls"
    if (target / "ca.pem").exists() and not force:
        raise click.UsageError(f"{target / 'ca.pem'} exists (pass --force to replace every file with a new CA)")
    issued, section = init_files(config, target, verify_clients=verify_clients, days=days)
    click.echo(f"wrote a CA, {len(issued.node_files)} node certificates and a client certificate to {target}/")
    click.echo(f"add this to {config_path} and restart the nodes:\n")
    click.echo(tls_section(section) + "\n")
    client = f"--ca-file {issued.ca_file.resolve()}"
    if verify_clients:
        client += f" --cert-file {issued.client_cert.resolve()} --key-file {issued.client_key.resolve()}"
    click.echo(f"clients: raftreg --config {config_path} {client} status")
