"""Property-based fuzzing of one real node against its own OpenAPI document (``/v1/openapi.json``).

Issue 13, item 7. For every documented operation, Hypothesis builds requests from the document:
path parameters (valid by their schema, known objects, or junk), each documented query parameter
(valid by its schema or junk; sometimes an undocumented one), extra headers (a forged
signature, a node's User-Agent, a compressed-body claim, ...), the body (valid by its JSON schema via
``tests.http.schema_strategies``, a valid body with one field broken, or junk) and the Content-Type. Every
answer must satisfy:

1. no 5xx except a 503 or 504 the operation documents;
2. a 2xx body validates against the operation's documented 2xx schema (JSON answers), and the
   documented response headers (``X-Raftreg-Index``, ...) are present;
3. a non-2xx answer has the status among the operation's documented ones (any documented error
   when a path parameter is invalid by its schema: then no route may match) and the body
   ``{"error": {"code", "message", "field"?}}`` with the code API.md gives the status;
4. nothing changed unless the answer was 2xx: the node's state digest (``GET /v1/debug/digest``,
   signed: a SHA-256 of the state machine's snapshot) is identical before and after.

Exactness: after a 2xx (or a write's 504) ``World.defuse`` removes what could make the node write
by itself later (instances with a check or a ttl under a day, sessions with a ttl under a day), so the digest
only moves on a request. The per-operation run is derandomized and bounded: ``EXAMPLES`` per
operation (``RAFTREG_OPENAPI_FUZZ_EXAMPLES`` raises it for a longer exploration).

The shapes this file does not cover (raw paths, parser-level input, headers) are in test_http_fuzz.py
and test_http_kv_fuzz.py.
"""

from __future__ import annotations

import json
import os
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from raftreg.http.openapi import ERROR_CODES, OPERATIONS, QUERY, RAW, Op, document
from tests.http.conftest import Http, Resp
from tests.http.schema_strategies import valid

pytestmark = pytest.mark.cluster

EXAMPLES = int(os.environ.get("RAFTREG_OPENAPI_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
DOC = document()
SERVICE, INSTANCE, KEY = "fz", "i-1", "fz/a"
BASE_INSTANCE = {"address": "10.9.0.1", "port": 9000, "tags": ["t"], "meta": {"m": "v"}, "ttl": "24h"}
LONG_TTL = 86400.0
SESSION_TOKEN = "\x00session\x00"  # stands for the live baseline session id in a drawn request
JUNK = st.one_of(st.sampled_from(["", " ", "..", "%", "-1", "x" * 600, "\u00e9", "a/b", "\x00", "A_B", "NaN"]),
                 st.text(max_size=12))
JSON_JUNK = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                    max_size=3), max_leaves=6)


def _rooted(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the document's components beside it, so its ``$ref``s resolve."""
    return {**schema, "components": DOC["components"]}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_rooted(schema))


# ---- the node ---------------------------------------------------------------------------------------


class World:
    """The node under test: its digest, and the objects known requests can aim at."""

    def __init__(self, api: Http) -> None:
        self.api = api
        self.session = ""
        self.digest: dict[str, Any] = {}

    def observe(self) -> dict[str, Any]:
        resp = self.api.signed("GET", "/v1/debug/digest")
        assert resp.status == 200, resp.body
        doc = resp.json()
        # "content": every part but the applied-entries memory, which any write moves (raftreg.node.reads)
        return {k: doc[k] for k in ("content", "index", "kv_index", "instances")}

    def defuse(self) -> None:
        """Remove every timer that could make the node write by itself, restore the known
        objects, then take a fresh digest."""
        api = self.api
        for svc in api.get("/v1/services").json()["services"]:
            for inst in api.get(f"/v1/services/{svc['name']}").json()["instances"]:
                if (inst.get("ttl") or LONG_TTL) < LONG_TTL or inst.get("check") is not None:
                    assert api.delete(f"/v1/services/{inst['service']}/instances/{quote(inst['id'])}").status in (
                        200, 404)
        sessions = api.get("/v1/sessions").json()["sessions"]
        for sess in sessions:
            if sess["ttl"] < LONG_TTL:
                assert api.delete(f"/v1/sessions/{sess['id']}").status in (200, 404)
        if not any(s["id"] == self.session for s in sessions):
            resp = api.put("/v1/sessions", {"ttl": "24h", "lock_delay": 0, "name": "fuzz"})
            assert resp.status == 200, resp.body
            self.session = resp.json()["id"]
        if api.get(f"/v1/services/{SERVICE}/instances/{INSTANCE}").status != 200:
            api.put_ok(SERVICE, INSTANCE, BASE_INSTANCE)
        if api.get(f"/v1/kv/{KEY}").status != 200:
            assert api.request("PUT", f"/v1/kv/{KEY}", b"v", content_type=None).status == 200
        self.digest = self.observe()


