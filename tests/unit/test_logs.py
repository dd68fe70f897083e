"""``raftreg.logs``: the redaction rule, the JSON lines and the handler that covers every logger."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftreg.config import ConfigError, load_config
from raftreg.logs import REDACTED, JsonFormatter, Redactor, parse_fields, redact, setup_logging

SECRET = "9f0c2b7e-1d4a-4c55-8e2f-0a1b2c3d4e5f"


@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {SECRET}",
    f"authorization=bearer {SECRET}",
    f"headers={{'X-Raftreg-Token': '{SECRET}', 'Accept': '*/*'}}",
    f"X-Consul-Token: {SECRET}",
    f"GET /v1/catalog/services?index=3&token={SECRET}&wait=5s",
    f'{{"accessor_id": "abc", "secret_id": "{SECRET}"}}',
    f"event=bootstrap secret_id={SECRET}",
    f"secret={SECRET}",
])
def test_secret_looking_values_are_masked(text: str) -> None:
    out = redact(text)
    assert SECRET not in out
    assert REDACTED in out


def test_the_rest_of_the_line_is_kept() -> None:
    out = redact(f"event=request route=/v1/services query=\"index=3&token={SECRET}&wait=5s\" status=200")
    assert out == f"event=request route=/v1/services query=\"index=3&token={REDACTED}&wait=5s\" status=200"
    assert redact("event=token_created accessor=abc tokens=3") == "event=token_created accessor=abc tokens=3"


def test_a_literal_secret_is_masked_anywhere() -> None:
    assert redact(f"dump:{SECRET}:end", [SECRET]) == f"dump:{REDACTED}:end"


def _record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("raftreg.test", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_the_filter_masks_arguments_and_tracebacks() -> None:
    try:
        raise ValueError(f"bad header Authorization: Bearer {SECRET}")
    except ValueError as err:
        record = _record("event=failed token=%s", SECRET, exc=err)
    assert Redactor().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert SECRET not in text
    assert text.startswith(f"event=failed token={REDACTED}\n")
    assert f"ValueError: bad header Authorization: Bearer {REDACTED}" in text


def test_parse_fields() -> None:
    fields, rest = parse_fields("event=caught_up applied_index=12 lag=0.25 name='a b' ok=true: serving reads")
    assert fields == {"event": "caught_up", "applied_index": 12, "lag": 0.25, "name": "a b", "ok": "true"}
    assert rest == "serving reads"


def test_json_lines_carry_the_fields() -> None:
    record = logging.LogRecord("raftreg.node", logging.INFO, __file__, 1, "event=caught_up applied_index=%d: %s",
                               (12, "serving reads"), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "INFO" and line["logger"] == "raftreg.node" and line["event"] == "caught_up"
    assert line["applied_index"] == 12 and line["msg"] == "serving reads" and line["time"].endswith("Z")
    plain = json.loads(JsonFormatter().format(logging.LogRecord("pysyncobj", logging.WARNING, __file__, 1,
                                                                "Failed to store full dump", None, None)))
    assert plain["event"] == "message" and plain["msg"] == "Failed to store full dump"
    spoof = json.loads(JsonFormatter().format(logging.LogRecord("x", logging.INFO, __file__, 1,
                                                                "event=e level=DEBUG logger=y", None, None)))
    assert spoof["level"] == "INFO" and spoof["logger"] == "x"


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_logger_goes_through_the_redactor(fmt: str, root_handlers: None) -> None:
    stream = io.StringIO()
    cluster_secret = "cluster-secret-value-1234"
    setup_logging("INFO", "json" if fmt == "json" else "text", [cluster_secret], stream=stream)
    logging.getLogger("aiohttp.server").warning("peer sent X-Raftreg-Token: %s", SECRET)
    logging.getLogger("raftreg.deep.child").info("event=x secret_file=%s", cluster_secret)
    logging.getLogger("pysyncobj").info("password %s", cluster_secret)
    out = stream.getvalue()
    assert SECRET not in out and cluster_secret not in out
    assert out.count(REDACTED) == 3
    lines = out.splitlines()
    assert len(lines) == 3
    if fmt == "json":
        assert [json.loads(line)["logger"] for line in lines] == ["aiohttp.server", "raftreg.deep.child", "pysyncobj"]


def test_the_config_tables(tmp_path: Path) -> None:
    base = 'name = "c"\n[[nodes]]\nname = "n1"\nhttp = "127.0.0.1:1"\nraft = "127.0.0.1:2"\n'
    path = tmp_path / "c.toml"
    path.write_text(base)
    config = load_config(path)
    assert (config.logging.format, config.logging.requests, config.metrics.enabled) == ("text", False, True)
    path.write_text(base + '[logging]\nformat = "json"\nrequests = true\n[metrics]\nenabled = false\n')
    config = load_config(path)
    assert (config.logging.format, config.logging.requests, config.metrics.enabled) == ("json", True, False)
    path.write_text(base + '[logging]\nformat = "yaml"\n')
    with pytest.raises(ConfigError, match=r"logging\.format"):
        load_config(path)
