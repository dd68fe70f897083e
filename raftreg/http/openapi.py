"""The OpenAPI 3.1 document of the native API (API.md), served at ``GET /v1/openapi.json``.

Contract:
- ``OPERATIONS`` is the one table of public operations: one ``Op`` per method and path template
  (the router's template, ``{key:.*}`` written ``{key}``). ``tests/unit/test_openapi_sync.py``
  fails when a public route of the router has no entry or an entry has no route. The signed
  node-to-node and debug routes (``raftreg.http.routes.INTERNAL`` / ``DEBUG``) are left out.
- Request and response schemas are generated from msgspec types (``msgspec.json.schema_components``),
  the same types the handlers decode with, so a constraint changed in a type changes the document.
  Python-only regex anchors (``\\Z``) are rewritten to ECMA-262 (``$``) for JSON Schema.
- Every operation documents the error envelope ``{"error": {"code", "message", "field"?}}`` for
  each of its error statuses, with the one ``code`` API.md gives that status.
- ``document()`` is built once per process and ``document_bytes()`` encoded once (cached).

Adding a route (e.g. an ACL one) is one ``Op(...)`` line in ``OPERATIONS``: method, path, tag,
summary, query parameters (names in ``QUERY``), the body type, the 2xx body type, the error
statuses. A new body/response type is a msgspec Struct; it joins ``components`` by itself. A status
every route may answer (401/403 with ACLs, 429 with rate limits) goes into ``ALWAYS`` once; the
error envelopes of API.md's whole table are already in ``components/responses`` (``E401``, ...).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import msgspec

from raftreg.http.kv_validation import _SessionBody, _TxnBody
from raftreg.http.openapi_acl import ACL_OPS
from raftreg.http.openapi_acl import PATH_PARAMS as ACL_PATH_PARAMS
from raftreg.http.openapi_members import MEMBER_OPS
from raftreg.http.openapi_types import (
    REF,
    ClusterInfo,
    Deleted,
    ErrorBody,
    Health,
    KVDeleted,
    KVEntries,
    KVHistory,
    KVKeys,
    KVWritten,
    Ready,
    ServiceInstances,
    ServiceLeases,
    ServiceList,
    SessionCreated,
    SessionDestroyed,
    SessionList,
    SessionRenewed,
    SnapshotRestored,
    StoredInstance,
    Ttl,
    TxnResults,
)
from raftreg.http.validation import RegisterBody, StatusBody
from raftreg.models import Instance, KVEntry, Session

OPENAPI_PATH = "/v1/openapi.json"

# API.md "Errors": the one code each status carries (405/415 come from aiohttp's routing).
ERROR_CODES: dict[int, str] = {
    400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    429: "rate_limited", 503: "unavailable", 504: "timeout", 507: "quota_exceeded",
}

# ---- parameters ------------------------------------------------------------------------------------

SERVICE_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
INSTANCE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
SESSION_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
FLAG: dict[str, Any] = {"type": "string", "enum": ["", "1", "0", "true", "false", "yes", "no"]}
UINT: dict[str, Any] = {"type": "string", "pattern": r"^[0-9]{1,19}$"}
DURATION: dict[str, Any] = {"type": "string", "description": "seconds (10, 0.5) or Go-style (10s, 500ms, 2m)"}

PATH_PARAMS: dict[str, dict[str, Any]] = {
    "service": {"type": "string", "pattern": SERVICE_NAME},
    "id": {"type": "string", "pattern": INSTANCE_ID},
    "session": {"type": "string", "pattern": SESSION_ID},
    "key": {"type": "string", "minLength": 1, "description": "the rest of the path, '/' included: 1-512 bytes of "
            "NFC UTF-8, percent-encoded once, no NUL, no leading '/', no '..' or empty segment"},
    **ACL_PATH_PARAMS,
}

# name -> (schema, repeatable, description)
QUERY: dict[str, tuple[dict[str, Any], bool, str]] = {
    "consistent": (FLAG, False, "linearizable read (through the leader)"),
    "min_index": (UINT, False, "answer once this node applied N (504 after wait)"),
    "index": (UINT, False, "blocking query: hold until the index exceeds N or wait passes"),
    "wait": (DURATION, False, "how long a blocking or min_index read may wait (max 10m)"),
    "passing": (FLAG, False, "only passing instances"),
    "tag": ({"type": "string"}, True, "instances with every given tag"),
    "meta": ({"type": "string", "pattern": "^[^:]+:"}, True, "key:value; instances with every pair"),
    "recurse": (FLAG, False, "every entry under the prefix (GET) / delete the prefix (DELETE)"),
    "keys": (FLAG, False, "key names only"),
    "separator": ({"type": "string", "minLength": 1, "maxLength": 64}, False, "with keys: list one level"),
    "raw": (FLAG, False, "the bare value"),
    "history": (FLAG, False, "the key's retained earlier versions, newest first"),
    "cas": (UINT, False, "write/delete only if modify_index is N (0: only if absent)"),
    "flags": ({"type": "string", "pattern": r"^[0-9]{1,20}$"}, False, "a caller-owned uint64 stored with the value"),
    "acquire": ({"type": "string", "pattern": SESSION_ID}, False, "lock the key with this session"),
    "release": ({"type": "string", "pattern": SESSION_ID}, False, "release the key's lock held by this session"),
}
READ = ("consistent", "min_index", "index", "wait")

HEADERS: dict[str, tuple[dict[str, Any], str]] = {
    "X-Raftreg-Index": ({"type": "integer", "minimum": 0}, "the index that answers the query or commits the write"),
    "X-Raftreg-Leader": ({"type": "string"}, "the leader's node name, empty when unknown"),
    "X-Raftreg-Last-Contact": ({"type": "integer", "minimum": 0}, "ms since this node heard from the leader"),
    "Retry-After": ({"type": "integer", "minimum": 1}, "seconds before a retry"),
}
READ_HEADERS = ("X-Raftreg-Index", "X-Raftreg-Leader", "X-Raftreg-Last-Contact")
WRITE_HEADERS = ("X-Raftreg-Index",)

RAW = "raw"  # a body of any content type (a KV value)
ALWAYS = (401, 403, 429, 503)  # statuses every operation may answer (401/403: with ACLs on)
# API.md "Authentication": when ACLs are on, a token in either header; with them off, none.
SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer"},
                    "token": {"type": "apiKey", "in": "header", "name": "X-Raftreg-Token"}}
SECURITY: list[dict[str, list[str]]] = [{}, {"bearer": []}, {"token": []}]


@dataclass(frozen=True)
class Op:
    """One documented operation. ``body``: a msgspec type (JSON), ``RAW`` or None; ``returns``: the
    2xx JSON type(s) (several: ``oneOf``); ``errors``: statuses besides ``ALWAYS``;
    ``path_schemas`` overrides ``PATH_PARAMS`` by name."""

    method: str
    path: str
    tag: str
    summary: str
    returns: tuple[type, ...]
    query: tuple[str, ...] = ()
    body: type | str | None = None
    errors: tuple[int, ...] = (400,)
    headers: tuple[str, ...] = ()
    path_schemas: dict[str, str] = field(default_factory=dict)
    raw_response: bool = False
    media: str = "application/json"  # of a 2xx answer without ``returns`` (``/metrics``: Prometheus text)


INST = "/v1/services/{service}/instances/{id}"
KV = "/v1/kv/{key}"
SESS = "/v1/sessions/{id}"
SID = {"id": "session"}
W, R = WRITE_HEADERS, READ_HEADERS

OPERATIONS: tuple[Op, ...] = (
    Op("PUT", INST, "instances", "Register or replace an instance", (StoredInstance,), body=RegisterBody,
       errors=(400, 413, 504, 507), headers=W),
    Op("GET", INST, "instances", "Read an instance", (Instance,), READ, errors=(400, 404, 504), headers=R),
    Op("DELETE", INST, "instances", "Deregister an instance", (Deleted,), errors=(400, 404, 504), headers=W),
    Op("PUT", INST + "/heartbeat", "instances", "Renew an instance's ttl lease", (Ttl,), errors=(400, 404, 504)),
    Op("PUT", INST + "/status", "instances", "Set or clear the status by hand", (StoredInstance,), body=StatusBody,
       errors=(400, 404, 413, 504), headers=W),
    Op("GET", "/v1/services/{service}", "services", "A service's instances", (ServiceInstances,),
       (*READ, "passing", "tag", "meta"), errors=(400, 504), headers=R),
    Op("GET", "/v1/services/{service}/leases", "services", "Seconds left on its instances' ttl leases, as this "
       "node knows them", (ServiceLeases,), errors=(400,), headers=R),
    Op("GET", "/v1/services", "services", "Every service with its counts", (ServiceList,), READ,
       errors=(400, 504), headers=R),
    Op("GET", KV, "kv", "Read a key, a prefix, key names or a key's history", (KVEntry, KVEntries, KVKeys, KVHistory),
       (*READ, "recurse", "keys", "separator", "raw", "history"), errors=(400, 404, 504), headers=R,
       raw_response=True),
    Op("PUT", KV, "kv", "Write a key (the body is the value), with cas or a session lock", (KVWritten,),
       ("flags", "cas", "acquire", "release"), body=RAW, errors=(400, 404, 409, 413, 504, 507),
       headers=W),
    Op("DELETE", KV, "kv", "Delete a key or a prefix", (KVDeleted,), ("recurse", "cas"), errors=(400, 409, 504),
       headers=W),
    Op("PUT", "/v1/txn", "kv", "Apply up to 64 KV operations at one index, or none", (TxnResults,), body=_TxnBody,
       errors=(400, 409, 413, 504, 507), headers=W),
    Op("PUT", "/v1/sessions", "sessions", "Create a session", (SessionCreated,), body=_SessionBody,
       errors=(400, 404, 413, 504, 507), headers=W),
    Op("GET", "/v1/sessions", "sessions", "Every session", (SessionList,), READ, errors=(400, 504), headers=R),
    Op("GET", SESS, "sessions", "Read a session", (Session,), READ, errors=(400, 404, 504), headers=R,
       path_schemas=SID),
    Op("DELETE", SESS, "sessions", "Destroy a session", (SessionDestroyed,), errors=(400, 404, 504), headers=W,
       path_schemas=SID),
    Op("PUT", SESS + "/renew", "sessions", "Renew a session's lease", (SessionRenewed,), errors=(400, 404, 504),
       path_schemas=SID),
    Op("GET", "/v1/cluster", "cluster", "This node's Raft view and members (blocking: until the applied index "
       "exceeds ?index, or the role, leader, term or connected peers change)", (ClusterInfo,), ("index", "wait"),
       errors=(400,), headers=R),
    Op("GET", "/v1/health", "cluster", "200 while the process serves", (Health,), errors=()),
    Op("GET", "/v1/ready", "cluster", "200 once this node knows a leader and caught up", (Ready,), errors=()),
    Op("GET", OPENAPI_PATH, "cluster", "This document", (), errors=()),
    Op("GET", "/metrics", "cluster", "Prometheus metrics", (), errors=(404,), media="text/plain; version=0.0.4"),
    Op("GET", "/v1/snapshot", "snapshot", "The whole state as a snapshot file (gzip'd tar: manifest.json, "
       "state.msgpack), taken after a read barrier", (), errors=(403, 503), headers=W, media="application/gzip"),
    Op("PUT", "/v1/snapshot", "snapshot", "Restore a snapshot file into the running cluster, through the log",
       (SnapshotRestored,), body=RAW, errors=(400, 403, 409, 413, 503, 504), headers=W),
    *(Op(method, path, "acl", summary, returns, body=body, errors=errors)
      for method, path, summary, returns, body, errors in ACL_OPS),
    *(Op(method, path, "cluster", summary, returns, body=body, errors=errors)
      for method, path, summary, returns, body, errors in MEMBER_OPS),
)


# ---- building ----------------------------------------------------------------------------------------


def _ecma(node: Any) -> Any:
    """``node`` with Python's end anchor ``\\Z`` rewritten as ECMA-262's ``$`` in every pattern."""
    if isinstance(node, dict):
        return {k: (v.replace("\\Z", "$") if k == "pattern" and isinstance(v, str) else _ecma(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_ecma(v) for v in node]
    return node


def _headers(names: tuple[str, ...]) -> dict[str, Any]:
    return {n: {"$ref": f"#/components/headers/{n}"} for n in names}


def _parameters(op: Op) -> list[dict[str, Any]]:
    out = []
    for name in _path_names(op.path):
        schema = PATH_PARAMS[op.path_schemas.get(name, name)]
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name in op.query:
        schema, repeat, text = QUERY[name]
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "description": text,
                                 "schema": {"type": "array", "items": schema} if repeat else schema}
        if repeat:
            param.update(style="form", explode=True)
        elif schema is FLAG:
            param["allowEmptyValue"] = True
        out.append(param)
    return out


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation(op: Op, refs: dict[type, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "success"}
    if op.returns:
        one = [refs[t] for t in op.returns]
        content: dict[str, Any] = {"application/json": {"schema": one[0] if len(one) == 1 else {"oneOf": one}}}
        if op.raw_response:
            content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
        ok["content"] = content
    else:
        ok["content"] = {op.media: {"schema": {"type": "object" if op.media.endswith("json") else "string"}}}
    if op.headers:
        ok["headers"] = _headers(op.headers)
    responses: dict[str, Any] = {"200": ok}
    for status in sorted({*op.errors, *ALWAYS}):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    out: dict[str, Any] = {"operationId": _operation_id(op), "tags": [op.tag], "summary": op.summary,
                           "parameters": _parameters(op), "responses": responses}
    if op.body is RAW:
        out["requestBody"] = {"required": False, "content": {"*/*": {"schema": {"type": "string",
                                                                               "format": "binary"}}}}
    elif isinstance(op.body, type):
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[op.body]}}}
    return out


def _operation_id(op: Op) -> str:
    words = [p for p in op.path.split("/")[1:] if p and p != "v1" and not p.startswith("{")]
    return "_".join([op.method.lower(), *(w.replace("-", "_").replace(".", "_") for w in words)]) + (
        "_one" if op.path.endswith("}") else "")


def _error_responses(refs: dict[type, Any]) -> dict[str, Any]:
    out = {}
    for status, code in ERROR_CODES.items():
        detail = {"type": "object", "required": ["code", "message"], "additionalProperties": False,
                  "properties": {"code": {"const": code}, "message": {"type": "string", "minLength": 1},
                                 "field": {"type": "string", "minLength": 1}}}
        schema = {"allOf": [refs[ErrorBody], {"type": "object", "properties": {"error": detail}}]}
        resp: dict[str, Any] = {"description": code, "content": {"application/json": {"schema": schema}}}
        if status in (429, 503):
            resp["headers"] = _headers(("Retry-After",))
        out[f"E{status}"] = resp
    return out


@functools.cache
def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (a fresh build once per process; do not mutate it)."""
    types: list[type] = [ErrorBody]
    for op in OPERATIONS:
        types.extend(op.returns)
        if isinstance(op.body, type):
            types.append(op.body)
    unique = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(unique, ref_template=REF)
    refs = dict(zip(unique, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "raftreg", "version": "1",
                 "description": "The native HTTP API of raftreg (API.md). Every non-2xx answer has the body "
                                '{"error": {"code", "message", "field"?}}; a rejected request changes nothing.'},
        "paths": paths,
        "security": SECURITY,
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": components, "responses": _error_responses(refs),
                       "headers": {n: {"description": text, "schema": s} for n, (s, text) in HEADERS.items()}},
    }
    return msgspec.json.decode(msgspec.json.encode(_ecma(doc)))  # type: ignore[no-any-return]  # tuples -> lists


@functools.cache
def document_bytes() -> bytes:
    """``document()`` encoded as JSON, once."""
    return msgspec.json.encode(document())
