"""``raftreg chaos``: start a cluster, run the workload while injecting faults, check, report.

Checks (any failure makes ``ChaosReport.passed`` false):
(a) linearizability, per key, of writes, deletes, compare-and-set (KV cas and the per-key
    projections of transactions) and consistent reads (``checker.check_history``);
(b) no acknowledged write lost: the final consistent state holds every acknowledged write that
    nothing later could have replaced (``checker.lost_writes``); read-your-writes for
    ``min_index`` reads; default reads return only values that were written;
(b') locks: no two sessions hold a lock at overlapping acknowledged times, and fences strictly
    increase per key (``locks.check_locks``);
(c) at most one leader per term (``LeaderMonitor``);
(d) after healing, every node's state digest is identical;
(e) no 5xx other than 503/504, and no request unanswered past its deadline unless its node was
    paused at the time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftreg.chaos.checker import check_history, format_key_history, lost_writes
from raftreg.chaos.fault_stats import per_kind
from raftreg.chaos.faults import FaultInjector, plan
from raftreg.chaos.history import Op, write_jsonl
from raftreg.chaos.html_report import CheckStatus, CheckVerdict, ReportData, render_html
from raftreg.chaos.key_model import effect, mutates
from raftreg.chaos.kv_workload import KV_PREFIX, decode_value, kv_keys
from raftreg.chaos.locks import check_locks
from raftreg.chaos.monitor import LeaderMonitor, ProgressLine
from raftreg.chaos.workload import REQUEST_TIMEOUT, Workload, WorkloadConfig
from raftreg.config import RaftTuning
from raftreg.testing import LocalCluster, http_json


@dataclass(frozen=True)
class ChaosOptions:
    nodes: int = 3
    duration: float = 60.0
    faults: tuple[str, ...] = ("kill", "pause", "partition")  # names from faults.FAULT_NAMES
    rate: float = 100.0
    clients: int = 6
    seed: int = 1
    history_path: Path | None = None
    report_path: Path | None = None  # HTML for a .html/.htm name, else the JSON summary
    html_report_path: Path | None = None  # always the HTML report (a second output beside report_path)
    check_budget: float = 60.0
    progress: bool = True
    tuning: RaftTuning | None = None
    keep_data: bool = False
    network: str = "local"  # "lab": nodes in network namespaces (raftreg.chaos.lab_chaos)
    lab_dir: Path | None = None  # the lab's directory (network "lab"); default a temporary one


@dataclass
class ChaosReport:
    passed: bool
    violations: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    failing_history: str = ""


async def run_chaos(opts: ChaosOptions) -> ChaosReport:
    """The whole run; the cluster is always torn down."""
    cluster = LocalCluster(opts.nodes, tuning=opts.tuning, name="chaos", keep_data=opts.keep_data)
    await asyncio.to_thread(cluster.start, 60.0)
    try:
        return await _run(cluster, opts)
    finally:
        await asyncio.to_thread(cluster.close)


async def _run(cluster: LocalCluster, opts: ChaosOptions, injector: FaultInjector | None = None,
               schedule: list[Any] | None = None) -> ChaosReport:
    """The run against a started cluster; a lab run passes its own injector and fault schedule."""
    injector = injector or FaultInjector(cluster)
    urls = {name: cluster.url(name) for name in cluster.names}
    workload = Workload(lambda: urls, WorkloadConfig(clients=opts.clients, rate=opts.rate), opts.seed)
    monitor = LeaderMonitor(cluster)
    stop_side = asyncio.Event()
    started = time.monotonic()

    def render() -> str:
        elapsed = time.monotonic() - started
        st = workload.stats
        cur = injector.current
        doing = f" now: {cur.kind} {','.join(cur.nodes)}" if cur else ""
        return (f"[{elapsed:5.0f}s] ops {st.ops} ({st.ops / max(elapsed, 1e-9):.0f}/s) ok {st.ok} fail {st.fail} "
                f"unknown {st.unknown} | faults {len(injector.records)}{doing} "
                f"| leader {monitor.current_leader or '-'}")

    side = [asyncio.create_task(monitor.run(stop_side))]
    if opts.progress:
        side.append(asyncio.create_task(ProgressLine(render).run(stop_side)))
    load = asyncio.create_task(workload.run())
    try:
        await asyncio.sleep(min(2.0, opts.duration / 10))  # a calm start: the history begins healthy
        for fault in schedule if schedule is not None else plan(opts.seed, list(opts.faults), count=100_000):
            if time.monotonic() - started >= opts.duration:
                break
            rec = await injector.apply(fault)
            if rec.error is not None:
                break  # the cluster did not recover: stop injecting, the checks will say why
            await asyncio.sleep(fault.gap)
        remaining = opts.duration - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
    finally:
        workload.stop()
        await load
        ended = time.monotonic()
        await asyncio.to_thread(injector.heal_all)
        stop_side.set()
        await asyncio.gather(*side)
    return await asyncio.to_thread(_check, cluster, opts, workload, injector, monitor, started, ended)


class _Checks:
    """Collects each check's verdict (for the HTML report) and the flat list of violations."""

    def __init__(self) -> None:
        self.verdicts: list[CheckVerdict] = []
        self.violations: list[str] = []

    def add(self, name: str, violations: list[str], detail: str = "", *, undecided: bool = False) -> None:
        verdict: CheckStatus = "fail" if violations else "unknown" if undecided else "pass"
        self.verdicts.append(CheckVerdict(name, verdict, detail, tuple(violations)))
        self.violations += violations


