"""``raftreg lock`` and ``raftreg elect``: the lock and election recipes from the command line.

    raftreg lock nightly-backup --ttl 10s --timeout 30s -- ./backup.sh --full
    raftreg elect scheduler --identity "$(hostname)"          # -o json: one JSON line per event

``lock`` (as ``consul lock``): waits for the lock ``locks/NAME`` (``LockTimeout``: exit 1), runs the
command with ``RAFTREG_LOCK_FENCE`` (the fence: the key's lock index, larger for every new holder)
in its environment, and releases the lock when it exits. SIGINT and SIGTERM are passed on to the
command. If the lock is lost (the session expired or was destroyed), the command gets SIGTERM,
then SIGKILL after ``--grace``. The exit code is the command's (128 + N when killed by signal N).
Status lines go to stderr; stdout is the command's.

``elect``: campaigns for ``election/NAME`` with ``--identity`` as the value and prints a line each
time it becomes leader (``elected``) or stops being leader (``lost``: its session is gone; it then
campaigns again), until Ctrl-C or SIGTERM, when it resigns (``resigned``) and exits 0. Text lines
by default; ``-o json``: ``{"event", "name", "identity", "fence"}`` per line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from raftreg.durations import parse_duration

if TYPE_CHECKING:
    from raftreg.cli.main import Ctx

FENCE_ENV = "RAFTREG_LOCK_FENCE"


def _seconds(text: str, hint: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _status(ctx: Ctx, event: str, text: str, **fields: Any) -> None:
    """One status line on stderr (``lock``) : text, or a JSON object with ``-o json``."""
    if ctx.output == "json":
        click.echo(json.dumps({"event": event, **fields}, sort_keys=True, separators=(",", ":")), err=True)
    else:
        click.echo(text, err=True)


def _stop_child(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()


@click.command("lock", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--ttl", default="15s", show_default=True, help="Session ttl (renewed every ttl/3).")
@click.option("--lock-delay", default="15s", show_default=True,
              help="After a holder's session dies, nobody gets the lock for this long.")
@click.option("--timeout", default=None, help="Give up waiting after this long (exit 1). Default: wait forever.")
@click.option("--prefix", default="locks/", show_default=True, help="Key prefix of the lock.")
@click.option("--grace", default="5s", show_default=True, help="Between SIGTERM and SIGKILL when the lock is lost.")
@click.pass_obj
def lock(ctx: Ctx, name: str, command: tuple[str, ...], ttl: str, lock_delay: str, timeout: str | None,
         prefix: str, grace: str) -> None:
    """Run COMMAND while holding the lock NAME (put ``--`` before the command)."""
    ttl_s, delay_s = _seconds(ttl, "--ttl"), _seconds(lock_delay, "--lock-delay")
    timeout_s = _seconds(timeout, "--timeout") if timeout is not None else None
    grace_s = _seconds(grace, "--grace")
    with ctx.client() as client:
        held = client.lock(name, ttl=ttl_s, timeout=timeout_s, lock_delay=delay_s, prefix=prefix)
        with held:
            assert held.fence is not None
            _status(ctx, "acquired", f"acquired {held.key} (fence {held.fence})", key=held.key, fence=held.fence)
            env = {**os.environ, FENCE_ENV: str(held.fence)}
            try:
                proc = subprocess.Popen(command, env=env)
            except OSError as exc:
                raise click.ClickException(f"cannot run {command[0]!r}: {exc}") from None

            def forward(signum: int, frame: FrameType | None) -> None:
                if proc.poll() is None:
                    proc.send_signal(signum)

            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, forward)

            def guard() -> None:
                held.lost.wait()
                if proc.poll() is None:
                    _status(ctx, "lost", f"lost {held.key}: stopping the command", key=held.key, fence=held.fence)
                    _stop_child(proc, grace_s)

            threading.Thread(target=guard, name="raftreg-lock-guard", daemon=True).start()
            code = proc.wait()
        _status(ctx, "released", f"released {prefix + name}", key=prefix + name)
    sys.exit(128 - code if code < 0 else code)


class _Stop(Exception):
    """SIGTERM asked ``elect`` to resign and exit."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


@click.command("elect")
@click.argument("name")
@click.option("--identity", required=True, help="This candidate's identity (the election key's value).")
@click.option("--ttl", default="15s", show_default=True, help="Session ttl (renewed every ttl/3).")
@click.option("--lock-delay", default="15s", show_default=True,
              help="After a leader's session dies, nobody is elected for this long.")
@click.option("--prefix", default="election/", show_default=True, help="Key prefix of the election.")
@click.pass_obj
def elect(ctx: Ctx, name: str, identity: str, ttl: str, lock_delay: str, prefix: str) -> None:
    """Campaign to lead NAME; print each change of this candidate's leadership until Ctrl-C."""
    ttl_s, delay_s = _seconds(ttl, "--ttl"), _seconds(lock_delay, "--lock-delay")

    def line(event: str, text: str, fence: int | None) -> None:
        if ctx.output == "json":
            record = {"event": event, "name": name, "identity": identity, "fence": fence}
            click.echo(json.dumps(record, sort_keys=True, separators=(",", ":")))
        else:
            click.echo(text)
        sys.stdout.flush()

    signal.signal(signal.SIGTERM, _on_sigterm)
    with ctx.client() as client:
        election = client.election(name, identity, ttl=ttl_s, lock_delay=delay_s, prefix=prefix)
        try:
            while True:
                fence = election.campaign()
                line("elected", f"leader of {name} as {identity} (fence {fence})", fence)
                election.lost.wait()
                line("lost", f"no longer leader of {name}: the session is gone", fence)
        except (KeyboardInterrupt, _Stop):
            last = election.fence
            election.resign()
            line("resigned", f"resigned from {name}", last)
