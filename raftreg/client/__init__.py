"""The Python client: talks to any node and fails over to the others."""

from raftreg.client.http_client import ApiError, RegistryClient

__all__ = ["ApiError", "RegistryClient"]