@pytest.fixture(scope="module")
def world(api: Http) -> World:
    w = World(api)
    w.defuse()
    return w


# ---- strategies from the document ------------------------------------------------------------------


def _value(schema: dict[str, Any]) -> SearchStrategy[str]:
    """A string valid by a parameter's (string) schema."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    return st.text(string.ascii_letters + string.digits + "-_/.", min_size=schema.get("minLength", 0),
                   max_size=min(schema.get("maxLength", 16), 16))


# Headers a client may add: none may change an answer into a 5xx or let a rejected request write.
EXTRA_HEADERS = [("Content-Encoding", "gzip"), ("Content-Encoding", "identity"), ("Accept", "text/html"),
                 ("X-Raftreg-Index", "99"), ("X-Forwarded-For", "10.0.0.1"), ("User-Agent", "raftreg-node"),
                 ("X-Raftreg-Signature", "forged"), ("Authorization", "Bearer x"), ("Accept-Encoding", "br")]
KNOWN = {"service": [SERVICE], "id": [INSTANCE, SESSION_TOKEN], "key": [KEY, "fz/", "fz/b"],
         "accessor_id": ["0" * 32], "name": ["readers"]}  # ACL routes: 403 while ACLs are off


@dataclass(frozen=True)
class Req:
    method: str
    target: str
    body: bytes | None
    content_type: str | None
    valid_path: bool
    headers: tuple[tuple[str, str], ...] = ()


def _schema_at(op: Op, name: str) -> dict[str, Any]:
    item = DOC["paths"][op.path][op.method.lower()]
    return next(p["schema"] for p in item["parameters"] if p["name"] == name and p["in"] == "path")


def _body_schema(op: Op) -> dict[str, Any] | None:
    body = DOC["paths"][op.path][op.method.lower()].get("requestBody")
    return None if body is None or "application/json" not in body["content"] else body["content"][
        "application/json"]["schema"]


@st.composite
def _json_body(draw: DrawFn, schema: dict[str, Any]) -> bytes:
    pick = draw(st.integers(0, 6))
    if pick <= 3:
        value: Any = draw(valid(DOC, schema))
        if pick == 3 and isinstance(value, dict):  # one field broken, dropped or added
            key = draw(st.sampled_from(sorted(value) or ["extra"]))
            mode = draw(st.integers(0, 2))
            if mode == 0:
                value.pop(key, None)
            else:
                value[key if mode == 1 else draw(st.text(max_size=6))] = draw(JSON_JUNK)
        return json.dumps(value).encode()
    if pick <= 5:
        return json.dumps(draw(JSON_JUNK)).encode()
    return draw(st.binary(max_size=40))


@st.composite
def requests(draw: DrawFn, op: Op) -> Req:
    """A request for ``op``: valid or broken by the document's own schemas."""
    target, valid_path = op.path, True
    for name in [p[1:-1] for p in op.path.split("/") if p.startswith("{")]:
        schema = _schema_at(op, name)
        pick = draw(st.integers(0, 5))
        value = draw(st.sampled_from(KNOWN[name])) if pick <= 2 else draw(_value(schema)) if pick <= 4 else draw(JUNK)
        # the key route takes any rest of the path; other parameters route only when valid
        if value != SESSION_TOKEN and name != "key":
            valid_path = valid_path and jsonschema.Draft202012Validator(schema).is_valid(value)
        target = target.replace("{" + name + "}", value if value == SESSION_TOKEN else
                                quote(value, safe="/" if name == "key" else ""))
    items = []
    for name in op.query:
        if draw(st.integers(0, 2)):
            continue
        schema = QUERY[name][0]
        value = draw(_value(schema)) if draw(st.integers(0, 3)) else draw(JUNK)
        items.append((name, value))
    if draw(st.integers(0, 5)) == 0:
        items.append((draw(st.sampled_from(["nope", "recurse", "index", "wait", "x"])), draw(JUNK)))
    if any(name in ("index", "min_index") for name, _ in items):
        items = [(n, v) for n, v in items if n != "wait"] + [("wait", "10ms")]  # blocking reads stay short
    if items:
        target += "?" + "&".join(f"{quote(n)}={quote(v, safe='')}" for n, v in items)
    body, ctype = None, None
    schema = _body_schema(op)
    if op.body is RAW:
        body, ctype = draw(st.binary(max_size=64)), draw(st.sampled_from([None, "application/octet-stream"]))
    elif schema is not None:
        body = draw(_json_body(schema))
        ctype = draw(st.sampled_from(["application/json", "application/json", None, "text/plain",
                                      "application/problem+json"]))
    headers = tuple(draw(st.lists(st.sampled_from(EXTRA_HEADERS), max_size=2, unique=True)))
    return Req(op.method, target, body, ctype, valid_path, headers)


