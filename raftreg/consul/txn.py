"""``PUT /v1/txn``: Consul's transaction endpoint, mapped onto raftreg's KV transaction
(``RegistryNode.kv_txn``: every op applied at one index, or none).

Contract (Consul's ``agent/txn_endpoint.go`` and ``state/txn.go``):
- The body is a JSON array of at most 64 ops (more: 413 ``Transaction contains too many
  operations``), each ``{"KV": {"Verb", "Key", "Value" (base64), "Flags", "Index", "Session"}}``;
  field names match case-insensitively, as Go's JSON decoder matches them.
- Verbs: ``set``, ``cas`` (``Index`` 0: create only), ``get``, ``delete``, ``delete-cas``,
  ``check-index`` (``Index`` > 0), ``check-not-exists``. The others (``lock``, ``unlock``,
  ``get-tree``, ``delete-tree``, ``check-session``, ``get-or-empty``) and the ``Node``,
  ``Service``, ``Check`` and ``Session`` ops are 400 naming the op's index: raftreg's
  transaction cannot express them.
- Success: 200 ``{"Results": [{"KV": entry}], "Errors": null}``; as Consul, ``set``/``cas``/
  ``check-index`` give the entry without its value, ``get`` with it, deletes and
  ``check-not-exists`` nothing. A condition that does not hold: 409 ``{"Results": null,
  "Errors": [{"OpIndex", "What"}]}`` and nothing was applied. A transaction of reads only whose
  ``get`` finds no key is 409 too (``key "k" doesn't exist``); in a transaction with writes such a
  ``get`` gives no result instead (the writes were applied).
- A transaction whose outcome is unknown (it timed out) is 504 ``outcome unknown``, never 409,
  and is not retried. Permissions are those of each op (``key:read`` for reads, ``key:write``
  for writes), checked when the command is written: a denial is 403 for the whole transaction.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import msgspec
from aiohttp import web

from raftreg.consul.kv import entry_view
from raftreg.consul.routes import ConsulRoutes
from raftreg.consul.wire import ConsulError, bad_request, check_scope, json_response
from raftreg.errors import Conflict, PayloadTooLarge
from raftreg.http.kv_validation import MAX_INDEX, check_key
from raftreg.http.permissions import BY_COMMAND
from raftreg.http.wire import MAX_BODY, read_raw_body
from raftreg.models import MAX_FLAGS, MAX_KV_VALUE_BYTES, MAX_TXN_OPS, KVEntry, TxnOp, TxnVerb

# Consul verb -> raftreg verb (check-not-exists is check_index at 0: "absent").
VERBS: dict[str, TxnVerb] = {"set": "set", "cas": "cas", "get": "get", "delete": "delete",
                             "delete-cas": "delete_cas", "check-index": "check_index",
                             "check-not-exists": "check_index"}
UNSUPPORTED_VERBS = ("lock", "unlock", "get-tree", "delete-tree", "check-session", "get-or-empty")
KV_FIELDS = frozenset({"verb", "key", "value", "flags", "index", "session", "namespace", "partition"})
OTHER_OPS = {"node": "Node", "service": "Service", "check": "Check", "session": "Session"}
_FAILED_OP = re.compile(r"^ops\[(\d+)\]$")


def _lower_keys(obj: Any, where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``obj``'s fields by lower-cased name, and each lower-cased name's spelling as sent."""
    if not isinstance(obj, dict):
        raise bad_request(where, "must be a JSON object")
    out: dict[str, Any] = {}
    sent: dict[str, str] = {}
    for key, value in obj.items():
        if key.lower() in out:
            raise bad_request(f"{where}.{key}", "given twice (field names match case-insensitively)")
        out[key.lower()] = value
        sent[key.lower()] = key
    return out, sent


