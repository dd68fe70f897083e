"""``raftreg completion bash|zsh|fish``: print click's completion script for the shell.

The script calls ``raftreg`` back with ``$_RAFTREG_COMPLETE`` set (click's shell completion), so
completions always match the installed version.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

COMPLETE_VAR = "_RAFTREG_COMPLETE"


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script: add `eval "$(raftreg completion bash)"` to ~/.bashrc
    (zsh: ~/.zshrc with zsh; fish: `raftreg completion fish | source`)."""
    complete_class = get_completion_class(shell)
    if complete_class is None:  # not reachable: the choice lists only click's shells
        raise click.UsageError(f"no completion for {shell}")
    root = ctx.find_root().command
    click.echo(complete_class(root, {}, "raftreg", COMPLETE_VAR).source())
