"""The lease benchmark's tables (``lease_bench.py``): one printer per phase, from the phase's
result dictionary."""

from __future__ import annotations

from typing import Any

from harness.report import BUSY_OTHER_PCT, fmt_cpu, fmt_ms, fmt_num, fmt_s, kinds_text, note_busy, print_table


def print_heartbeat_tables(out: dict[str, Any]) -> None:
    lag = out["slot_lag"]
    print_table(
        f"Heartbeats: {out['instances']:,} instances (ttl {out['ttl_s']:g}s) every {out['interval_s']:g}s, "
        f"{out['window_s']:g}s measured, {out['kills']} leader kill(s); {out['procs']} client procs "
        f"({out['client']})",
        ["expected/s", "scheduled/s", "attempts/s", "acked/s", "p50 ms", "p99 ms", "max ms", "slot lag p99/max ms",
         "skipped", "errors", "errors away from kills", "re-registered"],
        [[fmt_num(out["expected_per_s"]), fmt_num(out["scheduled_per_s"]), fmt_num(out["attempts_per_s"]),
          fmt_num(out["acked_per_s"]), fmt_ms(out["hb_p50_ms"]), fmt_ms(out["hb_p99_ms"]), fmt_ms(out["hb_max_ms"]),
          f"{fmt_ms(lag['p99_ms'])}/{fmt_ms(lag['max_ms'])}", str(out["skipped_slots"]),
          kinds_text(out["errors_by_kind"]), kinds_text(out["errors_away_from_kills"]), str(out["reregistered"])]])
    fe, gap, ls = out["false_expiries"], out["longest_ack_gap_s"], out["leases"]
    print_table(
        "False expiries (all must be 0) and lease safety margin",
        ["heartbeat 404s", "missing at end", "leases.expired on leaders", "total", "longest ack gap p50/p99/max s",
         "leader overdue max", "guard trips", "listed at end"],
        [[str(fe["heartbeat_404"]), str(fe["missing_at_end"]), str(fe["leases_expired_on_leaders"]), str(fe["total"]),
          f"{fmt_s(gap['p50'])}/{fmt_s(gap['p99'])}/{fmt_s(gap['max'])}", str(ls["overdue_max"]),
          str(ls["guard_trips"]), " ".join(f"{k} {v}" for k, v in fe["listed_at_end"].items())]])
    if out["kills_detail"]:
        rows = []
        for i, k in enumerate(out["kills_detail"]):
            by_node = " ".join(f"{n} {fmt_s(v)}" for n, v in k["kill_to_first_ack_by_node_s"].items())
            rows.append([str(i + 1), f"{k['at_s']:.0f}s", f"{k['victim']} -> {k['new_leader'] or '?'}",
                         fmt_s(k["kill_to_leases_armed_s"]), fmt_s(k["kill_to_first_ack_s"]),
                         fmt_s(k["kill_to_all_nodes_acking_s"]), by_node, fmt_s(k["restart_to_ready_s"]),
                         kinds_text(k["errors_by_kind"])])
        print_table("Leader kills (kill -9, restart after the set delay)",
                    ["kill", "at", "killed -> leases held by", "leases armed", "first ack", "all nodes acking",
                     "first ack via node", "restart->ready", "errors until next kill / end"], rows)
    print_table("CPU over the measured window (100 = one core; a node summed over its processes)",
                ["server CPU %", "client CPU %", "other CPU %", "load"],
                [[fmt_cpu(out["server_cpu_pct"]),
                  f"{out['client_cpu_pct_total']:.0f} ({fmt_cpu(out['client_cpu_pct'])})",
                  f"{out['other_procs_cpu_pct']:.0f}", f"{out['loadavg_at_start'][0]:.2f}"]])
    if out["other_procs_cpu_pct"] > BUSY_OTHER_PCT:
        note_busy("the run", those=False)


def print_expiry_table(out: dict[str, Any], slack_s: float) -> None:
    rows = []
    for name, label in (("poll", "poll every 50 ms"), ("blocking", f"blocking query, wait={out['blocking_wait']}")):
        g = out["views"][name]
        rows.append([label, f"{g['gone']}/{out['expiring']}",
                     f"{fmt_s(g['p50'])} / {fmt_s(g['p99'])} / {fmt_s(g['max'])}",
                     str(out["expired_delta"]), str(out["guard_trips_delta"]),
                     f"{out['keepalive_listed']}/{out['keepalive']}", str(out["false_expiry_404s"]),
                     kinds_text(out["errors_by_kind"])])
    print_table(
        f"Expiry: {out['expiring']} instances (ttl {out['ttl_s']:g}s) stop after {out['heartbeats']} heartbeats while "
        f"{out['keepalive']:,} keep heartbeating; seen on {out['watched']} (follower); "
        f"target p99 < ttl + {slack_s:g}s",
        ["seen by", "gone", "last ack -> gone p50 / p99 / max s", "expired (leader)", "guard trips",
         "keep-alive listed", "heartbeat 404s", "errors"], rows)


def print_checks_table(out: dict[str, Any]) -> None:
    rows = []
    for name, v in out["nodes"].items():
        lag = v["lag_ms"]
        rows.append([f"{name}({(v['role'] or '?')[0].upper()})", str(v["owned"]),
                     f"{100.0 * (v['owned'] or 0) / max(1, out['owned_total']):.0f}%", fmt_num(v["probes"]),
                     f"{v['probes_per_s']:.1f}", str(v["failed_probes"]), str(v["transitions"]),
                     f"{fmt_ms(lag.get('p50'))}/{fmt_ms(lag.get('p99'))}/{fmt_ms(lag.get('max'))}",
                     "-" if v["cpu_pct"] is None else f"{v['cpu_pct']:.0f}"])
    ti = out["target_interval_s"] or {}
    print_table(
        f"Checks: {out['checks']:,} HTTP checks every {out['interval_s']:g}s (timeout {out['timeout_s']:g}s), "
        f"{out['duration_s']:g}s measured after {out['warmup_s']:g}s warm-up",
        ["node", "owned", "share", "probes", "probes/s", "failed", "transitions", "lag p50/p99/max ms", "CPU %"], rows)
    print_table(
        "Check target server",
        ["requests/s (expected)", "interval between probes of one path p1/p50/p99/max s", "passing at end",
         "owned total (spread)", "target CPU %", "other CPU %", "load"],
        [[f"{out['target_requests_per_s']:,.1f} ({out['expected_per_s']:,.1f})",
          "/".join(fmt_s(ti.get(k)) for k in ("p1", "p50", "p99", "max")),
          f"{out['passing_at_end']}/{out['checks']}", f"{out['owned_total']} ({out['owned_spread_pct']:.0f}%)",
          "-" if out["target_cpu_pct"] is None else f"{out['target_cpu_pct']:.0f}",
          f"{out['other_procs_cpu_pct']:.0f}", f"{out['loadavg_at_start'][0]:.2f}"]])

