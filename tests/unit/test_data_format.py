"""The data directory's format marker (raftreg.raft.data_format): written at first start, checked
at every start, and a directory from a newer format is refused without being touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftreg import __version__
from raftreg.raft.data_format import (
    DATA_FORMAT_VERSION,
    MARKER_NAME,
    DataFormatError,
    prepare_data_dir,
    read_format,
)


def test_a_new_directory_is_created_and_marked(tmp_path: Path) -> None:
    data = tmp_path / "a" / "n1"
    prepare_data_dir(data)
    assert json.loads((data / MARKER_NAME).read_text()) == {"format": DATA_FORMAT_VERSION,
                                                            "written_by": f"raftreg {__version__}"}
    assert read_format(data) == (DATA_FORMAT_VERSION, f"raftreg {__version__}")
    prepare_data_dir(data)  # a second start accepts its own marker
    assert read_format(data) == (DATA_FORMAT_VERSION, f"raftreg {__version__}")


def test_raft_files_from_before_the_marker_get_marked(tmp_path: Path) -> None:
    (tmp_path / "raft.journal").write_bytes(b"old")
    prepare_data_dir(tmp_path)
    assert read_format(tmp_path) == (DATA_FORMAT_VERSION, f"raftreg {__version__}")
    assert (tmp_path / "raft.journal").read_bytes() == b"old"


def test_an_older_format_is_accepted_and_the_marker_upgraded(tmp_path: Path) -> None:
    """Format 1 directories are read as they are; from then on this build writes format-3 entries,
    so the marker says so (an older release refuses the directory instead of stopping mid-log)."""
    (tmp_path / MARKER_NAME).write_text(json.dumps({"format": 1, "written_by": "raftreg 0.1.0"}))
    (tmp_path / "raft.journal").write_bytes(b"old")
    prepare_data_dir(tmp_path)
    assert read_format(tmp_path) == (DATA_FORMAT_VERSION, f"raftreg {__version__}")
    assert DATA_FORMAT_VERSION == 3
    assert (tmp_path / "raft.journal").read_bytes() == b"old"


def test_a_newer_format_is_refused_and_nothing_is_changed(tmp_path: Path) -> None:
    marker = json.dumps({"format": DATA_FORMAT_VERSION + 1, "written_by": "raftreg 9.0.0"})
    (tmp_path / MARKER_NAME).write_text(marker)
    with pytest.raises(DataFormatError) as caught:
        prepare_data_dir(tmp_path)
    message = str(caught.value)
    assert f"data format {DATA_FORMAT_VERSION + 1}" in message and "raftreg 9.0.0" in message
    assert f"reads format {DATA_FORMAT_VERSION} at most" in message and str(tmp_path) in message
    assert (tmp_path / MARKER_NAME).read_text() == marker
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER_NAME]


@pytest.mark.parametrize("text", ["", "{", '{"format": "1"}', '{"format": 0}', '{"format": true}', "[1]",
                                  '{"written_by": "x"}'])
def test_a_malformed_marker_is_refused_not_guessed(tmp_path: Path, text: str) -> None:
    (tmp_path / MARKER_NAME).write_text(text)
    with pytest.raises(DataFormatError, match="malformed"):
        prepare_data_dir(tmp_path)
    assert (tmp_path / MARKER_NAME).read_text() == text
