"""Fixtures of the unit tests: ``fake``, the in-process fake of the KV API (``kv_fake``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.kv_fake import FakeKV


@pytest.fixture
def fake() -> Iterator[FakeKV]:
    """A started ``FakeKV``, stopped after the test."""
    server = FakeKV()
    server.start()
    yield server
    server.stop()
