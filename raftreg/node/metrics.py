"""One node's Prometheus metrics: a ``CollectorRegistry`` of its own (several nodes may share a
process in tests), filled at scrape time from the state the modules already keep.

Contract:
- ``NodeMetrics(info, raft, proposer, view)``: ``registry`` holds ``NodeCollector`` (reads
  ``info()``, i.e. ``RegistryNode.cluster_info()``, and the state's sizes under the Raft lock,
  when scraped), two histograms fed on the hot path (``raftreg_apply_latency_seconds`` by the
  group committer, ``raftreg_fsm_apply_duration_seconds`` by the Raft bridge: one ``observe``
  per Raft entry, not per request) and prometheus-client's ``ProcessCollector`` (RSS, open file
  descriptors, CPU). Other layers register their own instruments on ``registry`` (the HTTP
  middleware: ``raftreg.http.metrics``).
- Leader changes are counted by a status listener (every status sample, ~20 per second): each
  time the leader this node believes in becomes a different, known member.
- Names are stable (``raftreg top`` and dashboards read them): ``raftreg_`` prefix, base units
  (seconds, bytes), ``_total`` on counters. ``METRIC_FAMILIES`` lists those this module emits.
- Scraping runs on the event loop (``collect`` must not block); a part that fails to report is
  logged and skipped, never a failed scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from raftreg.node.proposer import GroupCommitter
from raftreg.node.view import ClusterView
from raftreg.raft import RaftNode, RaftStatus

log = logging.getLogger("raftreg.metrics")

# Group commit latency (propose -> applied here) and state-machine time per entry.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
APPLY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5)
BATCH_BUCKETS = tuple(2**i for i in range(13))  # 1 ... 4096 commands per entry
RAFT_STATES = ("leader", "follower", "candidate")

METRIC_FAMILIES: dict[str, str] = {  # name (without _total for counters) -> type
    "raftreg_raft_state": "gauge", "raftreg_raft_term": "gauge", "raftreg_raft_commit_index": "gauge",
    "raftreg_raft_applied_index": "gauge", "raftreg_raft_log_entries": "gauge", "raftreg_raft_has_quorum": "gauge",
    "raftreg_raft_last_contact_seconds": "gauge", "raftreg_raft_leader_changes": "counter",
    "raftreg_raft_members": "gauge", "raftreg_read_index_rounds": "counter",
    "raftreg_group_commit_entries": "counter", "raftreg_group_commit_commands": "counter",
    "raftreg_group_commit_retries": "counter", "raftreg_group_commit_refused": "counter",
    "raftreg_group_commit_expired": "counter", "raftreg_group_commit_timed_out": "counter",
    "raftreg_group_commit_queued": "gauge",
    "raftreg_group_commit_batch_commands": "histogram", "raftreg_apply_latency_seconds": "histogram",
    "raftreg_fsm_apply_duration_seconds": "histogram",
    "raftreg_snapshots": "counter", "raftreg_snapshot_duration_seconds": "summary",
    "raftreg_snapshot_restores": "counter", "raftreg_snapshot_restore_duration_seconds": "summary",
    "raftreg_watchdog_wedges": "counter", "raftreg_watchdog_recoveries": "counter",
    "raftreg_watchdog_resync_refused": "counter",
    "raftreg_blocking_queries_parked": "gauge", "raftreg_blocking_queries_woken": "counter",
    "raftreg_blocking_queries_timed_out": "counter", "raftreg_blocking_queries_woken_all": "counter",
    "raftreg_min_index_reads_waiting": "gauge",
    "raftreg_leases_holder": "gauge", "raftreg_leases": "gauge", "raftreg_leases_overdue": "gauge",
    "raftreg_lease_renewals": "counter", "raftreg_lease_expirations": "counter",
    "raftreg_lease_guard_engaged": "gauge", "raftreg_lease_guard_held": "gauge",
    "raftreg_lease_guard_trips": "counter", "raftreg_heartbeats_forwarded": "counter",
    "raftreg_checks_owned": "gauge", "raftreg_checks_running": "gauge", "raftreg_check_probes": "counter",
    "raftreg_check_probe_failures": "counter", "raftreg_check_transitions": "counter",
    "raftreg_check_deregistrations": "counter", "raftreg_check_probe_lag_seconds": "gauge",
    "raftreg_services": "gauge", "raftreg_instances": "gauge", "raftreg_kv_keys": "gauge",
    "raftreg_kv_history_versions": "gauge", "raftreg_sessions": "gauge",
}


class LeaderChanges:
    """Status listener counting changes of the believed leader to another known member."""

    def __init__(self) -> None:
        self.count = 0
        self._leader: str | None = None

    def __call__(self, st: RaftStatus, _usable: bool) -> None:
        if st.leader is not None and st.leader != self._leader:
            self._leader = st.leader
            self.count += 1


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class NodeCollector(Collector):
    """Reads the node's state when scraped (module docstring)."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        try:
            info = m.info()
        except Exception:
            log.exception("event=metrics_info_failed")
            return
        for part in (self._raft(info), self._group_commit(info), self._snapshots(), self._watches(info),
                     self._leases(info), self._checks(info), self._store()):
            try:
                yield from part
            except Exception:
                log.exception("event=metrics_part_failed")
        yield from m.apply_latency.collect()
        yield from m.fsm_apply.collect()

    def _raft(self, info: dict[str, Any]) -> Iterator[Metric]:
        state = GaugeMetricFamily("raftreg_raft_state", "1 for this node's Raft state, 0 for the others",
                                  labels=["state"])
        for name in RAFT_STATES:
            state.add_metric([name], 1.0 if info["state"] == name else 0.0)
        yield state
        yield _gauge("raftreg_raft_term", "Current Raft term", info["term"])
        yield _gauge("raftreg_raft_commit_index", "Raft commit index known to this node", info["commit_index"])
        yield _gauge("raftreg_raft_applied_index", "Last Raft index applied to this node's state",
                     info["applied_index"])
        yield _gauge("raftreg_raft_log_entries", "Entries in this node's Raft log (since the last snapshot)",
                     info["log_len"])
        yield _gauge("raftreg_raft_has_quorum", "1 while this node's Raft reports a connected quorum",
                     1.0 if info["has_quorum"] else 0.0)
        yield _gauge("raftreg_raft_last_contact_seconds",
                     "Seconds since this node last heard from the leader (0 on the leader)",
                     info["last_contact_ms"] / 1000.0)
        yield _counter("raftreg_raft_leader_changes", "Times the leader this node follows changed to another "
                       "member (the first leader after start included)", self._m.leader_changes.count)
        members = GaugeMetricFamily("raftreg_raft_members", "Cluster members by status as this node sees them",
                                    labels=["status"])
        by_status: dict[str, int] = {}
        for member in info["members"]:
            by_status[member["status"]] = by_status.get(member["status"], 0) + 1
        for status_name in (*RAFT_STATES, "replica", "unreachable"):
            members.add_metric([status_name], by_status.get(status_name, 0))
        yield members
        rounds = CounterMetricFamily("raftreg_read_index_rounds", "ReadIndex rounds for consistent reads, by "
                                     "this node's role in them", labels=["role"])
        for role, count in sorted(info["read_index_rounds"].items()):
            rounds.add_metric([role], count)
        yield rounds
        wd = info["watchdog"]
        yield _counter("raftreg_watchdog_wedges", "Times the watchdog judged this replica wedged", wd["wedges"])
        yield _counter("raftreg_watchdog_recoveries", "Wipe-and-resync recoveries of this replica",
                       wd["recoveries"])
        yield _counter("raftreg_watchdog_resync_refused", "Recoveries refused (no leader able to resync us)",
                       wd["resync_refused"])

    def _group_commit(self, info: dict[str, Any]) -> Iterator[Metric]:
        gc = info["group_commit"]
        yield _counter("raftreg_group_commit_entries", "Raft entries proposed by this node's group commit",
                       gc["entries"])
        yield _counter("raftreg_group_commit_commands", "Commands proposed in those entries", gc["commands"])
        yield _counter("raftreg_group_commit_retries", "Entries proposed again after a failed proposal",
                       gc["retries"])
        yield _counter("raftreg_group_commit_refused", "Writes refused because the queue was full",
                       gc["refused"])
        yield _counter("raftreg_group_commit_expired", "Writes that waited too long in the queue", gc["expired"])
        yield _counter("raftreg_group_commit_timed_out",
                       "Writes not confirmed by their deadline (504, outcome unknown)", gc["timed_out"])
        yield _gauge("raftreg_group_commit_queued", "Writes waiting in the queue now", gc["queued"])
        stats = self._m.proposer.stats
        buckets: list[tuple[str, float]] = []
        for bound in BATCH_BUCKETS:  # the proposer counts entries by size rounded up to a power of two
            buckets.append((str(float(bound)), sum(n for size, n in stats.batch_sizes.items() if size <= bound)))
        buckets.append(("+Inf", sum(stats.batch_sizes.values())))
        yield HistogramMetricFamily("raftreg_group_commit_batch_commands", "Commands per group-commit Raft entry",
                                    buckets=buckets, sum_value=stats.commands)

    def _snapshots(self) -> Iterator[Metric]:
        raft = self._m.raft
        count, seconds = raft.snapshots
        yield _counter("raftreg_snapshots", "Snapshots this node wrote (log compactions finished)", count)
        yield SummaryMetricFamily("raftreg_snapshot_duration_seconds", "Time snapshots took to write",
                                  count_value=count, sum_value=seconds)
        yield _counter("raftreg_snapshot_restores", "Snapshots installed into this node's state", raft.restores)
        yield SummaryMetricFamily("raftreg_snapshot_restore_duration_seconds", "Time snapshot installs took",
                                  count_value=raft.restores, sum_value=raft.restore_seconds)

    def _watches(self, info: dict[str, Any]) -> Iterator[Metric]:
        w = info["watches"]
        yield _gauge("raftreg_blocking_queries_parked", "Blocking queries waiting for a change now", w["waiting"])
        yield _counter("raftreg_blocking_queries_woken", "Blocking queries answered because their topic changed",
                       w["wakeups"])
        yield _counter("raftreg_blocking_queries_timed_out", "Blocking queries answered at their wait deadline",
                       w["timeouts"])
        yield _counter("raftreg_blocking_queries_woken_all", "Snapshot restores and wipes that woke every waiter",
                       w["wake_all"])
        yield _gauge("raftreg_min_index_reads_waiting", "min_index reads waiting for this node to catch up",
                     w["applied_waiting"])

    def _leases(self, info: dict[str, Any]) -> Iterator[Metric]:
        le = info["leases"]
        yield _gauge("raftreg_leases_holder", "1 while this node is the leader holding the lease deadlines",
                     1.0 if le["active"] else 0.0)
        yield _gauge("raftreg_leases", "Instance leases this node holds deadlines for", le["leases"])
        yield _gauge("raftreg_leases_overdue", "Leases past their deadline and not yet expired", le["overdue"])
        yield _counter("raftreg_lease_renewals", "Lease renewals (heartbeats) taken by this node", le["renewals"])
        yield _counter("raftreg_lease_expirations", "Instances expired by this node while it led", le["expired"])
        yield _gauge("raftreg_lease_guard_engaged", "1 while the mass-expiry guard holds expiries back",
                     1.0 if le["throttled"] else 0.0)
        yield _gauge("raftreg_lease_guard_held", "Overdue instances the mass-expiry guard holds now", le["held"])
        yield _counter("raftreg_lease_guard_trips", "Times the mass-expiry guard engaged", le["guard_trips"])
        yield _counter("raftreg_heartbeats_forwarded", "Heartbeats this follower forwarded to the leader",
                       info["heartbeats_forwarded"]["heartbeats"])

    def _checks(self, info: dict[str, Any]) -> Iterator[Metric]:
        ch = info["checks"]
        yield _gauge("raftreg_checks_owned", "Active checks this node runs", ch["owned"])
        yield _gauge("raftreg_checks_running", "Probes in flight now", ch["running"])
        yield _counter("raftreg_check_probes", "Probes run", ch["probes"])
        yield _counter("raftreg_check_probe_failures", "Probes that failed", ch["failed_probes"])
        yield _counter("raftreg_check_transitions", "Status transitions committed by checks", ch["transitions"])
        yield _counter("raftreg_check_deregistrations", "Instances deregistered after staying critical",
                       ch["deregistered"])
        lag = GaugeMetricFamily("raftreg_check_probe_lag_seconds",
                                "Probe start minus its scheduled time over the recent probes", labels=["quantile"])
        for quantile, key in (("0.5", "p50"), ("0.99", "p99"), ("1", "max")):
            value = ch["lag_ms"][key]
            if value is not None:
                lag.add_metric([quantile], value / 1000.0)
        yield lag

    def _store(self) -> Iterator[Metric]:
        raft = self._m.raft
        with raft.lock:
            state = raft.state
            services, instances = state.registry.service_count(), state.registry.instance_count()
            kv, sessions = state.kv.stats(), len(state.sessions)
        yield _gauge("raftreg_services", "Services in this node's state", services)
        yield _gauge("raftreg_instances", "Instances in this node's state", instances)
        yield _gauge("raftreg_kv_keys", "Keys in this node's key/value store", kv["keys"])
        yield _gauge("raftreg_kv_history_versions", "Earlier key versions kept", kv["history_versions"])
        yield _gauge("raftreg_sessions", "Sessions in this node's state", sessions)


class NodeMetrics:
    """The registry of one node and its hot-path instruments (module docstring)."""

    def __init__(self, info: Callable[[], dict[str, Any]], *, raft: RaftNode, proposer: GroupCommitter,
                 view: ClusterView) -> None:
        self.info = info
        self.raft = raft
        self.proposer = proposer
        self.registry = CollectorRegistry(auto_describe=False)
        self.apply_latency = Histogram(
            "raftreg_apply_latency_seconds",
            "Seconds from proposing a group-commit entry to its apply on this node", buckets=LATENCY_BUCKETS,
            registry=None)
        self.fsm_apply = Histogram(
            "raftreg_fsm_apply_duration_seconds", "Seconds each Raft entry took in the state machine",
            buckets=APPLY_BUCKETS, registry=None)
        self.leader_changes = LeaderChanges()
        view.add_listener(self.leader_changes)
        proposer.latency_observer = self.apply_latency.observe
        raft.apply_observer = self.fsm_apply.observe
        self.registry.register(NodeCollector(self))
        ProcessCollector(registry=self.registry)  # the standard process_* names
