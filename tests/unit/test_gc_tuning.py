"""raftreg.node.gc_tuning: what a node process does to its garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from raftreg.node.gc_tuning import FULL_AFTER, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_what_is_alive_is_frozen_and_full_collections_wait_longer() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    tune_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, FULL_AFTER) and FULL_AFTER > 10
