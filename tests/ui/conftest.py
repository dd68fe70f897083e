"""Fixtures of the browser tests: one headless Chromium per module, a fresh context (cookies,
sessionStorage) per test, and a test that fails when the page raised a JavaScript error or the
browser refused something under the Content-Security-Policy (an inline script or style)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.ui.browser import SHORT, chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    p = context.new_page()
    p.set_default_timeout(SHORT)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    yield p
    context.close()
    assert not errors, f"JavaScript errors or CSP violations on the page: {errors}"
