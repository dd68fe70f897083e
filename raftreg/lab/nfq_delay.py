"""``python -m raftreg.lab.nfq_delay --queue Q --delay-ms D --lab PREFIX``: hold every packet of
NFQUEUE ``Q`` for ``D`` ms, then accept it (the lab's "delay" fault without netem, which this
kernel lacks). Runs inside the delayed host's namespace, where an iptables rule
``-A INPUT -i eth0 -j NFQUEUE --queue-num Q --queue-bypass`` feeds it: packets keep their order
(one fixed delay) and pass unchanged once the holder is gone (``--queue-bypass``). Prints
``ready`` once bound. ``--lab`` only names the lab on the command line (``lab down`` checks it).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--lab", default="")
    args = parser.parse_args()
    asyncio.run(_hold(args.queue, args.delay_ms / 1000.0))


async def _hold(queue: int, delay: float) -> None:
    from netfilterqueue import NetfilterQueue

    loop = asyncio.get_running_loop()

    def on_packet(packet: Any) -> None:
        packet.retain()
        loop.call_later(delay, packet.accept)

    nfq = NetfilterQueue()
    nfq.bind(queue, on_packet, max_len=20000)
    sock = socket.fromfd(nfq.get_fd(), socket.AF_UNIX, socket.SOCK_STREAM)
    loop.add_reader(sock, lambda: nfq.run(block=False))
    print("ready", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    main()
