"""The HTML report (`--html FILE`, `report.html` in `--output-dir` with `--sockets`): one self-contained
file, its sections, findings linked to their connections, bounded plots; and drawn in a real browser
(headless Chromium, where installed: `make test` installs it as root on Debian/Ubuntu; elsewhere the
test says why it skips).
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

import pytest
from browser import chromium, screenshot, status
from conftest import sample

from tcpflow_audit.html_report import MAX_POINTS

pytest.importorskip("plotly", reason="the HTML report needs plotly (the html extra)")


def report(cli, tmp_path: Path, *captures: str) -> tuple[Path, str]:
    page = tmp_path / "report.html"
    cli(*[sample(c) for c in captures], "-q", "--html", page)
    return page, page.read_text()


def test_one_self_contained_file(cli, tmp_path: Path):
    page, text = report(cli, tmp_path, "demo.pcap")
    # nothing loaded from elsewhere: no script or style by URL, no link element
    assert not re.search(r"<script[^>]+src=|<link\b|<iframe|@import", text)
    assert "https://cdn" not in text and "http://" not in text.replace("http://www.w3.org", "")
    for section in ('id="read"', 'id="findings"', 'id="plots"', 'id="report-status"'):
        assert section in text
    assert "sample_pcaps/demo.pcap" in text and "83" in text  # what was read: the file, its packets
    assert 1_000_000 < page.stat().st_size < 3_000_000  # (Plotly's JavaScript, compressed, is most of it)


def test_what_was_read_says_what_the_terminal_summary_says(cli, tmp_path: Path):
    """Both come from one list of facts (report.summary_facts): a capture's own losses show on the page."""
    captures = ("tcp_fragments_port80.pcap", "capture_gap.pcap")
    _, text = report(cli, tmp_path, *captures)
    read = text.split('id="read"', 1)[1].split("</table>", 1)[0]
    terminal = cli(*[sample(c) for c in captures], "-q", "--report", "summary").stdout
    for label in ("TCP first fragments read alone", "capture loss", "packets read", "connections"):
        assert label in terminal and f"<th>{label}</th>" in read
    assert "<th>TCP first fragments read alone</th><td>2</td>" in read
    assert "3.15% missed (38056 bytes acknowledged, never captured, in 4 connections)" in read


def test_each_finding_links_to_its_connections(cli, tmp_path: Path):
    _, text = report(cli, tmp_path, "demo.pcap")
    findings = list(csv.DictReader(io.StringIO(cli(sample("demo.pcap"), "--report", "anomalies", "--csv").stdout)))
    links = re.findall(r'<a href="#(finding-\d+)">([a-z_]+)</a>', text)
    assert sorted(kind for _, kind in links) == sorted(f["kind"] for f in findings)
    assert {"connection_refused", "rst_abort", "stuck_close_wait"} <= {kind for _, kind in links}
    sections = {}
    for anchor, kind in links:
        section = sections[kind] = text.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]
        assert kind in section and "<table" in section
    assert all(s in sections["connection_refused"] for s in ("10.99.0.1:40104", "10.99.0.2:8081", "REJ"))
    assert all(s in sections["stuck_close_wait"] for s in ("10.99.0.1:40107", "CLOSE_WAIT"))


def test_plots_stay_small_whatever_the_span(cli, tmp_path: Path):
    """Two captures three years apart: the buckets widen until each series has at most MAX_POINTS."""
    _, text = report(cli, tmp_path, "syn_flood.pcap", "demo.pcap")
    figures = text.split("const FIGURES = ", 1)[1]
    longest = max(len(xs.split(",")) for xs in re.findall(r'"x":\[([^\]]*)\]', figures))
    assert 2 <= longest <= MAX_POINTS + 1


def test_output_dir_has_report_html(cli, tmp_path: Path):
    out = tmp_path / "nightly"
    cli(sample("demo.pcap"), "--output-dir", out, "--sockets")
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    plain = tmp_path / "plain"  # without --sockets: no state changes kept, no HTML report
    cli(sample("demo.pcap"), "--output-dir", plain)
    assert not (plain / "report.html").exists()


def test_without_plotly_the_report_says_what_to_install(cli, tmp_path: Path, monkeypatch):
    for name in ("plotly", "plotly.offline"):
        monkeypatch.setitem(sys.modules, name, None)
    result = cli(sample("demo.pcap"), "--html", tmp_path / "r.html", status=2)
    assert "pip install 'tcpflow-audit[html]'" in result.stderr and not (tmp_path / "r.html").exists()
    result = cli(sample("demo.pcap"), "--output-dir", tmp_path / "out", "--sockets")
    assert "gets no report.html" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "anomalies.csv",
        "flows.csv",
        "sockets.csv",
        "summary.json",
        "timeline.csv",
    ]


@pytest.mark.parametrize("capture", ["demo.pcap", "syn_flood.pcap", "refused_storm.pcap", "sockets_mix.pcap"])
def test_drawn_in_headless_chromium(cli, tmp_path: Path, capture: str):
    if chromium() is None:
        pytest.skip("no Chromium to draw the report in (apt-get install -y chromium; make test installs it as root)")
    page, _ = report(cli, tmp_path, capture)
    drawn = status(page)
    assert drawn["errors"] == [] and drawn["plots"] >= 3
    assert drawn["drawn"] == drawn["plots"] == drawn["svg_plots"], drawn
    png = screenshot(page, tmp_path / f"{capture}.png", height=drawn["height"] + 20)
    assert png.read_bytes().startswith(b"\x89PNG")
