"""JSON bodies with a repeated object key are refused (research §4.2 row 3).

msgspec, like most parsers, lets the last of two equal keys win; a proxy or client library that
keeps the first would then see a different request than raftreg applies (a parser differential).
``check_unique_keys`` is run on a body msgspec has already accepted, so it only ever sees valid
JSON of at most ``MAX_BODY`` bytes; it raises ``InvalidArgument`` naming the repeated key.
"""

from __future__ import annotations

import json
from typing import Any

from raftreg.errors import InvalidArgument


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidArgument(f"the key {key!r} appears twice in one JSON object",
                                  field=key if key.isidentifier() else None)
        out[key] = value
    return out


# One decoder for every call: ``json.loads(..., object_pairs_hook=...)`` builds a decoder and its
# scanner each time, which cost more than the parse of a 300-byte body.
_decoder = json.JSONDecoder(object_pairs_hook=_unique)


def check_unique_keys(body: bytes) -> None:
    """``InvalidArgument`` if some object in the JSON document ``body`` repeats a key."""
    if body.count(b'"') < 4:  # fewer than two strings: no object can repeat a key
        return
    try:
        _decoder.decode(body.decode("utf-8"))  # msgspec accepted it: JSON is UTF-8
    except RecursionError:
        raise InvalidArgument("JSON nested too deeply") from None
    except ValueError:  # not the stdlib's JSON (msgspec accepted it): nothing to add
        return
