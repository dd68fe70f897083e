"""What ``raftreg --version`` prints: this package's version, and pysyncobj's (the one Raft
library raftreg depends on, pinned to one release in pyproject.toml because raftreg.raft.compat
patches its internals): the installed one and the pin, read from the package metadata (importing
raftreg.raft would load pysyncobj and run the guard for a version line)."""

from __future__ import annotations

import re
from importlib import metadata

from raftreg import __version__


def _installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def pysyncobj_pin() -> str:
    """The pysyncobj requirement raftreg was installed with (``==0.3.17``), or '?' if unknown."""
    try:
        requires = metadata.requires("raftreg") or []
    except metadata.PackageNotFoundError:
        return "?"
    for requirement in requires:
        match = re.match(r"pysyncobj\s*([=<>!~].*?)\s*(;|$)", requirement, re.IGNORECASE)
        if match:
            return match.group(1)
    return "?"


def version_message() -> str:
    """``raftreg 0.1.0 (pysyncobj 0.3.17, pinned ==0.3.17)``; no ``%`` placeholders (click formats it)."""
    return f"raftreg {__version__} (pysyncobj {_installed('pysyncobj')}, pinned {pysyncobj_pin()})"
