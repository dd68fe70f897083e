"""Import direction between raftreg's layers (DESIGN.md, "Layers"), checked with ``ast``.

Every import counts, including ones inside functions and ``if TYPE_CHECKING:`` blocks.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "raftreg"
STDLIB = frozenset(sys.stdlib_module_names)
# The state machine is pure (DESIGN.md): no clock, no randomness, no I/O, no threads, no asyncio.
# An allowlist, so a new I/O module is refused without anyone having to think of it. ``sys`` is
# there for ``sys.intern`` only.
STATE_STDLIB = frozenset({
    "__future__", "abc", "bisect", "collections", "dataclasses", "enum", "functools", "hashlib", "heapq", "itertools",
    "math", "operator", "re", "sys", "typing",
})


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    parts = ["raftreg", *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import in ``source``.

    ``from pkg import name`` yields ``pkg`` and, for a raftreg package, also ``pkg.name`` (it may be
    a submodule); ``from raftreg import x`` yields only ``raftreg.x``.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != "raftreg":  # the bare package is nothing but its submodules here
                yield node.lineno, base
            if is_raftreg_package(base):
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}"


def is_raftreg_package(name: str) -> bool:
    return within(name, "raftreg") and (PACKAGE_DIR.parent / name.replace(".", "/")).is_dir()


def top(name: str) -> str:
    return name.partition(".")[0]


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# The client's I/O-free modules, and what they may not import (the shells do the I/O).
# The shells (sync_client, async_client, kv_sync, kv_async, discovery, recipes/...) do the I/O.
SANS_IO_CLIENT = frozenset({"raftreg.client.core", "raftreg.client.policy", "raftreg.client.results",
                            "raftreg.client.kv_core", "raftreg.client.kv_results", "raftreg.client.txn",
                            "raftreg.client.session_core"})
SANS_IO_FORBIDDEN = frozenset({
    "aiohttp", "asyncio", "socket", "ssl", "http", "urllib.request", "select", "selectors", "time", "threading",
    "os", "io", "pathlib", "tomllib", "subprocess", "raftreg.client.sync_client", "raftreg.client.async_client",
    "raftreg.client.sync_transport", "raftreg.client.nodes", "raftreg.client.kv_sync", "raftreg.client.kv_async",
    "raftreg.client.discovery", "raftreg.client.recipes", "raftreg.client.session_sync",
    "raftreg.client.session_async",
})

# Each rule: (description, applies to module?, is this import allowed?)
Rule = tuple[str, Callable[[str], bool], Callable[[str], bool]]
RULES: list[Rule] = [
    (
        "only the raftreg.raft package imports pysyncobj",
        lambda m: not within(m, "raftreg.raft"),
        lambda imp: top(imp) != "pysyncobj",
    ),
    (
        "raftreg.state is pure: no clock, randomness, I/O, threads or asyncio (stdlib allowlist, msgspec, "
        "raftreg.models, raftreg.errors, raftreg.state)",
        lambda m: within(m, "raftreg.state"),
        lambda imp: (
            top(imp) in STATE_STDLIB
            or top(imp) == "msgspec"
            or within(imp, "raftreg.models", "raftreg.errors", "raftreg.state")
        ),
    ),
    (
        "raftreg.http reaches the node only through its facade (registry_node) and the types of reads, "
        "view, leases and peers; never raftreg.raft or raftreg.state",
        lambda m: within(m, "raftreg.http"),
        lambda imp: not within(imp, "raftreg.raft", "raftreg.state") and (
            not within(imp, "raftreg.node") or imp == "raftreg.node" or within(
                imp, "raftreg.node.registry_node", "raftreg.node.reads", "raftreg.node.view", "raftreg.node.leases",
                "raftreg.node.peers", "raftreg.node.acl", "raftreg.node.authority")
        ),
    ),
    (
        "raftreg.models, raftreg.errors, raftreg.durations and raftreg.logs import no other raftreg module",
        lambda m: m in ("raftreg.models", "raftreg.errors", "raftreg.durations", "raftreg.logs"),
        lambda imp: top(imp) != "raftreg" or within(imp, "raftreg.models", "raftreg.errors"),
    ),
    (
        "raftreg.client imports only raftreg.models, raftreg.errors, raftreg.durations, raftreg.client "
        "(+ stdlib, aiohttp, msgspec)",
        lambda m: within(m, "raftreg.client"),
        lambda imp: (
            top(imp) in STDLIB
            or top(imp) in ("aiohttp", "msgspec")
            or within(imp, "raftreg.models", "raftreg.errors", "raftreg.durations", "raftreg.client")
        ),
    ),
    (
        "the client's core (core, policy, results) is sans-I/O: no network, event loop, clock, thread or file "
        "access (callers pass the time and the random generator)",
        lambda m: m in SANS_IO_CLIENT,
        lambda imp: top(imp) not in SANS_IO_FORBIDDEN and imp not in SANS_IO_FORBIDDEN,
    ),
    (
        "raftreg.node never imports raftreg.http, raftreg.dns, raftreg.consul or raftreg.cli",
        lambda m: within(m, "raftreg.node"),
        lambda imp: not within(imp, "raftreg.http", "raftreg.dns", "raftreg.consul", "raftreg.cli"),
    ),
    (
        "raftreg.dns reaches the node only through its facade (registry_node), the read topics (node.reads) "
        "and the synthetic hosts (node.hosts); never raftreg.raft, raftreg.state, raftreg.http or raftreg.cli",
        lambda m: within(m, "raftreg.dns"),
        lambda imp: not within(imp, "raftreg.raft", "raftreg.state", "raftreg.http", "raftreg.cli") and (
            not within(imp, "raftreg.node") or imp == "raftreg.node"
            or within(imp, "raftreg.node.registry_node", "raftreg.node.reads", "raftreg.node.hosts")
        ),
    ),
    (
        "raftreg.consul (translation only) reaches the node only through its facade and the types of reads, view, "
        "hosts, acl and authority; never raftreg.raft, raftreg.state or raftreg.cli",
        lambda m: within(m, "raftreg.consul"),
        lambda imp: not within(imp, "raftreg.raft", "raftreg.state", "raftreg.cli") and (
            not within(imp, "raftreg.node") or imp == "raftreg.node" or within(
                imp, "raftreg.node.registry_node", "raftreg.node.reads", "raftreg.node.view", "raftreg.node.hosts",
                "raftreg.node.acl", "raftreg.node.authority")
        ),
    ),
    (
        "raftreg.http imports raftreg.consul only in server.py (which serves both APIs)",
        lambda m: within(m, "raftreg.http") and m != "raftreg.http.server",
        lambda imp: not within(imp, "raftreg.consul"),
    ),
    (
        "raftreg.http never imports raftreg.cli",
        lambda m: within(m, "raftreg.http"),
        lambda imp: not within(imp, "raftreg.cli"),
    ),
    (
        "raftreg.chaos sees the cluster only from outside (HTTP, LocalCluster): no node, http, raft, state",
        lambda m: within(m, "raftreg.chaos"),
        lambda imp: not within(imp, "raftreg.node", "raftreg.http", "raftreg.raft", "raftreg.state"),
    ),
]


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    out = []
    for line, imp in imported_modules(source, module, is_package):
        for description, applies, allowed in RULES:
            if applies(module) and not allowed(imp):
                out.append(f"{module}:{line} imports {imp} ({description})")
    return out


SOURCES = sorted(PACKAGE_DIR.rglob("*.py"))


def test_sources_found() -> None:
    names = {module_name(p) for p in SOURCES}
    expected = {
        "raftreg.raft",
        "raftreg.models",
        "raftreg.errors",
        "raftreg.state.registry",
        "raftreg.state.commands",
        "raftreg.state.kv",
        "raftreg.state.machine",
        "raftreg.state.sessions",
        "raftreg.state.acl",
        "raftreg.state.acl_rules",
        "raftreg.node.acl",
        "raftreg.http.auth",
        "raftreg.http.permissions",
        "raftreg.http.acl_api",
        "raftreg.node.kv",
        "raftreg.node.sessions",
        "raftreg.http.kv_api",
        "raftreg.http.session_api",
        "raftreg.node.proposer",
        "raftreg.http.app",
        "raftreg.consul.app",
        "raftreg.consul.wire",
        "raftreg.dns.answers",
        "raftreg.dns.server",
        "raftreg.client",
        *SANS_IO_CLIENT,
    }
    assert expected <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_module_respects_layers(path: Path) -> None:
    module = module_name(path)
    assert violations(module, path.read_text(), is_package=path.name == "__init__.py") == []


def test_raft_package_does_import_pysyncobj() -> None:
    """The rule has teeth: the collector sees the bridge's pysyncobj import."""
    bridge = PACKAGE_DIR / "raft" / "bridge.py"
    imports = {imp for _, imp in imported_modules(bridge.read_text(), "raftreg.raft.bridge")}
    assert "pysyncobj" in imports
    assert "raftreg.state.registry" in imports


