"""The web UI's routes: the static files of ``raftreg/ui/`` at ``/ui/``, and ``/`` redirecting there.

Contract:
- The files are read once, from inside the package (``importlib.resources``), so a wheel carries
  them; a path names one of them exactly or answers 404 (no directory walk, no ``..``).
- Every answer under ``/ui/`` carries ``UI_HEADERS``: a Content-Security-Policy that allows
  scripts, styles and fetches from this origin only (no inline script, no ``eval``, no plugins,
  no framing), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
  ``Cache-Control: no-cache`` (a browser revalidates, so a node upgrade is seen at once).
- The routes are open (``raftreg.http.permissions``): the files hold no data. The pages read and
  write through the JSON API with the token the user entered, so ACLs apply there.
- The UI is not part of the API: it is left out of the OpenAPI document.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from raftreg.errors import NotFound
from raftreg.http import routes

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
UI_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


def load_files() -> dict[str, tuple[bytes, str]]:
    """Every UI file by name: its bytes and content type (files of other kinds are not served)."""
    out: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("raftreg").joinpath("ui").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            out[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return out


class UiFiles:
    """Serves the loaded files (see the module docstring)."""

    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        if "index.html" not in files:
            raise RuntimeError("raftreg/ui/index.html is missing from the package")
        self._files = files

    async def index(self, request: web.Request) -> web.Response:
        return self._serve("index.html")

    async def file(self, request: web.Request) -> web.Response:
        return self._serve(request.match_info["file"])

    def _serve(self, name: str) -> web.Response:
        found = self._files.get(name)
        if found is None:
            raise NotFound(f"no UI file {name!r}")
        body, content_type = found
        return web.Response(body=body, content_type=content_type,
                            charset="utf-8" if content_type.startswith("text/") else None, headers=UI_HEADERS)


async def _to_ui(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(routes.UI)


def add_ui_routes(app: web.Application) -> None:
    """``GET /`` and ``GET /ui`` redirect to ``/ui/``; ``/ui/`` is the page, ``/ui/{file}`` its files."""
    ui = UiFiles(load_files())
    app.router.add_get("/", _to_ui)
    app.router.add_get(routes.UI.rstrip("/"), _to_ui)
    app.router.add_get(routes.UI, ui.index)
    app.router.add_get(routes.UI + "{file}", ui.file)
