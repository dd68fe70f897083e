"""The web UI in a real headless Chromium (Debian's, driven by Playwright) against one real 3-node
cluster shared by the module: lists and counts, live updates through blocking queries (no reload),
a check's output, hostile data shown as text with no script run, the token sent as a header only,
confirmations before writes, the KV editor's compare-and-set, and the cluster page following a
leader change. Every wait is an ``expect`` with a deadline, never a sleep.

The leader-kill test changes the cluster for good, so it runs last.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from raftreg.testing import LocalCluster, wait_for
from tests.ui.browser import SHORT, chromium_missing, open_page
from tests.ui.sample_data import api, get_key, put_key, register, seed, status

MISSING = chromium_missing()
if MISSING is not None:
    pytest.skip(MISSING, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.cluster

ELECTION = 30_000  # ms: a leader kill, an election and the page's next answer (its wait is 10 s)
HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(3, name="ui")
    try:
        c.start(wait=60.0)
        seed(c.url(c.wait_ready()))
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def base(cluster: LocalCluster) -> str:
    """The URL of a follower: the pages are served by (and read from) a node that is not the leader."""
    return cluster.url(cluster.followers()[0])


def test_root_redirects_to_the_ui(page: Page, base: str) -> None:
    page.goto(base + "/")
    assert page.url == base + "/ui/"
    expect(page.locator("#services")).to_be_visible()


def test_services_page_lists_services_with_their_counts(page: Page, base: str) -> None:
    open_page(page, base, "#/services")
    web = page.locator("#services tr[data-service='web']")
    expect(web.locator(".instances")).to_have_text("3")
    expect(web.locator(".passing")).to_have_text("2")
    expect(web.locator(".warning")).to_have_text("0")
    expect(web.locator(".critical")).to_have_text("1")
    expect(web.locator(".tag")).to_have_text(["blue", "green", "v2"])
    api_row = page.locator("#services tr[data-service='api']")
    expect(api_row.locator(".warning")).to_have_text("1")
    page.fill("#service-filter", "grpc")  # by tag
    expect(page.locator("#services tbody tr")).to_have_count(1)
    expect(page.locator("#services tr[data-service='api']")).to_be_visible()


def test_a_registration_appears_without_a_reload(page: Page, base: str, cluster: LocalCluster) -> None:
    open_page(page, base, "#/services")
    expect(page.locator("#services tr[data-service='web']")).to_be_visible()
    leader = cluster.url(cluster.leader())
    register(leader, "cart", "cart-1", tags=["new"])
    expect(page.locator("#services tr[data-service='cart'] .instances")).to_have_text("1")
    page.click("#services tr[data-service='cart'] a")
    expect(page.locator("#instances tr[data-instance='cart-1']")).to_be_visible()
    register(leader, "cart", "cart-2", address="10.9.9.9", port=4000)  # while the service page is open
    expect(page.locator("#instances tr[data-instance='cart-2'] .address")).to_have_text("10.9.9.9:4000")
    assert page.evaluate("window.__loadedOnce") is True, "the page reloaded"


def test_the_service_page_shows_a_failing_checks_output(page: Page, base: str) -> None:
    open_page(page, base, "#/service/web")
    row = page.locator("#instances tr[data-instance='web-3']")
    expect(row.locator(".badge")).to_have_text("critical")
    expect(row.locator(".check-output")).to_contain_text("Connect")  # "ConnectionRefusedError: ... Connect call failed"
    expect(page.locator("#instances tr[data-instance='web-1'] .badge")).to_have_text("passing")


def test_the_service_page_shows_ttl_and_lease_time_left(page: Page, base: str) -> None:
    open_page(page, base, "#/service/api")
    lease = page.locator("#instances tr[data-instance='api-1'] td.lease")
    expect(lease).to_contain_text("ttl 1 h 0 m")
    expect(lease.locator(".left")).to_have_text(re.compile(r"^(59 m \d+ s|1 h 0 m) left$"))  # 1 h ttl, just registered
    expect(lease).to_contain_text("estimated by")  # read from a follower: the leader holds the deadlines
    expect(page.locator("#instances tr[data-instance='api-2'] .check-output")).to_have_text("draining for deploy")


def test_a_script_in_meta_and_tags_is_shown_as_text_and_never_runs(page: Page, base: str,
                                                                   cluster: LocalCluster) -> None:
    register(cluster.url(cluster.leader()), "evil", "e-1", tags=[HOSTILE], meta={"note": HOSTILE})
    open_page(page, base, "#/service/evil")
    row = page.locator("#instances tr[data-instance='e-1']")
    expect(row.locator("td.meta dd")).to_have_text(HOSTILE)
    expect(row.locator(".tag")).to_have_text(HOSTILE)
    assert row.locator("script, img").count() == 0
    open_page(page, base, "#/services")
    expect(page.locator("#services tr[data-service='evil'] .tag")).to_have_text(HOSTILE)
    assert page.evaluate("window.__pwned") is None


def test_the_browser_enforces_the_csp_on_injected_script(browser: Browser, base: str) -> None:
    """Defence in depth: even markup that got into the page could not run script."""
    context = browser.new_context()
    try:
        page = context.new_page()
        open_page(page, base, "#/services")
        expect(page.locator("#services tr[data-service='web']")).to_be_visible()
        inject = """() => { const s = document.createElement('script'); s.textContent = 'window.__pwned = 3';
                           document.body.append(s); }"""
        with page.expect_console_message(lambda m: "Content Security Policy" in m.text, timeout=SHORT):
            page.evaluate(inject)
        assert page.evaluate("window.__pwned") is None
    finally:
        context.close()


def test_the_token_is_sent_as_a_header_and_never_in_a_url(page: Page, base: str) -> None:
    secret = "ui-test-secret-7f3a"
    seen: list[tuple[str, str | None]] = []
    page.on("request", lambda r: seen.append((r.url, r.headers.get("x-raftreg-token"))))
    open_page(page, base, "#/services")
    page.fill("#token", secret)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#services tr[data-service='web']")).to_be_visible()
    api_calls = [(url, header) for url, header in seen if "/v1/services" in url]
    assert api_calls and api_calls[-1][1] == secret, api_calls
    assert not [url for url, _ in seen if secret in url]
    assert page.evaluate("sessionStorage.getItem('raftreg.token')") == secret
    assert page.input_value("#token") == ""  # not left in the field either


def test_deregister_and_maintenance_ask_first(page: Page, base: str, cluster: LocalCluster) -> None:
    leader = cluster.url(cluster.leader())
    register(leader, "tmp", "t-1")
    register(leader, "tmp", "t-2")
    open_page(page, base, "#/service/tmp")
    row = page.locator("#instances tr[data-instance='t-1']")
    row.locator("button.deregister").click()
    row.locator("button.confirm-no").click()  # cancelled: nothing written
    expect(row.locator("button.deregister")).to_be_visible()
    assert status(leader, "tmp", "t-1") == "passing"
    row.locator("button.deregister").click()
    row.locator("button.confirm-yes").click()
    expect(row).to_have_count(0)
    other = page.locator("#instances tr[data-instance='t-2']")
    other.locator("button.maintenance").click()
    other.locator("button.confirm-yes").click()
    expect(other.locator(".badge")).to_have_text("critical")
    expect(other.locator(".check-output")).to_have_text("maintenance (set in the web UI)")
    assert status(leader, "tmp", "t-2") == "critical"


def test_the_kv_editor_refuses_a_stale_edit(page: Page, base: str, cluster: LocalCluster) -> None:
    leader = cluster.url(cluster.leader())
    put_key(leader, "app/db/url", "postgres://a")
    open_page(page, base, "#/kv/app/")
    page.click("#kv-keys a:text('db/')")
    page.click("#kv-keys a:text('url')")
    expect(page.locator("#kv-value")).to_have_text("postgres://a")
    page.click("#kv-edit")
    put_key(leader, "app/db/url", "postgres://b")  # someone else edits meanwhile
    expect(page.locator("#kv-value")).to_have_text("postgres://b")  # the view follows; the editor keeps the text
    page.fill("#kv-edit-value", "postgres://mine")
    page.click("#kv-save")
    expect(page.locator("#kv-stale")).to_contain_text("Refused")
    assert get_key(leader, "app/db/url")[0] == "postgres://b"
    page.click("#kv-cancel")  # start again from the current version: now it saves
    page.click("#kv-edit")
    page.fill("#kv-edit-value", "postgres://mine")
    page.click("#kv-save")
    expect(page.locator("#kv-value")).to_have_text("postgres://mine")
    assert get_key(leader, "app/db/url")[0] == "postgres://mine"


def test_the_cluster_page_follows_a_leader_kill_and_says_when_there_is_no_leader(page: Page,
                                                                                 cluster: LocalCluster) -> None:
    old = cluster.leader()
    survivor = next(n for n in cluster.names if n != old)
    open_page(page, cluster.url(survivor), "#/cluster")
    expect(page.locator("#members tr.self")).to_have_attribute("data-member", survivor)
    expect(page.locator("#members tr.leader")).to_have_attribute("data-member", old)
    cluster.kill(old)
    new = wait_for(lambda: next_leader(cluster, old), 30, "a new leader")
    expect(page.locator("#members tr.leader")).to_have_attribute("data-member", new, timeout=ELECTION)
    expect(page.locator("#leader-name .value")).to_have_text(new)
    expect(page.locator(f"#members tr[data-member='{old}'] td.role")).to_have_text("unreachable")
    assert api(cluster.url(survivor), "GET", "/v1/cluster")["leader"] == new
    expect(page.locator("#no-leader")).to_have_count(0)
    cluster.kill(next(n for n in cluster.running() if n != survivor))  # the survivor is alone: no quorum
    expect(page.locator("#no-leader")).to_contain_text("No leader", timeout=ELECTION)


def next_leader(cluster: LocalCluster, old: str) -> str | None:
    leader = cluster.leader(among=cluster.running())
    return leader if leader != old else None
