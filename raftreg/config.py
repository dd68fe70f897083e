"""Cluster configuration: a TOML file decoded into msgspec Structs.

Relative paths in a config (``data_dir``, ``secret_file``) resolve against the current directory
of the process that reads it. The cluster secret never lives in the config itself: it comes from
the environment variable named by ``secret_env`` or from ``secret_file``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal

import msgspec

from raftreg.config_sections import (
    AclSettings,
    ConfigError,
    DnsSettings,
    LimitsTuning,
    LoggingSettings,
    MetricsSettings,
    QuotaSettings,
)

__all__ = ["AclSettings", "CheckTuning", "ClusterConfig", "ConfigError", "DnsSettings", "KVTuning", "LeaseTuning",
           "LimitsTuning", "LoggingSettings", "MetricsSettings", "NodeConfig", "QuotaSettings", "RaftTuning",
           "TlsConfig", "dump_config", "load_config", "split_hostport", "tls_section"]


class NodeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One member: its name and the ``host:port`` of its HTTP API and of its Raft port; ``dns``:
    the ``host:port`` its DNS interface serves on, UDP and TCP (``raftreg.dns``; off when absent);
    ``consul_http``: the ``host:port`` of its Consul-compatible HTTP API (``raftreg.consul``; off
    when absent); ``role``: ``"voter"`` (a Raft member that votes and counts in quorums) or
    ``"replica"`` (a read replica: receives the log, never votes, never counts in a quorum)."""

    name: str
    http: str
    raft: str
    consul_http: str | None = None
    dns: str | None = None
    role: Literal["voter", "replica"] = "voter"

    @property
    def http_url(self) -> str:
        """The plain-HTTP URL; ``ClusterConfig.url`` gives https when the cluster has ``[tls]``."""
        return f"http://{self.http}"


