"""The CLI's help and usability: every command's ``--help`` ends with an example, a mistyped
option or command names the closest one, shell completion, ``--version``."""

from __future__ import annotations

import shlex
import sys

import click
import pytest
from click.testing import CliRunner

from raftreg import __version__
from raftreg.cli.examples import EXAMPLES, walk
from raftreg.cli.main import cli, main

COMMANDS = [path for path, _ in walk(cli)]


def test_every_command_has_an_example_and_every_example_a_command() -> None:
    assert sorted(set(COMMANDS) - set(EXAMPLES)) == [], "add an example line to raftreg/cli/examples.py"
    assert sorted(set(EXAMPLES) - set(COMMANDS)) == []


@pytest.mark.parametrize("path", COMMANDS)
def test_help_ends_with_the_example_line(path: str) -> None:
    result = CliRunner().invoke(cli, [*path.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert [line.strip() for line in result.output.rstrip().splitlines()[-2:]] == ["Example:", EXAMPLES[path]]


def options_of(command: click.Command) -> dict[str, bool]:
    """Every option name of ``command`` -> whether it takes a value."""
    return {opt: not (isinstance(p, click.Option) and (p.is_flag or p.count))
            for p in command.params if isinstance(p, click.Option) for opt in p.opts}


def test_examples_use_real_commands_and_options() -> None:
    """Each example names existing commands, and every option it shows belongs to the command
    (or group) it is given to."""
    for path in COMMANDS:
        words = shlex.split(EXAMPLES[path].split(" > ")[0].replace("$(hostname)", "host"))
        if words[0] == "eval":
            continue
        assert words.pop(0) == "raftreg", path
        command: click.Command = cli
        while words:
            word = words.pop(0)
            if word == "--":
                break
            if word.startswith("-"):
                takes_value = options_of(command).get(word)
                assert takes_value is not None, (path, word)
                if takes_value:
                    words.pop(0)
            elif isinstance(command, click.Group):
                sub = command.commands.get(word)
                assert sub is not None, (path, word)
                command = sub


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["raftreg", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    code = exited.value.code
    return code if isinstance(code, int) else 0, capsys.readouterr().err


@pytest.mark.parametrize(("args", "closest"), [
    (["lookup", "web", "--pasing"], "No such option '--pasing'. Did you mean '--passing'?"),
    (["--adr", "x", "status"], "No such option '--adr'. Did you mean '--addr'?"),
    (["dev", "--node", "3"], "No such option '--node'. Did you mean '--nodes'?"),
    (["lookpu", "web"], "No such command 'lookpu'. Did you mean 'lookup'?"),
    (["kv", "gte", "k"], "No such command 'gte'. Did you mean 'get'?"),
    (["config", "chek", "x.toml"], "No such command 'chek'. Did you mean 'check'?"),
])
def test_a_mistyped_name_suggests_the_closest_one(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], args: list[str],
                                                  closest: str) -> None:
    assert run_main(monkeypatch, capsys, *args) == (2, f"error: {closest}\n")


def test_nothing_close_suggests_nothing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(monkeypatch, capsys, "lookup", "web", "--zzzzzz") == (2, "error: No such option '--zzzzzz'.\n")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_shell_script(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    assert "_RAFTREG_COMPLETE" in result.output and f"{shell}_complete" in result.output


def test_completion_completes_commands_and_options() -> None:
    def complete(words: str) -> list[str]:
        env = {"_RAFTREG_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        result = CliRunner().invoke(cli, [], env=env, prog_name="raftreg", standalone_mode=True)
        return [line.split(",", 1)[1] for line in result.output.splitlines()]

    assert complete("raftreg loo") == ["lookup"]
    assert complete("raftreg config c") == ["check"]
    assert "--port-base" in complete("raftreg dev --p")


def test_version_names_raftreg_and_the_pinned_pysyncobj(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["raftreg", "--version"])
    main()  # click's version option exits through click.exceptions.Exit, which main returns from
    assert capsys.readouterr().out == f"raftreg {__version__} (pysyncobj 0.3.17, pinned ==0.3.17)\n"


def test_examples_are_click_epilogs_kept_as_written() -> None:
    command = cli.commands["register"]
    assert isinstance(command, click.Command) and command.epilog is not None
    assert command.epilog.startswith("\b\nExample:")