def _check(cluster: LocalCluster, opts: ChaosOptions, workload: Workload, injector: FaultInjector,
           monitor: LeaderMonitor, started: float, ended: float) -> ChaosReport:
    report = ChaosReport(passed=True)
    checks = _Checks()
    history = workload.history
    if opts.history_path is not None:
        write_jsonl(opts.history_path, history)

    # Healed cluster: ready, converged, identical digests, final state through a consistent read.
    try:
        cluster.wait_ready(timeout=60.0)
        converged = cluster.wait_converged(timeout=60.0)
        checks.add("cluster recovered after healing", [], f"every node ready, converged at index {converged}")
    except TimeoutError as exc:
        checks.add("cluster recovered after healing", [f"cluster did not recover after healing: {exc}"])
        converged = None
    digests = {name: cluster.debug(name, "digest", timeout=10.0)[1] for name in cluster.names}
    distinct = {json.dumps(d, sort_keys=True) for d in digests.values()}
    checks.add("identical state on every node", [f"state digests differ after healing: {digests}"]
               if len(distinct) != 1 else [], f"{len(digests)} state digests compared")
    final_state, final_errors = _final_state(cluster, workload.config.keys(), kv_keys(workload.config.kv_keys))
    checks.add("final state readable", final_errors, f"{len(final_state)} keys read with a consistent read")

    # (a) linearizability, shown as two checks: the registry's keys and the KV keys (CAS, transactions)
    lin = check_history(history, budget_s=opts.check_budget)
    kv = workload.kv_counts
    groups = (("linearizability: registrations", False, "writes, deletes, consistent reads"),
              ("linearizability: KV with compare-and-set", True,
               f"sets, deletes, consistent reads; CAS {kv.get('cas_ok', 0)} ok, {kv.get('cas_conflict', 0)} "
               f"conflicts; transactions {kv.get('txn_ok', 0)} ok (checked per key)"))
    for name, is_kv, what in groups:
        results = [r for k, r in lin.keys.items() if k.startswith(KV_PREFIX) == is_kv]
        failing = lin.failing_key is not None and lin.failing_key.startswith(KV_PREFIX) == is_kv
        timed_out = sorted(r.key for r in results if r.status == "timeout")
        detail = f"{len(results)} keys ({what}); search {lin.seconds:.1f}s for the whole history"
        checks.add(name, [f"not linearizable: {lin.reason}"] if failing else [],
                   detail + (f"; search timed out on {timed_out}" if timed_out else ""), undecided=bool(timed_out))
    if lin.verdict == "violation":
        report.failing_history = format_key_history(lin.smallest_failing_ops)
    # (b) lost writes, read-your-writes, default reads
    lost = lost_writes(history, final_state) if not final_errors else []
    checks.add("no acknowledged write lost", [f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"] if lost else [],
               "the final state holds every acknowledged write nothing later replaced", undecided=bool(final_errors))
    if lost and not report.failing_history:
        report.failing_history = format_key_history([o for o in history if o.key == lost[0].key])
    checks.add("reads", _check_reads(history), "min_index reads see the reader's own writes; default reads "
               "return only written values")
    # (b') locks: mutual exclusion at acknowledged times, strictly increasing fences
    lock_violations = check_locks(workload.holdings)
    checks.add("locks", lock_violations, f"{len(workload.holdings)} holdings: mutual exclusion, increasing fences")
    # (c) one leader per term
    checks.add("one leader per term", [f"two leaders in one term: {monitor.violations()}"]
               if monitor.violations() else [], f"{len(monitor.leaders_by_term)} terms with a leader")
    # (e) statuses and deadlines
    stats = workload.stats
    checks.add("no unexpected 5xx", [f"{len(stats.unexpected)} unexpected 5xx answers, e.g. {stats.unexpected[:3]}"]
               if stats.unexpected else [], "only 503 and 504 may answer a 5xx")
    unanswered = [u for u in stats.unanswered if not _paused_during(injector, u["node"], u["at"])]
    checks.add("every request answered in time", [f"{len(unanswered)} requests unanswered within "
               f"{REQUEST_TIMEOUT:g}s (node not paused), e.g. {unanswered[:3]}"] if unanswered else [],
               f"within {REQUEST_TIMEOUT:g}s unless the node was paused")

    report.violations = checks.violations
    report.passed = not report.violations
    report.summary = {
        "passed": report.passed,
        "violations": report.violations,
        "seed": opts.seed,
        "nodes": opts.nodes,
        "duration_s": round(time.monotonic() - started, 1),
        "ops": stats.ops,
        "ok": stats.ok,
        "fail": stats.fail,
        "unknown": stats.unknown,
        "statuses": dict(stats.statuses),
        "kv": dict(sorted(workload.kv_counts.items())),
        "locks": {"holdings": len(workload.holdings), "violations": len(lock_violations)},
        "linearizability": {"verdict": lin.verdict, "keys": lin.keys_checked, "seconds": round(lin.seconds, 2),
                            "timed_out_keys": lin.timed_out_keys},
        "converged_index": converged,
        "faults": _fault_summary(injector, history),
        "leader_terms_seen": len(monitor.leaders_by_term),
        "leader_changes": [{"at_s": round(c.at - started, 3), "leader": c.leader, "term": c.term}
                           for c in monitor.changes],
        "checks": [dataclasses.asdict(c) for c in checks.verdicts],
    }
    data = ReportData(summary=report.summary, ops=history, faults=injector.records, leader_changes=monitor.changes,
                      checks=checks.verdicts, started=started, ended=ended, failing_history=report.failing_history)
    for path in (opts.report_path, opts.html_report_path):
        if path is not None:
            write_report(path, data, html=path is opts.html_report_path or is_html_path(path))
    return report


def is_html_path(path: Path) -> bool:
    """``--report`` writes HTML for a ``.html``/``.htm`` name, JSON (the summary) for any other."""
    return path.suffix.lower() in (".html", ".htm")


def write_report(path: Path, data: ReportData, *, html: bool) -> None:
    """The report file: the self-contained HTML page, or the JSON summary."""
    if html:
        path.write_text(render_html(data), encoding="utf-8")
    else:
        path.write_text(json.dumps(data.summary, indent=2, default=str))


def _final_state(cluster: LocalCluster, keys: list[tuple[str, str]],
                 kv: list[str]) -> tuple[dict[str, str | None], list[str]]:
    state: dict[str, str | None] = {}
    errors = []
    leader = cluster.leader(timeout=30.0)
    for key in kv:
        code, body = http_json(f"{cluster.url(leader)}/v1/kv/{key}?consistent", timeout=15.0)
        if code in (200, 404):
            state[KV_PREFIX + key] = decode_value(body) if code == 200 else None
        else:
            errors.append(f"final consistent read of KV key {key} answered {code}")
    for service, instance in keys:
        code, body = http_json(f"{cluster.url(leader)}/v1/services/{service}/instances/{instance}?consistent",
                               timeout=15.0)
        if code == 200 and isinstance(body, dict):
            state[f"{service}/{instance}"] = (body.get("meta") or {}).get("v")
        elif code == 404:
            state[f"{service}/{instance}"] = None
        else:
            errors.append(f"final consistent read of {service}/{instance} answered {code}")
    return state, errors


def _check_reads(history: list[Op]) -> list[str]:
    """min_index reads see the reader's own last acknowledged write (or something newer);
    default reads return only values that some write wrote."""
    problems = []
    written: dict[str, set[str]] = {}
    for op in history:
        if op.kind in ("write", "cas") and op.value is not None:
            written.setdefault(op.key, set()).add(op.value)
    by_key: dict[str, list[Op]] = {}
    for op in history:
        by_key.setdefault(op.key, []).append(op)
    for op in history:
        if op.kind != "read" or op.outcome != "ok":
            continue
        if op.value is not None and op.value not in written.get(op.key, set()):
            problems.append(f"{op.read_mode} read of {op.key} on {op.node} returned {op.value!r}, never written")
        if op.read_mode != "min_index":
            continue
        own = [w for w in by_key[op.key] if w.client == op.client and w.kind == "write" and w.outcome == "ok"
               and w.complete is not None and w.complete <= op.invoke]
        if not own:
            continue
        mine = max(own, key=lambda w: w.invoke)
        # Admissible: my write, or any write/delete that had not completed when mine began (it
        # may be ordered after mine).
        later = {effect(w) for w in by_key[op.key] if mutates(w) and w.outcome != "fail"
                 and (w.complete is None or w.complete > mine.invoke)}
        if op.value not in later:
            problems.append(f"min_index read of {op.key} by client {op.client} on {op.node} returned {op.value!r}, "
                            f"older than its own acknowledged write {mine.value!r}")
    return problems[:20]


def _paused_during(injector: FaultInjector, node: str, at: float) -> bool:
    return any(start - 1.0 <= at + REQUEST_TIMEOUT and at <= end for start, end in injector.paused.get(node, []))


def _fault_summary(injector: FaultInjector, history: list[Op]) -> dict[str, Any]:
    acked_writes = sorted((op.complete, op.invoke) for op in history
                          if mutates(op) and op.outcome == "ok" and op.complete is not None)
    recoveries = []
    per_fault = []
    for rec in injector.records:
        first = next((c - rec.started for c, inv in acked_writes if inv >= rec.started), None)
        if first is not None:
            recoveries.append(first)
        per_fault.append({"kind": rec.kind, "nodes": rec.nodes, "was_leader": rec.was_leader,
                          "to_next_acked_write_s": None if first is None else round(first, 3),
                          "catch_up_s": {k: round(v, 2) for k, v in rec.catch_up_s.items()}, "error": rec.error,
                          "detail": rec.detail})
    catch_up = [v for rec in injector.records for v in rec.catch_up_s.values()]
    kinds: dict[str, int] = {}
    for rec in injector.records:
        label = f"{rec.kind}{'-leader' if rec.was_leader and rec.kind != 'restart-all' else ''}"
        kinds[label] = kinds.get(label, 0) + 1
    return {
        "count": len(injector.records),
        "by_kind": kinds,
        "to_next_acked_write_s": _percentiles(recoveries),
        "catch_up_s": _percentiles(catch_up),
        "errors": [r["error"] for r in per_fault if r["error"]],
        "per_kind": per_kind(per_fault),
        "each": per_fault,
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 3), "p99": round(p99, 3), "max": round(ordered[-1], 3)}


