"""DNS benchmark: queries per second that one node of a 3-node cluster answers (A and SRV of a
5-instance service), with p50/p99 latency, and the load generators' own ceilings.

    .venv/bin/python benchmarks/dns_bench.py --quick      # 3 s per run: a smoke test
    .venv/bin/python benchmarks/dns_bench.py              # 10 s per run (= make bench-dns)
    .venv/bin/python benchmarks/dns_bench.py --only dnsperf --outstanding 50

Phases (one fresh ``LocalCluster(3, dns=True)``; five ``cart`` instances registered over HTTP; the
load goes to node n1's DNS port over UDP):
- ``dnsperf``: DNSperf (Debian package ``dnsperf``; skipped when it is not installed), one thread,
  ``--outstanding`` queries in flight, A then SRV. Latency percentiles come from its ``-v`` lines.
- ``python``: ``--procs`` processes, each a UDP socket with ``--window`` queries in flight (A and
  SRV alternating), precomputed packets: a generator that does almost nothing per query.
- ``uncached``: the python generator, each query spelled in one of 5,000 mixed cases (as resolvers
  with 0x20 randomization send them): the node's answer cache never helps, so every query is
  parsed, answered from the registry and rendered by dnspython.
- ``ceiling``: both generators against a reflector process that answers every query with a
  recorded SRV answer of the node (id copied) and nothing else: the most that generator and this
  box can push; when it is well above the node's number, the node was the bottleneck.
CPU % (100 = one core; the box has 2) of the node and of the generators is printed with each row.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from array import array
from pathlib import Path
from typing import Any

import dns.message
import dns.query
from harness.cpu import CpuAccount
from harness.proc import loadavg
from harness.report import default_out, fmt_ms, log, print_table, write_result
from harness.stats import lat_stats

from raftreg.testing import LocalCluster, http_json

NAME = "dns_bench"
SERVICE = "cart"
QUERIES = (("cart.service.consul.", "A"), ("_cart._tcp.service.consul.", "SRV"))
PHASES = ("dnsperf", "python", "uncached", "ceiling")
MIXED_CASE = 5000  # distinct spellings per name in ``uncached``: more than the answer cache keeps
_LATENCY = re.compile(r"^> \S+ .* ([0-9]+\.[0-9]+)$")


# ---- the python load generator ----------------------------------------------------------------------
def generator(address: tuple[str, int], wires: list[bytes], window: int, start_at: float, duration: float,
              out: Any) -> None:
    """A closed loop over one UDP socket with ``window`` queries in flight until ``duration`` s
    after ``start_at``; puts (answered, errors, lost, latencies) on ``out``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address)
    sock.settimeout(0.5)
    sent: dict[int, float] = {}
    lat: array[float] = array("d")
    errors = lost = 0
    qid = 0

    def send() -> None:
        nonlocal qid
        qid = (qid + 1) & 0xFFFF
        sent[qid] = time.perf_counter()
        sock.send(qid.to_bytes(2, "big") + wires[qid % len(wires)][2:])

    while time.time() < start_at:
        time.sleep(0.001)
    end = time.perf_counter() + duration
    for _ in range(window):
        send()
    while time.perf_counter() < end:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            lost += len(sent)
            sent.clear()
            for _ in range(window):
                send()
            continue
        t0 = sent.pop(int.from_bytes(data[:2], "big"), None)
        if t0 is None:
            continue
        if data[3] & 0x0F:
            errors += 1
        else:
            lat.append(time.perf_counter() - t0)
        send()
    out.put((len(lat), errors, lost, lat.tobytes()))


def run_python(address: tuple[str, int], wires: list[bytes], procs: int, window: int, duration: float,
               cpu_of: dict[str, int]) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.0
    workers = [ctx.Process(target=generator, args=(address, wires, window, start_at, duration, out))
               for _ in range(procs)]
    for w in workers:
        w.start()
    cpu = CpuAccount({**cpu_of, **{f"gen{i}": w.pid for i, w in enumerate(workers) if w.pid}})
    time.sleep(max(0.0, start_at - time.time()))
    cpu.start()
    parts = [out.get(timeout=duration + 30) for _ in workers]
    cpu.stop()
    for w in workers:
        w.join(timeout=10)
    lat: array[float] = array("d")
    for part in parts:
        lat.frombytes(part[3])
    answered = sum(p[0] for p in parts)
    return {"qps": answered / duration, "answered": answered, "errors": sum(p[1] for p in parts),
            "lost": sum(p[2] for p in parts), **lat_stats(lat), "cpu_pct": cpu.pct()}


# ---- dnsperf --------------------------------------------------------------------------------------------
def run_dnsperf(address: tuple[str, int], queries: list[tuple[str, str]], outstanding: int, duration: float,
                cpu_of: dict[str, int], workdir: Path) -> dict[str, Any]:
    datafile = workdir / "dnsperf-queries.txt"
    datafile.write_text("".join(f"{name} {rdtype}\n" for name, rdtype in queries))
    cmd = ["dnsperf", "-s", address[0], "-p", str(address[1]), "-d", str(datafile), "-l", str(duration),
           "-c", "1", "-T", "1", "-q", str(outstanding), "-v"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu = CpuAccount({**cpu_of, "dnsperf": proc.pid})
    cpu.start()
    stdout, stderr = proc.communicate(timeout=duration + 60)
    cpu.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"dnsperf failed ({proc.returncode}): {stderr.strip()[-500:]}")
    qps = re.search(r"Queries per second:\s+([0-9.]+)", stdout)
    lost = re.search(r"Queries lost:\s+([0-9]+)", stdout)
    lat = [float(m.group(1)) for line in stdout.splitlines() if (m := _LATENCY.match(line))]
    return {"qps": float(qps.group(1)) if qps else None, "answered": len(lat), "errors": 0,
            "lost": int(lost.group(1)) if lost else None, **lat_stats(lat), "cpu_pct": cpu.pct()}