class RaftTuning(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """pysyncobj settings (research/pysyncobj.md §8.1) and the write deadline.

    Defaults: no pysyncobj batching (each Raft entry is sent at once; our group commit does the
    batching), elections in 0.6-1.5 s, an isolated leader steps down after 3 s.
    """

    append_entries_use_batch: bool = False
    append_entries_period: float = 0.1
    raft_min_timeout: float = 0.6
    raft_max_timeout: float = 1.5
    connection_timeout: float = 60.0
    leader_fallback_timeout: float = 3.0
    # The log is compacted once it holds max(min_bytes, ratio x snapshot size) bytes
    # (raftreg.raft.compaction); the entry count and time limits are pysyncobj's own backstops.
    log_compaction_min_bytes: int = 4 * 1024 * 1024
    log_compaction_ratio: float = 0.1
    log_compaction_min_entries: int = 100_000
    log_compaction_min_time: float = 600.0
    # Entries of at least this many encoded bytes are stored zlib-compressed (data format 3;
    # raftreg.raft.entry_compression); 0 stores none compressed: set it while a rolling upgrade
    # from a release of data format 2 still has old nodes.
    compress_entries_from_bytes: int = 2048
    commands_queue_size: int = 20000
    journal: bool = True
    commit_timeout: float = 5.0
    max_batch_commands: int = 2000
    # Encoded commands per Raft entry (one larger command goes alone): keeps every entry within
    # one AppendEntries message and a Raft tick's work per entry short.
    max_entry_bytes: int = 60_000
    # Client writes waiting to be proposed, per node; more are refused with 503 at once, and one
    # that waited max_queue_wait seconds without being proposed in a queue at least half full is
    # answered 503. Up to max_inflight_entries entries are in flight while full entries wait
    # (raftreg.node.proposer).
    # 600 / 0.5 s / 4: the overload benchmark's best of the settings tried (benchmarks/README.md).
    max_queued_commands: int = 600
    max_queue_wait: float = 0.5
    max_inflight_entries: int = 4
    # Under concurrent load (the last entry carried batch_wait_from commands or more) the next
    # entry waits up to batch_wait seconds for more commands (raftreg.node.proposer): fewer,
    # larger entries cost every node less CPU per write. 0 turns it off.
    batch_wait: float = 0.0015
    batch_wait_from: int = 8
    # Drive pysyncobj from the node's asyncio loop instead of its own tick thread
    # (raftreg.raft.loop_tick); tick_period: the longest gap between two ticks.
    tick_on_loop: bool = True
    tick_period: float = 0.02

    @property
    def election_timeouts(self) -> tuple[float, float]:
        """pysyncobj's election timeout range: ``(raft_min_timeout, raft_max_timeout)``."""
        return self.raft_min_timeout, self.raft_max_timeout

    def __post_init__(self) -> None:
        # pysyncobj asserts this at start-up (a bare AssertionError in every node); say it here.
        if not self.raft_min_timeout > 3 * self.append_entries_period:
            raise ConfigError("raft.raft_min_timeout must be more than 3 x raft.append_entries_period")
        if not self.raft_max_timeout >= self.raft_min_timeout:
            raise ConfigError("raft.raft_max_timeout must be at least raft.raft_min_timeout")
        if self.compress_entries_from_bytes < 0:
            raise ConfigError("raft.compress_entries_from_bytes must be 0 (off) or more")
        if self.log_compaction_min_bytes < 1 or not self.log_compaction_ratio > 0:
            raise ConfigError("raft.log_compaction_min_bytes must be at least 1 and raft.log_compaction_ratio positive")
        if not 0 < self.tick_period <= 1:
            raise ConfigError("raft.tick_period must be more than 0 and at most 1 second")
        if not 0 <= self.batch_wait <= 0.1:
            raise ConfigError("raft.batch_wait must be between 0 (off) and 0.1 seconds")
        if self.batch_wait_from < 2:
            raise ConfigError("raft.batch_wait_from must be at least 2")
        if not self.max_queue_wait > 0:
            raise ConfigError("raft.max_queue_wait must be positive")
        if not 1 <= self.max_entry_bytes <= 4 * 1024 * 1024:
            raise ConfigError("raft.max_entry_bytes must be between 1 and 4 MiB (4194304)")
        if (self.max_queued_commands < 1 or self.max_batch_commands < 1 or self.max_entry_bytes < 1
                or self.max_inflight_entries < 1):
            raise ConfigError("raft.max_queued_commands, raft.max_batch_commands, raft.max_entry_bytes and "
                              "raft.max_inflight_entries must be at least 1")


class LeaseTuning(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """TTL leases, held by the leader (``raftreg.node.leases``).

    ``grace``: added to every deadline when a node becomes leader (default: the maximum election
    timeout). The leader tells the followers which leases were renewed every ``gossip_period``
    seconds (not through the log), so a new leader can keep the expiry of a dead instance near its
    ttl. Mass-expiry guard: when more than ``mass_expiry_share`` of the leased instances, and
    at least ``mass_expiry_min`` of them, would expire within one ttl, expiries are throttled to
    ``mass_expiry_rate`` per second; a held instance is expired anyway once it is ``ttl +
    mass_expiry_hold_extra`` past its deadline (so expiry always completes within 2 x ttl + that).
    """

    grace: float | None = None
    check_period: float = 0.1
    gossip_period: float = 0.25
    mass_expiry_share: float = 0.5
    mass_expiry_min: int = 10
    mass_expiry_rate: float = 5.0
    mass_expiry_hold_extra: float = 10.0
    forward_batch: int = 1000
    # Heartbeats a follower holds for the leader; more are refused with 503 at once.
    forward_queue: int = 10000

    def __post_init__(self) -> None:
        if self.forward_batch < 1 or self.forward_queue < 1:
            raise ConfigError("leases.forward_batch and leases.forward_queue must be at least 1")


class CheckTuning(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Active health checks (``raftreg.node.checks``): at most ``max_concurrent`` probes in flight
    per node; the owned share is recomputed every ``reconcile_period`` seconds and whenever the
    set of live nodes changes."""

    max_concurrent: int = 128
    reconcile_period: float = 0.5


class KVTuning(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The key/value store: ``history`` earlier versions kept per key (0 disables). The leader's
    value travels in each write command, so replicas never disagree about it."""

    history: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.history <= 1000:
            raise ConfigError("kv.history must be between 0 and 1000")


class TlsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[tls]``: the HTTP API serves HTTPS only (TLS >= 1.2), and node-to-node HTTP uses it too.

    ``cert_file``/``key_file``: the node's certificate chain and key (PEM). Nodes that need their
    own certificate put ``{node}`` in the path (``"tls/{node}.pem"``), replaced by each node's
    name; otherwise every node uses the same files (their SANs must then cover every node's host).
    ``ca_file``: the CA that signed the node (and client) certificates; nodes verify each other
    against it, and with ``verify_clients`` every client must present a certificate it signed.
    Without ``ca_file`` peers are verified against the system's trust store. Relative paths
    resolve against the current directory, as ``data_dir``. Files are read when a node starts
    (``raftreg.tls``), and a missing or unreadable one is a ConfigError naming the field.
    """

    cert_file: str
    key_file: str
    ca_file: str | None = None
    verify_clients: bool = False

    def __post_init__(self) -> None:
        if self.verify_clients and not self.ca_file:
            raise ConfigError("tls.verify_clients needs tls.ca_file (the CA that signs client certificates)")
        if ("{node}" in self.cert_file) != ("{node}" in self.key_file):
            raise ConfigError("tls.cert_file and tls.key_file must both contain {node}, or neither")

    def node_files(self, node: str) -> tuple[str, str]:
        """(cert_file, key_file) of ``node``, with ``{node}`` replaced by its name."""
        return self.cert_file.replace("{node}", node), self.key_file.replace("{node}", node)


class ClusterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A whole cluster: its name, members, data directory and secret source."""

    name: str
    nodes: list[NodeConfig]
    data_dir: str = "raftreg-data"
    secret_env: str = "RAFTREG_SECRET"
    secret_file: str | None = None
    raft: RaftTuning = RaftTuning()
    leases: LeaseTuning = LeaseTuning()
    checks: CheckTuning = CheckTuning()
    kv: KVTuning = KVTuning()
    tls: TlsConfig | None = None
    limits: LimitsTuning = LimitsTuning()
    quotas: QuotaSettings = QuotaSettings()
    acl: AclSettings = AclSettings()
    dns: DnsSettings = DnsSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    # The datacenter the Consul-compatible API reports (``raftreg.consul``): one per cluster.
    datacenter: str = "dc1"

    def __post_init__(self) -> None:
        if not re.match(r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?\Z", self.datacenter):
            raise ConfigError("datacenter must be 1-63 lowercase letters, digits, '-' or '_'")
        if not self.nodes:
            raise ConfigError("a cluster needs at least one node")
        if not self.voters:
            raise ConfigError("a cluster needs at least one node with role = \"voter\" (replicas never lead)")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ConfigError("node names must be unique")
        for attr in ("http", "raft", "consul_http"):
            addrs = [getattr(n, attr) for n in self.nodes if getattr(n, attr) is not None]
            if len(set(addrs)) != len(addrs):
                raise ConfigError(f"node {attr} addresses must be unique")
            for addr in addrs:
                split_hostport(addr)
        dns_addrs = [n.dns for n in self.nodes if n.dns is not None]
        if len(set(dns_addrs)) != len(dns_addrs):
            raise ConfigError("node dns addresses must be unique")
        for addr in dns_addrs:
            split_hostport(addr)

    @property
    def voters(self) -> list[NodeConfig]:
        """The Raft members that vote and count in quorums (``role = "voter"``), in config order."""
        return [n for n in self.nodes if n.role == "voter"]

    @property
    def replicas(self) -> list[NodeConfig]:
        """The read replicas (``role = "replica"``): they receive the log and never vote."""
        return [n for n in self.nodes if n.role == "replica"]

    @property
    def scheme(self) -> str:
        """``https`` when ``[tls]`` is configured, else ``http``."""
        return "https" if self.tls is not None else "http"

    def url(self, name: str) -> str:
        """The base URL of member ``name``'s HTTP API (``https://`` with ``[tls]``)."""
        return f"{self.scheme}://{self.node(name).http}"

    def node(self, name: str) -> NodeConfig:
        """The member called ``name``; ConfigError if there is none."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise ConfigError(f"no node {name!r} in cluster {self.name!r} (nodes: {[n.name for n in self.nodes]})")

    def node_data_dir(self, name: str, base: str | None = None) -> Path:
        return Path(base or self.data_dir) / name

    def read_secret(self) -> str:
        """The cluster secret from ``$secret_env``, else the systemd credential ``raftreg-secret``
        (``$CREDENTIALS_DIRECTORY/raftreg-secret``, ``LoadCredential=`` in deploy/raftreg@.service),
        else ``secret_file``; ConfigError if none has one."""
        secret = os.environ.get(self.secret_env, "")
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if not secret and credentials and (Path(credentials) / "raftreg-secret").is_file():
            secret = (Path(credentials) / "raftreg-secret").read_text().strip()
        if not secret and self.secret_file:
            try:
                secret = Path(self.secret_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read secret_file {self.secret_file}: {exc.strerror}") from exc
        if not secret:
            raise ConfigError(
                f"no cluster secret: set ${self.secret_env} or secret_file in the config "
                "(`raftreg dev` generates one for local clusters)"
            )
        return secret


def split_hostport(addr: str) -> tuple[str, int]:
    """Split ``host:port``; ConfigError when the port is missing or out of range."""
    host, sep, port_text = addr.rpartition(":")
    digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not sep or not host or not digits or not 0 < int(port_text) < 65536:
        raise ConfigError(f"address {addr!r} is not host:port")
    return host, int(port_text)


def load_config(path: str | Path) -> ClusterConfig:
    """Read and validate a cluster config file."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from exc
    try:
        return msgspec.convert(raw, ClusterConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config {path}: {exc}") from exc


def tls_section(tls: TlsConfig) -> str:
    """``tls`` as a TOML ``[tls]`` section (no trailing newline)."""
    lines = ["[tls]", f"cert_file = {_toml_str(tls.cert_file)}", f"key_file = {_toml_str(tls.key_file)}"]
    if tls.ca_file is not None:
        lines.append(f"ca_file = {_toml_str(tls.ca_file)}")
    lines.append(f"verify_clients = {str(tls.verify_clients).lower()}")
    return "\n".join(lines)


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dump_config(config: ClusterConfig) -> str:
    """Render a config as TOML (used to write generated test clusters)."""
    lines = [f'name = "{config.name}"', f'data_dir = "{config.data_dir}"', f'secret_env = "{config.secret_env}"']
    if config.secret_file:
        lines.append(f'secret_file = "{config.secret_file}"')
    if config.datacenter != "dc1":
        lines.append(f'datacenter = "{config.datacenter}"')
    for section in ("raft", "leases", "checks", "kv", "limits", "quotas", "acl", "dns", "logging", "metrics"):
        lines += ["", f"[{section}]"]
        tuning = getattr(config, section)
        for field in msgspec.structs.fields(tuning):
            value = getattr(tuning, field.name)
            if isinstance(value, str):
                lines.append(f'{field.name} = "{value}"')
            elif value is not None:
                lines.append(f"{field.name} = {str(value).lower() if isinstance(value, bool) else value}")
    if config.tls is not None:
        lines += ["", tls_section(config.tls)]
    for node in config.nodes:
        lines += ["", "[[nodes]]", f'name = "{node.name}"', f'http = "{node.http}"', f'raft = "{node.raft}"']
        if node.consul_http is not None:
            lines.append(f'consul_http = "{node.consul_http}"')
        if node.dns is not None:
            lines.append(f'dns = "{node.dns}"')
        if node.role != "voter":
            lines.append(f'role = "{node.role}"')
    return "\n".join(lines) + "\n"
