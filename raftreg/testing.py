"""``LocalCluster``: real node processes on 127.0.0.1 for tests, benchmarks and chaos runs.

Each node is a separate ``raftreg serve`` process in its own process group, with its data in a
temporary (or given) directory and free ports. The API is synchronous (plain HTTP via urllib) so
it can be used from sync tests, async tests (between awaits) and scripts alike.

``LocalCluster(tls=True)`` generates a CA and certificates under ``<base_dir>/tls``
(``raftreg.certgen``) and serves HTTPS; ``verify_clients=True`` also requires client
certificates. ``ssl_context`` (CA + client certificate) is what its own observation calls use;
``tls_files`` says where the files are, for clients under test. ``LocalCluster(dns=True)`` (or a
``DnsSettings``) serves DNS on a free port per node: ``dns_address(name)``. ``logging`` and
``metrics`` are the config's ``[logging]`` and ``[metrics]`` tables; ``log_format`` is passed to
every node as ``raftreg serve --log-format``.
``LocalCluster(consul=True)`` also serves the Consul-compatible API on a free port per node
(``consul_url(name)``). ``LocalCluster(3, replicas=2)`` adds read replicas ``r1``, ``r2``
(``role = "replica"``) to the voters ``n1``..``n3``.

Every node writes its log to ``<base_dir>/logs/<node>.log`` (``log_files()``). ``live_clusters()``
lists the clusters made and not yet closed, and each function of ``CLOSE_HOOKS`` is called with
a cluster as it closes, once its nodes are stopped and before its directory is removed (the
test suite scans the logs for token secrets this way).
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from raftreg.certgen import Issued, generate
from raftreg.client.tls import client_context
from raftreg.config import (
    AclSettings,
    CheckTuning,
    ClusterConfig,
    DnsSettings,
    KVTuning,
    LeaseTuning,
    LimitsTuning,
    LoggingSettings,
    MetricsSettings,
    NodeConfig,
    QuotaSettings,
    RaftTuning,
    TlsConfig,
    dump_config,
)
from raftreg.portcheck import free_ports as free_ports  # re-exported: tests and benchmarks take it from here
from raftreg.signing import Signer
from raftreg.supervise import NodeProcess

T = TypeVar("T")

CLOSE_HOOKS: list[Callable[[LocalCluster], None]] = []
_live: weakref.WeakSet[LocalCluster] = weakref.WeakSet()


def live_clusters() -> list[LocalCluster]:
    """The clusters made in this process and not closed yet."""
    return list(_live)


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns a truthy value; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def http_json(url: str, *, method: str = "GET", body: Any = None, timeout: float = 2.0,
              headers: dict[str, str] | None = None, data: bytes | None = None,
              context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    """One HTTP request; returns (status, decoded JSON or None). Connection errors (a refused TLS
    handshake included) give status 0. ``data`` sends those exact bytes instead of ``body``
    encoded as JSON; ``context`` is the TLS context for an ``https`` URL."""
    if data is None and body is not None:
        data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw or b"null")
        except ValueError:
            return err.code, None
    except (OSError, ValueError):
        return 0, None


class LocalCluster:
    """N real nodes on loopback. Use as a context manager, or call ``start()`` and ``close()``."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        base_dir: Path | None = None,
        tuning: RaftTuning | None = None,
        leases: LeaseTuning | None = None,
        checks: CheckTuning | None = None,
        kv: KVTuning | None = None,
        limits: LimitsTuning | None = None,
        quotas: QuotaSettings | None = None,
        acl: AclSettings | None = None,
        name: str = "test",
        keep_data: bool = False,
        debug_endpoints: bool = True,
        extra_env: dict[str, str] | None = None,
        tls: bool = False,
        verify_clients: bool = False,
        dns: bool | DnsSettings = False,
        consul: bool = False,
        logging: LoggingSettings | None = None,
        metrics: MetricsSettings | None = None,
        log_format: str | None = None,
        replicas: int = 0,
    ) -> None:
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="raftreg-cluster-"))
        _live.add(self)
        self.keep_data = keep_data
        total = nodes + replicas  # voters n1.., then read replicas r1..
        dns_base = 2 * total  # ports: http and raft per node, then dns per node, then consul per node
        consul_base = dns_base + (total if dns else 0)
        ports = free_ports(consul_base + (total if consul else 0))
        node_cfgs = [
            NodeConfig(name=f"n{i + 1}" if i < nodes else f"r{i - nodes + 1}",
                       http=f"127.0.0.1:{ports[2 * i]}", raft=f"127.0.0.1:{ports[2 * i + 1]}",
                       dns=f"127.0.0.1:{ports[dns_base + i]}" if dns else None,
                       consul_http=f"127.0.0.1:{ports[consul_base + i]}" if consul else None,
                       role="voter" if i < nodes else "replica")
            for i in range(total)
        ]
        self.tls_files: Issued | None = None
        self.ssl_context: ssl.SSLContext | None = None
        tls_config = None
        if tls or verify_clients:
            out = self.base_dir / "tls"
            self.tls_files = generate(node_cfgs, out, cluster=name, days=1)
            tls_config = TlsConfig(cert_file=str(out / "{node}.pem"), key_file=str(out / "{node}-key.pem"),
                                   ca_file=str(self.tls_files.ca_file), verify_clients=verify_clients)
            self.ssl_context = client_context(str(self.tls_files.ca_file), str(self.tls_files.client_cert),
                                              str(self.tls_files.client_key))
        self.config = ClusterConfig(
            name=name, nodes=node_cfgs, data_dir=str(self.base_dir / "data"), raft=tuning or RaftTuning(),
            leases=leases or LeaseTuning(), checks=checks or CheckTuning(), kv=kv or KVTuning(), tls=tls_config,
            limits=limits or LimitsTuning(), quotas=quotas or QuotaSettings(),
            acl=acl or AclSettings(),
            dns=dns if isinstance(dns, DnsSettings) else DnsSettings(),
            logging=logging or LoggingSettings(), metrics=metrics or MetricsSettings(),
        )
        self.config_path = self.base_dir / "cluster.toml"
        self.config_path.write_text(dump_config(self.config))
        self.secret = secrets.token_urlsafe(32)
        self.procs = {
            n.name: NodeProcess(
                n.name,
                config_path=self.config_path,
                data_dir=self.config.node_data_dir(n.name),
                secret=self.secret,
                log_path=self.base_dir / "logs" / f"{n.name}.log",
                extra_env={"RAFTREG_DEBUG_ENDPOINTS": "1" if debug_endpoints else "0", **(extra_env or {})},
                log_format=log_format,
            )
            for n in node_cfgs
        }

    # ---- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.close()  # a start that timed out must not leave node processes behind
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.config.nodes]

    def start(self, wait: float = 30.0) -> None:
        """Start every node and wait until there is a leader, every node is ready, and every
        node's incarnation is recorded and applied everywhere (so a test starts from a quiet
        log: no node writes its record in the middle of it). When that times out, the error
        carries each node's last log lines (as notes), since ``close`` removes the logs."""
        for proc in self.procs.values():
            proc.start()
        try:
            leader = self.wait_ready(timeout=wait)
            wait_for(lambda: set(self.names) <= set((self.status(leader) or {}).get("identities", ())) or None,
                     wait, "every node's incarnation recorded")
            self.wait_converged(timeout=wait)
        except Exception as err:  # say why: each node's last log lines go with the error
            for name in self.names:
                err.add_note(f"--- last lines of {name}'s log ---\n{self.log_tail(name)}")
            raise

    def close(self) -> None:
        """Kill every node, call the ``CLOSE_HOOKS``; remove the data directory unless ``keep_data``."""
        for proc in self.procs.values():
            proc.kill()
        _live.discard(self)
        try:
            for hook in list(CLOSE_HOOKS):
                hook(self)
        finally:
            if self._own_dir and not self.keep_data:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def add_process(self, node: NodeConfig, *, join: bool = True) -> None:
        """Manage a node added at run time (``POST /v1/cluster/members`` first): it runs
        ``raftreg serve --join`` with the original config file; ``start_node`` starts it."""
        first = next(iter(self.procs.values()))
        proc = NodeProcess(node.name, config_path=self.config_path, data_dir=self.config.node_data_dir(node.name),
                           secret=self.secret, log_path=self.base_dir / "logs" / f"{node.name}.log",
                           extra_env=first._extra_env, log_format=first.log_format)
        proc.extra_args = ["--join"] if join else []
        self.procs[node.name] = proc
        if all(n.name != node.name for n in self.config.nodes):
            self.config.nodes.append(node)

    def kill(self, name: str) -> None:
        """kill -9 one node (its whole process group)."""
        self.procs[name].kill()

    def stop_node(self, name: str) -> None:
        """Stop one node gracefully (SIGTERM)."""
        self.procs[name].stop()

    def start_node(self, name: str) -> None:
        self.procs[name].start()

    def restart(self, name: str, *, hard: bool = True, wait: float = 30.0) -> None:
        """kill -9 (or stop) a node, start it again on the same data, wait until it is ready."""
        if hard:
            self.kill(name)
        else:
            self.stop_node(name)
        self.start_node(name)
        self.wait_node_ready(name, timeout=wait)

    def pause(self, name: str) -> None:
        self.procs[name].pause()

    def resume(self, name: str) -> None:
        self.procs[name].resume()

    def running(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.alive()]

    # ---- observation --------------------------------------------------------------------
    def url(self, name: str) -> str:
        return self.config.url(name)

    def consul_url(self, name: str) -> str:
        """The base URL of member ``name``'s Consul-compatible API (``LocalCluster(consul=True)``)."""
        addr = self.config.node(name).consul_http
        if addr is None:
            raise ValueError("this cluster serves no Consul API: create it with LocalCluster(consul=True)")
        return f"{self.config.scheme}://{addr}"

    def urls(self) -> list[str]:
        return [self.url(n) for n in self.names]

    def dns_address(self, name: str) -> tuple[str, int]:
        """(host, port) of node ``name``'s DNS interface (UDP and TCP); the cluster needs ``dns=True``."""
        address = self.config.node(name).dns
        if address is None:
            raise ValueError("this LocalCluster serves no DNS: create it with dns=True")
        host, _, port = address.rpartition(":")
        return host, int(port)

    def status(self, name: str, timeout: float = 1.0) -> dict[str, Any] | None:
        # signed: with ACLs on, the cluster secret's holder is the operator (raftreg.http.auth)
        headers = Signer(self.secret, "local-cluster").headers("GET", "/v1/cluster")
        code, body = http_json(self.url(name) + "/v1/cluster", timeout=timeout, headers=headers,
                               context=self.ssl_context)
        return body if code == 200 and isinstance(body, dict) else None

    def is_ready(self, name: str) -> bool:
        code, _ = http_json(self.url(name) + "/v1/ready", timeout=1.0, context=self.ssl_context)
        return code == 200

    def leader(self, timeout: float = 15.0, among: list[str] | None = None) -> str:
        """Name of the leader that the running nodes agree on (and that itself says it leads)."""

        def agreed() -> str | None:
            views = {}
            for name in among or self.running():
                st = self.status(name)
                if st is not None:
                    views[name] = st
            leaders = {v["leader"] for v in views.values()}
            if len(leaders) == 1:
                leader = leaders.pop()
                if leader and views.get(leader, {}).get("state") == "leader":
                    return str(leader)
            return None

        return wait_for(agreed, timeout, "an agreed leader")

    def followers(self) -> list[str]:
        leader = self.leader()
        return [n for n in self.running() if n != leader]

    def wait_node_ready(self, name: str, timeout: float = 30.0) -> None:
        """Wait until ``name`` answers ``/v1/ready`` 200; ``RuntimeError`` at once if its process
        exited (a port taken, a bad config): it would never be."""
        proc = self.procs.get(name)

        def ready() -> bool:
            if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"node {name} exited with status {proc.proc.returncode} before it was ready")
            return self.is_ready(name)

        wait_for(ready, timeout, f"node {name} ready")

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Wait until every running node is ready; returns the leader."""
        leader = self.leader(timeout=timeout)
        for name in self.running():
            self.wait_node_ready(name, timeout=timeout)
        return leader

    def wait_converged(self, timeout: float = 30.0, min_index: int = 0) -> int:
        """Wait until every running node has applied the same index (>= ``min_index``) and that
        index equals the leader's commit index. Returns it."""

        def same() -> tuple[int] | None:
            applied, commits = set(), set()
            for name in self.running():
                st = self.status(name)
                if st is None:
                    return None
                applied.add(st["applied_index"])
                if st["state"] == "leader":
                    commits.add(st["commit_index"])
            if len(applied) == 1 and commits == applied:
                index = applied.pop()
                return (index,) if index >= min_index else None
            return None

        return wait_for(same, timeout, "all nodes to apply the same index")[0]

    def debug(self, name: str, action: str, body: Any = None, *, timeout: float = 10.0) -> tuple[int, Any]:
        """Call node ``name``'s debug hook ``action`` (``resync``, ``snapshot``, ``partition``,
        ``wedge``: POST; ``digest``: GET), signed with the cluster secret as the node-to-node
        endpoints require. Returns (status, decoded JSON)."""
        method = "GET" if action == "digest" else "POST"
        path = f"/v1/debug/{action}"
        data = json.dumps(body).encode() if body is not None else b""
        headers = Signer(self.secret, "local-cluster").headers(method, path, data)
        return http_json(self.url(name) + path, method=method, data=data or None, headers=headers, timeout=timeout,
                         context=self.ssl_context)

    def log_files(self) -> list[Path]:
        """Every node's log file written so far."""
        return sorted((self.base_dir / "logs").glob("*.log"))

    def log_text(self, name: str) -> str:
        path = self.base_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last ``lines`` lines of ``name``'s log ("" when it wrote none)."""
        return "\n".join(self.log_text(name).splitlines()[-lines:])
