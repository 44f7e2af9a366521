"""Nightly-job behaviour on real files: rotated sets, compression, stdin, filters, damaged inputs,
outputs, exit status and memory under a SYN flood.

Every input is built in tmp_path from the committed sample captures (byte slicing / struct). The
CLI runs in this process (conftest's `cli`); in a child process where the test needs one: a pipe
on standard input, and the peak memory of the run.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import os
import random
import re
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from capture_helpers import Pcap
from conftest import ROOT, cli_command, no_partial_files, sample, write_capture

NORMAL_MIX = sample("normal_mix.pcap")  # LINUX_SLL, 50 connections, 3301 packets
DEMO = sample("demo.pcap")  # Ethernet, 9 connections of several kinds
SYN_FLOOD = sample("syn_flood.pcap")

FLOW_KEY = ("client_ip", "client_port", "server_ip", "server_port", "start_epoch")
FLOW_FIELDS = (
    *FLOW_KEY,
    "conn_state",
    "history",
    "client_packets",
    "server_packets",
    "client_bytes",
    "server_bytes",
    "end_epoch",
)


# ------------------------------------------------------------------ helpers
def flow_keys(json_report_text: str) -> list[tuple]:
    """The flows (key + state fields) of a JSON report, sorted."""
    rows = json.loads(json_report_text)["flows"]
    return sorted(tuple(str(row[f]) for f in FLOW_FIELDS) for row in rows)


@pytest.fixture
def flows_of(cli) -> Callable[..., list[tuple]]:
    """flows_of(*args, input=None): flow_keys of `--report flows --json` over ARGS (exit status 0)."""

    def flows_of(*args, input=None) -> list[tuple]:
        return flow_keys(cli(*args, "--report", "flows", "--json", input=input).stdout)

    return flows_of


# ------------------------------------------------------------------ 1. rotated sets
def test_rotated_files_form_one_timeline(tmp_path, flows_of):
    whole = flows_of(NORMAL_MIX)
    assert len(whole) == 50
    cap = Pcap.load(NORMAL_MIX)
    n = len(cap.records)
    # split points inside a connection (same port pair on both sides) and not between equal timestamps
    splits = []
    for target in (n // 3, 2 * n // 3):
        i = next(i for i in range(target, n) if cap.ports(i) == cap.ports(i - 1) and cap.ts(i) > cap.ts(i - 1))
        splits.append(i)
    a, b = splits
    parts = [cap.records[:a], cap.records[a:b], cap.records[b:]]
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    names = ["cap.pcap2", "cap.pcap0", "cap.pcap1"]  # name order is not time order
    files = []
    for name, part in zip(names, (parts[2], parts[0], parts[1]), strict=True):
        files.append(write_capture(rotated / name, cap.build(part)))
    (rotated / "README.txt").write_text("not a capture\n")

    spanning_port = next(p for p in cap.ports(a) if p != 8080)  # the client's port
    # reversed and shuffled file order
    assert flows_of(*reversed(files)) == whole
    shuffled = files[:]
    random.Random(7).shuffle(shuffled)
    assert flows_of(*shuffled) == whole
    # a directory, and a glob
    assert flows_of(rotated) == whole
    assert flows_of(str(rotated / "cap.pcap*")) == whole
    # the spanning connection is whole: one flow for that client port, with all its packets
    spanning = [f for f in whole if f[1] == str(spanning_port)]
    assert len(spanning) == 1
    in_capture = sum(1 for i in range(n) if spanning_port in cap.ports(i))
    assert int(spanning[0][7]) + int(spanning[0][8]) == in_capture

    # overlapping files: interleave the packets by timestamp into two files (switching files only
    # where the time strictly increases, so the merged order is unambiguous)
    left, right = [], []
    side = 0
    for i, record in enumerate(cap.records):
        if i and cap.ts(i) > cap.ts(i - 1):
            side ^= 1
        (left if side == 0 else right).append(record)
    assert left and right
    overlap_a = write_capture(tmp_path / "overlap_a.pcap", cap.build(left))
    overlap_b = write_capture(tmp_path / "overlap_b.pcap", cap.build(right))
    assert flows_of(overlap_b, overlap_a) == whole
    assert flows_of(overlap_a, overlap_b) == whole


# ------------------------------------------------------------------ 2. compression and stdin
def test_compressed_and_stdin_give_same_flows(tmp_path, flows_of, cli_process):
    whole = flows_of(DEMO)
    assert len(whole) == 9
    raw = DEMO.read_bytes()
    gz = write_capture(tmp_path / "capture.dat", gzip.compress(raw))  # detected by content, not by name
    bz = write_capture(tmp_path / "demo.pcap.bz2", bz2.compress(raw))
    xz = write_capture(tmp_path / "demo.pcap.xz", lzma.compress(raw, format=lzma.FORMAT_XZ))
    for path in (gz, bz, xz):
        assert flows_of(path) == whole, path
    with open(DEMO, "rb") as handle:
        assert flows_of("-", input=handle) == whole
    # a pipe (not a regular file) on the standard input of a real process, compressed
    cat = subprocess.Popen(["cat", str(xz)], stdout=subprocess.PIPE)
    try:
        assert flow_keys(cli_process("-", "--report", "flows", "--json", stdin=cat.stdout).stdout) == whole
    finally:
        cat.stdout.close()
        cat.wait()


# ------------------------------------------------------------------ 3. filters
def test_filters_narrow_the_flows(tmp_path, flows_of):
    cap = Pcap.load(NORMAL_MIX)
    ip = cap.ip_offset()
    # move the connections with an odd client port to client 10.77.0.1, so there are two hosts
    records = []
    for i, (offset, header, data) in enumerate(cap.records):
        sport, dport = cap.ports(i)
        client_port = sport if dport == 8080 else dport
        if client_port % 2:
            frame = bytearray(data)
            for field in (ip + 12, ip + 16):
                if frame[field : field + 4] == bytes([10, 99, 0, 1]):
                    frame[field : field + 4] = bytes([10, 77, 0, 1])
            data = bytes(frame)
        records.append((offset, header, data))
    path = write_capture(tmp_path / "two_clients.pcap", cap.build(records))
    whole = flows_of(path)
    assert len(whole) == 50

    def ids(flows):
        return {(f[0], f[1]) for f in flows}

    moved = {f for f in ids(whole) if f[0] == "10.77.0.1"}
    assert len(moved) == 25
    assert ids(flows_of(path, "--host", "10.77.0.1")) == moved
    assert ids(flows_of(path, "--net", "10.77.0.0/16")) == moved
    assert ids(flows_of(path, "--net", "10.77.0.0/16", "--net", "10.99.0.1/32")) == ids(whole)
    assert flows_of(path, "--host", "10.99.0.2") == whole
    assert flows_of(path, "--host", "192.0.2.1") == []
    one = sorted(whole)[10]
    assert ids(flows_of(path, "--port", one[1])) == {(one[0], one[1])}
    assert flows_of(path, "--port", "8080") == whole

    # time: a cut between two connections (so no connection is cut in half)
    starts = sorted(float(f[4]) for f in whole)
    ends = {float(f[4]): float(f[-1]) for f in whole}
    cut_index = next(
        i for i in range(20, 50) if ends[starts[i - 1]] < starts[i] and all(ends[s] < starts[i] for s in starts[:i])
    )
    cut = starts[cut_index]
    iso = datetime.fromtimestamp(cut, UTC).isoformat()
    after = flows_of(path, "--since", repr(cut))
    assert after == flows_of(path, "--since", iso.replace("+00:00", "Z"))
    assert after == [f for f in whole if float(f[4]) >= cut]
    assert len(after) == 50 - cut_index
    before = flows_of(path, "--until", repr(cut))
    assert before == flows_of(path, "--until", iso)
    assert before == [f for f in whole if float(f[4]) < cut]
    both = flows_of(path, "--since", repr(starts[5]), "--until", repr(cut), "--host", "10.77.0.1")
    assert both == [f for f in whole if starts[5] <= float(f[4]) < cut and f[0] == "10.77.0.1"]
    assert both


# ------------------------------------------------------------------ 4. truncated capture
def test_truncated_capture_is_a_warning_and_keeps_every_complete_packet(tmp_path, cli, flows_of):
    cap = Pcap.load(NORMAL_MIX)
    raw = NORMAL_MIX.read_bytes()
    k = 1700
    offset = cap.records[k][0]
    clean = write_capture(tmp_path / "clean_cut.pcap", raw[:offset])
    for name, cut in (("mid_data.pcap", offset + 16 + 10), ("mid_header.pcap", offset + 7)):
        truncated = write_capture(tmp_path / name, raw[:cut])
        result = cli(truncated, "--report", "all", "--json")
        warnings = [line for line in result.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1, result.stderr
        assert str(truncated) in warnings[0]
        found = re.search(r"at byte (\d+)", warnings[0])
        assert found and offset <= int(found.group(1)) <= cut, warnings[0]
        report = json.loads(result.stdout)
        assert report["summary"]["packets_read"] == k
        assert flows_of(truncated) == flows_of(clean)
        strict = cli(truncated, "--strict", "--report", "summary", "--json", status=3)
        assert str(truncated) in strict.stderr


# ------------------------------------------------------------------ 5. input errors
def _bad_inputs(tmp_path):
    cap = Pcap.load(NORMAL_MIX)
    raw = bytearray(NORMAL_MIX.read_bytes())
    k = 1200
    offset = cap.records[k][0]
    corrupt = bytearray(raw)
    corrupt[offset + 8 : offset + 12] = b"\xff\xff\xff\xff"
    prefix = write_capture(tmp_path / "prefix.pcap", bytes(raw[:offset]))
    linktype = bytearray(raw)
    linktype[20:24] = struct.pack("<I", 147)
    return {
        "corrupt": (write_capture(tmp_path / "corrupt.pcap", bytes(corrupt)), offset, prefix),
        "text": (write_capture(tmp_path / "notes.pcap", b"this is a text file, not a capture\n" * 20), 0, None),
        "empty": (write_capture(tmp_path / "empty.pcap", b""), None, None),
        "linktype": (write_capture(tmp_path / "dlt147.pcap", bytes(linktype)), None, None),
        "missing": (tmp_path / "does_not_exist.pcap", None, None),
    }


@pytest.mark.parametrize("kind", ["corrupt", "text", "empty", "linktype", "missing"])
def test_input_errors_are_one_line_exit_3_and_keep_other_results(tmp_path, kind, cli, flows_of):
    path, offset, prefix = _bad_inputs(tmp_path)[kind]
    demo_flows = flows_of(DEMO)
    result = cli(path, DEMO, "--report", "flows", "--json", status=3)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if str(path) in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("tcpflow-audit: error: "), errors[0]
    if offset is not None:
        assert f"at byte {offset}" in errors[0], errors[0]
    flows = flow_keys(result.stdout)
    # the good file's flows are all there
    assert set(demo_flows) <= set(flows)
    if prefix is not None:
        # everything before the corrupt record is kept, exactly as in the file cut there
        assert flows == sorted(demo_flows + flows_of(prefix))
    else:
        assert flows == demo_flows


# ------------------------------------------------------------------ 6. malformed packets
def test_malformed_packets_are_counted_by_reason_and_skipped(tmp_path, cli, flows_of):
    cap = Pcap.load(DEMO)
    assert cap.linktype == 1
    records = list(cap.records)
    ip = 14

    def replace(i, frame):
        offset, header, _ = records[i]
        sec, usec, _, _ = struct.unpack("<IIII", header)
        records[i] = (offset, struct.pack("<IIII", sec, usec, len(frame), len(frame)), bytes(frame))

    # a copy of packet 3 cut inside its IP header, packet 5 with IHL 3, packet 7 with TCP data offset 3;
    # the damaged packets are extra copies so the good packets (and flows) are unchanged
    damaged = []
    frame = records[3][2][: ip + 12]
    damaged.append((3, frame))
    frame = bytearray(records[5][2])
    frame[ip] = 0x43
    damaged.append((5, bytes(frame)))
    frame = bytearray(records[7][2])
    tcp = ip + (frame[ip] & 0x0F) * 4
    frame[tcp + 12] = 0x30 | frame[tcp + 12] & 0x0F
    damaged.append((7, bytes(frame)))
    out = []
    for i, record in enumerate(records):
        out.append(record)
        for j, frame in damaged:
            if j == i:
                sec, usec, _, _ = struct.unpack("<IIII", record[1])
                out.append((0, struct.pack("<IIII", sec, usec, len(frame), len(frame)), frame))
    path = write_capture(tmp_path / "malformed.pcap", cap.build(out))
    report = json.loads(cli(path, "--report", "all", "--json").stdout)
    skipped = report["summary"]["skipped_packets"]
    assert sum(skipped.values()) == 3, skipped
    assert skipped.get("truncated_ip") == 1, skipped
    assert skipped.get("bad_ip_header") == 1, skipped
    assert skipped.get("bad_tcp_offset") == 1, skipped
    assert report["summary"]["packets_read"] == len(out)
    assert flows_of(path) == flows_of(DEMO)


# ------------------------------------------------------------------ 7. outputs
def test_outputs_atomic_directory_csv_excel_and_formula_guard(tmp_path, cli):
    from tcpflow_audit import report
    from tcpflow_audit.outputs import OutputFile

    out = tmp_path / "out.csv"
    out.write_text("previous,content\n1,2\n")
    # a usage error after the options were parsed: the previous file stays
    cli(DEMO, "--report", "all", "--csv", "-o", out, status=2)
    assert out.read_text() == "previous,content\n1,2\n"
    # a failure in the middle of writing: the previous file stays, no partial file behind
    with pytest.raises(RuntimeError):
        with OutputFile(str(out)).writing() as stream:
            stream.write("half,a,row")
            raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt):
        with OutputFile(str(out)).writing(bom=True) as stream:
            stream.write("half,a,row")
            raise KeyboardInterrupt
    assert out.read_text() == "previous,content\n1,2\n"
    no_partial_files(tmp_path)
    # a successful run replaces it
    cli(DEMO, "--report", "flows", "--csv", "-o", out)
    assert out.read_text(encoding="utf-8").startswith("start,start_epoch,")
    no_partial_files(tmp_path)

    # --output-dir: the set's files; CSV UTF-8 with a header row and ISO 8601 + epoch times
    outdir = tmp_path / "report"
    cli(SYN_FLOOD, DEMO, "--output-dir", outdir)
    assert sorted(os.listdir(outdir)) == ["anomalies.csv", "flows.csv", "summary.json"]
    raw = (outdir / "flows.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    assert rows and list(rows[0])[:5] == ["start", "start_epoch", "end", "end_epoch", "duration_s"]
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    for row in rows:
        assert iso.match(row["start"]) and iso.match(row["end"]), row
        assert re.match(r"^\d+\.\d{6}$", row["start_epoch"]), row
        parsed = datetime.strptime(row["start"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs(parsed.timestamp() - float(row["start_epoch"])) < 1e-6
    anomalies = list(csv.DictReader(io.StringIO((outdir / "anomalies.csv").read_text("utf-8"))))
    assert any(a["kind"] == "syn_flood" for a in anomalies)
    summary = json.loads((outdir / "summary.json").read_text("utf-8"))
    assert summary["connections"] == len(rows)
    assert not [p for p in os.listdir(outdir) if p.endswith(".partial") or p.startswith(".")]

    # --excel: a BOM, same content
    excel_dir = tmp_path / "excel"
    cli(SYN_FLOOD, DEMO, "--output-dir", excel_dir, "--excel")
    excel = (excel_dir / "flows.csv").read_bytes()
    assert excel.startswith(b"\xef\xbb\xbf") and excel[3:] == raw
    single = tmp_path / "flows_excel.csv"
    cli(DEMO, "--report", "flows", "--csv", "--excel", "-o", single)
    assert single.read_bytes().startswith(b"\xef\xbb\xbfstart,")

    # formula-injection guard
    assert report.spreadsheet_safe("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert report.spreadsheet_safe("=cmd") == "'=cmd"
    assert report.spreadsheet_safe("+1+1") == "'+1+1"
    assert report.spreadsheet_safe("@SUM(A1)") == "'@SUM(A1)"
    assert report.spreadsheet_safe("-1.5") == "-1.5"
    assert report.spreadsheet_safe(-1.5) == -1.5
    assert report.spreadsheet_safe("10.99.0.1") == "10.99.0.1"


# ------------------------------------------------------------------ 8. exit status
def test_exit_status_with_fail_on(cli):
    plain = cli(SYN_FLOOD, "--report", "anomalies", "--json")
    severities = {a["severity"] for a in json.loads(plain.stdout)["anomalies"]}
    assert severities & {"warning", "critical"}
    cli(SYN_FLOOD, "--fail-on", "warning", "-q", status=1)
    cli(SYN_FLOOD, "--fail-on", "info", "-q", status=1)
    cli(NORMAL_MIX, "--fail-on", "info", "-q", status=0)
    for bad in (
        ["--no-such-option"],
        ["--fail-on", "bogus"],
        ["--port", "70000"],
        ["--since", "yesterday"],
        ["--net", "10.0.0.0/99"],
        [],
    ):
        cli(*([SYN_FLOOD] if bad else []), *bad, status=2)


@pytest.mark.parametrize(
    "settings, message",
    [
        ('msl = "abc"', "engine setting msl must be a number of seconds"),
        ("max_connections = 0", "engine setting max_connections must be a whole number of at least 1"),
        ("[engine]\ninactivity_timeout = -1", "engine setting inactivity_timeout must be a number of seconds"),
        ("verify_checksums = 1", "engine setting verify_checksums must be true or false"),
    ],
)
def test_a_bad_engine_setting_in_the_config_file_is_a_usage_error(tmp_path, cli, settings, message):
    config = tmp_path / "audit.toml"
    config.write_text(settings + "\n")
    result = cli(NORMAL_MIX, "--config", config, status=2)
    assert message in result.stderr and str(config) in result.stderr


def test_an_engine_option_out_of_range_is_a_usage_error(cli):
    result = cli(NORMAL_MIX, "--msl", "-1", status=2)
    assert "--msl" in result.stderr and "not negative" in result.stderr
    assert '"msl": 45.0' in cli("--msl", "45", "--show-config").stdout


def test_a_reader_that_leaves_early_ends_the_run_as_sigpipe_would():
    # `tcpflow-audit ... | head -1`: no error message and the status of a program SIGPIPE ended (141),
    # never 1, which --fail-on gives to findings
    for args in (["--report", "flows", "--csv"], ["--report", "all", "--json"]):
        process = subprocess.Popen(
            cli_command(SYN_FLOOD, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
        )
        assert process.stdout is not None and process.stdout.readline()
        process.stdout.close()
        _, stderr = process.communicate(timeout=120)
        assert (process.returncode, stderr) == (141, b""), stderr


# ------------------------------------------------------------------ 9. SYN flood memory
def _write_syn_flood(path: Path, count: int = 200_000, seconds: float = 20.0) -> None:
    rng = random.Random(2026)
    eth = bytes.fromhex("0200000000020200000000010800")
    server = bytes([10, 99, 0, 2])
    pack_rec = struct.Struct("<IIII").pack
    pack_ip_tcp = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH").pack
    start = 1_800_000_000
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(count):
        t = i * seconds / count
        usec = int(t * 1e6)
        src = rng.getrandbits(32).to_bytes(4, "big")
        frame = eth + pack_ip_tcp(
            0x45,
            0,
            40,
            i & 0xFFFF,
            0,
            64,
            6,
            0,
            src,
            server,
            1024 + (i % 60000),
            80,
            rng.getrandbits(32),
            0,
            0x50,
            0x02,
            64240,
            0,
            0,
        )
        chunks.append(pack_rec(start + usec // 1_000_000, usec % 1_000_000, 54, 54) + frame)
    path.write_bytes(b"".join(chunks))


def _peak_rss_run(*args) -> dict:
    """Run the CLI in a wrapper process that reports the CLI's exit status, output and peak RSS
    (the peak of a fresh process: the test's own process has read other captures before)."""
    wrapper = textwrap.dedent("""
        import json, resource, subprocess, sys
        r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr, "rss_kib": peak_kib}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *cli_command(*args)], capture_output=True, text=True, timeout=180, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    assert child["rc"] == 0, child["stderr"]
    assert "Traceback" not in child["stderr"]
    return child


def test_syn_flood_memory_is_bounded(tmp_path):
    path = tmp_path / "flood.pcap"
    _write_syn_flood(path)
    child = _peak_rss_run(path, "--max-connections", "20000", "--report", "summary", "--json", "-q")
    report = json.loads(child["stdout"])
    summary = report["summary"]
    assert summary["packets_read"] == 200_000
    assert summary["evicted_connections"] > 0 or summary["peak_live_connections"] <= 20000
    assert summary["peak_live_connections"] <= 20000 + 1
    floods = [a for a in report["anomalies"] if a["kind"] == "syn_flood"]
    assert any(a["server_ip"] == "10.99.0.2" and a["server_port"] == 80 for a in floods), report["anomalies"][:3]
    assert child["rss_kib"] < 400 * 1024, f"peak RSS {child['rss_kib'] / 1024:.0f} MB"

    # the JSON report of every flow is written as connections finish: it holds none of the 200,000
    # rows (holding them cost ~240 MB more than the summary run), so it needs no more memory than the summary
    summary_rss = child["rss_kib"]
    out = tmp_path / "all.json"
    child = _peak_rss_run(path, "--max-connections", "20000", "--report", "all", "--json", "-q", "-o", out)
    assert child["rss_kib"] < summary_rss + 64 * 1024, (
        f"peak RSS {child['rss_kib'] / 1024:.0f} MB, summary only {summary_rss / 1024:.0f} MB"
    )
    # the file is complete: 200,000 flow objects, then the anomalies, then the summary (parsed from the
    # tail, so this test does not load the 150 MB document itself)
    with open(out, encoding="utf-8") as handle:
        assert handle.readline() == "{\n" and handle.readline() == '  "flows": [\n'
        flows = 0
        for line in handle:
            if line == "  ],\n":  # the end of the flows array
                break
            flows += line == "    {\n"
    assert flows == 200_000
    text = out.read_bytes()
    tail = text[text.rindex(b'\n  "summary": ') + len(b'\n  "summary": ') :]
    assert text.endswith(b"\n}\n")
    assert json.loads(tail[:-3]) == summary  # the same run, so the same summary
