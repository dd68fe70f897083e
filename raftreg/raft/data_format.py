"""The data directory's format marker: which on-disk format a node's Raft files are written in.

A node writes ``<data_dir>/FORMAT`` (JSON: ``{"format": N, "written_by": "raftreg X.Y.Z"}``) the
first time it starts on a directory, and checks it at every start. ``DATA_FORMAT_VERSION`` covers
everything a node reads back from its data directory: the Raft log's command envelope
(``raftreg.state.commands.ENVELOPE_VERSION``), the snapshot encodings of the state machine and
pysyncobj's journal and dump files. It is bumped whenever a release writes something an older
release could not read (README "Versions and compatibility").

Contract of ``prepare_data_dir``:
- creates the directory (and parents) if missing;
- a directory without a marker gets one with the current version, also when it already holds
  Raft files (they were written by a release from before the marker, which used format 1);
- a marker with a NEWER version than this build's raises ``DataFormatError`` naming both
  versions and the release that wrote it; nothing in the directory is changed;
- a marker with an older version is accepted and rewritten with the current one (this build may
  write what the older release cannot read: format 2 added the entry origins of
  ``ENVELOPE_VERSION`` 2 and snapshot version 6, so the older release then refuses the directory
  instead of stopping at the first entry it cannot read; format 3 added compressed entries,
  ``raftreg.raft.entry_compression``);
- an unreadable or malformed marker raises ``DataFormatError`` (never guessed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from raftreg import __version__

DATA_FORMAT_VERSION = 3
MARKER_NAME = "FORMAT"


class DataFormatError(ValueError):
    """The data directory was written in a format this build cannot read (or its marker is broken)."""


def read_format(data_dir: Path) -> tuple[int, str] | None:
    """``(format, written_by)`` from the marker in ``data_dir``; None when there is no marker."""
    path = data_dir / MARKER_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataFormatError(f"cannot read the format marker {path}: {exc.strerror}") from exc
    try:
        raw = json.loads(text)
        version, written_by = raw["format"], str(raw.get("written_by", "an unknown release"))
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(version)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(f"the format marker {path} is malformed (expected JSON with an integer "
                              f'"format"); fix or remove it: {exc}') from exc
    return version, written_by


def write_format(data_dir: Path) -> None:
    """Write this build's marker into ``data_dir`` atomically (replacing any other)."""
    path = data_dir / MARKER_NAME
    tmp = path.with_name(MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps({"format": DATA_FORMAT_VERSION, "written_by": f"raftreg {__version__}"}) + "\n")
    os.replace(tmp, path)


def prepare_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` if needed and check or write its format marker (module docstring)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    found = read_format(data_dir)
    if found is None:
        write_format(data_dir)
        return
    version, written_by = found
    if version > DATA_FORMAT_VERSION:
        raise DataFormatError(
            f"data directory {data_dir} was written by {written_by} in data format {version}; this build "
            f"(raftreg {__version__}) reads format {DATA_FORMAT_VERSION} at most: run a newer raftreg, "
            "or start this node on an empty directory to resync it from the cluster")
    if version < DATA_FORMAT_VERSION:
        write_format(data_dir)