# ---- the reflector --------------------------------------------------------------------------------------
def reflector(port: int, answer: bytes) -> None:
    """Answer every datagram with ``answer`` under the query's id, as fast as Python can."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    body = answer[2:]
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(data[:2] + body, peer)


# ---- the run ----------------------------------------------------------------------------------------------
def row(generator_name: str, target: str, qtype: str, r: dict[str, Any]) -> list[str]:
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_pct"].items() if v is not None)
    return [generator_name, target, qtype, f"{r['qps']:,.0f}" if r["qps"] else "-", fmt_ms(r["p50_ms"]),
            fmt_ms(r["p99_ms"]), f"{r['lost'] or 0}", cpu]


def register(cluster: LocalCluster) -> None:
    for n in range(1, 6):
        code, body = http_json(f"{cluster.url('n1')}/v1/services/{SERVICE}/instances/{SERVICE}-{n}", method="PUT",
                               body={"address": f"10.0.0.{n}", "port": 8000 + n, "weight": 10 * n}, timeout=10.0)
        if code != 200:
            raise RuntimeError(f"register failed: {code} {body}")
    cluster.wait_converged(timeout=30.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="3 s per run instead of 10")
    p.add_argument("--duration", type=float, help="seconds per run (default 10, --quick 3)")
    p.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases of {','.join(PHASES)}")
    p.add_argument("--procs", type=int, default=2, help="python generator processes (default 2)")
    p.add_argument("--window", type=int, default=16, help="queries in flight per python generator (default 16)")
    p.add_argument("--outstanding", type=int, default=20, help="dnsperf's queries in flight (default 20)")
    p.add_argument("--out", type=Path, help="results JSON (default benchmarks/results/dns_bench-<time>.json)")
    args = p.parse_args(argv)
    phases = [ph for ph in args.only.split(",") if ph]
    if unknown := set(phases) - set(PHASES):
        p.error(f"unknown phases {sorted(unknown)}")
    duration = args.duration or (3.0 if args.quick else 10.0)
    have_dnsperf = shutil.which("dnsperf") is not None
    if not have_dnsperf and "dnsperf" in phases:
        log("dnsperf is not installed (apt-get install dnsperf): its runs are skipped")
    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    started = time.time()
    with LocalCluster(3, dns=True, name=NAME) as cluster:
        register(cluster)
        address = cluster.dns_address("n1")
        node_pid = cluster.procs["n1"].pid
        cpu_of = {"node": node_pid} if node_pid else {}
        role = "leader" if cluster.leader() == "n1" else "follower"
        log(f"cluster up; load on n1 ({role}) DNS {address[0]}:{address[1]}; load average {loadavg()[0]:.2f}")
        wires = {qtype: dns.message.make_query(name, qtype).to_wire() for name, qtype in QUERIES}
        srv_answer = dns.query.udp(dns.message.make_query(*QUERIES[1]), address[0], port=address[1], timeout=2.0)
        for name, qtype in QUERIES:
            if "dnsperf" in phases and have_dnsperf:
                r = run_dnsperf(address, [(name, qtype)], args.outstanding, duration, cpu_of, cluster.base_dir)
                results[f"dnsperf_{qtype}"] = r
                rows.append(row("dnsperf", f"n1 ({role})", qtype, r))
            if "python" in phases:
                r = run_python(address, [wires[qtype]], args.procs, args.window, duration, cpu_of)
                results[f"python_{qtype}"] = r
                rows.append(row(f"python x{args.procs}", f"n1 ({role})", qtype, r))
        if "uncached" in phases:
            rng = random.Random(1)
            for name, qtype in QUERIES:
                spellings = [dns.message.make_query(mixed_case(name, rng), qtype).to_wire() for _ in range(MIXED_CASE)]
                r = run_python(address, spellings, args.procs, args.window, duration, cpu_of)
                results[f"uncached_{qtype}"] = r
                rows.append(row(f"python x{args.procs}, 0x20", f"n1 ({role})", qtype, r))
        if "ceiling" in phases:
            port = _free_udp_port()
            ctx = mp.get_context("fork")
            refl = ctx.Process(target=reflector, args=(port, srv_answer.to_wire()), daemon=True)
            refl.start()
            try:
                time.sleep(0.3)
                target = ("127.0.0.1", port)
                ref_cpu = {"reflector": refl.pid} if refl.pid else {}
                if have_dnsperf:
                    r = run_dnsperf(target, [QUERIES[1]], args.outstanding, duration, ref_cpu, cluster.base_dir)
                    results["ceiling_dnsperf"] = r
                    rows.append(row("dnsperf", "reflector", "SRV", r))
                r = run_python(target, [wires["SRV"]], args.procs, args.window, duration, ref_cpu)
                results["ceiling_python"] = r
                rows.append(row(f"python x{args.procs}", "reflector", "SRV", r))
            finally:
                refl.kill()
                refl.join(timeout=5)
    print_table(f"DNS queries per second on one node (5 instances, UDP, {duration:g} s per run)",
                ["generator", "target", "query", "qps", "p50 ms", "p99 ms", "lost", "CPU % (100 = a core)"], rows)
    out = args.out or default_out(NAME)
    meta = {"argv": sys.argv if argv is None else argv, "started": started, "duration_s": duration,
            "loadavg_at_end": loadavg(), "dnsperf": have_dnsperf}
    write_result(out, meta, results, [r[:6] for r in rows], None)
    log(f"results in {out}")
    return 0


def mixed_case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


if __name__ == "__main__":
    sys.exit(main())
