"""``raftreg serve`` runs without loading the rest of the CLI (a node's memory), and fails like
every other command: one line, a non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from raftreg.cli.entry import main
sys.argv = ["raftreg", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted(m for m in sys.modules if m.split(".")[:2] in (["raftreg", "client"], ["raftreg", "testing"],
               ["raftreg", "consul"], ["raftreg", "dns"]) or m == "raftreg.cli.main")
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _probe(args: list[str], cwd: Path) -> tuple[dict[str, object], str]:
    env = {**os.environ, "RAFTREG_SECRET": "a-cluster-secret-for-this-test-only"}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True,
                          timeout=60, env=env, cwd=cwd)
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_serve_loads_neither_the_client_nor_the_other_commands(tmp_path: Path) -> None:
    config = tmp_path / "one.toml"
    config.write_text('name = "one"\n[[nodes]]\nname = "n1"\nhttp = "127.0.0.1:1"\nraft = "127.0.0.1:2"\n')
    result, stderr = _probe(["serve", "--config", str(config), "--node", "n9"], tmp_path)
    assert result["heavy"] == []  # the node's own modules did load: the command imports them before the config
    assert result["code"] == 2
    assert stderr.startswith("error: ") and "n9" in stderr and "Traceback" not in stderr


def test_serve_with_a_missing_config_fails_in_one_line(tmp_path: Path) -> None:
    result, stderr = _probe(["serve", "--config", str(tmp_path / "absent.toml"), "--node", "n1"], tmp_path)
    assert result["code"] == 2
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


def test_other_commands_and_serve_help_go_through_the_whole_cli(tmp_path: Path) -> None:
    result, _ = _probe(["serve", "--help"], tmp_path)
    assert result["code"] == 0 and "raftreg.cli.main" in result["heavy"]
