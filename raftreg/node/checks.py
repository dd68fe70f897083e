"""Active health checks: each node probes its share of the instances that have a ``check``.

Contract:
- Share: rendezvous (highest-random-weight) hashing of ``service/id`` over the live members
  (this node, if it has a usable leader, plus the peers its Raft transport is connected to). When
  a node dies its connections drop, every survivor recomputes at its next reconcile (every
  ``reconcile_period``) and the dead node's instances move, each to one survivor; the others
  keep theirs.
- Probes: ``http`` passes on a 2xx answer within ``timeout``, ``tcp`` when a connection opens
  within ``timeout``. At most ``max_concurrent`` probes run at once per node.
- Only *transitions* are committed (``SetCheckStatus``), never each probe: ``failures_before_critical``
  consecutive failures turn a non-critical check critical, ``successes_before_passing``
  consecutive successes turn a non-passing check passing. A new owner starts counting afresh.
- ``deregister_critical_after``: once the committed check status has been critical that long (as
  seen by the current owner, on its monotonic clock), the owner commits an ``Expire``.
- Time comes from a ``Clock``; the probe function is injectable (unit tests use fakes).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import heapq
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from raftreg.config import CheckTuning
from raftreg.models import Check, Instance, Status
from raftreg.node.leases import Clock
from raftreg.node.tasks import cancel_and_wait

log = logging.getLogger("raftreg.checks")

CheckKey = tuple[str, str]


def _weight(member: str, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest(), "big")


def owner_of(key: str, members: Sequence[str]) -> str:
    """Rendezvous hashing: the member with the highest weight for ``key``."""
    return max(members, key=lambda m: _weight(m, key))


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    output: str


Prober = Callable[[Check], Awaitable[ProbeResult]]


class NetworkProber:
    """Real probes: HTTP GET through one pooled aiohttp session, or a TCP connect."""

    def __init__(self, max_concurrent: int) -> None:
        self._max = max_concurrent
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, check: Check) -> ProbeResult:
        try:
            if check.http is not None:
                return await asyncio.wait_for(self._http(check.http), check.timeout)
            if check.tcp is not None:
                return await asyncio.wait_for(self._tcp(check.tcp), check.timeout)
        except TimeoutError:
            return ProbeResult(False, f"timed out after {check.timeout:g}s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return ProbeResult(False, f"{type(exc).__name__}: {exc}"[:200])
        return ProbeResult(False, "check has neither http nor tcp")

    async def _http(self, url: str) -> ProbeResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._max),
                                                  headers={"User-Agent": "raftreg-check"})
        async with self._session.get(url, allow_redirects=False) as resp:
            await resp.read()
            return ProbeResult(200 <= resp.status < 300, f"HTTP {resp.status}")

    @staticmethod
    async def _tcp(hostport: str) -> ProbeResult:
        host, _, port = hostport.rpartition(":")
        _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return ProbeResult(True, f"TCP connect to {hostport} succeeded")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass
class _Owned:
    """A check this node runs now."""

    instance: Instance
    due: float
    successes: int = 0
    failures: int = 0
    critical_since: float | None = None
    proposing: bool = False


@dataclass
class CheckStats:
    owned: int = 0
    probes: int = 0
    failed_probes: int = 0
    transitions: int = 0
    deregistered: int = 0
    running: int = 0
    members: int = 0


class CheckRunner:
    """Runs this node's share of the checks (see the module docstring)."""

    LAG_SAMPLES = 5000

    def __init__(
        self,
        me: str,
        tuning: CheckTuning,
        clock: Clock,
        *,
        list_checked: Callable[[], list[Instance]],
        live_members: Callable[[], list[str] | None],
        propose_status: Callable[[Instance, Status, str], Awaitable[Instance | None]],
        propose_expire: Callable[[Instance], Awaitable[bool]],
        prober: Prober,
    ) -> None:
        self.me = me
        self.tuning = tuning
        self.clock = clock
        self._list_checked = list_checked
        self._live_members = live_members
        self._propose_status = propose_status
        self._propose_expire = propose_expire
        self._prober = prober
        self._owned: dict[CheckKey, _Owned] = {}
        self._heap: list[tuple[float, CheckKey]] = []
        self._members: tuple[str, ...] = ()
        self._sem = asyncio.Semaphore(tuning.max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.lags: collections.deque[float] = collections.deque(maxlen=self.LAG_SAMPLES)
        self.stats = CheckStats()

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="check-runner")

    async def stop(self) -> None:
        await cancel_and_wait([self._loop_task, *self._tasks])

    # ---- ownership --------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Recompute this node's share from the applied state and the live members."""
        members = self._live_members()
        now = self.clock.monotonic()
        if not members:
            self._owned.clear()
            self._heap.clear()
            self._members = ()
            self._sync_stats()
            return
        self._members = tuple(sorted(members))
        wanted: dict[CheckKey, Instance] = {}
        for inst in self._list_checked():
            if owner_of(f"{inst.service}/{inst.id}", self._members) == self.me:
                wanted[(inst.service, inst.id)] = inst
        for key in [k for k in self._owned if k not in wanted]:
            del self._owned[key]
        for key, inst in wanted.items():
            owned = self._owned.get(key)
            if owned is None or owned.instance.create_index != inst.create_index or owned.instance.check != inst.check:
                assert inst.check is not None
                due = now + random.uniform(0.0, min(inst.check.interval, 1.0))
                owned = self._owned[key] = _Owned(inst, due)
                heapq.heappush(self._heap, (due, key))
            else:
                owned.instance = inst
            self._track_critical(owned, now)
        self._sync_stats()

    def _sync_stats(self) -> None:
        self.stats.owned = len(self._owned)
        self.stats.members = len(self._members)

    @staticmethod
    def _track_critical(owned: _Owned, now: float) -> None:
        if owned.instance.check_status == "critical":
            if owned.critical_since is None:
                owned.critical_since = now
        else:
            owned.critical_since = None

    # ---- probing ----------------------------------------------------------------------------
    async def _run(self) -> None:
        next_reconcile = 0.0
        while True:
            now = self.clock.monotonic()
            if now >= next_reconcile:
                try:
                    self.reconcile()
                except Exception:
                    log.exception("event=check_reconcile_failed")
                next_reconcile = now + self.tuning.reconcile_period
            self.launch_due(now)
            until = next_reconcile
            if self._heap:
                until = min(until, self._heap[0][0])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, until - self.clock.monotonic()))

    def launch_due(self, now: float) -> int:
        """Start a probe task for every owned check whose time has come; returns how many."""
        started = 0
        while self._heap and self._heap[0][0] <= now:
            due, key = heapq.heappop(self._heap)
            owned = self._owned.get(key)
            if owned is None or owned.due != due:
                continue  # no longer ours, or rescheduled
            task = asyncio.create_task(self._probe(key, owned))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def _probe(self, key: CheckKey, owned: _Owned) -> None:
        check = owned.instance.check
        assert check is not None
        async with self._sem:
            start = self.clock.monotonic()
            self.lags.append(start - owned.due)
            self.stats.running += 1
            try:
                result = await self._prober(check)
            except Exception as exc:  # a prober bug must not stop the checks
                result = ProbeResult(False, f"probe error: {type(exc).__name__}")
            finally:
                self.stats.running -= 1
        self.stats.probes += 1
        if self._owned.get(key) is not owned:
            return  # ownership moved or the check changed while probing
        owned.due = max(owned.due + check.interval, self.clock.monotonic())
        heapq.heappush(self._heap, (owned.due, key))
        self._wake.set()
        await self.judge(owned, result)

    async def judge(self, owned: _Owned, result: ProbeResult) -> None:
        """Count the probe result; commit a transition or a deregistration when one is due."""
        check = owned.instance.check
        assert check is not None
        if result.ok:
            owned.successes, owned.failures = owned.successes + 1, 0
        else:
            self.stats.failed_probes += 1
            owned.successes, owned.failures = 0, owned.failures + 1
        committed = owned.instance.check_status
        target: Status | None = None
        if result.ok and committed != "passing" and owned.successes >= check.successes_before_passing:
            target = "passing"
        elif not result.ok and committed != "critical" and owned.failures >= check.failures_before_critical:
            target = "critical"
        now = self.clock.monotonic()
        if owned.proposing:
            return
        owned.proposing = True
        try:
            if target is not None:
                stored = await self._propose_status(owned.instance, target, result.output)
                if stored is not None:
                    self.stats.transitions += 1
                    owned.instance = stored
                    log.info("event=check_status service=%s id=%s status=%s output=%r",
                             stored.service, stored.id, target, result.output)
            self._track_critical(owned, now)
            after = check.deregister_critical_after
            since = owned.critical_since
            overdue = after is not None and since is not None and now - since >= after
            if overdue and await self._propose_expire(owned.instance):
                self.stats.deregistered += 1
                log.info("event=check_deregistered service=%s id=%s critical_for_s=%.1f",
                         owned.instance.service, owned.instance.id, now - (since or now))
        except Exception as exc:  # no leader, timeout: the next probe tries again
            log.info("event=check_commit_retry service=%s id=%s error=%s",
                     owned.instance.service, owned.instance.id, type(exc).__name__)
        finally:
            owned.proposing = False

    def lag_ms(self) -> dict[str, float | None]:
        """Probe start minus its scheduled time over the last probes: p50, p99, max (ms)."""
        if not self.lags:
            return {"p50": None, "p99": None, "max": None}
        vals = sorted(self.lags)

        def pick(q: float) -> float:
            return round(vals[min(len(vals) - 1, int(q * len(vals)))] * 1000, 2)

        return {"p50": pick(0.5), "p99": pick(0.99), "max": round(vals[-1] * 1000, 2)}
