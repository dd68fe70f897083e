"""Headless Chromium for the UI tests and the screenshots: Debian's ``/usr/bin/chromium`` driven by
Playwright (PyPI ``playwright``), never a browser downloaded by Playwright.

The flags keep Chromium off the network (this machine's network is closed: without
``--disable-background-networking`` and friends it keeps trying Google's hosts) and let it run
as root in a container (``--no-sandbox``, ``--disable-dev-shm-usage``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

SHORT = 10_000  # ms: the default deadline of a page action or expectation (a blocking query answers at once)
CHROMIUM = os.environ.get("RAFTREG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--mute-audio",
]


def chromium_missing() -> str | None:
    """Why the browser cannot run here (``None``: it can)."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} is missing: `make test` installs it (.ci/ensure-browser)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[test]'"
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(page: Page, base: str, fragment: str) -> None:
    """Open a UI page and mark the document, so a test can tell that it never reloaded."""
    page.goto(f"{base}/ui/{fragment}")
    page.evaluate("window.__loadedOnce = true")
