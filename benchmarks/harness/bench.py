"""``Bench``: the base class of the benchmarks. It holds the parsed options and the Raft tuning,
starts fresh 3-node clusters, owns the client processes and helper servers (and kills them in
``close``), runs the chosen phases in order, and collects results and summary rows."""

from __future__ import annotations

import argparse
import contextlib
import functools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web

from harness.closed_loop import run_put_get_job
from harness.open_loop import run_open_loop_job
from harness.proc import loadavg
from harness.report import log
from harness.workers import ClientPool, JobHandler
from raftreg.config import RaftTuning
from raftreg.testing import LocalCluster, free_ports, http_json, wait_for


class Bench:
    """One benchmark run. A subclass names its ``PHASES`` (in run order; ``phase_<name>()`` returns
    that phase's result dict), its ``sizes`` (option -> (full, quick) default) and, if its client
    processes run more job kinds, ``handlers``. The phases in ``CLUSTER_PHASES`` take a cluster
    argument: consecutive ones share one fresh cluster (closed before the next other phase). ``run``
    fills ``results``; ``note`` adds summary rows; ``close`` kills everything the run started
    (clusters, helper servers, client processes)."""

    PHASES: ClassVar[tuple[str, ...]] = ()
    CLUSTER_PHASES: ClassVar[frozenset[str]] = frozenset()
    sizes: ClassVar[dict[str, tuple[Any, Any]]] = {}
    handlers: ClassVar[dict[str, JobHandler]] = {
        "put": run_put_get_job, "get": run_put_get_job, "open_loop": run_open_loop_job,
    }

    def __init__(self, args: argparse.Namespace, tuning: RaftTuning, tuning_overrides: dict[str, Any]) -> None:
        self.args = args
        self.tuning = tuning
        self.tuning_overrides = tuning_overrides
        self.pool: ClientPool | None = None
        self.cluster: LocalCluster | None = None
        self.helper_procs: list[subprocess.Popen[bytes]] = []
        self.results: dict[str, Any] = {}
        self.summary: list[tuple[str, str, str, str]] = []  # (phase, metric, value, verdict)

    # ---- options --------------------------------------------------------------------------
    def size(self, name: str) -> Any:
        """A size option: the command line's value, else the (full, quick) default of ``sizes``."""
        value = getattr(self.args, name)
        if value is not None:
            return value
        full, quick = self.sizes[name]
        return quick if self.args.quick else full

    # ---- clusters, client processes, helper servers ---------------------------------------
    def cluster_options(self) -> dict[str, Any]:
        """Extra ``LocalCluster`` keyword arguments (a subclass adds lease / check tuning)."""
        return {}

    @contextlib.contextmanager
    def fresh_cluster(self) -> Iterator[LocalCluster]:
        """A new 3-node cluster, started and ready (leader elected); closed on exit."""
        cluster = LocalCluster(3, tuning=self.tuning, name="bench", **self.cluster_options())
        self.cluster = cluster
        try:
            t0 = time.perf_counter()
            cluster.start(wait=60)
            log(f"cluster up in {time.perf_counter() - t0:.1f}s (leader {cluster.leader()}, data {cluster.base_dir}"
                f"{', kept' if cluster.keep_data else ''})")
            yield cluster
        finally:
            cluster.close()
            self.cluster = None

    def client_pool(self) -> ClientPool:
        """The ``--procs`` client processes (spawned on first use, with ``handlers``)."""
        if self.pool is None:
            self.pool = ClientPool(self.args.procs, self.handlers)
        return self.pool

    def drop_pool(self) -> None:
        """Kill the client processes at once (after a failed or interrupted job they may be busy and
        would not read a polite stop); the next ``client_pool()`` spawns new ones."""
        if self.pool is not None:
            self.pool.kill()
            self.pool = None

    @contextlib.contextmanager
    def helper_server(self, script: Path, flag: str, ready_path: str, what: str
                      ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
        """Run ``python <script> <flag> <port>`` (a helper server of the benchmark, e.g. one that
        calls ``serve_app``) on a free port until ``GET <ready_path>`` answers 200; yields (process,
        base URL); kills it on exit."""
        port = free_ports(1)[0]
        proc = subprocess.Popen([sys.executable, str(script), flag, str(port)], stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.helper_procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: http_json(url + ready_path, timeout=0.5)[0] == 200, 20, what)
            yield proc, url
        finally:
            proc.kill()
            proc.wait(timeout=10)
            self.helper_procs.remove(proc)

    def close(self) -> None:
        """Kill the cluster, the helper servers and the client processes (idempotent)."""
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        for proc in self.helper_procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.helper_procs.clear()
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def sleep_until(self, t: float) -> None:
        """Sleep until monotonic time ``t``; RuntimeError early if a client process has already
        answered (it ended or failed before its time)."""
        while True:
            now = time.monotonic()
            if now >= t:
                return
            if self.pool is not None and self.pool.answered():
                raise RuntimeError(f"a client process ended early: {self.pool.collect(5.0)}")
            time.sleep(min(0.2, t - now))

    # ---- running and reporting ------------------------------------------------------------
    def run(self, phases: list[str]) -> None:
        """Spawn the client processes (their start-up is not part of any number), then run the
        chosen phases in ``PHASES`` order, those of ``CLUSTER_PHASES`` on a shared cluster."""
        self.client_pool()
        with contextlib.ExitStack() as shared:
            cluster: LocalCluster | None = None
            for p in self.PHASES:
                if p not in phases:
                    continue
                fn: Callable[..., dict[str, Any]] = getattr(self, f"phase_{p}")
                if p not in self.CLUSTER_PHASES:
                    shared.close()
                    cluster = None
                    self.results[p] = self.timed(p, fn)
                    continue
                if cluster is None:
                    cluster = shared.enter_context(self.fresh_cluster())
                self.results[p] = self.timed(p, functools.partial(fn, cluster))

    def timed(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run one phase: log its start with the load average, add ``phase_loadavg_at_start`` and
        ``phase_wall_s`` to its result."""
        load = loadavg()
        log(f"=== phase {name} (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
        t0 = time.perf_counter()
        out = fn()
        out["phase_loadavg_at_start"] = load
        out["phase_wall_s"] = round(time.perf_counter() - t0, 1)
        return out

    def note(self, phase: str, metric: str, value: str, verdict: str = "") -> None:
        """A summary row (printed at the end, also in the JSON)."""
        self.summary.append((phase, metric, value, verdict))


def serve_app(app: web.Application, port: int) -> None:
    """Serve a helper server's aiohttp ``app`` on 127.0.0.1:``port`` until killed (quietly)."""
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


def node_pids(cluster: LocalCluster) -> dict[str, int | None]:
    """Node name -> PID of its current process."""
    return {name: cluster.procs[name].pid for name in cluster.names}


def catalog_counts(url: str, prefix: str) -> tuple[int, int] | None:
    """(instances, passing) summed over the services named ``prefix``* on one node, or None."""
    code, body = http_json(url + "/v1/services", timeout=10.0)
    if code != 200:
        return None
    rows = [s for s in body["services"] if s["name"].startswith(prefix)]
    return sum(int(s["instances"]) for s in rows), sum(int(s["passing"]) for s in rows)
