"""Waiting helpers shared by the unit tests."""

from __future__ import annotations

import asyncio
from typing import Any


async def timed_out(fut: asyncio.Future[Any], bound: float) -> bool:
    """Whether ``fut`` failed with ``TimeoutError`` within ``bound`` seconds. The bound itself
    raises nothing (``asyncio.wait_for`` would raise a ``TimeoutError`` of its own, which a test
    could take for the one it expects)."""
    await asyncio.wait({fut}, timeout=bound)
    return fut.done() and not fut.cancelled() and isinstance(fut.exception(), TimeoutError)