@pytest.mark.parametrize("module", ["time", "random", "socket", "asyncio", "os", "threading", "io", "pathlib",
                                    "subprocess", "select", "datetime", "uuid", "secrets", "logging", "urllib.request",
                                    "shutil", "tempfile", "signal", "multiprocessing", "concurrent.futures"])
@pytest.mark.parametrize("form", ["import {m}", "from {m} import x", "def f():\n    import {m}"])
def test_the_state_machine_may_not_import_clocks_randomness_or_io(module: str, form: str) -> None:
    found = violations("raftreg.state.registry", form.format(m=module))
    assert len(found) == 1 and "raftreg.state is pure" in found[0], found


# ---- the checker itself catches violations ---------------------------------------------------------
@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("raftreg.node.proposer", "import pysyncobj"),
        ("raftreg.http.app", "from pysyncobj import SyncObj"),
        ("raftreg.http.app", "from raftreg.raft import RaftNode"),
        ("raftreg.http.app", "from raftreg.node.writes import Writer"),
        ("raftreg.http.internal", "from raftreg.node import watches"),
        ("raftreg.http.app", "from raftreg.state.registry import Registry"),
        ("raftreg.http.kv_api", "from raftreg.state.kv import KVStore"),
        ("raftreg.http.kv_api", "from raftreg.node.kv import KeyValue"),
        ("raftreg.state.kv", "import time"),
        ("raftreg.consul.agent", "from raftreg.state.registry import Registry"),
        ("raftreg.consul.catalog", "from raftreg.raft import RaftNode"),
        ("raftreg.consul.health", "from raftreg.node.writes import Writer"),
        ("raftreg.consul.app", "from raftreg.cli import main"),
        ("raftreg.http.app", "from raftreg.consul.app import build_consul_app"),
        ("raftreg.state.registry", "from pysyncobj import SyncObj"),
        ("raftreg.state.registry", "import asyncio\nimport aiohttp"),
        ("raftreg.state.registry", "from raftreg.config import RaftTuning"),
        ("raftreg.state.registry", "from raftreg import raft"),
        ("raftreg.state.registry", "def f():\n    from raftreg.node import proposer"),
        ("raftreg.state.registry", "from ..durations import parse_duration"),
        ("raftreg.models", "from raftreg.durations import parse_duration"),
        ("raftreg.errors", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from raftreg.config import X"),
        ("raftreg.dns.answers", "from raftreg.state.registry import Registry"),
        ("raftreg.dns.catalog", "from raftreg.node.writes import Writer"),
        ("raftreg.dns.server", "from raftreg.http.app import build_app"),
        ("raftreg.node.registry_node", "from raftreg.dns.server import DnsServer"),
        ("raftreg.client.sync_client", "from raftreg.config import load_config"),
        ("raftreg.client.async_client", "import click"),
        ("raftreg.client.core", "from raftreg.http.validation import parse_register"),
        ("raftreg.client.nodes", "from raftreg.config import load_config"),
        ("raftreg.client.core", "import aiohttp"),
        ("raftreg.client.core", "import http.client"),
        ("raftreg.client.policy", "import time"),
        ("raftreg.client.policy", "from asyncio import sleep"),
        ("raftreg.client.results", "def f():\n    import socket"),
        ("raftreg.client.core", "from raftreg.client.sync_transport import ConnectionPool"),
        ("raftreg.client.policy", "from . import async_client"),
        ("raftreg.client.kv_core", "import asyncio"),
        ("raftreg.client.kv_core", "from raftreg.client.kv_sync import KVCalls"),
        ("raftreg.client.kv_results", "import time"),
        ("raftreg.client.txn", "from raftreg.client import recipes"),
        ("raftreg.client.recipes.config", "from raftreg.config import load_config"),
        ("raftreg.client.recipes.config", "import click"),
        ("raftreg.client.session_core", "import threading"),
        ("raftreg.client.session_core", "from raftreg.client.session_sync import SessionCalls"),
        ("raftreg.client.recipes.lock", "from raftreg.testing import LocalCluster"),
        ("raftreg.node.watchdog", "from raftreg.http import app"),
        ("raftreg.node.watchdog", "from raftreg import http"),
        ("raftreg.node.watchdog", "import raftreg.cli.main"),
        ("raftreg.node.watchdog", "from ..cli.output import print_json"),
        ("raftreg.http.app", "from raftreg.cli.output import print_json"),
    ],
)
def test_checker_flags_violations(module: str, source: str) -> None:
    assert violations(module, source) != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("raftreg.state.registry", "from collections.abc import Iterable\nimport msgspec"),
        ("raftreg.state.registry", "from raftreg.models import Instance\nfrom raftreg.state.commands import Noop"),
        ("raftreg.state.registry", "from .commands import Noop\nfrom ..models import Instance"),
        ("raftreg.models", "from raftreg.errors import InvalidArgument"),
        ("raftreg.client.async_client", "import aiohttp\nfrom raftreg.errors import RaftregError"),
        ("raftreg.client.sync_client", "from raftreg import errors, models\nfrom . import core"),
        ("raftreg.client.sync_transport", "import http.client\nimport socket\nimport threading"),
        ("raftreg.client.core", "import msgspec\nfrom urllib.parse import quote\nfrom raftreg.errors import X"),
        ("raftreg.client.policy", "import random\nfrom raftreg.client.core import Request"),
        ("raftreg.client.kv_core", "import msgspec\nfrom raftreg.client.core import Request"),
        ("raftreg.client.session_core", "import msgspec\nfrom raftreg.client.kv_core import put"),
        ("raftreg.client.recipes.lock", "import asyncio\nimport threading\nfrom raftreg.client.keepalive import X"),
        ("raftreg.client.recipes.config", "import asyncio\nimport threading\nfrom raftreg.client.policy import X"),
        ("raftreg.node.registry_node", "from raftreg.raft import RaftNode\nimport aiohttp"),
        ("raftreg.raft", "from pysyncobj import SyncObj"),
        ("raftreg.raft.transport", "from pysyncobj.transport import TCPTransport"),
        ("raftreg.state.registry", "import sys\nimport re\nfrom collections import OrderedDict"),
        ("raftreg.http.app", "from raftreg.node.registry_node import RegistryNode\nfrom raftreg.node.reads import X"),
        ("raftreg.dns.catalog", "import dns.message\nfrom raftreg.node.registry_node import RegistryNode"),
        ("raftreg.dns.answers", "from raftreg.node.hosts import host_node\nfrom raftreg.config import DnsSettings"),
        ("raftreg.http.server", "from raftreg.dns.server import DnsServer"),
    ],
)
def test_checker_allows_permitted_imports(module: str, source: str) -> None:
    assert violations(module, source) == []
