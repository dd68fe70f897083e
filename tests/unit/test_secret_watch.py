"""The whole-suite canary check's scanner (tests/secret_watch.py), on log files written here."""

from __future__ import annotations

from pathlib import Path

from tests.secret_watch import OVERLAP, SecretWatch

SECRET = "0f" * 32


class Logs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def log_files(self) -> list[Path]:
        return sorted(self.root.glob("*.log"))

    def append(self, name: str, text: str) -> None:
        with (self.root / name).open("a") as f:
            f.write(text)


def test_a_remembered_secret_is_found_once_and_named_only_by_its_start(tmp_path: Path) -> None:
    logs, watch = Logs(tmp_path), SecretWatch()
    watch.remember(SECRET, "")
    logs.append("n1.log", "event=start\n")
    assert watch.scan(logs) == []
    logs.append("n1.log", f"event=oops token={SECRET}\n")
    leaks = watch.scan(logs)
    assert leaks == [f"{tmp_path / 'n1.log'}: {SECRET[:6]}..."] and SECRET not in leaks[0]
    logs.append("n1.log", "event=more\n")
    assert watch.scan(logs) == []  # reported once


def test_a_secret_split_across_two_scans_is_found(tmp_path: Path) -> None:
    logs, watch = Logs(tmp_path), SecretWatch()
    watch.remember(SECRET)
    logs.append("n2.log", "x" * (OVERLAP * 3) + SECRET[:20])
    assert watch.scan(logs) == []
    logs.append("n2.log", SECRET[20:] + "\n")
    assert len(watch.scan(logs)) == 1


def test_only_new_text_is_read_and_other_strings_are_no_leak(tmp_path: Path) -> None:
    logs, watch = Logs(tmp_path), SecretWatch()
    logs.append("n1.log", f"sha256={SECRET[:-1]}1 accessor=acc-1\n")
    watch.remember(SECRET)
    assert watch.scan(logs) == []
