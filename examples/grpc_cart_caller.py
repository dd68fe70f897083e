"""A gRPC caller of ``cart-grpc``: discovers the replicas through raftreg and chooses a channel per
call through a balancer (needs the ``examples`` extra: grpcio and protobuf).

    .venv/bin/python examples/grpc_cart_caller.py --replicas 3 --calls 300 --balancer p2c_peak_ewma

gRPC's own client-side balancing needs a resolver plugin; here the choice is raftreg's: one
``grpc.aio`` channel per discovered replica (opened on first use, closed once the replica leaves
the discovery cache), and each call goes through ``client.call("cart-grpc", ...)``, which picks the
replica with the balancer, retries a failed RPC (``UNAVAILABLE`` from a dead replica, a deadline
exceeded) on another replica and ejects a replica that keeps failing. Options and output are
``cart_caller.py``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc
from cart_caller import Summary, call_replicas, parse_args, registry_client, report
from google.protobuf import struct_pb2, wrappers_pb2
from grpc_cart_service import GRPC_SERVICE, METHOD, SERVICE

from raftreg.client import Instance
from raftreg.client.discovery import AsyncDiscovery

Target = tuple[str, int]  # (address, port)


class Channels:
    """One ``grpc.aio`` channel per replica, closed when the replica leaves ``found``."""

    def __init__(self, found: AsyncDiscovery, timeout: float) -> None:
        self._found = found
        self._timeout = timeout
        self._version = found.version
        self._channels: dict[Target, grpc.aio.Channel] = {}
        self._closing: set[asyncio.Future[None]] = set()

    def _method(self, instance: Instance) -> grpc.aio.UnaryUnaryMultiCallable[wrappers_pb2.StringValue,
                                                                              struct_pb2.Struct]:
        if self._found.version != self._version:  # the replicas changed: close the channels of those gone
            self._version = self._found.version
            current = {(i.address, i.port) for i in self._found.instances}
            for target in [t for t in self._channels if t not in current]:
                # RPCs still in flight on it (a retry that picked it before) get the call's timeout to end
                closing = asyncio.ensure_future(self._channels.pop(target).close(grace=self._timeout))
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        target = (instance.address, instance.port)
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = grpc.aio.insecure_channel(f"{instance.address}:{instance.port}")
        return channel.unary_unary(f"/{GRPC_SERVICE}/{METHOD}",
                                   request_serializer=wrappers_pb2.StringValue.SerializeToString,
                                   response_deserializer=struct_pb2.Struct.FromString)

    async def get_cart(self, instance: Instance, user: str) -> str:
        """One RPC to one replica; raises ``grpc.aio.AioRpcError`` on failure. The id of the replica
        that served it."""
        answer = await self._method(instance)(wrappers_pb2.StringValue(value=user), timeout=self._timeout)
        return str(answer["served_by"])

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        await asyncio.gather(*(channel.close() for channel in channels), *self._closing)


async def run(args: argparse.Namespace) -> Summary:
    async with registry_client(args) as client:
        channels = Channels(client.discovery(SERVICE), args.timeout)
        try:
            return await call_replicas(client, SERVICE, channels.get_cart, args)
        finally:
            await channels.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, description=__doc__)
    return report(asyncio.run(run(args)), args)


if __name__ == "__main__":
    sys.exit(main())
