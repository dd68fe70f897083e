"""``raftreg chaos --report out.html`` on a tiny real run (3 nodes, 3 s, one leader kill): the
HTML report is written, with the kill's band, a leader change and every check's verdict."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster


def test_chaos_report_option_writes_the_html_page(tmp_path: Path) -> None:
    out = tmp_path / "out.html"
    done = subprocess.run(
        [sys.executable, "-m", "raftreg", "chaos", "--duration", "3s", "--faults", "kill-leader", "--rate", "40",
         "--check-budget", "5s", "--report", str(out)],
        capture_output=True, text=True, timeout=90, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED" in done.stdout
    root = ET.fromstring(out.read_text(encoding="utf-8"))
    bands = [r for r in root.iter("rect") if (r.get("class") or "").split()[:1] == ["fault"]]
    assert [(b.get("data-kind"), len(b.get("data-nodes", "").split(","))) for b in bands] == [("kill", 1)]
    assert any(ln.get("class") == "leader-change" for ln in root.iter("line"))
    checks = {r[0].text: r.get("class") for r in root.iter("tr") if (r.get("class") or "").startswith("check ")}
    assert "linearizability: KV with compare-and-set" in checks and set(checks.values()) == {"check check-pass"}, checks
