"""``raftreg acl ...`` and ``--token`` / ``$RAFTREG_TOKEN`` against a real node with ACLs on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from raftreg.config import AclSettings
from raftreg.testing import LocalCluster
from tests.conftest import START_TIMEOUT
from tests.secret_watch import remember_secret

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster(1, acl=AclSettings(enabled=True, default_policy="deny"))
    try:
        c.start(wait=START_TIMEOUT)
        yield c
    finally:
        c.close()


def test_bootstrap_tokens_and_policies(cli, addr) -> None:  # type: ignore[no-untyped-def]
    boot = cli("-o", "json", "acl", "bootstrap")
    assert boot.returncode == 0, boot.stderr
    root = json.loads(boot.stdout)
    remember_secret(root["secret_id"])
    assert root["accessor_id"] and root["secret_id"]
    again = cli("acl", "bootstrap")
    assert again.returncode != 0 and "already bootstrapped" in again.stderr
    denied = cli("services")
    assert denied.returncode != 0 and "token" in denied.stderr
    secret = root["secret_id"]
    pol = cli("acl", "policy", "create", "cart-rw", "--rule", 'service_prefix "cart" write', "--token", secret)
    assert pol.returncode == 0, pol.stderr
    made = cli("-o", "json", "--token", secret, "acl", "token", "create", "--description", "cart team",
               "--rule", 'key_prefix "cart/" read', "--policy", "cart-rw")
    assert made.returncode == 0, made.stderr
    tok = json.loads(made.stdout)
    remember_secret(tok["secret_id"])
    assert tok["accessor_id"] and tok["secret_id"] and tok["policies"] == ["cart-rw"]
    listed = cli("-o", "json", "acl", "token", "list", "--token", secret)
    assert listed.returncode == 0 and tok["accessor_id"] in listed.stdout and tok["secret_id"] not in listed.stdout
    env = {**os.environ, "RAFTREG_TOKEN": tok["secret_id"]}
    reg = subprocess.run([sys.executable, "-m", "raftreg", "--addr", addr, "register", "cart", "c1", "--address",
                          "10.0.0.1", "--port", "80"], capture_output=True, text=True, env=env, timeout=60,
                         check=False)
    assert reg.returncode == 0, reg.stderr
    upd = cli("acl", "token", "update", tok["accessor_id"], "--description", "renamed", "--token", secret)
    assert upd.returncode == 0 and "renamed" in upd.stdout, upd.stderr
    gone = cli("acl", "token", "delete", tok["accessor_id"], "--token", secret)
    assert gone.returncode == 0, gone.stderr
    assert cli("acl", "policy", "list", "--token", secret).stdout.count("cart-rw") == 1
