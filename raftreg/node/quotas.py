"""Store quotas (``[quotas]``, ``raftreg.config.QuotaSettings``): caps on how many services,
instances, keys and sessions the replicated state may hold (checklist row 9, research §4.2).

Contract:
- ``check(state, cmd)`` raises ``QuotaExceeded`` (507 ``quota_exceeded``; the message names the
  cap, e.g. ``quotas.max_keys``; no ``field``, as no input field is at fault) when the client
  command ``cmd`` would create an object past a cap, judged on ``state`` as it is now; it
  returns when ``cmd`` creates nothing new (a
  re-registration, a write to an existing key, a delete): a full store keeps serving its
  existing objects, its reads and its deletions. A cap of 0 is off.
- ``Writer.commit`` calls it for client writes only, before proposing (nothing reaches the log);
  the node's own commands (expiries, check verdicts) are never refused.
- The caps are soft by the writes in flight: concurrent writes are each judged on the state
  before any of them applied, so the store can pass a cap by at most the writes in flight
  (``raft.max_queued_commands`` per node). They bound memory, not an exact count.
"""

from __future__ import annotations

from raftreg.config import QuotaSettings
from raftreg.errors import QuotaExceeded
from raftreg.state.commands import Authorized, Command, KVSet, KVTxn, Register, SessionCreate
from raftreg.state.machine import StateMachine

_CREATING_TXN_VERBS = frozenset({"set", "cas"})


def _refuse(cap: str, limit: int, what: str) -> QuotaExceeded:
    return QuotaExceeded(f"the store holds {what}, its cap (quotas.{cap} = {limit}): delete some first")


class Quotas:
    """The ``[quotas]`` caps of one node (module docstring)."""

    def __init__(self, settings: QuotaSettings) -> None:
        self.settings = settings

    def check(self, state: StateMachine, cmd: Command) -> None:
        """Raise ``QuotaExceeded`` if ``cmd`` would create an object past a cap (module docstring).
        The caller holds the lock that serialises ``state`` with apply."""
        if isinstance(cmd, Authorized):
            cmd = cmd.cmd
        if isinstance(cmd, Register):
            self._check_instance(state, cmd.instance.service, cmd.instance.id)
        elif isinstance(cmd, KVSet):
            if state.kv.get(cmd.key) is None:
                self._check_keys(state, 1)
        elif isinstance(cmd, KVTxn):
            new = {op.key for op in cmd.ops if op.op in _CREATING_TXN_VERBS and state.kv.get(op.key) is None}
            if new:
                self._check_keys(state, len(new))
        elif isinstance(cmd, SessionCreate):
            cap = self.settings.max_sessions
            if cap and state.sessions.get(cmd.session.id) is None and len(state.sessions) >= cap:
                raise _refuse("max_sessions", cap, f"{len(state.sessions)} sessions")

    def _check_instance(self, state: StateMachine, service: str, instance_id: str) -> None:
        registry, caps = state.registry, self.settings
        if registry.get_instance(service, instance_id) is not None:
            return  # a re-registration creates nothing
        size = registry.service_size(service)
        if size == 0 and caps.max_services and registry.service_count() >= caps.max_services:
            raise _refuse("max_services", caps.max_services, f"{registry.service_count()} services")
        if caps.max_instances_per_service and size >= caps.max_instances_per_service:
            raise _refuse("max_instances_per_service", caps.max_instances_per_service,
                          f"{size} instances of service {service!r}")
        if caps.max_instances and registry.instance_count() >= caps.max_instances:
            raise _refuse("max_instances", caps.max_instances, f"{registry.instance_count()} instances")

    def _check_keys(self, state: StateMachine, new: int) -> None:
        cap, keys = self.settings.max_keys, state.kv.key_count()
        if cap and keys + new > cap:
            raise _refuse("max_keys", cap, f"{keys} keys (this write adds {new})")
