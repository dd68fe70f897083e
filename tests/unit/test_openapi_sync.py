"""The OpenAPI document (``raftreg.http.openapi``) and the router agree, and the document is a
valid OpenAPI 3.1 document.

- every public route (method + path template) of ``build_app``'s router is documented, and every
  documented operation has a route; the signed ``/v1/internal/`` and ``/v1/debug/`` routes and
  the web UI's pages (``/``, ``/ui/...``: HTML, not API) are the only ones left out, and they
  must not be documented;
- aiohttp's automatic HEAD of a GET is not a route of its own here;
- the document validates against the OpenAPI 3.1 schema (``openapi-spec-validator``);
- every documented error response has the envelope with the code API.md gives its status.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from raftreg.config import LimitsTuning, LoggingSettings
from raftreg.http import routes
from raftreg.http.app import build_app
from raftreg.http.openapi import ERROR_CODES, OPERATIONS, document, document_bytes
from raftreg.node.registry_node import RegistryNode

_REGEX_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[^}]*\}")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _is_signed(path: str) -> bool:
    return path.startswith((routes.INTERNAL, routes.DEBUG))


def _is_ui(path: str) -> bool:
    """The web UI (``raftreg.http.ui``): HTML pages and their files, not part of the API."""
    return path == "/" or path.startswith(routes.UI.rstrip("/"))


def router_operations() -> set[tuple[str, str]]:
    """(METHOD, template) of every route of the app, ``{key:.*}`` written ``{key}``. The handlers
    are never called, so the node is a stand-in."""
    # routing only: no node behind it
    node = SimpleNamespace(acl=SimpleNamespace(enabled=False), metrics=SimpleNamespace(registry=CollectorRegistry()),
                           config=SimpleNamespace(limits=LimitsTuning(), logging=LoggingSettings()))
    app = build_app(cast(RegistryNode, node), secret="s" * 32, debug_endpoints=True)
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        assert isinstance(template, str), info
        out.add((route.method, _REGEX_PARAM.sub(r"{\1}", template)))
    gets = {path for method, path in out if method == "GET"}
    return {(m, p) for m, p in out if not (m == "HEAD" and p in gets)}


def documented_operations() -> set[tuple[str, str]]:
    doc = document()
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method in METHODS}


def test_every_public_route_is_documented_and_every_operation_is_routed() -> None:
    served = router_operations()
    public = {(m, p) for m, p in served if not _is_signed(p) and not _is_ui(p)}
    documented = documented_operations()
    assert public - documented == set(), "routes missing from the OpenAPI document (add an Op to OPERATIONS)"
    assert documented - public == set(), "documented operations that no route serves"
    assert any(_is_signed(p) for _, p in served), "the signed routes should exist (and be left out)"


def test_the_table_has_one_entry_per_operation() -> None:
    keys = [(op.method, op.path) for op in OPERATIONS]
    assert len(keys) == len(set(keys))
    ids = [item[m]["operationId"] for item in document()["paths"].values() for m in item]
    assert len(ids) == len(set(ids)), ids


def test_document_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validator.validate(doc)


def test_error_responses_carry_the_envelope_with_their_code() -> None:
    doc = document()
    responses: dict[str, Any] = doc["components"]["responses"]
    for item in doc["paths"].values():
        for op in item.values():
            for status, resp in op["responses"].items():
                if status.startswith("2"):
                    continue
                name = resp["$ref"].rsplit("/", 1)[1]
                schema = responses[name]["content"]["application/json"]["schema"]
                code = schema["allOf"][1]["properties"]["error"]["properties"]["code"]["const"]
                assert code == ERROR_CODES[int(status)]
            assert "503" in op["responses"], op["operationId"]


def test_patterns_are_ecma_and_bytes_are_cached() -> None:
    assert b"\\\\Z" not in document_bytes()
    assert document_bytes() is document_bytes()
