"""Render a chaos HTML report to PNG with the headless Chromium the UI tests use (README
"Testing on a real network": docs/lab-chaos-report.png).

    .venv/bin/python docs/render_report.py lab-chaos.html docs/lab-chaos-report.png [HEIGHT]

HEIGHT (pixels, default 1300) cuts the page after the timeline, the checks and the recovery
figures (a long run's per-fault table is long).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.ui.browser import chromium, chromium_missing


def main() -> None:
    html, png = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    height = int(sys.argv[3]) if len(sys.argv) > 3 else 1300
    missing = chromium_missing()
    if missing:
        sys.exit(missing)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(html.as_uri())
        page.screenshot(path=str(png), full_page=True, clip={"x": 0, "y": 0, "width": 1200, "height": height})
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
