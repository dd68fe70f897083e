"""Screenshots of the web UI's pages for the README (``make screenshots``).

Starts a local 3-node cluster (``raftreg.testing.LocalCluster``), writes the sample data of
``tests/ui/sample_data.py``, and saves one PNG per page into ``docs/`` with the headless Debian
Chromium the UI tests use (``tests/ui/browser.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from raftreg.testing import LocalCluster, wait_for  # noqa: E402
from tests.ui.browser import chromium, chromium_missing  # noqa: E402
from tests.ui.sample_data import seed, status  # noqa: E402

OUT = ROOT / "docs"
PAGES = [  # file name, page, a selector that is on screen once the page has its data
    ("ui-services.png", "#/services", "#services tr[data-service='web']"),
    ("ui-service.png", "#/service/web", "#instances tr[data-instance='web-3'] .check-output"),
    ("ui-cluster.png", "#/cluster", "#members tr.leader"),
    ("ui-kv-tree.png", "#/kv/", "#kv-keys li.folder"),
    ("ui-kv-key.png", "#/kv/config/web/feature-flags", "#kv-details"),
]


def main() -> None:
    missing = chromium_missing()
    if missing:
        sys.exit(missing)
    with LocalCluster(3, name="screenshots") as cluster:
        leader = cluster.wait_ready()
        base = cluster.url(leader)
        seed(base)
        wait_for(lambda: status(base, "web", "web-3") == "critical", 15, "web-3's check to fail")
        follower = next(n for n in cluster.names if n != leader)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 640})
            for name, fragment, ready in PAGES:
                # the cluster page from a follower: it shows which node you are on and the leader highlighted
                node = follower if fragment == "#/cluster" else leader
                page.goto(f"{cluster.url(node)}/ui/{fragment}")
                page.wait_for_selector(ready, timeout=15_000)
                page.screenshot(path=str(OUT / name), full_page=True)
                print(f"wrote docs/{name}")


if __name__ == "__main__":
    main()
