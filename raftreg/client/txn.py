"""Builders of transaction ops (``client.txn([...])``, API.md ``PUT /v1/txn``).

    from raftreg.client import txn
    result = client.txn([txn.check_index("app/lock", 12), txn.put("app/a", b"1"), txn.delete("app/b")])
    if not result.ok:                       # a condition did not hold: nothing was applied
        print("op", result.failed, result.error)

``index`` is an expected ``modify_index`` (0: the key must be absent). Values may be ``str``
(UTF-8 encoded) or ``bytes``. The ops of one transaction apply at one index, or none do.
"""

from __future__ import annotations

from raftreg.client.kv_results import TxnOp

__all__ = ["cas", "check_index", "delete", "delete_cas", "get", "put"]


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def put(key: str, value: bytes | str, flags: int = 0) -> TxnOp:
    """Write ``value`` (the ``set`` op)."""
    return TxnOp("set", key, _bytes(value), flags or None)


def cas(key: str, value: bytes | str, index: int, flags: int = 0) -> TxnOp:
    """Write ``value`` only if the key's ``modify_index`` is ``index`` (0: only if absent)."""
    return TxnOp("cas", key, _bytes(value), flags or None, index)


def delete(key: str) -> TxnOp:
    """Delete the key (nothing happens if it is absent)."""
    return TxnOp("delete", key)


def delete_cas(key: str, index: int) -> TxnOp:
    """Delete the key only if its ``modify_index`` is ``index``."""
    return TxnOp("delete_cas", key, index=index)


def check_index(key: str, index: int) -> TxnOp:
    """Apply the transaction only if the key's ``modify_index`` is ``index`` (0: absent)."""
    return TxnOp("check_index", key, index=index)


def get(key: str) -> TxnOp:
    """Read the key as part of the transaction (its entry is in ``TxnResult.entries()``)."""
    return TxnOp("get", key)
