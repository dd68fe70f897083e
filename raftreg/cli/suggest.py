"""The one closest name for a mistyped option or command.

click attaches up to three close names to ``NoSuchOption``/``NoSuchCommand``, compared with the
dashes included (so ``--pasing`` is "close" to ``--tag`` too). ``usage_message`` ranks them again
on the bare names and keeps the closest one only: ``No such option '--pasing'. Did you mean
'--passing'?``.
"""

from __future__ import annotations

import difflib

import click


def usage_message(exc: click.UsageError) -> str:
    """The error's message, naming the closest option or command when click found candidates."""
    name = getattr(exc, "option_name", None) or getattr(exc, "command_name", None)
    possibilities = getattr(exc, "possibilities", None)
    if not isinstance(name, str) or not possibilities:
        return exc.format_message()
    bare = {str(p).lstrip("-"): str(p) for p in possibilities}
    best = difflib.get_close_matches(name.lstrip("-"), list(bare), n=1, cutoff=0.5)
    if not best:
        return exc.message
    return f"{exc.message} Did you mean {bare[best[0]]!r}?"
