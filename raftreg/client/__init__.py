"""The Python client: talks to any node and fails over to the others."""

from raftreg.client.http_client import ApiError, RegistryClient
from raftreg.client.keepalive import keep_alive

__all__ = ["ApiError", "RegistryClient", "keep_alive"]
