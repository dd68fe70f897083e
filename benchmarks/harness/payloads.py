"""What the benchmarks send and read: registration bodies, instance key paths, and a decoder that
counts the instances of a lookup answer without decoding them."""

from __future__ import annotations

import json
from typing import Any

import msgspec

JSON_HEADERS = {"Content-Type": "application/json"}


def instance_body(i: int, size: int = 300) -> bytes:
    """A registration body of about ``size`` bytes: address, port, tags, meta padded to size."""
    doc: dict[str, Any] = {
        "address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
        "port": 20000 + i % 20000,
        "tags": ["v1", "http", "zone-a"],
        "meta": {"version": "1.4.2", "zone": "local-a", "owner": "bench", "pad": ""},
    }
    raw = json.dumps(doc, separators=(",", ":"))
    doc["meta"]["pad"] = "x" * max(0, size - len(raw))
    return json.dumps(doc, separators=(",", ":")).encode()


def key_path(prefix: str, services: int, i: int) -> str:
    """URL path of the i-th instance of a key space: ``services`` services named prefix-NNN."""
    return f"/v1/services/{prefix}-{i % services:03d}/instances/i{i:07d}"


class ServiceAnswer(msgspec.Struct):
    """Just enough of ``GET /v1/services/{svc}`` to count the instances (each left undecoded)."""

    instances: list[msgspec.Raw] = []


answer_decoder = msgspec.json.Decoder(ServiceAnswer)


def count_answer(body: bytes) -> int:
    """The number of instances listed by a ``GET /v1/services/{svc}`` answer body."""
    return len(answer_decoder.decode(body).instances)
