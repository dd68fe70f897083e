"""``raftreg --timeout``: the budget of one request to the cluster reaches the client, a command's
own budget stays its own, and a bad value is a usage error naming the option."""

from __future__ import annotations

from typing import Any

import pytest

from raftreg.cli import main as cli_main
from raftreg.cli.entry import run_command
from raftreg.cli.main import DEADLINE, Ctx, cli


def test_the_client_gets_the_timeout_unless_a_command_has_its_own_budget() -> None:
    ctx = Ctx(["127.0.0.1:9"], "table", deadline=1.5)
    with ctx.client() as client:
        assert client.deadline == 1.5
    with ctx.client(deadline=30.0) as client:
        assert client.deadline == 30.0
    with Ctx(["127.0.0.1:9"], "table").client() as client:
        assert client.deadline == DEADLINE


class _RecordingClient:
    """Stands in for ``RegistryClient``: records its budget and answers like a cluster with no services."""

    deadlines: list[float] = []

    def __init__(self, addrs: list[str], **kwargs: Any) -> None:
        self.deadlines.append(kwargs["deadline"])

    def __enter__(self) -> _RecordingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def services(self, **kwargs: Any) -> Any:
        raise SystemExit(0)  # the budget is recorded; what the command does next is not this test's


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["--timeout", "250ms"], {}, 0.25),
    (["--timeout", "2"], {}, 2.0),
    ([], {"RAFTREG_TIMEOUT": "1m"}, 60.0),
    ([], {}, DEADLINE),
], ids=["go-duration", "seconds", "environment", "default"])
def test_timeout_option_reaches_the_client(monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str],
                                           expected: float) -> None:
    monkeypatch.delenv("RAFTREG_TIMEOUT", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cli_main, "RegistryClient", _RecordingClient)
    _RecordingClient.deadlines = []
    with pytest.raises(SystemExit) as exited:
        run_command(cli, ["--addr", "127.0.0.1:9", *args, "services"], "raftreg")
    assert exited.value.code == 0
    assert _RecordingClient.deadlines == [expected]


@pytest.mark.parametrize("value", ["0", "0s", "-1s", "abc", "5 parsecs"])
def test_a_bad_timeout_is_a_usage_error_naming_the_option(capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as exited:
        run_command(cli, ["--addr", "127.0.0.1:9", "--timeout", value, "services"], "raftreg")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--timeout" in err and len(err.strip().splitlines()) == 1, err
