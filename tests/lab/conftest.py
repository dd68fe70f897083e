"""Lab tests need root and the lab's tools (``.ci/ensure-lab`` installs them in ``make test``);
without them they skip, saying why."""

from __future__ import annotations

import os
import shutil

import pytest


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, nft, iptables, tc)"
    missing = [t for t in ("ip", "nft", "iptables", "tc", "fusermount3") if shutil.which(t) is None]
    if missing:
        return f"the lab needs {', '.join(missing)}: run .ci/ensure-lab"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = lab_unavailable()
    if reason is None:
        return
    for item in items:
        if "tests/lab/" in str(item.path):
            item.add_marker(pytest.mark.skip(reason=reason))
