"""The cluster page's mass-expiry guard banner (Eureka's self-preservation banner), in headless
Chromium against a real single-node cluster tuned so that a few silent ttl instances trip the
guard: the banner appears, from the leader, without a reload, with the count it holds back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raftreg.config import LeaseTuning
from raftreg.testing import LocalCluster
from tests.ui.browser import chromium_missing, open_page
from tests.ui.sample_data import register

MISSING = chromium_missing()
if MISSING is not None:
    pytest.skip(MISSING, allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.cluster

SILENT = 4  # instances with a 1 s ttl that never heartbeat: all overdue at once
GUARD = LeaseTuning(mass_expiry_min=2, mass_expiry_rate=0.05, mass_expiry_hold_extra=60.0)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    cluster = LocalCluster(1, name="uiguard", leases=GUARD)
    try:
        cluster.start(wait=60.0)
        yield cluster.url("n1")
    finally:
        cluster.close()


def test_the_guard_banner_shows_when_expiries_are_held(page: Page, base: str) -> None:
    open_page(page, base, "#/cluster")
    expect(page.locator("#members tr.leader")).to_have_attribute("data-member", "n1")
    expect(page.locator("#guard")).to_have_count(0)
    for i in range(SILENT):
        register(base, "quiet", f"q-{i}", ttl="1s")
    # the leases run out about 1 s later; the guard turning on wakes the page's blocking query
    expect(page.locator("#guard")).to_contain_text("Mass-expiry guard on", timeout=8_000)
    expect(page.locator("#guard")).to_contain_text("overdue instances are held back")
    assert page.evaluate("window.__loadedOnce") is True
