"""The web UI's files as the HTTP layer serves them (``raftreg.http.ui``), over real HTTP on an
application whose node is a stand-in (the UI routes never call it): redirects, content types,
the security headers, 404 for anything but a packaged file, open routes with ACLs on; and the
files themselves: no inline script or style, no HTML-parsing sink in the JavaScript."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from raftreg.config import LimitsTuning, LoggingSettings
from raftreg.http.app import build_app
from raftreg.http.ui import CSP, load_files

FILES = load_files()
REQUIRED_CSP = ["default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
                "frame-ancestors 'none'", "base-uri 'none'"]


def stand_in_node(acl_enabled: bool) -> Any:
    acl = SimpleNamespace(enabled=acl_enabled, accessor_of=lambda secret: None)
    return SimpleNamespace(acl=acl, acl_conflict=None, session_get=None, metrics=None,
                           config=SimpleNamespace(limits=LimitsTuning(), logging=LoggingSettings()))


@pytest.fixture(params=[False, True], ids=["acl-off", "acl-on"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(stand_in_node(request.param), secret="s" * 32)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize("path", ["/", "/ui"])
async def test_root_and_bare_ui_redirect_to_the_ui(client: TestClient[Any, Any], path: str) -> None:
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/ui/"


async def test_the_page_with_its_security_headers(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/ui/")  # no token: the files are open, with ACLs on too
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = [part.strip() for part in resp.headers["Content-Security-Policy"].split(";")]
    assert set(REQUIRED_CSP) <= set(csp), csp
    assert not any("unsafe" in part for part in csp)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert await resp.read() == FILES["index.html"][0]


@pytest.mark.parametrize(("name", "content_type"), [("app.js", "text/javascript"), ("kv.js", "text/javascript"),
                                                    ("style.css", "text/css"), ("index.html", "text/html")])
async def test_each_file_with_its_content_type(client: TestClient[Any, Any], name: str, content_type: str) -> None:
    resp = await client.get("/ui/" + name)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    assert resp.headers["Content-Security-Policy"] == CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert await resp.read() == FILES[name][0]


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/..%2Fhttp%2Fui.py", "/ui/%2e%2e/__init__.py",
                                  "/ui/__init__.py", "/ui/sub/app.js", "/ui/app.js%00.css"])
async def test_anything_else_is_not_found(client: TestClient[Any, Any], path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 404, (path, resp.status)
    body = await resp.json()
    assert body["error"]["code"] == "not_found"
    assert "Traceback" not in await resp.text()


async def test_head_answers_like_get(client: TestClient[Any, Any]) -> None:
    resp = await client.head("/ui/app.js")
    assert resp.status == 200
    assert resp.headers["Content-Security-Policy"] == CSP


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def test_the_page_has_no_inline_script_or_style() -> None:
    parser = _Tags()
    parser.feed(FILES["index.html"][0].decode())
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts and all(attrs.get("src") for attrs in scripts)
    assert parser.script_text == ""
    assert not [tag for tag, _ in parser.tags if tag == "style"]
    assert not [(tag, a) for tag, attrs in parser.tags for a in attrs if a.startswith("on") or a == "style"]
    linked = {attrs.get("src") or attrs.get("href") for tag, attrs in parser.tags if tag in ("script", "link")}
    assert linked <= set(FILES), linked  # nothing from elsewhere: no CDN


@pytest.mark.parametrize("name", sorted(n for n in FILES if n.endswith(".js")))
def test_the_javascript_never_parses_data_as_html(name: str) -> None:
    lines = FILES[name][0].decode().splitlines()
    source = "\n".join(line for line in lines if not line.strip().startswith(("//", "/*", "*")))  # code, not comments
    sinks = re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                       r"\.style\b|setAttribute\(\s*[\"']on", source)
    assert not sinks, f"{name} uses {sinks}: build nodes with dom.el() (text nodes) instead"
    assert not re.findall(r"https?://", source), f"{name} names an outside URL"
