"""Validation of the key/value and session API's input (``/v1/kv/{key}``, ``/v1/txn``,
``/v1/sessions``). Every failure is an ``InvalidArgument`` (400) or ``PayloadTooLarge`` (413)
naming the field; nothing here touches the cluster, so a request that fails validation changes
nothing.

Key rules (API.md "Names and limits", plus two decisions of ours):
- 1-512 bytes of UTF-8, no NUL, no leading ``/``, no ``..`` segment;
- no empty segment except a trailing ``/`` (``a//b`` is refused; ``app/`` is a key or prefix);
- NFC only: a key in another Unicode normalization form is refused rather than silently
  stored as a second key that looks the same;
- the key is the URL path after ``/v1/kv/``, percent-decoded once, as UTF-8 (invalid UTF-8 is
  refused). A prefix (``?recurse``, ``?keys``) follows the same rules but may be empty.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import unquote_to_bytes

import msgspec

from raftreg.errors import InvalidArgument, PayloadTooLarge
from raftreg.http.strict_json import check_unique_keys
from raftreg.http.validation import MAX_TTL, MIN_TTL, Duration, T, duration_field
from raftreg.models import (
    MAX_FLAGS,
    MAX_KV_KEY_BYTES,
    MAX_KV_VALUE_BYTES,
    MAX_TXN_OPS,
    InstanceId,
    ServiceName,
    Session,
    SessionBehavior,
    SessionInstance,
    TxnOp,
    TxnVerb,
)

KV_PATH = "/v1/kv/"
MAX_INDEX = 2**63 - 1
MAX_SEPARATOR = 64
CONDITIONAL_OPS = frozenset({"cas", "delete_cas", "check_index"})


def key_from_path(raw_path: str) -> str:
    """The key in a ``/v1/kv/{key}`` request's raw (still percent-encoded) path."""
    encoded = raw_path.partition("?")[0][len(KV_PATH):]
    try:
        return unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("key must be valid UTF-8 (percent-encoded in the URL)", field="key") from None


def check_key(key: str, field: str = "key", *, prefix: bool = False) -> str:
    """``key`` if it follows the key rules (module docstring); a ``prefix`` may be empty."""
    if not key:
        if prefix:
            return key
        raise InvalidArgument("key must not be empty", field=field)
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument("key must be valid UTF-8", field=field) from None
    if size > MAX_KV_KEY_BYTES:
        raise InvalidArgument(f"key must be at most {MAX_KV_KEY_BYTES} bytes of UTF-8, got {size}", field=field)
    if "\x00" in key:
        raise InvalidArgument("key must not contain NUL", field=field)
    if key.startswith("/"):
        raise InvalidArgument("key must not start with '/'", field=field)
    segments = key.split("/")
    if ".." in segments:
        raise InvalidArgument("key must not contain a '..' segment", field=field)
    if "" in segments[:-1]:
        raise InvalidArgument("key must not contain an empty segment ('//')", field=field)
    if not unicodedata.is_normalized("NFC", key):
        raise InvalidArgument("key must be in Unicode normalization form NFC", field=field)
    return key


