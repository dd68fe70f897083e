"""Logging for a node process: one line per event, secrets redacted.

Contract:
- ``setup_logging(level, fmt, secrets)`` configures the root logger once for the process: one
  handler on stderr whose ``Redactor`` filter sees every record of every logger (a filter on the
  handler, not on a logger, so records propagated from ``raftreg.*``, ``aiohttp.*``,
  ``pysyncobj`` ... are all covered).
- ``text`` (the default): ``<time> <LEVEL> <logger> <message>``, the message being
  ``event=<name> key=value ...`` as the modules write it.
- ``json``: one JSON object per line with ``time`` (ISO 8601, UTC), ``level``, ``logger``,
  ``event`` and every ``key=value`` field of the message as a key of its own (numbers decoded,
  quotes removed); text that is not a field is kept in ``msg``; a traceback in ``exc``. A field
  never overwrites ``time``, ``level``, ``logger`` or ``msg``.
- Redaction (``Redactor``), applied to the message, its arguments and any traceback before a
  record is formatted: the value after ``Bearer``, after an ``X-Raftreg-Token`` or
  ``X-Consul-Token`` header name, of a ``token=`` / ``secret_id=`` / ``secret=`` field or query
  parameter (and the JSON forms ``"token": "..."``, ``"secret_id": "..."``), and any literal
  secret given (the cluster secret) become ``[REDACTED]``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import IO, Any, Literal

LogFormat = Literal["text", "json"]
REDACTED = "[REDACTED]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_NAMED_VALUE = r"(?:bearer|x-raftreg-token|x-consul-token|token|secret_id|secret|secretid|x-raftreg-signature)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer <v>
    (re.compile(r"(?i)(\bbearer\s+)[^\s,;\"'&]+"), r"\1" + REDACTED),
    # X-Raftreg-Token: <v>, 'X-Consul-Token': '<v>', "token": "<v>", token=<v>, secret_id=<v> ...
    (re.compile(r"(?i)(\b" + _NAMED_VALUE + r"[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])[^\s,;\"'&]+"),
     r"\1" + REDACTED),
)
_FIELD = re.compile(r"""(?<![\w.-])([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s]*)""")
_RESERVED = frozenset({"time", "level", "logger", "msg", "exc"})


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret-looking value replaced by ``[REDACTED]`` (module docstring)."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class Redactor(logging.Filter):
    """Rewrites each record in place so no formatter, handler or later filter sees a secret.

    ``secrets``: literal strings always masked (at least 8 characters, so that a short test
    value cannot blank out ordinary words)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if len(s) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what we can, redacted
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        record.exc_info = None  # the redacted exc_text stands for it
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def _decode_value(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    if raw.endswith(":"):  # "event=name: free text"
        raw = raw[:-1]
    if re.fullmatch(r"-?\d{1,18}", raw):
        return int(raw)
    if re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", raw):
        return float(raw)
    return raw


def parse_fields(message: str) -> tuple[dict[str, Any], str]:
    """The ``key=value`` fields of a message, and the text left once they are removed."""
    fields: dict[str, Any] = {}
    for match in _FIELD.finditer(message):
        fields.setdefault(match.group(1), _decode_value(match.group(2)))
    rest = " ".join(_FIELD.sub(" ", message).split()).lstrip(":").strip()
    return fields, rest


class JsonFormatter(logging.Formatter):
    """One JSON object per line (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields, rest = parse_fields(message)
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "event": fields.pop("event", "message"),
        }
        for key, value in fields.items():
            if key not in _RESERVED:
                out[key] = value
        if rest:
            out["msg"] = rest
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO", fmt: LogFormat = "text", secrets: Iterable[str] = (),
                  stream: IO[str] | None = None) -> logging.Handler:
    """Configure the process's root logger (module docstring): its one handler writes to
    ``stream`` (stderr by default); returns that handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(Redactor(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
