"""The web UI with ACLs on (``default_policy = "deny"``), in headless Chromium against a real
single-node cluster: without a token the pages say 401 and how to fix it; a read-only token
(entered in the page, sent as a header) shows the data, and a write it may not make (deregister)
is refused with the 403 shown next to the instance, nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from raftreg.config import AclSettings
from raftreg.testing import LocalCluster, http_json
from tests.secret_watch import remember_secret
from tests.ui.browser import chromium_missing, open_page

MISSING = chromium_missing()
if MISSING is not None:
    pytest.skip(MISSING, allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.cluster


def call(base: str, method: str, path: str, secret: str, body: Any = None) -> Any:
    code, out = http_json(base + path, method=method, body=body, headers={"X-Raftreg-Token": secret}, timeout=10.0)
    assert code == 200, (method, path, code, out)
    return out


@pytest.fixture(scope="module")
def secured() -> Iterator[tuple[str, str]]:
    """(base URL, a read-only token's secret) of a one-node cluster with the service 'pay'."""
    cluster = LocalCluster(1, name="uiacl", acl=AclSettings(enabled=True, default_policy="deny"))
    try:
        cluster.start(wait=60.0)
        base = cluster.url("n1")
        code, root = http_json(base + "/v1/acl/bootstrap", method="PUT", body={})
        assert code == 200, root
        remember_secret(root["secret_id"])
        call(base, "PUT", "/v1/services/pay/instances/pay-1", root["secret_id"], {"address": "10.0.0.1", "port": 80})
        reader = call(base, "PUT", "/v1/acl/tokens", root["secret_id"],
                      {"description": "ui reader", "rules": ['service_prefix "" read']})
        remember_secret(reader["secret_id"])
        yield base, reader["secret_id"]
    finally:
        cluster.close()


def test_without_a_token_the_page_says_401(page: Page, secured: tuple[str, str]) -> None:
    base, _ = secured
    open_page(page, base, "#/services")
    expect(page.locator("main .error")).to_contain_text("401 unauthenticated")
    expect(page.locator("main .error")).to_contain_text("enter an ACL token")


def test_a_read_token_reads_and_a_refused_write_shows_403(page: Page, secured: tuple[str, str]) -> None:
    base, reader = secured
    open_page(page, base, "#/service/pay")
    page.fill("#token", reader)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-state")).to_have_text("token: ui reader")
    row = page.locator("#instances tr[data-instance='pay-1']")
    row.locator("button.deregister").click()
    row.locator("button.confirm-yes").click()
    expect(row.locator(".outcome .error")).to_contain_text("403 permission_denied")
    code, body = http_json(base + "/v1/services/pay/instances/pay-1", headers={"X-Raftreg-Token": reader})
    assert code == 200 and body["id"] == "pay-1", body  # still registered
