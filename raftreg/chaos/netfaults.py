"""Network faults for ``raftreg chaos --network lab`` (README "Testing on a real network").

Each fault is applied with real kernel machinery in the lab's namespaces and undone after its
hold time; one fault at a time, like the process faults:

- ``isolate``: the node is cut from everyone, clients included (nft drop on its switch port);
- ``partial``: two nodes cannot reach each other while the third reaches both (nft in the switch);
- ``oneway``: packets from node A to node B are dropped, B to A still pass (established flows
  keep half working: B hears nothing from A, A still hears B);
- ``loss``: 5-30 % random loss both ways on the node's switch port (nft ``numgen``);
- ``delay``: 50-200 ms on every packet the node receives (NFQUEUE + ``raftreg.lab.nfq_delay``;
  the kernel has no netem);
- ``bandwidth``: the node's link shaped to 256-1024 kbit/s both ways (tbf on both veth ends);
- ``linkdown``: the switch port goes down, then up.

Plain names hit the leader with ``leader_share``; ``<kind>-leader`` always does. After the heal,
each affected node's time until it has applied the leader's commit index (as of the heal) is
recorded in ``FaultRecord.catch_up_s``: heal -> caught up.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from dataclasses import dataclass
from typing import Literal

from raftreg.chaos.faults import FAULT_KINDS, FAULT_NAMES, FaultInjector, FaultRecord, PlannedFault, plan
from raftreg.lab.cluster import LabCluster
from raftreg.lab.netns import in_ns
from raftreg.lab.nfq_helper import DelayHolder
from raftreg.lab.topology import switch_port
from raftreg.testing import wait_for

NET_FAULT_KINDS = ("isolate", "partial", "oneway", "loss", "delay", "bandwidth", "linkdown")
DISK_FAULT_KINDS = ("disk-stall", "disk-eio")
LAB_FAULT_NAMES = (*FAULT_NAMES, *NET_FAULT_KINDS, *(f"{k}-leader" for k in NET_FAULT_KINDS), *DISK_FAULT_KINDS,
                   *(f"{k}-leader" for k in DISK_FAULT_KINDS))
# Faults after which the node cannot answer clients at all: requests to it may go unanswered
# (exempt from the "answered in time" check, like a paused node).
UNREACHABLE_KINDS = ("isolate", "linkdown")
UNITS = {"loss": "%", "delay": "ms", "bandwidth": "kbit", "disk-stall": "s"}  # of LabFault.amount, in labels
CHAOS_TABLE = "rrchaos"
NFQUEUE_NUM = 7


@dataclass(frozen=True)
class LabFault:
    kind: str  # one of NET_FAULT_KINDS or DISK_FAULT_KINDS
    target: Literal["leader", "random"]
    random_pick: float  # picks the victim when target == "random"
    other_pick: float  # picks the second node of partial/oneway
    hold: float
    gap: float
    amount: float  # loss %, delay ms, bandwidth kbit/s, disk stall s


def lab_plan(seed: int, names: list[str], count: int, *, leader_share: float = 0.6) -> list[PlannedFault | LabFault]:
    """Like ``faults.plan`` (round robin over ``names``, seeded, the first of each name hits the
    leader), over process, network and disk fault names (``LAB_FAULT_NAMES``)."""
    rng = random.Random(seed)
    faults: list[PlannedFault | LabFault] = []
    for i in range(count if names else 0):
        name = names[i % len(names)]
        if name in FAULT_NAMES:
            base = plan(rng.randrange(1 << 30), [name], 1)[0]
            if i >= len(names) and not name.endswith("-leader") and base.target == "leader":
                base = PlannedFault(base.kind, "leader" if rng.random() < leader_share else "random",
                                    base.random_pick, base.hold, base.gap)
            faults.append(base)
            continue
        kind = name.removesuffix("-leader")
        to_leader = name.endswith("-leader") or i < len(names) or rng.random() < leader_share
        hold = rng.uniform(2.0, 5.0)
        amount = {"loss": rng.uniform(5, 30), "delay": rng.uniform(50, 200), "bandwidth": rng.choice([256, 512, 1024]),
                  "disk-stall": rng.uniform(1.0, 4.0)}.get(kind, 0.0)
        faults.append(LabFault(kind, "leader" if to_leader else "random", rng.random(), rng.random(), hold,
                               rng.uniform(0.5, 2.0), amount))
    return faults


class LabFaultInjector(FaultInjector):
    """``FaultInjector`` for a ``LabCluster``: the process faults as before, plus network faults
    (this module) and disk faults (``raftreg.chaos.diskfaults``)."""

    def __init__(self, cluster: LabCluster) -> None:
        super().__init__(cluster)
        self.lab = cluster
        self._holder: DelayHolder | None = None
        self._undo: list[list[str]] = []  # commands that heal the current fault
        self._down_ports: list[int] = []

    async def apply(self, fault: PlannedFault | LabFault, recover_timeout: float = 60.0) -> FaultRecord:
        if isinstance(fault, PlannedFault) or fault.kind in FAULT_KINDS:
            assert isinstance(fault, PlannedFault)
            return await super().apply(fault, recover_timeout)
        leader = await asyncio.to_thread(self.leader)
        names = self.lab.names
        victim = leader if fault.target == "leader" and leader is not None else \
            names[int(fault.random_pick * len(names)) % len(names)]
        others = [n for n in names if n != victim]
        nodes = [victim]
        if fault.kind in ("partial", "oneway"):
            nodes.append(others[int(fault.other_pick * len(others)) % len(others)])
        unit = UNITS.get(fault.kind)
        rec = FaultRecord(fault.kind, nodes, leader in nodes, time.monotonic(),
                          detail=f"{fault.amount:.0f}{unit}" if unit else "")
        self.records.append(rec)
        self.current = rec
        try:
            await asyncio.to_thread(self.inject, fault, nodes)
            await asyncio.sleep(fault.hold)
            await asyncio.to_thread(self.heal_network)
            rec.healed = time.monotonic()
            if fault.kind in UNREACHABLE_KINDS:
                self.paused.setdefault(victim, []).append((rec.started, rec.healed))
            await asyncio.to_thread(self.restart_dead, rec, recover_timeout)
            await asyncio.to_thread(self._wait_caught_up, nodes, rec, recover_timeout)
            await asyncio.to_thread(self.cluster.wait_ready, recover_timeout)
            rec.recovered = time.monotonic()
        except Exception as exc:  # reported; the runner stops injecting and the checks say why
            rec.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.current = None
        return rec

    # ---- applying and healing ---------------------------------------------------------------
    def inject(self, fault: LabFault, nodes: list[str]) -> None:
        """Apply ``fault`` to ``nodes`` (blocking)."""
        lab = self.lab
        port = switch_port(lab.index_of(nodes[0]))
        if fault.kind == "isolate":
            self._switch_rules([f'iifname "{port}" drop', f'oifname "{port}" drop'])
        elif fault.kind in ("partial", "oneway"):
            other = switch_port(lab.index_of(nodes[1]))
            rules = [f'iifname "{port}" oifname "{other}" drop']
            if fault.kind == "partial":
                rules.append(f'iifname "{other}" oifname "{port}" drop')
            self._switch_rules(rules)
        elif fault.kind == "loss":
            pct = int(fault.amount)
            self._switch_rules([f'iifname "{port}" numgen random mod 100 < {pct} drop',
                                f'oifname "{port}" numgen random mod 100 < {pct} drop'])
        elif fault.kind == "delay":
            host = lab.host_of(nodes[0])
            self._holder = DelayHolder(host, NFQUEUE_NUM, fault.amount, lab.state)
            self._holder.start()
            rule = ["INPUT", "-i", "eth0", "-j", "NFQUEUE", "--queue-num", str(NFQUEUE_NUM), "--queue-bypass"]
            in_ns(host, "iptables", "-A", *rule)
            self._undo.append(["ip", "netns", "exec", host, "iptables", "-D", *rule])
        elif fault.kind == "bandwidth":
            rate = f"{int(fault.amount)}kbit"
            tbf = ["tbf", "rate", rate, "burst", "4kb", "latency", "500ms"]
            host = lab.host_of(nodes[0])
            in_ns(host, "tc", "qdisc", "add", "dev", "eth0", "root", *tbf)
            in_ns(lab.state.switch, "tc", "qdisc", "add", "dev", port, "root", *tbf)
            self._undo += [["ip", "netns", "exec", host, "tc", "qdisc", "del", "dev", "eth0", "root"],
                           ["ip", "netns", "exec", lab.state.switch, "tc", "qdisc", "del", "dev", port, "root"]]
        elif fault.kind == "linkdown":
            in_ns(lab.state.switch, "ip", "link", "set", port, "down")
            self._undo.append(["ip", "netns", "exec", lab.state.switch, "ip", "link", "set", port, "up"])
        elif fault.kind in DISK_FAULT_KINDS:
            from raftreg.chaos.diskfaults import set_disk_mode

            set_disk_mode(lab, nodes[0], "eio" if fault.kind == "disk-eio" else f"stall {fault.amount:.2f}")
            self._undo.append(["disk-heal", nodes[0]])
        else:
            raise ValueError(f"unknown lab fault {fault.kind!r}")

    def _switch_rules(self, rules: list[str]) -> None:
        body = "\n".join([f"table bridge {CHAOS_TABLE} {{", "  chain forward_filter {",
                          "    type filter hook forward priority 0; policy accept;", *(f"    {r}" for r in rules),
                          "  }", "}", ""])
        in_ns(self.lab.state.switch, "nft", "-f", "-", stdin=body)
        self._undo.append(["ip", "netns", "exec", self.lab.state.switch, "nft", "delete", "table", "bridge",
                           CHAOS_TABLE])

    def heal_network(self) -> None:
        """Undo the current network or disk fault (idempotent)."""
        from raftreg.lab.netns import run

        undo, self._undo = self._undo, []
        for cmd in reversed(undo):
            if cmd[0] == "disk-heal":
                from raftreg.chaos.diskfaults import set_disk_mode

                set_disk_mode(self.lab, cmd[1], "ok")
            else:
                run(cmd, check=False)
        if self._holder is not None:
            self._holder.stop()
            self._holder = None

    def heal_all(self) -> None:
        self.heal_network()
        super().heal_all()

    def restart_dead(self, rec: FaultRecord, timeout: float) -> None:
        """Start any node that exited during the fault (a node whose disk failed exits on purpose:
        raftreg.node.disk_watch), and record its restart -> ready time."""
        dead = [n for n in self.lab.names if not self.lab.procs[n].alive()]
        since = time.monotonic()
        for name in dead:
            self.lab.start_node(name)
        for name in dead:
            self.lab.wait_node_ready(name, timeout=timeout)
            rec.catch_up_s[f"{name} restarted"] = time.monotonic() - since

    def _wait_caught_up(self, nodes: list[str], rec: FaultRecord, timeout: float) -> None:
        """Heal -> each node of ``nodes`` has applied the leader's commit index as of the heal."""
        leader = self.lab.leader(timeout=timeout)
        st = self.lab.status(leader, timeout=2.0)
        target = int(st["commit_index"]) if st else 0
        healed = rec.healed or time.monotonic()

        def caught_up(name: str) -> bool:
            s = self.lab.status(name, timeout=1.0)
            return s is not None and int(s["applied_index"]) >= target

        for name in nodes:
            wait_for(functools.partial(caught_up, name), timeout, f"{name} caught up after the heal", interval=0.02)
            rec.catch_up_s.setdefault(name, time.monotonic() - healed)
