"""Hypothesis strategies for values valid by a JSON Schema: the subset that
``msgspec.json.schema_components`` produces (``$ref`` into the root, ``anyOf``, ``enum``,
``const``, objects with ``properties``/``required``/``additionalProperties``/``propertyNames``,
arrays, strings with ``pattern``/lengths/``contentEncoding: base64``, bounded numbers, booleans,
null). An unknown keyword fails loudly, so a schema the strategies cannot honour is noticed.

Strings without a pattern are drawn partly from ``WORDS`` (durations, addresses, URLs,
host:port): a schema says "string", the server wants one of those, and random text alone would
almost never get a request past validation.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

WORDS = ["10s", "500ms", "2m", "24h", "1", "0", "10.0.0.7", "::1", "host-1.example", "http://127.0.0.1:9/health",
         "127.0.0.1:9", "v1", "zone", "a/b"]
_KNOWN = {"type", "properties", "required", "additionalProperties", "propertyNames", "items", "minItems",
          "maxItems", "maxProperties", "minLength", "maxLength", "pattern", "minimum", "maximum", "enum", "const",
          "anyOf", "$ref", "title", "description", "default", "contentEncoding", "format"}


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]


def _string(schema: dict[str, Any]) -> SearchStrategy[str]:
    if schema.get("contentEncoding") == "base64":
        return st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode())
    low, high = schema.get("minLength", 0), min(schema.get("maxLength", 24), 24)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: low <= len(s) <= schema.get(
            "maxLength", 10**9))
    words = [w for w in WORDS if low <= len(w) <= high]
    text = st.text(min_size=low, max_size=max(low, high))
    return st.one_of(st.sampled_from(words), text) if words else text


def valid(root: dict[str, Any], schema: dict[str, Any]) -> SearchStrategy[Any]:
    """Values valid by ``schema``; ``$ref``s resolve against ``root``."""
    unknown = set(schema) - _KNOWN
    assert not unknown, f"schema keywords the fuzzer does not know: {unknown}"
    if "$ref" in schema:
        return st.deferred(lambda: valid(root, _resolve(root, schema["$ref"])))
    if "anyOf" in schema:
        return st.one_of([valid(root, s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = {k: valid(root, props[k]) for k in schema.get("required", [])}
        optional = {k: valid(root, s) for k, s in props.items() if k not in required}
        if props:
            return st.fixed_dictionaries(required, optional=optional)
        keys = _string({"type": "string", **schema.get("propertyNames", {})})
        extra = schema.get("additionalProperties", {})
        values = valid(root, extra) if isinstance(extra, dict) else st.just(None)
        return st.dictionaries(keys, values, max_size=min(schema.get("maxProperties", 3), 3))
    if kind == "array":
        low = schema.get("minItems", 0)
        return st.lists(valid(root, schema.get("items", {"type": "string"})), min_size=low,
                        max_size=max(low, min(schema.get("maxItems", 3), 3)))
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "number":
        return st.one_of(st.integers(0, 100000), st.floats(schema.get("minimum", -1e6), schema.get("maximum", 1e6)))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    raise AssertionError(f"a schema the fuzzer cannot draw from: {schema}")
