"""``raftreg config check``: every problem of a cluster config, one line each.

``check_config(path, env)`` reads the TOML and returns a list of ``Problem`` (level "error" or
"warning"), reporting as many problems as it can find instead of stopping at the first (the
loader, ``load_config``, stops at the first). Checked:
- the file reads and is TOML; every field is known and well typed (``load_config``'s message);
- node names unique; each kind of address (http, raft, consul_http, dns) unique, ``host:port``;
- no two listeners of the cluster on one host:port (e.g. a node whose http and raft ports are the
  same, or one node's http on another's raft port): one of them could never start;
- at least one voter; an even number of voters is a warning (it tolerates no more failures than
  one voter fewer, and can split evenly);
- the Raft timeouts pysyncobj accepts: raft_min_timeout > 3 x append_entries_period,
  raft_max_timeout >= raft_min_timeout, positive periods;
- the secret: ``secret_file`` must exist and be non-empty; without it a warning reminds that every
  node needs ``$secret_env`` (or a ``raftreg-secret`` systemd credential);
- ``[tls]``: each node's certificate and key, and the CA, must exist.
Relative paths resolve against the current directory, as for ``raftreg serve``.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import msgspec

from raftreg.config import ClusterConfig, ConfigError, RaftTuning, split_hostport

ADDRESS_KINDS = ("http", "raft", "consul_http", "dns")


class Problem(NamedTuple):
    level: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def check_config(path: str | Path, env: Mapping[str, str] | None = None) -> list[Problem]:
    """Every problem found in the config at ``path`` (module docstring); empty when it is clean."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        return [Problem("error", f"cannot read {path}: {exc.strerror}")]
    except tomllib.TOMLDecodeError as exc:
        return [Problem("error", f"{path} is not valid TOML: {exc}")]
    problems: list[Problem] = []
    nodes = [n for n in raw.get("nodes", []) if isinstance(n, dict)] if isinstance(raw.get("nodes"), list) else []
    problems += _node_problems(nodes)
    problems += _timeout_problems(raw.get("raft", {}))
    problems += _secret_problems(raw, env)
    if not problems:  # the loader's own checks (types, unknown fields, ...) name the first remaining one
        try:
            config = msgspec.convert(raw, ClusterConfig)
        except (msgspec.ValidationError, ConfigError) as exc:
            return [Problem("error", str(exc))]
        problems += _tls_problems(config)
    return problems


def _node_problems(nodes: list[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    if not nodes:
        return [Problem("error", "no [[nodes]]: a cluster needs at least one node")]
    for name, count in Counter(str(n.get("name")) for n in nodes).items():
        if count > 1:
            problems.append(Problem("error", f"node name {name!r} is used by {count} nodes"))
    listeners: dict[tuple[str, int], list[str]] = {}
    for node in nodes:
        for kind in ADDRESS_KINDS:
            addr = node.get(kind)
            if addr is None:
                continue
            try:
                host, port = split_hostport(str(addr))
            except ConfigError as exc:
                problems.append(Problem("error", f"node {node.get('name')!r} {kind}: {exc}"))
                continue
            listeners.setdefault((host, port), []).append(f"{node.get('name')}.{kind}")
    for (host, port), users in listeners.items():
        if len(users) > 1:
            problems.append(Problem("error", f"{host}:{port} is used by {' and '.join(users)}: only one of them "
                                             "can listen there"))
    voters = sum(1 for n in nodes if n.get("role", "voter") == "voter")
    if voters == 0:
        problems.append(Problem("error", "no voter: at least one node must have role = \"voter\""))
    elif voters % 2 == 0:
        problems.append(Problem("warning", f"{voters} voters: an even count tolerates no more failures than "
                                           f"{voters - 1} and can split evenly (use an odd number)"))
    return problems


def _timeout_problems(raft: Any) -> list[Problem]:
    if not isinstance(raft, dict):
        return []
    default = RaftTuning()
    values = {"append_entries_period": default.append_entries_period, "raft_min_timeout": default.raft_min_timeout,
              "raft_max_timeout": default.raft_max_timeout, **raft}
    try:
        period = float(values["append_entries_period"])
        low, high = float(values["raft_min_timeout"]), float(values["raft_max_timeout"])
    except (TypeError, ValueError):
        return []  # a wrong type: the loader names it
    problems = []
    if not period > 0:
        problems.append(Problem("error", f"raft.append_entries_period = {period:g} must be positive"))
    if not low > 3 * period:
        problems.append(Problem("error", f"raft.raft_min_timeout = {low:g} must be more than 3 x "
                                         f"raft.append_entries_period ({3 * period:g}): pysyncobj refuses to start"))
    if not high >= low:
        problems.append(Problem("error", f"raft.raft_max_timeout = {high:g} must be at least "
                                         f"raft.raft_min_timeout ({low:g})"))
    return problems


def _secret_problems(raw: dict[str, Any], env: Mapping[str, str] | None) -> list[Problem]:
    secret_file, secret_env = raw.get("secret_file"), str(raw.get("secret_env", "RAFTREG_SECRET"))
    if isinstance(secret_file, str) and secret_file:
        secret = Path(secret_file)
        try:
            if not secret.read_text().strip():
                return [Problem("error", f"secret_file {secret} is empty")]
        except OSError as exc:
            return [Problem("error", f"secret_file {secret}: {exc.strerror}")]
    elif env is not None and not env.get(secret_env):
        return [Problem("warning", f"no secret_file: every node needs ${secret_env} "
                                   "(or a raftreg-secret systemd credential)")]
    return []


def _tls_problems(config: ClusterConfig) -> list[Problem]:
    problems = []
    if config.tls is not None:
        wanted = {("tls.ca_file", config.tls.ca_file)} if config.tls.ca_file else set()
        for node in config.nodes:
            cert, key = config.tls.node_files(node.name)
            wanted |= {(f"tls.cert_file of {node.name}", cert), (f"tls.key_file of {node.name}", key)}
        for field, file in sorted(wanted):
            if not Path(file).is_file():
                problems.append(Problem("error", f"{field}: {file} does not exist"))
    return problems
