"""Headless Chromium for the HTML report: load a page, read what it says about its drawing, take a screenshot.

A plain module beside the tests (like capture_helpers): `tests/test_html_report.py` uses it, and run
as a script it makes the screenshots the documentation shows:

    python tests/browser.py docs/images        # (make screenshots)

The report marks itself once Plotly has drawn (`#report-status`, see tcpflow_audit/html_report.py):
`status(page)` loads the page with `--dump-dom` after the page's own scripts ran (virtual time) and
returns that mark, with the number of plot containers holding a drawn SVG.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TIMEOUT = 120  # seconds for one browser run
STATUS = re.compile(r'<pre id="report-status"[^>]*>(.*?)</pre>', re.S)
PLOT = re.compile(r'<div class="plot[^"]*" id="plot-\d+"')


def chromium() -> str | None:
    """The headless browser to use: $CHROMIUM, or chromium / chromium-browser / google-chrome on PATH."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _run(args: list[str]) -> subprocess.CompletedProcess:
    browser = chromium()
    assert browser is not None, "no Chromium"
    with tempfile.TemporaryDirectory(prefix="tfa-chromium-") as profile:
        return subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=30000",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )


def status(page: Path) -> dict:
    """What the loaded page says: {"drawn", "plots", "errors", "height"}, and "svg_plots": plot
    containers that hold a drawn chart."""
    done = _run(["--dump-dom", page.resolve().as_uri()])
    dom = done.stdout
    found = STATUS.search(dom)
    assert found is not None and found.group(1).strip(), f"the page never marked itself drawn: {done.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    pieces = PLOT.split(dom)[1:]
    result["svg_plots"] = sum(1 for piece in pieces if 'class="main-svg"' in piece.split("</section>")[0])
    return result


def screenshot(page: Path, png: Path, width: int = 1280, height: int | None = None) -> Path:
    """A screenshot of the whole page (its height as the page reports it, unless given)."""
    if height is None:
        height = min(int(status(page)["height"]) + 20, 16000)
    _run([f"--window-size={width},{height}", f"--screenshot={png.resolve()}", page.resolve().as_uri()])
    assert png.is_file() and png.stat().st_size > 10000, f"no screenshot {png}"
    return png


def main() -> int:
    """Screenshots of the sample reports for the documentation: python tests/browser.py DIR."""
    if chromium() is None:
        print("no Chromium (apt-get install -y chromium)", file=sys.stderr)
        return 1
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
    out.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as work:
        for capture, name in (
            ("demo.pcap", "report-demo"),
            ("syn_flood.pcap", "report-syn-flood"),
            ("sockets_mix.pcap", "report-sockets-mix"),
        ):
            page = Path(work) / f"{name}.html"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tcpflow_audit",
                    f"sample_pcaps/{capture}",  # relative: the report names the file as given
                    "-q",
                    "--html",
                    str(page),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                cwd=root,
            )
            state = status(page)
            assert state["drawn"] == state["plots"] == state["svg_plots"] and not state["errors"], state
            print(screenshot(page, out / f"{name}.png"), state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
