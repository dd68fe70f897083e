"""The pysyncobj version guard: raftreg reads and patches private parts of pysyncobj 0.3.17.

Every private attribute, method, message key and status key that ``raftreg.raft`` relies on is
listed in ``REQUIREMENTS`` with the place in pysyncobj that defines it. ``find_problems`` checks
them against the installed library without starting anything: instance attributes are found in
the names a method's code object stores (``SyncObj.__init__.__code__.co_names`` holds
``_SyncObj__raftCommitIndex`` because ``__init__`` assigns ``self.__raftCommitIndex``), message
and status keys among its constants. Importing ``raftreg.raft`` runs the check and raises
``IncompatiblePysyncobj`` naming the first missing piece, so a node refuses to start rather than
run patches against a library they were not written for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any

PINNED_VERSION = "0.3.17"


class IncompatiblePysyncobj(RuntimeError):
    """The installed pysyncobj is not the one raftreg's guards were written and tested against."""


@dataclass(frozen=True)
class Requirement:
    """``names`` must appear in the code of ``where`` (as stored attributes or constants)."""

    where: str  # dotted path inside pysyncobj, e.g. "syncobj.SyncObj.__init__"
    names: tuple[str, ...]
    used_for: str


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("syncobj.SyncObj.__init__",
                ("_SyncObj__raftCommitIndex", "_SyncObj__leaderCommitIndex", "_SyncObj__raftCurrentTerm"),
                "the snapshot-install commit-index guard (raftreg.raft.transport)"),
    Requirement("syncobj.SyncObj.__init__",
                ("_SyncObj__raftState", "_SyncObj__raftElectionDeadline", "_SyncObj__noopIDx"),
                "status sampling: last contact, led terms, term started (raftreg.raft.status)"),
    Requirement("syncobj.SyncObj.__init__", ("_SyncObj__raftLog", "_SyncObj__votedForNodeId"),
                "fault injection and the vote kept across a resync (raftreg.raft.faults, storage)"),
    Requirement("syncobj.SyncObj.__init__",
                ("_SyncObj__otherNodes", "_SyncObj__raftLeader", "_SyncObj__transport", "_SyncObj__pipeNotifier",
                 "_SyncObj__selfNode"),
                "ReadIndex messages on the Raft connections (raftreg.raft.read_channel); the ranked "
                "campaign after a leader loss (raftreg.raft.transport)"),
    Requirement("syncobj.SyncObj._SyncObj__onMessageReceived",
                ("type", "append_entries", "prevLogIdx", "prevLogTerm", "entries", "transmission", "commit_index",
                 "term", "serialized"),
                "recognising and trimming AppendEntries (raftreg.raft.transport)"),
    Requirement("syncobj.SyncObj.getStatus",
                ("state", "leader", "has_quorum", "log_len", "last_applied", "commit_idx", "raft_term",
                 "leader_commit_idx", "match_idx_server_", "partner_node_status_server_"),
                "status sampling (raftreg.raft.status)"),
    Requirement("syncobj.SyncObj.__init__", ("_poller", "autoTick"),
                "ticks on the event loop: our poller, no tick thread (raftreg.raft.loop_tick)"),
    Requirement("transport.TCPTransport._createServer", ("_poller",),
                "ticks on the event loop: the transport's sockets on our poller (raftreg.raft.loop_tick)"),
    Requirement("transport.Transport.__init__", ("_onMessageReceivedCallback",),
                "the guarded transport (raftreg.raft.transport)"),
    Requirement("journal.FileJournal.setCurrentTerm", ("currentTerm", "votedForNodeId"),
                "keeping term and vote across a resync (raftreg.raft.storage)"),
    Requirement("journal.FileJournal.__init__", ("_FileJournal__journalFile",),
                "the journal's pages dropped from RSS (raftreg.raft.journal_pages)"),
    Requirement("journal.ResizableFile.__init__", ("_ResizableFile__mm",),
                "the journal's pages dropped from RSS (raftreg.raft.journal_pages)"),
    Requirement("serializer.Serializer.serialize", ("gzip", "GzipFile"),
                "dumps written without a second compression (raftreg.raft.snapshot)"),
    Requirement("serializer.Serializer.deserialize", ("gzip", "GzipFile"),
                "dumps written without a second compression (raftreg.raft.snapshot)"),
    Requirement("tcp_connection.TcpConnection.send", ("zlib", "compress"),
                "messages framed as stored zlib streams (raftreg.raft.message_framing)"),
    Requirement("tcp_connection.TcpConnection._TcpConnection__processParseMessage", ("zlib", "decompress"),
                "messages framed as stored zlib streams (raftreg.raft.message_framing)"),
)

