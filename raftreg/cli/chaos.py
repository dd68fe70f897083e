"""``raftreg chaos``: fault injection against a local cluster, with history checks and a report."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import click

from raftreg.durations import parse_duration


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _faults(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from raftreg.chaos.netfaults import LAB_FAULT_NAMES as FAULT_NAMES

    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown fault {unknown[0]!r}; choose from {','.join(FAULT_NAMES)}")
    return kinds


@click.command()
@click.option("--nodes", type=click.IntRange(1, 9), default=3, show_default=True, help="Cluster size (3 or 5).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              help="Take the node count and [raft] tuning from this cluster config (ports are chosen free).")
@click.option("--duration", default="60s", show_default=True, callback=_duration, help="How long to run.")
@click.option("--faults", default="kill,pause,partition", show_default=True, callback=_faults,
              help="Comma-separated, repeat to weigh: kill,pause,partition,restart-all,membership; kill-leader, "
              "pause-leader, partition-leader always hit the leader; with --network lab also isolate, partial, oneway, "
              "loss, delay, bandwidth, linkdown, disk-stall, disk-eio (and <kind>-leader). Empty: no faults.")
@click.option("--rate", type=click.FloatRange(min=1), default=100.0, show_default=True,
              help="Operations per second over all clients.")
@click.option("--clients", type=click.IntRange(1, 256), default=6, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same fault schedule.")
@click.option("--history", "history_path", type=click.Path(dir_okay=False), help="Write every operation (JSONL).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write the report: a self-contained HTML page (timeline, checks, recovery) for a .html/.htm "
              "name, else the JSON summary.")
@click.option("--check-budget", default="60s", show_default=True, callback=_duration,
              help="Time budget of the linearizability search.")
@click.option("--network", type=click.Choice(["local", "lab"]), default="local", show_default=True,
              help="lab: one node per network namespace with network and disk faults (root; README \"Testing on "
              "a real network\").")
@click.option("--lab-dir", type=click.Path(file_okay=False),
              help="The lab's directory (--network lab; default: temporary).")
def chaos(nodes: int, config_path: str | None, duration: float, faults: tuple[str, ...], rate: float, clients: int,
          seed: int, history_path: str | None, report_path: str | None, check_budget: float, network: str,
          lab_dir: str | None) -> None:
    """Run a workload against a local cluster while injecting faults, then check the history.

    Exit status 0 when every check passed, 1 on any violation (the smallest failing key's
    history is printed)."""
    from raftreg.chaos.runner import ChaosOptions, print_report, run_chaos
    from raftreg.config import load_config

    tuning = None
    if config_path:
        config = load_config(config_path)
        nodes, tuning = len(config.nodes), config.raft
    opts = ChaosOptions(
        nodes=nodes, duration=duration, faults=faults, rate=rate, clients=clients,
        seed=seed, history_path=Path(history_path) if history_path else None,
        report_path=Path(report_path) if report_path else None, check_budget=check_budget, tuning=tuning,
    )
    from raftreg.chaos.faults import FAULT_NAMES

    if network == "local" and any(f not in FAULT_NAMES for f in faults):
        raise click.BadParameter(f"network and disk faults need --network lab: {','.join(faults)}",
                                 param_hint="--faults")
    if network == "lab":
        from raftreg.chaos.lab_chaos import run_lab_chaos
        from raftreg.lab.netns import LabError, require_root

        try:
            require_root()
        except LabError as exc:
            raise click.UsageError(str(exc)) from None
        opts = dataclasses.replace(opts, network="lab", lab_dir=Path(lab_dir) if lab_dir else None)
        report = run_lab_chaos(opts)
    else:
        report = asyncio.run(run_chaos(opts))
    print_report(report)
    sys.exit(0 if report.passed else 1)
