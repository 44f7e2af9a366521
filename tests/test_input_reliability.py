"""The reproductions of issue 17 ("a nightly job can trust it"), as regression tests on real bytes.

Every capture here is a shipped sample (sample_pcaps/) or a mutation of one; the CLI runs as a
child process (`python -m tcpflow_audit`), as a nightly job runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcpflow_audit.names import shown

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
DEMO = SAMPLES / "demo.pcap"   # Ethernet, 83 packets, 9 connections


def run_cli(*args: str | bytes | Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "tcpflow_audit", *args], capture_output=True, timeout=120,
                            cwd=ROOT)
    assert b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    return result


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return result.stderr.decode("utf-8").splitlines()


# ------------------------------------------------------------------ 6. hostile names
@pytest.mark.parametrize(("name", "escaped"), [
    ("capture 2024-01-01.pcap", "capture 2024-01-01.pcap"),       # spaces: as they are
    ("città_ñandú_東京.pcap", "città_ñandú_東京.pcap"),             # letters of any script: as they are
    ("a\nb.pcap", "a\\nb.pcap"),
    ("a\rb\tc.pcap", "a\\rb\\tc.pcap"),
    ("a\x1b[31mred.pcap", "a\\x1b[31mred.pcap"),
    ("a\x7f\x85b.pcap", "a\\x7f\\x85b.pcap"),
    ("evil\u202egnp.exe", "evil\\u202egnp.exe"),                  # a bidi override
    ("a\u2028b\u2066c.pcap", "a\\u2028b\\u2066c.pcap"),
    ("back\\slash.pcap", "back\\\\slash.pcap"),                   # so that an escape reads back one way
    (b"caf\xe9.pcap", "caf\\xe9.pcap"),                            # Latin-1 bytes: not UTF-8
    (os.fsdecode(b"caf\xe9.pcap"), "caf\\xe9.pcap"),               # the same, as Python carries it
])
def test_shown_escapes_what_would_break_a_line_and_nothing_else(name, escaped):
    assert shown(name) == escaped
    assert shown(name).isprintable()
    shown(name).encode("utf-8")   # valid UTF-8 (no lone surrogate)


HOSTILE = [b"forged\ntcpflow-audit: error: other.pcap: fake.pcap", b"cr\rback.pcap", b"esc\x1b[2J.pcap",
           "rlo\u202eparc.pcap".encode(), b"latin1-\xe9.pcap"]


def test_hostile_file_names_are_escaped_on_stderr_stdout_and_in_json(tmp_path):
    paths = []
    for raw in HOSTILE:
        path = os.path.join(os.fsencode(tmp_path), raw)
        with open(path, "wb") as handle:
            handle.write(b"not a capture\n" * 4)
        paths.append(path)
    good = os.path.join(os.fsencode(tmp_path), b"good\nname.pcap")
    with open(good, "wb") as handle:
        handle.write(DEMO.read_bytes())
    out = tmp_path / "out"
    result = run_cli(good, *paths, "--output-dir", out)
    assert result.returncode == 3
    lines = stderr_lines(result)   # (decoding as UTF-8 fails on a raw Latin-1 byte)
    errors = [line for line in lines if line.startswith("tcpflow-audit: error: ")]
    assert len(errors) == len(HOSTILE) == len(lines)   # one line each: no name splits or forges one
    for raw in HOSTILE:
        expected = shown(os.path.join(os.fsencode(tmp_path), raw))
        wanted = f"tcpflow-audit: error: {expected} at byte 0: not a pcap"
        assert sum(line.startswith(wanted) for line in errors) == 1, expected
    assert all(line.isprintable() for line in lines)
    summary_bytes = (out / "summary.json").read_bytes()
    summary = json.loads(summary_bytes.decode("utf-8"))   # valid UTF-8: no lone surrogates
    assert "\\udc" not in summary_bytes.decode("utf-8")
    assert summary["files"][0] == shown(good)
    assert sorted(summary["input_problems"]) == sorted(line.removeprefix("tcpflow-audit: error: ")
                                                       for line in errors)
    # the summary table on standard output
    table = run_cli(good, "-q")
    assert table.returncode == 0
    text = table.stdout.decode("utf-8")
    assert f"files         {shown(good)}\n" in text and "good\nname" not in text
