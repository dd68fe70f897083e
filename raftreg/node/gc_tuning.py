"""The garbage collector of a node process: fewer full collections, none over the startup objects.

A full collection holds the GIL for as long as it scans every tracked object, so neither the
event loop nor the Raft tick's backstop thread runs meanwhile, and a leader sends no heartbeat.
Under the overload benchmark (``benchmarks/overload_bench.py``: thousands of connections, a full
write queue) CPython's default thresholds ran a full collection about every 3 s per node, each
0.2-1.0 s long on the shared 2-core machine, and followers timed out into elections (measured
2026-12-07: 52-55 full collections per run, an election in about half of the runs).

``tune_collector``, called by ``RegistryNode.start`` (a node process has one node):
- ``gc.freeze()``: what is alive then (modules, classes, the state loaded from disk) moves to the
  permanent generation, which no collection scans again;
- ``gc.set_threshold(700, 10, FULL_AFTER)``: a full collection waits until the middle
  generation was collected ``FULL_AFTER`` times instead of 10 (CPython's other condition, new
  long-lived objects above a quarter of the old ones, still applies).
Same benchmark with both: 3-4 full collections per run, and no election in the runs made.
Cyclic garbage waits longer for a full pass, so the node's own request paths must not make
cycles (``GroupCommitter.propose`` drops its future before a refusal's traceback can hold it).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 700  # CPython's default
MIDDLE_THRESHOLD = 10  # CPython's default
FULL_AFTER = 100  # middle-generation collections before a full one may run (CPython: 10)


def tune_collector() -> None:
    """Freeze what is alive now and make full collections rarer (module docstring). Idempotent in
    effect; call once the node's state is loaded."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, FULL_AFTER)