def print_report(report: ChaosReport, out: Any = sys.stdout) -> None:
    s = report.summary
    f = s.get("faults", {})
    print(f"chaos: {'PASSED' if report.passed else 'FAILED'} (seed {s.get('seed')}, {s.get('nodes')} nodes, "
          f"{s.get('duration_s')}s)", file=out)
    print(f"  operations: {s.get('ops')} (ok {s.get('ok')}, fail {s.get('fail')}, unknown {s.get('unknown')}); "
          f"statuses {s.get('statuses')}", file=out)
    lin = s.get("linearizability", {})
    print(f"  key/value: {s.get('kv')}", file=out)
    print(f"  linearizability: {lin.get('verdict')} over {lin.get('keys')} keys in {lin.get('seconds')}s", file=out)
    print(f"  faults: {f.get('count')} {f.get('by_kind')}", file=out)
    print(f"  fault -> next acknowledged write (s): {f.get('to_next_acked_write_s')}", file=out)
    print(f"  restarted node catch-up (s): {f.get('catch_up_s')}", file=out)
    print(f"  leader terms seen: {s.get('leader_terms_seen')}; converged at index {s.get('converged_index')}",
          file=out)
    for v in report.violations:
        print(f"  VIOLATION: {v}", file=out)
    if report.failing_history:
        print("  smallest failing key's history:", file=out)
        print(report.failing_history, file=out)
