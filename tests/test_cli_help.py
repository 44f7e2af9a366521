"""The command line for people: --help in sections, --threshold NAME=VALUE, and the table format
fitted to the width it is printed at (--width, $COLUMNS, the terminal), on the shipped captures."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import time
from typing import Any

import pytest
from click.testing import Result
from conftest import invoke_cli, sample, sample_captures

from tcpflow_audit.detectors.thresholds import Thresholds

SAMPLES = sample_captures()
DEMO = sample("demo.pcap")
LEAK = sample("close_wait_leak.pcap")  # a critical finding (stuck_close_wait)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def invoke(*args: object, status: int | None = 0, **extra: Any) -> Result:
    return invoke_cli(*args, status=status, **extra)


def show_config(*args: object) -> dict:
    return json.loads(invoke(*args, "--show-config").stdout)


# ------------------------------------------------------------------------------ --help
def test_help_has_sections_and_fits_two_screens():
    text = invoke("--help", terminal_width=100).stdout
    lines = text.splitlines()
    assert len(lines) <= 60, len(lines)
    assert max(len(line) for line in lines) <= 100
    headings = [line for line in lines if re.fullmatch(r"[A-Z][a-z]+:", line)]
    assert headings == ["Input:", "Output:", "Filters:", "Engine:", "Findings:", "Other:"]
    assert "--threshold NAME=VALUE" in text and "--width N" in text
    # one line per threshold is gone from --help (the options still work: see below)
    for name in Thresholds().as_dict():
        assert "--" + name.replace("_", "-") not in text
    # the help texts of every section start in one column
    starts = {m.end() - 1 for m in (re.match(r"  -\S*(?: \S+)* {2,}\S", line) for line in lines) if m}
    assert len(starts) == 1, starts


# ------------------------------------------------------------------------------ --threshold
def test_threshold_sets_a_value_and_the_old_option_gives_the_same_settings():
    default = show_config()
    assert default["thresholds"] == Thresholds().as_dict()
    by_threshold = show_config("--threshold", "close_wait_s=120", "--threshold", "syn-flood-rate=500")
    by_options = show_config("--close-wait-s", "120", "--syn-flood-rate", "500")
    assert by_threshold == by_options != default
    assert by_threshold["thresholds"]["close_wait_s"] == 120.0
    assert by_threshold["thresholds"]["syn_flood_rate"] == 500
    # given twice, the last one counts; the TOML file is overridden by the command line
    assert (
        show_config("--threshold", "syn_flood_rate=5", "--threshold", "syn_flood_rate=6")["thresholds"][
            "syn_flood_rate"
        ]
        == 6
    )


def test_threshold_file_and_command_line(tmp_path):
    config = tmp_path / "audit.toml"
    config.write_text("[thresholds]\nsyn_flood_rate = 300\nclose_wait_s = 30\n")
    settings = show_config("--config", config, "--threshold", "syn_flood_rate=400")["thresholds"]
    assert (settings["syn_flood_rate"], settings["close_wait_s"]) == (400, 30.0)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("bogus_knob=1", "unknown threshold 'bogus_knob' (known: handshake_timeout_s, "),
        ("syn_flood_rate=many", "threshold syn_flood_rate must be a number, got 'many'"),
        ("syn_flood_rate=1.5", "threshold syn_flood_rate must be an integer, got 1.5"),
        ("close_wait_s=-1", "threshold close_wait_s must not be negative, got -1"),
        ("close_wait_s=nan", "threshold close_wait_s must be a number, got nan"),
        ("close_wait_s", "expected NAME=VALUE, got 'close_wait_s'"),
    ],
)
def test_bad_threshold_is_a_usage_error(setting, message):
    result = invoke("--threshold", setting, "--show-config", status=2)
    assert "Invalid value for '--threshold'" in result.output
    assert message in result.output
    assert "Traceback" not in result.output
    if "unknown" in message:  # the error lists every valid name
        assert all(name in result.output for name in Thresholds().as_dict())


def test_old_threshold_option_is_checked_the_same_way():
    result = invoke("--syn-flood-rate", "-3", "--show-config", status=2)
    assert "threshold syn_flood_rate must not be negative, got -3" in result.output


# ------------------------------------------------------------------------------ table width
def too_wide(text: str, width: int) -> list[str]:
    return [line for line in ANSI.sub("", text).splitlines() if len(line) > width]


def column_texts(table: list[str], header: str) -> list[str]:
    """The text of one column of a rendered table, row by row, its wrapped lines joined.

    The rule of dashes under the headers gives each column's span. A row on several lines stands
    between separating lines (the rule again) and leaves the first column empty on some of its
    lines; between separating lines, rows that fill the first column on every line take one line each."""
    rule = next(n for n, line in enumerate(table) if is_rule(line))
    spans = [m.span() for m in re.finditer(r"-+", table[rule])]
    names = ["".join(table[k][a:b].strip() for k in range(rule)) for a, b in spans]
    a, b = spans[names.index(header)]
    blocks: list[list[str]] = [[]]
    for line in table[rule + 1 :]:
        if line.startswith("("):  # the note naming the columns left out
            continue
        if is_rule(line):
            blocks.append([])
        else:
            blocks[-1].append(line)
    rows: list[str] = []
    for block in blocks:
        if any(line[0].isspace() for line in block):
            rows.append("".join(line[a:b] + "\n" for line in block))
        else:
            rows.extend(line[a:b] + "\n" for line in block)
    return rows


def is_rule(line: str) -> bool:
    return bool(line) and set(line) <= {"-", " "}


def same_text(a: str, b: str) -> bool:
    """The same characters, however the lines were broken."""
    return "".join(a.split()) == "".join(b.split())


@pytest.mark.parametrize("capture", SAMPLES, ids=[p.name for p in SAMPLES])
def test_table_fits_the_width_and_csv_keeps_the_whole_text(capture):
    details = [
        row["detail"]
        for row in csv.DictReader(io.StringIO(invoke(capture, "--report", "anomalies", "--format", "csv").stdout))
    ]
    for width in (100, 80):
        for report in ("summary", "all"):
            out = invoke(capture, "--report", report, "--width", width).stdout
            assert not too_wide(out, width), (width, report)
            assert f"Findings: {len(details)}" in out
        # the detail column, wrapped, is the whole detail text (it is the last column kept at 80)
        table = invoke(capture, "--report", "anomalies", "--width", width).stdout.splitlines()
        if details:
            assert [same_text(a, b) for a, b in zip(column_texts(table, "detail"), details, strict=True)] == [
                True
            ] * len(details)


def test_without_a_width_a_file_or_pipe_gets_whole_rows(tmp_path):
    details = [
        row["detail"]
        for row in csv.DictReader(io.StringIO(invoke(DEMO, "--report", "anomalies", "--format", "csv").stdout))
    ]
    for out in (
        invoke(DEMO, "--report", "all").stdout,
        invoke(DEMO, "--report", "all", "-o", tmp_path / "r.txt", env={"COLUMNS": "60"})
        and (tmp_path / "r.txt").read_text(),
    ):  # $COLUMNS is about standard output, not a file
        lines = out.splitlines()
        assert max(len(line) for line in lines) > 200  # nothing narrowed
        for detail in details:
            assert any(detail in line for line in lines), detail  # each on one line
        assert "(not shown" not in out and "first_seen" in out and "start" in out
        assert "\x1b[" not in out  # no colour off a terminal


def test_columns_variable_and_width_option():
    assert not too_wide(invoke(DEMO, "--report", "all", env={"COLUMNS": "90"}).stdout, 90)
    narrow = invoke(DEMO, "--report", "all", "--width", "60", env={"COLUMNS": "200"}).stdout
    assert not too_wide(narrow, 60)  # --width wins over $COLUMNS
    assert "(not shown at width 60: " in narrow
    # --width 0: no limit even with $COLUMNS; a width below 40 is taken as 40
    assert max(map(len, invoke(DEMO, "--width", "0", env={"COLUMNS": "50"}).stdout.splitlines())) > 200
    assert not too_wide(invoke(DEMO, "--report", "all", "--width", "10").stdout, 40)


def test_severities_in_colour_take_no_width():
    out = invoke(LEAK, "--width", "80", "--color").stdout
    assert "\x1b[31mcritical\x1b[0m" in out
    assert not too_wide(out, 80)
    assert any(len(line) > 80 for line in out.splitlines())  # (the escapes themselves are longer)
    assert "\x1b[" not in invoke(LEAK, "--width", "80").stdout


def run_on_terminal(args: list[str], columns: int, env: dict[str, str]) -> str:
    """The CLI with standard output on a pseudo-terminal `columns` wide: what the terminal received."""
    import fcntl
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpflow_audit", *args],
        stdout=slave,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env={**environment, **env},
    )
    os.close(slave)
    received = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                received += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return received.decode().replace("\r\n", "\n")


def test_on_a_terminal_the_table_fits_it_and_severities_have_colour():
    out = run_on_terminal([str(LEAK), "--report", "all"], 100, {})
    assert "Findings: " in out and not too_wide(out, 100)
    assert "\x1b[31mcritical\x1b[0m" in out
    assert "\x1b[" not in run_on_terminal([str(LEAK)], 100, {"NO_COLOR": "1"})
