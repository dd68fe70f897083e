"""The ``raftreg`` console entry point, and the one place CLI errors become one line and an exit code.

``raftreg serve ...`` (the command every node process runs) loads only ``raftreg.cli.serve``: a
node does not carry the client SDK, the other commands or the test helpers, 5 MiB of each node's
memory (measured 2026-12-07). Everything else, ``raftreg serve --help`` included (it shows the
example line the full CLI adds), goes through the whole command tree in ``raftreg.cli.main``.
"""

from __future__ import annotations

import sys

import click

from raftreg.config import ConfigError
from raftreg.errors import RaftregError


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["serve"] and not {"--help", "-h"} & set(args):
        from raftreg.cli.serve import serve

        run_command(serve, args[1:], "raftreg serve")
    else:
        from raftreg.cli.main import cli

        run_command(cli, args, "raftreg")


def run_command(command: click.Command, args: list[str], prog_name: str) -> None:
    """Run ``command``: one clear line and a non-zero exit on errors, never a traceback."""
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        from raftreg.cli.suggest import usage_message

        click.echo(f"error: {usage_message(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RaftregError as err:
        where = f" (field {err.field})" if err.field else ""
        click.echo(f"error: {err.code}: {err.message}{where}", err=True)
        sys.exit(1)
    except ConfigError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except (ValueError, TimeoutError, OSError) as err:  # bad values, a cluster that never came up, ports
        click.echo(f"error: {err or type(err).__name__}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
