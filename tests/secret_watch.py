"""The whole-suite canary check (issue 13: no token secret may ever reach a node's log).

``SECRETS`` collects every ACL token secret the tests mint (``remember_secret``, called where
the bootstrap and token helpers read a ``secret_id``, and by ``tests.http.conftest.Http`` for
every answer that carries one) and the canary strings tests send as tokens. ``SecretWatch``
scans the node logs of LocalClusters for them: ``scan(cluster)`` reads what each log gained
since its last scan (plus an overlap, so a secret split across two scans is still found) and
returns where a secret appeared, naming the secret only by its first characters.
tests/conftest.py runs it after every test on the live clusters and as each cluster closes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

OVERLAP = 512  # characters re-read from the previous scan: longer than any secret
SHOWN = 6  # characters of a leaked secret named in a report


class HasLogs(Protocol):
    def log_files(self) -> list[Path]: ...


class SecretWatch:
    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self._read: dict[Path, tuple[int, str]] = {}  # log -> (bytes scanned, the last OVERLAP characters)
        self._reported: set[tuple[Path, str]] = set()

    def remember(self, *secrets: str) -> None:
        self.secrets.update(s for s in secrets if s)

    def scan(self, cluster: HasLogs) -> list[str]:
        """Leaks in what ``cluster``'s logs gained since the last scan: "<log>: <secret prefix>..."."""
        leaks = []
        for path in cluster.log_files():
            offset, tail = self._read.get(path, (0, ""))
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                continue
            text = tail + data.decode("utf-8", errors="replace")
            self._read[path] = (offset + len(data), text[-OVERLAP:])
            for secret in self.secrets:
                if secret in text and (path, secret) not in self._reported:
                    self._reported.add((path, secret))
                    leaks.append(f"{path}: {secret[:SHOWN]}...")
        return leaks


WATCH = SecretWatch()


def remember_secret(*secrets: str) -> None:
    """Add token secrets (or canaries) no node log may contain (module docstring)."""
    WATCH.remember(*secrets)
