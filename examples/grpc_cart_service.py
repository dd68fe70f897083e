"""The "cart" service over gRPC, registering itself with raftreg (needs the ``examples`` extra:
``pip install -e '.[examples]'``, i.e. grpcio and protobuf).

    .venv/bin/python examples/grpc_cart_service.py --id grpc-cart-1 --port 9081

One unary method, ``/cart.Cart/GetCart``: the request is a ``google.protobuf.StringValue`` (the
user), the answer a ``google.protobuf.Struct`` (``user``, ``items``, ``served_by``). Both are
protobuf's well-known types, so no ``.proto`` file and no generated code are needed; a real service
would generate its stubs with ``grpcio-tools`` and register the same way.

Registered as service ``cart-grpc`` through ``client.registration(...)``, as ``cart_service.py``
(same options): a TTL lease and, unless ``--no-check``, a TCP check of the gRPC port run by the
cluster (the registry checks HTTP or TCP, not the gRPC health protocol). Prints
``ready <id> <port> ...`` once registered; SIGTERM or Ctrl-C deregisters and stops the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

import grpc
from cart_service import cart_of, parse_args, registered_until_stopped
from google.protobuf import struct_pb2, wrappers_pb2

from raftreg.client import Check

SERVICE = "cart-grpc"
GRPC_SERVICE = "cart.Cart"
METHOD = "GetCart"


def cart_handler(instance_id: str) -> grpc.GenericRpcHandler:
    """The ``cart.Cart`` service: ``GetCart(StringValue) -> Struct``."""

    async def get_cart(request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext[
            wrappers_pb2.StringValue, struct_pb2.Struct]) -> struct_pb2.Struct:
        answer = struct_pb2.Struct()
        answer.update({"user": request.value, "items": cart_of(request.value), "served_by": instance_id})
        return answer

    method = grpc.unary_unary_rpc_method_handler(get_cart, request_deserializer=wrappers_pb2.StringValue.FromString,
                                                 response_serializer=struct_pb2.Struct.SerializeToString)
    return grpc.method_handlers_generic_handler(GRPC_SERVICE, {METHOD: method})


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM / SIGINT, registered the whole time."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((cart_handler(args.id),))
    port = server.add_insecure_port(f"{args.host}:{args.port}")  # the real port when --port 0
    await server.start()
    check = None if args.no_check else Check(tcp=f"{args.host}:{port}", interval=args.check_interval, timeout=1.0)
    try:
        await registered_until_stopped(args, SERVICE, port, check)
    finally:
        await server.stop(grace=1.0)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    args = parse_args(argv, description=__doc__)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