def _uint(value: Any, field: str, maximum: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise bad_request(field, f"must be an integer from 0 to {maximum}")
    return value


def _value(raw: Any, field: str) -> bytes:
    if raw is None:
        return b""
    if not isinstance(raw, str):
        raise bad_request(field, "must be a base64 string")
    try:
        value = base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise bad_request(field, "must be valid base64") from None
    if len(value) > MAX_KV_VALUE_BYTES:
        raise PayloadTooLarge(f"Value for key is too large ({len(value)} > {MAX_KV_VALUE_BYTES} bytes)", field=field)
    return value


def parse_op(raw: Any, i: int) -> tuple[str, TxnOp]:
    """Op ``i`` of the body: its Consul verb and the raftreg op (400 naming ``[i]`` otherwise)."""
    where = f"[{i}]"
    op, sent = _lower_keys(raw, where)
    other = [OTHER_OPS[k] for k in op if k in OTHER_OPS]
    if other:
        raise bad_request(f"{where}.{other[0]}", f"{other[0]} operations are not supported by raftreg's "
                          "transactions (only KV)")
    if set(op) != {"kv"}:
        extra = sorted(sent[k] for k in set(op) - {"kv"})
        raise bad_request(f"{where}.{extra[0]}" if extra else where, "each op must be {\"KV\": {...}}")
    where += ".KV"
    kv, sent = _lower_keys(op["kv"], where)
    unknown = sorted(sent[k] for k in set(kv) - KV_FIELDS)
    if unknown:
        raise bad_request(f"{where}.{unknown[0]}", "unknown field")
    for scope in ("namespace", "partition"):
        if kv.get(scope) not in (None, "", "default"):
            raise bad_request(f"{where}.{scope.capitalize()}", "only 'default' (a Consul Enterprise feature)")
    verb = kv.get("verb")
    if verb in UNSUPPORTED_VERBS:
        raise bad_request(f"{where}.Verb", f"{verb!r} is not supported by raftreg's transactions "
                          f"(supported: {', '.join(VERBS)})")
    if not isinstance(verb, str) or verb not in VERBS:
        raise bad_request(f"{where}.Verb", f"unknown KV verb {verb!r} (supported: {', '.join(VERBS)})")
    key = kv.get("key")
    if not isinstance(key, str):
        raise bad_request(f"{where}.Key", "must be a string")
    check_key(key, f"{where}.Key")
    if kv.get("session") not in (None, ""):
        raise bad_request(f"{where}.Session", f"not used by {verb!r} (lock and unlock are not supported)")
    value = _value(kv.get("value"), f"{where}.Value")
    flags = _uint(kv.get("flags"), f"{where}.Flags", MAX_FLAGS)
    index = _uint(kv.get("index"), f"{where}.Index", MAX_INDEX)
    if verb in ("cas", "delete-cas", "check-index") and "index" not in kv:
        raise bad_request(f"{where}.Index", f"{verb!r} needs an Index")
    if verb in ("delete-cas", "check-index") and index == 0:
        raise bad_request(f"{where}.Index", f"{verb!r} needs an Index above 0 (use check-not-exists for an "
                          "absent key)")
    if verb == "check-not-exists":
        index = 0
    return verb, TxnOp(VERBS[verb], key, value, flags, index)


def parse_txn_body(body: bytes) -> list[tuple[str, TxnOp]]:
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ConsulError(400, f"Failed to parse body: {exc}") from None
    if not isinstance(doc, list):
        raise ConsulError(400, "Failed to parse body: the body must be a JSON array of operations")
    if len(doc) > MAX_TXN_OPS:
        raise ConsulError(413, f"Transaction contains too many operations ({len(doc)} > {MAX_TXN_OPS})")
    return [parse_op(raw, i) for i, raw in enumerate(doc)]


def _result(verb: str, result: KVEntry | int | None) -> dict[str, Any] | None:
    if not isinstance(result, KVEntry) or verb in ("delete", "delete-cas", "check-not-exists"):
        return None
    return {"KV": entry_view(result, with_value=verb == "get")}


class TxnApi:
    def __init__(self, routes: ConsulRoutes) -> None:
        self.node = routes.node

    async def txn(self, request: web.Request) -> web.Response:
        check_scope(request.query, self.node.config.datacenter)
        self.node.check_write_capacity()
        ops = parse_txn_body(await read_raw_body(request, MAX_BODY))
        if not ops:
            return json_response({"Results": [], "Errors": None})
        try:
            _, results = await self.node.kv_txn([op for _, op in ops])
        except Conflict as err:
            match = _FAILED_OP.match(err.field or "")
            op_index = int(match.group(1)) if match else 0
            what = err.message.partition(": ")[2] or err.message
            return json_response({"Results": None, "Errors": [{"OpIndex": op_index, "What": what}]}, status=409)
        if all(op.op in ("get", "check_index") for _, op in ops):
            for i, ((verb, op), result) in enumerate(zip(ops, results, strict=True)):
                if verb == "get" and result is None:
                    return json_response({"Results": None, "Errors": [
                        {"OpIndex": i, "What": f"key {op.key!r} doesn't exist"}]}, status=409)
        out = [r for r in (_result(verb, res) for (verb, _), res in zip(ops, results, strict=True)) if r is not None]
        return json_response({"Results": out, "Errors": None})


def add_txn_routes(routes: ConsulRoutes) -> None:
    """Each op's permission is checked when the command is written (``raftreg.node.writes``)."""
    routes.add("PUT", "/v1/txn", TxnApi(routes).txn, BY_COMMAND)