# ---- the properties ----------------------------------------------------------------------------------


def _documented(op: Op) -> dict[int, dict[str, Any]]:
    return {int(s): r for s, r in DOC["paths"][op.path][op.method.lower()]["responses"].items()}


def check(world: World, op: Op, req: Req) -> Resp:
    target = req.target.replace(SESSION_TOKEN, world.session)
    note(f"{req.method} {target} ctype={req.content_type} headers={req.headers} body={req.body!r:.300}")
    before = world.digest
    resp = world.api.request(req.method, target, req.body, content_type=req.content_type, headers=dict(req.headers))
    status, documented = resp.status, _documented(op)
    note(f"-> {status} {resp.body[:300]!r}")
    assert status < 500 or (status in (503, 504) and status in documented), f"server error {status}"
    if 200 <= status < 300:
        ctype = (resp.header("Content-Type") or "").split(";")[0]
        if ctype == "application/json":
            schema = documented[status]["content"]["application/json"]["schema"]
            errors = sorted(_validator(schema).iter_errors(resp.json()), key=str)
            assert not errors, f"2xx body does not match the document: {errors[0]}"
        missing = [h for h in documented[status].get("headers", {}) if resp.header(h) is None]
        assert not missing, f"documented headers missing from the 2xx answer: {missing}"
        world.defuse()
        return resp
    assert status in ERROR_CODES, f"undocumented status {status}"
    if req.valid_path:
        assert status in documented, f"status {status} is not documented for {op.method} {op.path}"
    Http.assert_error(resp, status, ERROR_CODES[status])
    if status == 503:
        assert resp.header("Retry-After"), "503 without Retry-After"
    if status == 504 and op.method != "GET":
        world.defuse()  # outcome unknown: the write may still apply
        return resp
    after = world.observe()
    assert after == before, f"a rejected request ({status}) changed the state: {before} -> {after}"
    return resp


@pytest.mark.parametrize("op", OPERATIONS, ids=[f"{op.method} {op.path}" for op in OPERATIONS])
def test_operation_against_its_document(world: World, op: Op) -> None:
    statuses: list[int] = []

    @FUZZ
    @given(req=requests(op))
    def run(req: Req) -> None:
        statuses.append(check(world, op, req).status)

    run()
    print(f"{op.method} {op.path}: {sorted(Counter(statuses).items())}")
    assert statuses, "no request was sent"


def test_served_document_is_the_document(world: World) -> None:
    resp = world.api.get("/v1/openapi.json")
    assert resp.status == 200 and (resp.header("Content-Type") or "").startswith("application/json"), resp.headers
    assert resp.json() == DOC


def test_found_by_fuzzing_a_key_with_a_newline_is_routed(world: World) -> None:
    """``/v1/kv/%0A`` answered the router's 404: the key route's ``.*`` stopped at a newline."""
    api = world.api
    resp = api.request("PUT", "/v1/kv/fz/line%0Abreak", b"x", content_type=None)
    assert resp.status == 200, resp.body
    assert api.get("/v1/kv/fz/line%0Abreak").json()["key"] == "fz/line\nbreak"
    assert api.delete("/v1/kv/fz/line%0Abreak").json()["deleted"] == 1
    resp = api.request("DELETE", "/v1/kv/%0A?recurse=", content_type=None)  # the prefix "\n": nothing under it
    assert (resp.status, resp.json()["deleted"]) == (200, 0), resp.body
    world.defuse()