def parse_uint(value: str | None, field: str, maximum: int) -> int | None:
    """An optional non-negative integer query parameter, at most ``maximum``."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 20 or int(value) > maximum:
        raise InvalidArgument(f"{field} must be an integer from 0 to {maximum}", field=field)
    return int(value)


def parse_flags(query: Mapping[str, str]) -> int:
    return parse_uint(query.get("flags"), "flags", MAX_FLAGS) or 0


def parse_cas(query: Mapping[str, str]) -> int | None:
    return parse_uint(query.get("cas"), "cas", MAX_INDEX)


SESSION_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
MAX_LOCK_DELAY = 60.0
MAX_SESSION_NAME = 128
MAX_SESSION_INSTANCES = 64


def check_session_id(value: str, field: str = "id") -> str:
    if not SESSION_ID_RE.match(value):
        raise InvalidArgument("a session id is a lowercase UUID", field=field)
    return value


def parse_lock(query: Mapping[str, str]) -> tuple[Literal["", "acquire", "release"], str]:
    """``?acquire=SESSION`` or ``?release=SESSION`` (not both): the lock verb and the session."""
    if "acquire" in query and "release" in query:
        raise InvalidArgument("use ?acquire or ?release, not both", field="release")
    if "acquire" in query:
        return "acquire", check_session_id(query["acquire"], "acquire")
    if "release" in query:
        return "release", check_session_id(query["release"], "release")
    return "", ""


def check_value_size(size: int, field: str = "value") -> None:
    if size > MAX_KV_VALUE_BYTES:
        raise PayloadTooLarge(f"value must be at most {MAX_KV_VALUE_BYTES} bytes, got {size}", field=field)


def check_separator(separator: str) -> str:
    if not 1 <= len(separator) <= MAX_SEPARATOR or "\x00" in separator:
        raise InvalidArgument(f"separator must be 1-{MAX_SEPARATOR} characters, no NUL", field="separator")
    return separator


class _TxnOpBody(msgspec.Struct, forbid_unknown_fields=True):
    op: TxnVerb
    key: str
    value: bytes = b""  # base64 in JSON
    flags: Annotated[int, msgspec.Meta(ge=0)] = 0  # at most MAX_FLAGS: checked by hand (uint64)
    index: Annotated[int, msgspec.Meta(ge=0, le=MAX_INDEX)] | None = None


class _TxnBody(msgspec.Struct, forbid_unknown_fields=True):
    ops: Annotated[list[_TxnOpBody], msgspec.Meta(min_length=1, max_length=MAX_TXN_OPS)]


_txn_decoder = msgspec.json.Decoder(_TxnBody)
_AT = re.compile(r"at `\$\.?([^`]*)`")
_NAMED = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")


def _decode(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode ``body``; errors name the field by its path (``ops[3].key``, ``instances[0].id``)."""
    try:
        result = decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at, named = _AT.search(text), _NAMED.search(text)
        path = at.group(1) if at else ""
        if named:
            path = f"{path}.{named.group(1)}" if path else named.group(1)
        raise InvalidArgument(text, field=path or None) from None
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"malformed JSON: {exc}") from None
    check_unique_keys(body)
    return result


def parse_txn(body: bytes) -> list[TxnOp]:
    """``PUT /v1/txn`` ``{"ops": [{"op", "key", "value" (base64), "flags", "index"}, ...]}``:
    1-64 ops; ``index`` is required by cas, delete_cas and check_index."""
    req = _decode(body, _txn_decoder)
    ops = []
    for i, op in enumerate(req.ops):
        check_key(op.key, f"ops[{i}].key")
        check_value_size(len(op.value), f"ops[{i}].value")
        if op.flags > MAX_FLAGS:
            raise InvalidArgument(f"flags must be an integer from 0 to {MAX_FLAGS}", field=f"ops[{i}].flags")
        if op.op in CONDITIONAL_OPS and op.index is None:
            raise InvalidArgument(f"ops[{i}]: {op.op} needs an index (0: the key must be absent)",
                                  field=f"ops[{i}].index")
        ops.append(TxnOp(op.op, op.key, op.value, op.flags, op.index or 0))
    return ops


class _TieBody(msgspec.Struct, forbid_unknown_fields=True):
    service: ServiceName
    id: InstanceId


class _SessionBody(msgspec.Struct, forbid_unknown_fields=True):
    ttl: Duration = 15.0
    name: Annotated[str, msgspec.Meta(max_length=MAX_SESSION_NAME)] = ""
    behavior: SessionBehavior = "release"
    lock_delay: Duration = 15.0
    instances: Annotated[list[_TieBody], msgspec.Meta(max_length=MAX_SESSION_INSTANCES)] = []


_session_decoder = msgspec.json.Decoder(_SessionBody)


def parse_session(body: bytes) -> Session:
    """``PUT /v1/sessions`` ``{"ttl", "name", "behavior", "lock_delay", "instances": [{"service",
    "id"}]}``: ttl 1s-24h (default 15s), lock_delay 0-60s (default 15s), at most 64 instances.
    The id is left empty (the node chooses it)."""
    req = _decode(body, _session_decoder)
    ttl = duration_field(req.ttl, "ttl", low=MIN_TTL, high=MAX_TTL)  # as an instance's ttl
    delay = duration_field(req.lock_delay, "lock_delay", low=0.0, high=MAX_LOCK_DELAY)
    ties = tuple(dict.fromkeys(SessionInstance(t.service, t.id) for t in req.instances))
    return Session(id="", name=req.name, ttl=ttl, behavior=req.behavior, lock_delay=delay, instances=ties)
