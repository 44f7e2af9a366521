"""The streamed JSON report: the same document, written as connections finish.

The CLI runs as a child process (`python -m tcpflow_audit`) on the kernel-made sample captures.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import platform
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_nightly import Pcap  # noqa: E402  (splits a classic pcap into its records, byte for byte)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="watches the child through /proc and uses a pseudo-terminal")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
NORMAL_MIX = SAMPLES / "normal_mix.pcap"   # LINUX_SLL, 50 connections, 3301 packets (kernel-made)
DEMO = SAMPLES / "demo.pcap"               # Ethernet, 9 connections
SYN_FLOOD = SAMPLES / "syn_flood.pcap"
CLI = [sys.executable, "-m", "tcpflow_audit"]
WAIT = 30.0   # seconds: the bound on every wait (normally reached in well under a second)
FED = 1500    # packets of normal_mix.pcap fed before Ctrl-C: some connections finished, some open


def run_cli(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


# ------------------------------------------------------------------ 3. streamed JSON
def _as_csv_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_json_report_is_the_same_document_written_as_it_goes(tmp_path):
    sources = [SYN_FLOOD, DEMO]   # 3029 connections and several kinds of finding
    outdir = tmp_path / "dir"
    assert run_cli(*sources, "--output-dir", outdir).returncode == 0
    csv_flows = list(csv.DictReader(io.StringIO((outdir / "flows.csv").read_text())))
    csv_findings = list(csv.DictReader(io.StringIO((outdir / "anomalies.csv").read_text())))
    summary = json.loads((outdir / "summary.json").read_text())
    assert len(csv_flows) == 3029 and csv_findings

    documents = {}
    for report in ("flows", "all", "anomalies", "summary"):
        out = tmp_path / f"{report}.json"
        result = run_cli(*sources, "--report", report, "--json", "-o", out)
        assert result.returncode == 0, result.stderr
        text = out.read_text()
        document = json.loads(text)
        # exactly what json.dump(document, indent=2) writes
        assert text == json.dumps(document, indent=2) + "\n"
        documents[report] = document
    assert list(documents["flows"]) == ["flows"]
    assert list(documents["all"]) == ["flows", "anomalies", "summary"]   # summary last: known at the end
    assert list(documents["anomalies"]) == ["anomalies"]
    assert list(documents["summary"]) == ["summary", "anomalies"]

    for rows in (documents["flows"]["flows"], documents["all"]["flows"]):
        assert [{k: _as_csv_text(v) for k, v in row.items()} for row in rows] == csv_flows
    for rows in (documents["all"]["anomalies"], documents["anomalies"]["anomalies"],
                 documents["summary"]["anomalies"]):
        assert [{k: _as_csv_text(v) for k, v in row.items()} for row in rows] == csv_findings
    assert documents["all"]["summary"] == summary == documents["summary"]["summary"]

    # no connection at all: still a valid document
    result = run_cli(DEMO, "--host", "192.0.2.1", "--report", "all", "--json")
    assert result.returncode == 0, result.stderr
    empty = json.loads(result.stdout)
    assert empty["flows"] == [] and empty["summary"]["connections"] == 0
    assert result.stdout == json.dumps(empty, indent=2) + "\n"