# Public or semi-public callables used directly.
CALLABLES: tuple[tuple[str, str], ...] = (
    ("syncobj.SyncObj._isLeader", "RaftNode.is_leader"),
    ("syncobj.SyncObj._getLeader", "RaftNode.leader_addr"),
    ("syncobj.SyncObj.getStatus", "status sampling"),
    ("syncobj.SyncObj.addOnTickCallback", "the tick hook"),
    ("syncobj.SyncObj.destroy_synchronous", "RaftNode.stop"),
    ("syncobj.SyncObj.forceLogCompaction", "RaftNode.force_snapshot"),
    ("syncobj.SyncObj._onTick", "ticks on the event loop (raftreg.raft.loop_tick)"),
    ("syncobj.SyncObj.transferLeadership", "raft.membership.transfer_to (graceful stop, transfer-leader)"),
    ("transport.TCPTransport.send", "the guarded transport"),
    ("transport.Transport.setOnMessageReceivedCallback", "the guarded transport"),
    ("transport.Transport.setOnNodeDisconnectedCallback", "fast failover (raftreg.raft.transport)"),
    ("journal.MetaStorer.getMeta", "keeping term and vote across a resync"),
    ("journal.MetaStorer.storeMeta", "keeping term and vote across a resync"),
)


def _resolve(modules: dict[str, Any], where: str) -> Any:
    module, *attrs = where.split(".")
    obj = modules[module]
    for attr in attrs:
        obj = getattr(obj, attr)
    return obj


def _code_words(fn: Callable[..., Any]) -> set[str]:
    code: CodeType = fn.__code__
    words = set(code.co_names)
    words.update(c for c in code.co_consts if isinstance(c, str))
    for const in code.co_consts:  # tuples of keyword names, nested code objects
        if isinstance(const, tuple):
            words.update(c for c in const if isinstance(c, str))
    return words


def find_problems(version: str, modules: dict[str, Any]) -> list[str]:
    """Every way the given pysyncobj differs from what raftreg relies on (empty: compatible).

    ``modules`` maps the short names used in ``REQUIREMENTS`` ("syncobj", "transport",
    "journal", "serializer", "tcp_connection") to the modules (or stand-ins, in tests)."""
    problems: list[str] = []
    if version != PINNED_VERSION:
        problems.append(f"pysyncobj {PINNED_VERSION} is required, {version} is installed "
                        f"(pip install pysyncobj=={PINNED_VERSION})")
    for where, used_for in CALLABLES:
        try:
            if not callable(_resolve(modules, where)):
                raise AttributeError(where)
        except (AttributeError, KeyError):
            problems.append(f"pysyncobj lacks {where} (used by {used_for})")
    for req in REQUIREMENTS:
        try:
            words = _code_words(_resolve(modules, req.where))
        except (AttributeError, KeyError):
            problems.append(f"pysyncobj lacks {req.where} (used by {req.used_for})")
            continue
        missing = [name for name in req.names if name not in words]
        if missing:
            problems.append(f"pysyncobj's {req.where} no longer has {', '.join(missing)} (used by {req.used_for})")
    return problems


def ensure_compatible() -> None:
    """Raise ``IncompatiblePysyncobj`` naming the first problem with the installed pysyncobj."""
    from pysyncobj import journal, serializer, syncobj, tcp_connection, transport
    from pysyncobj.version import VERSION

    problems = find_problems(VERSION, {"syncobj": syncobj, "transport": transport, "journal": journal,
                                       "serializer": serializer, "tcp_connection": tcp_connection})
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IncompatiblePysyncobj(f"cannot run on this pysyncobj: {problems[0]}{more}")
