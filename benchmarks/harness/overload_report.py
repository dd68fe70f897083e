"""The overload benchmark's tables (``overload_bench.py``), from its result dictionary."""

from __future__ import annotations

from typing import Any

from harness import overload_goals as goals
from harness.light_http import ERR_SKIPPED, err_name
from harness.overload_stats import pct_text
from harness.report import BUSY_OTHER_PCT, fmt_cpu, fmt_ms, fmt_num, fmt_s, kinds_text, note_busy, print_table


def print_overload(out: dict[str, Any], roles: dict[str, str]) -> None:
    s = out["S"]
    rows = []
    for name, st in out["stages"].items():
        rows.append([
            name, f"{fmt_num(st['target_per_s'])}", f"{fmt_num(st['offered_per_s'])}", fmt_num(st["not_sent"]),
            f"{fmt_num(st['accepted_by_answer_per_s'])} ({st['accepted_by_answer_per_s'] / s:.2f} S)" if s else "-",
            pct_text(st["accepted_share"]), fmt_ms(st["p50_ms"]), fmt_ms(st["p99_ms"]), fmt_ms(st["max_ms"]),
            f"{pct_text(st['share_503'])} ({pct_text(st['fast_share_of_503'])})", kinds_text(st["other_errors"]),
            f"{fmt_ms(st['lag_p99_ms'])}/{fmt_ms(st['lag_max_ms'])}",
            fmt_cpu(st["server_cpu_pct"], roles) + (f" + forks {sum(v or 0 for v in st['fork_cpu_pct'].values()):.0f}"
                                                    if st["fork_cpu_pct"] else ""),
            f"{st['client_cpu_pct_total']:.0f} ({fmt_cpu(st['client_cpu_pct'])}) bench "
            f"{st['bench_cpu_pct'] or 0:.0f}",
            f"{st['other_procs_cpu_pct']:.0f} ({st['kernel_pct']['steal']:.0f}/{st['kernel_pct']['softirq']:.0f})",
        ])
    print_table(f"Overload via {out['via']}: S = {fmt_num(s)}/s, {out['factor']:g} x S offered for "
                f"{out['stages']['overload']['seconds']:g}s between S/2 stages (max_queued_commands "
                f"{out['max_queued_commands']}; load {out['loadavg_at_start'][0]:.2f})",
                ["stage", "target/s", "offered/s", "not sent", "accepted/s", "accepted", "p50 ms", "p99 ms", "max ms",
                 f"503 (< {goals.FAST_MS:g} ms)", "other errors", "lag p99/max ms", "server CPU %", "client CPU %",
                 "other CPU % (steal/softirq)"], rows)
    busy = [k for k, st in out["stages"].items() if st["other_procs_cpu_pct"] > BUSY_OTHER_PCT]
    if busy:
        note_busy(", ".join(busy))
    over = out["stages"]["overload"]
    if (over["offered_per_s"] or 0) < goals.OFFERED_OK_RATIO * out["factor"] * s:
        skipped = over["by_kind"].get(err_name(ERR_SKIPPED), 0)
        why = (f"{skipped:,} requests were not sent because {out['max_inflight']:,} per client process were "
               "already waiting for an answer (the nodes answered too slowly)" if skipped else
               f"the clients sent late (slot lag p99 {fmt_ms(over['lag_p99_ms'])} ms): short of CPU on this box")
        print(f"note: the clients offered only {fmt_num(over['offered_per_s'])}/s = {out['offered_ratio_to_S']} x S "
              f"during the overload (target {out['factor']:g} x S): {why}\n", flush=True)
    mem = out["memory"]
    conns = {name: str(sum(p[k] for p in out["max_open_conns"] if k < len(p))) for k, name in enumerate(out["targets"])}
    nrows = []
    for n, role in roles.items():
        pn = over["per_node"].get(n)
        pa = out["stages"]["after"]["per_node"].get(n)
        gb, go = out["stages"]["baseline"]["group_commit"][n], over["group_commit"][n]
        m = mem["nodes"][n]
        nrows.append([
            f"{n}({role[0].upper()})",
            "-" if pn is None else fmt_num(pn["sent"]), "-" if pn is None else fmt_num(pn["accepted_per_s"]),
            "-" if pn is None else pct_text(pn["share_503"]),
            "-" if pn is None else f"{fmt_ms(pn['p50_ms'])}/{fmt_ms(pn['p99_ms'])}",
            f"{fmt_num(go['refused'])}", f"{gb['peak_queued']}/{go['peak_queued']}",
            f"{m['baseline_peak_mib']}", f"{m['overload_peak_mib']}", f"{m['end_mib']}",
            f"{m['excess_first_half_mib']} -> {m['excess_second_half_mib']}", conns.get(n, "-"),
            f"{over['server_cpu_pct'].get(n) or 0:.0f}",
            "-" if pa is None else f"{fmt_num(pa['accepted_per_s'])}, p99 {fmt_ms(pa['p99_ms'])}, "
                                   f"503 {pct_text(pa['share_503'])}, other {kinds_text(pa['other_errors'])}",
        ])
    print_table(f"Per node during the overload (RSS MiB; excess = RSS beyond baseline end + accepted writes x "
                f"{mem['ref_kib_per_write']} KiB/write, peak in the 1st -> 2nd half of the overload)",
                ["node", "sent to it", "accepted/s", "503", "p50/p99 ms", "refused", "peak queued base/over",
                 "RSS base peak", "RSS over peak", "RSS end", "RSS excess", "client conns", "CPU %",
                 "after stage: accepted/s, p99 ms, 503, other"], nrows)
    trows = []
    for r in out["timeline"]:
        trows.append([f"{r['t_s']:.0f}", fmt_num(r["sent"]), fmt_num(r["accepted"]), fmt_num(r["n503"]),
                      kinds_text({k: v for k, v in r["errors_by_kind"].items() if k != "http 503"}),
                      fmt_ms(r["p50_ms"]), fmt_ms(r["p99_ms"]), str(r["queued_sum"]), f"{r['rss_max_mib']}",
                      str(r.get("forks", "-"))])
    print_table("Timeline (1 s buckets by due time from the baseline start; overload "
                f"{out['stages']['baseline']['seconds']:g}-"
                f"{out['stages']['baseline']['seconds'] + over['seconds']:g}s)",
                ["t s", "sent", "accepted", "503", "other", "p50 ms", "p99 ms", "queued (sum)", "max RSS MiB",
                 "snapshot forks"], trows)
    d = out["durability"]
    print(f"time to normal after the overload: {fmt_s(out['time_to_normal_s'])} ({goals.NORMAL_HOLD} x "
          f"{goals.NORMAL_BUCKET_S:g}s buckets with >= {100 * goals.NORMAL_SHARE:g}% accepted and p99 <= "
          f"{fmt_ms(out['normal_p99_limit_ms'])} ms = {goals.NORMAL_P99_FACTOR:g} x baseline p99); the p99 alone: "
          f"{fmt_s(out['time_to_latency_normal_s'])}")
    print(f"durability: {d['acked']:,} acknowledged; listed per node {d['listed_by_node']}; acked missing "
          f"{d['acked_missing_by_node']}; {'converged' if d['converged'] else 'NOT CONVERGED'} after "
          f"{d['converge_s']}s (applied {d['applied_by_node']}, leader commit {d['leader_commit_index']})")
    for n, ev in out.get("log_events", {}).items():
        print(f"node log {n}: {kinds_text(ev)}")
    print(flush=True)
