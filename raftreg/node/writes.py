"""``Writer``: every write of a node, committed through the leader and answered once applied here.

Contract:
- Each write waits for a usable leader (a little, during an election), then goes through group
  commit (``GroupCommitter``) under one deadline (``raft.commit_timeout`` unless given).
- ``Unavailable`` (503): nothing was applied: no usable leader, or this node's write queue is
  full (backpressure: refused at once, before anything reaches Raft).
- ``OutcomeUnknown`` (504): not confirmed in time; the write may still apply.
- ACLs: a client's command (``bounded``) written while serving a request with an authority
  (``raftreg.node.authority``) is checked against the token now (403 ``PermissionDenied``
  before anything is proposed) and goes into the log wrapped in ``Authorized``, which apply
  re-checks; a command refused at apply (its token deleted or its right lost in between)
  answers 403 too.
- Quotas: a client's command that would create an object past a ``[quotas]`` cap is refused
  with 507 ``QuotaExceeded`` before anything is proposed (``raftreg.node.quotas``).
- A state-machine result that does not fit the command (which would be a bug) is an internal
  error, never an ``assert``.
"""

from __future__ import annotations

import asyncio
import time

from raftreg.config import RaftTuning
from raftreg.errors import InternalError, NotFound, OutcomeUnknown, PermissionDenied
from raftreg.models import Instance, Status
from raftreg.node.authority import current_authority
from raftreg.node.proposer import Committed, GroupCommitter
from raftreg.node.quotas import Quotas
from raftreg.node.view import ClusterView
from raftreg.raft import RaftNode
from raftreg.state.acl import Denied
from raftreg.state.commands import (
    Authorized,
    Command,
    Deregister,
    Expire,
    Noop,
    Register,
    SetCheckStatus,
    SetManualStatus,
)
from raftreg.state.machine import Result
from raftreg.state.registry import Deregistered, Failed, Registered, StatusSet
from raftreg.state.sessions import SessionsEnded

MAX_CHECK_OUTPUT = 512


def unexpected(what: str, result: Result) -> InternalError:
    """The state machine answered with a result that does not fit the command: a bug (500)."""
    reason = result.reason if isinstance(result, Failed) else type(result).__name__
    return InternalError(f"{what} was not applied by the state machine: {reason}")


class Writer:
    def __init__(self, raft: RaftNode, view: ClusterView, tuning: RaftTuning, quotas: Quotas | None = None) -> None:
        self._raft = raft
        self._quotas = quotas
        self._view = view
        self.commit_timeout = tuning.commit_timeout
        self.proposer = GroupCommitter(
            raft, max_batch=tuning.max_batch_commands, max_queued=tuning.max_queued_commands,
            max_entry_bytes=tuning.max_entry_bytes, max_queue_wait=tuning.max_queue_wait,
            max_inflight=tuning.max_inflight_entries, compress_from=tuning.compress_entries_from_bytes,
            batch_wait=tuning.batch_wait, wait_from=tuning.batch_wait_from,
            stuck_after=max(1.0, tuning.raft_max_timeout * 1.5),
        )

    async def commit(self, cmd: Command, timeout: float | None = None, *, bounded: bool = True) -> Committed:
        """Commit ``cmd`` (see the module docstring). ``bounded=False`` skips the queue bound:
        for the node's own few commands (expiries, check transitions), not for clients'. Every
        command is applied at most once, also when an attempt's outcome was unknown and it was
        re-submitted (``GroupCommitter``), so compare-and-set and transactions are retried too."""
        if bounded:
            self.proposer.check_capacity()
            cmd = self._authorize(cmd)
            if self._quotas is not None:
                with self._raft.lock:
                    self._quotas.check(self._raft.state, cmd)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout if timeout is not None else self.commit_timeout)
        await self._view.await_leader(deadline - loop.time())
        try:  # the committer keeps the deadline: no timer per write (raftreg.node.deadlines)
            committed = await self.proposer.propose(cmd, bounded=bounded, deadline=deadline)
        except TimeoutError:
            raise OutcomeUnknown(
                "the write was not confirmed in time: its outcome is unknown and it may still apply"
            ) from None
        if isinstance(committed.result, Denied):
            raise PermissionDenied(f"permission denied when the write applied: lacks {committed.result.permission}")
        return committed

    def _authorize(self, cmd: Command) -> Command:
        """``cmd`` wrapped with the request's authority (see the module docstring)."""
        authority = current_authority.get()
        if authority is None or authority.operator or isinstance(cmd, Authorized | Expire | SetCheckStatus | Noop):
            return cmd
        with self._raft.lock:
            acl = self._raft.state.acl
            denied = acl.first_denied(authority.token, cmd, authority.default_allow, self._raft.state.session_name)
            index = acl.index
        if denied is not None:
            raise PermissionDenied(f"permission denied: lacks {denied.permission}")
        return Authorized(authority.accessor_id, index, authority.default_allow, cmd)

    async def register(self, instance: Instance) -> tuple[int, Instance]:
        """Create or replace ``instance``; returns the commit index and the stored instance."""
        committed = await self.commit(Register(instance))
        if not isinstance(committed.result, Registered):
            raise unexpected("the registration", committed.result)
        return committed.index, committed.result.instance

    async def deregister(self, service: str, instance_id: str) -> tuple[int, bool]:
        """Delete an instance; returns the commit index and whether it was deleted."""
        committed = await self.commit(Deregister(service, instance_id, time.time()))
        if not isinstance(committed.result, Deregistered):
            raise unexpected("the deregistration", committed.result)
        return committed.index, committed.result.existed

    async def set_manual_status(
        self, service: str, instance_id: str, status: Status, note: str
    ) -> tuple[int, Instance]:
        """Set (``warning``/``critical``) or clear (``passing``) the status set by hand; returns the
        commit index and the stored instance; ``NotFound`` when there is no such instance."""
        committed = await self.commit(SetManualStatus(service, instance_id, status, note, time.time()))
        result = committed.result
        if not isinstance(result, StatusSet) or result.instance is None:
            raise NotFound(f"no instance {instance_id!r} in service {service!r}")
        return committed.index, result.instance

    async def set_check_status(self, inst: Instance, status: Status, output: str) -> Instance | None:
        """Check runner: commit a check verdict for this incarnation of ``inst``."""
        cmd = SetCheckStatus(inst.service, inst.id, inst.create_index, status, output[:MAX_CHECK_OUTPUT], time.time())
        result = (await self.commit(cmd, bounded=False)).result
        return result.instance if isinstance(result, StatusSet) else None

    async def expire(self, service: str, instance_id: str, modify_index: int, reason: str = "ttl") -> bool:
        """Lease holder / check runner: remove the instance (or end the session: ``service``
        SESSION_LEASE) if it is still at ``modify_index``."""
        cmd = Expire(service, instance_id, modify_index, reason, time.time())
        result = (await self.commit(cmd, bounded=False)).result
        return (isinstance(result, Deregistered) and result.existed) or (isinstance(result, SessionsEnded)
                                                                        and bool(result.ids))
