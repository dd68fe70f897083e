"""``Membership``: this node's answer to "who are the current members", kept up to date and on disk.

Contract:
- The live membership = the Raft member set (pysyncobj's, ``raftreg.raft.membership.voters``),
  each address named from the config file or the replicated members table
  (``raftreg.state.members``), plus the read replicas the config file or the table lists.
  A voter whose name is not known yet (its table row not applied here yet) keeps the name it had
  before, or is left out until it is known.
- The node's one ``ClusterConfig`` object is the view every part reads (``config.nodes``,
  ``config.node(name)``, ``config.url(name)``): ``refresh`` updates its ``nodes`` list in place
  when the membership changed, so every part sees the change at once, and writes it to
  ``<data_dir>/members.json`` (atomic: temp file, fsync, rename).
- ``with_persisted(config, data_dir)``: at start, the config with the membership last written
  there, so a node restarted with the original, unedited config file comes back with the current
  membership (pysyncobj's dump and journal then confirm or correct the Raft member set).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec

from raftreg.config import ClusterConfig, NodeConfig
from raftreg.raft import RaftNode
from raftreg.raft.membership import voters
from raftreg.state.members import Member

log = logging.getLogger("raftreg.membership")

MEMBERS_FILE = "members.json"


class _MembersFile(msgspec.Struct):
    nodes: list[NodeConfig]


def node_of(row: Member) -> NodeConfig:
    """A table row as a config entry."""
    return NodeConfig(name=row.name, http=row.http, raft=row.raft, consul_http=row.consul_http, dns=row.dns,
                      role=row.role)


def live_members(voter_addrs: Iterable[str], known: list[NodeConfig], rows: list[Member]) -> list[NodeConfig]:
    """The current members (pure): the voters, named from ``rows`` (the replicated table, which
    wins) or ``known`` (the config file and what this node knew before), then every replica.
    Order: as in ``known``, then new ones by the index that added them."""
    by_raft: dict[str, NodeConfig] = {n.raft: n for n in known if n.role == "voter"}
    for row in sorted(rows, key=lambda r: r.added_index):
        if row.role == "voter":
            by_raft[row.raft] = node_of(row)
    replicas: dict[str, NodeConfig] = {n.name: n for n in known if n.role == "replica"}
    for row in rows:
        if row.role == "replica":
            replicas[row.name] = node_of(row)
    addrs = set(voter_addrs)
    out = [n for n in by_raft.values() if n.raft in addrs]
    taken = {n.name for n in out}
    out += [n for n in replicas.values() if n.name not in taken]
    return out


def read_members(data_dir: Path) -> list[NodeConfig] | None:
    path = Path(data_dir) / MEMBERS_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=_MembersFile).nodes
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("event=members_file_unreadable path=%s error=%s: using the config file's members", path, exc)
        return None


def write_members(data_dir: Path, nodes: list[NodeConfig]) -> None:
    """Atomically replace ``<data_dir>/members.json``."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path, tmp = data_dir / MEMBERS_FILE, data_dir / (MEMBERS_FILE + ".tmp")
    with open(tmp, "wb") as f:
        f.write(msgspec.json.encode(_MembersFile(nodes)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def with_persisted(config: ClusterConfig, data_dir: Path) -> ClusterConfig:
    """``config`` with the membership this node last recorded in ``data_dir`` (unchanged when it
    recorded none)."""
    nodes = read_members(data_dir)
    if not nodes:
        return config
    return msgspec.structs.replace(config, nodes=nodes)


class Membership:
    """Keeps ``config.nodes`` equal to the live membership (see the module docstring)."""

    def __init__(self, config: ClusterConfig, data_dir: Path) -> None:
        self.config = config
        self._data_dir = Path(data_dir)
        self._known: dict[str, NodeConfig] = {n.name: n for n in config.nodes}
        self.changes = 0

    def current(self) -> list[NodeConfig]:
        return list(self.config.nodes)

    def voters(self) -> list[NodeConfig]:
        return [n for n in self.config.nodes if n.role == "voter"]

    def follow(self, raft: RaftNode) -> None:
        """After a status sample (on the loop): refresh from the Raft member set and the table,
        and point the bridge's peer list at the current voters."""
        with raft.lock:
            rows = raft.state.members.rows()
        if self.refresh(voters(raft), rows):
            raft.peer_addrs = [n.raft for n in self.voters() if n.raft != raft.self_addr]

    def refresh(self, voter_addrs: frozenset[str], rows: list[Member]) -> bool:
        """Recompute; when the membership changed, update ``config.nodes`` in place and persist
        it. True when it changed. Call on the event loop."""
        known = list(self._known.values())
        new = live_members(voter_addrs, known, rows)
        if new == self.config.nodes:
            return False
        old_names = [n.name for n in self.config.nodes]
        self.config.nodes[:] = new
        for n in new:
            self._known[n.name] = n
        self.changes += 1
        log.info("event=membership_changed from=%s to=%s", old_names, [n.name for n in new])
        try:
            write_members(self._data_dir, new)
        except OSError:
            log.exception("event=members_file_write_failed")
        return True
