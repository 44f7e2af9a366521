"""The reproductions of issue 17 ("a nightly job can trust it"), as regression tests on real bytes.

Every capture here is a shipped sample (sample_pcaps/) or a mutation of one; the CLI runs as a
child process (`python -m tcpflow_audit`), as a nightly job runs it.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from capture_helpers import pcap_records, pcapng_from_pcap
from conftest import plain_environ

from tcpflow_audit.capture import CaptureReader
from tcpflow_audit.config import EngineConfig
from tcpflow_audit.decode import SUPPORTED_LINKTYPES
from tcpflow_audit.detectors import DetectorSet
from tcpflow_audit.names import shown
from tcpflow_audit.pipeline import Auditor

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
DEMO = SAMPLES / "demo.pcap"  # Ethernet, 83 packets, 9 connections
PCAP = DEMO.read_bytes()
PCAPNG, PCAPNG_ENDS = pcapng_from_pcap(PCAP)
PCAP_ENDS = [offset + 16 + len(frame) for offset, _, _, frame in pcap_records(PCAP)]
PCAPNG_HEADERS = PCAPNG_ENDS[0] - (PCAPNG_ENDS[1] - PCAPNG_ENDS[0])  # the section and interface blocks' length
# each format: the capture, where each packet's record or block ends, and where its file header or other blocks end
FORMATS = {
    "pcap": (PCAP, PCAP_ENDS, [24]),
    "pcapng": (PCAPNG, PCAPNG_ENDS, [struct.unpack_from("<I", PCAPNG, 4)[0], PCAPNG_HEADERS]),
}


def run_cli(*args: str | bytes | Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "tcpflow_audit", *args], capture_output=True, timeout=120, cwd=ROOT, env=plain_environ()
    )
    assert b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    return result


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return result.stderr.decode("utf-8").splitlines()


def read(data: bytes) -> tuple[list, list]:
    reader = CaptureReader(io.BytesIO(data), SUPPORTED_LINKTYPES, name="x")
    return list(reader), reader.problems


# ------------------------------------------------------------------ 3. eviction
def syn_flood(count: int, spacing_us: int, answer_every: int = 0) -> bytes:
    """syn_flood.pcap's first SYN sent `count` times from distinct sources, `spacing_us` apart; every
    `answer_every`-th answered 30 us later by its first SYN-ACK, made to fit (never acknowledged)."""
    data = (SAMPLES / "syn_flood.pcap").read_bytes()
    records = pcap_records(data)
    _, sec, usec, syn = records[0]
    synack = next(frame for *_, frame in records if frame[47] == 0x12)
    out = [data[:24]]
    record = struct.Struct("<IIII").pack
    start = sec * 1_000_000 + usec
    for i in range(count):
        frame = bytearray(syn)
        frame[26:30] = (0x0B000000 + i // 50000).to_bytes(4, "big")  # source address
        frame[34:36] = (1024 + i % 50000).to_bytes(2, "big")  # source port
        t = start + i * spacing_us
        out.append(record(t // 1_000_000, t % 1_000_000, len(frame), len(frame)) + frame)
        if answer_every and i % answer_every == 0:
            reply = bytearray(synack)
            reply[30:34], reply[36:38] = frame[26:30], frame[34:36]
            reply[42:46] = ((int.from_bytes(frame[38:42], "big") + 1) & 0xFFFFFFFF).to_bytes(4, "big")
            t += 30
            out.append(record(t // 1_000_000, t % 1_000_000, len(reply), len(reply)) + reply)
    return b"".join(out)


def test_eviction_costs_the_same_however_many_were_evicted_before():
    """200,000 SYNs: capped at 50,000 connections (150,000 evictions) the run takes no longer than
    uncapped (before, each eviction walked the slots its predecessors left at the front of a dict: 6.7x)."""
    data = syn_flood(200_000, 10)
    seconds = {}
    for cap in (1_000_000, 50_000):
        auditor = Auditor(EngineConfig(max_connections=cap))
        began = time.process_time()
        stats = auditor.run([io.BytesIO(data)])
        seconds[cap] = time.process_time() - began
        assert stats.evicted == 200_000 - min(cap, 200_000)
        assert stats.peak_live_connections == min(cap, 200_000)
    assert seconds[50_000] < 1.5 * seconds[1_000_000], seconds


def test_an_evicted_half_open_connection_is_evidence_of_missing_third_ack_and_syn_flood():
    """20,000 SYNs over 20 s, every 10th answered: capped at 2,000 connections, each waits 2 s before
    it is evicted, less than the 3 s missing_third_ack waits for; the finding still counts it."""
    data = syn_flood(20_000, 1000, answer_every=10)
    findings = {}
    for cap in (1_000_000, 2_000):
        auditor = Auditor(EngineConfig(max_connections=cap))
        detectors = DetectorSet.attach(auditor)
        flows = []
        auditor.add_flow_sink(flows.append)
        stats = auditor.run([io.BytesIO(data)])
        findings[cap] = {f.kind: f.count for f in detectors.finish()}
        evicted_answered = sum(1 for r in flows if r.end_reason == "evicted" and r.facts.synack_ts is not None)
        assert stats.evicted == (18_000 if cap == 2_000 else 0)
        tagged = sum("missing_third_ack" in r.facts.anomalies for r in flows)
        assert tagged == findings[cap]["missing_third_ack"]
        if cap == 2_000:  # every answered connection that was evicted, and none of the 200 live at the end
            assert findings[cap]["missing_third_ack"] == evicted_answered == 1_800
    assert findings[1_000_000]["syn_flood"] == findings[2_000]["syn_flood"] == 20_000
    # uncapped, the attempts time out after 5 s; those answered in the last 3 s are not concluded
    assert 0 < findings[1_000_000]["missing_third_ack"] <= findings[2_000]["missing_third_ack"]


# ------------------------------------------------------------------ 4. corrupt files that exited 0
def test_a_flipped_bit_in_the_section_header_length_is_an_error_also_quiet(tmp_path):
    """The issue's reproduction: demo.pcap as pcapng, 0x04 written into the section header's length."""
    damaged = bytearray(PCAPNG)
    damaged[6] = 0x04  # 28 -> 262172 bytes: within the limits, and past the end of the file
    path = tmp_path / "y.pcapng"
    path.write_bytes(bytes(damaged))
    out = tmp_path / "out"
    result = run_cli(path, "-q", "--output-dir", out)
    assert result.returncode == 3
    [line] = stderr_lines(result)
    assert line.startswith(f"tcpflow-audit: error: {path} at byte 0: corrupt pcapng block: block length 262172 ")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_problems"] == [line.removeprefix("tcpflow-audit: error: ")]
    assert summary["packets_read"] == 0


def test_an_unsupported_link_type_is_an_error_in_pcapng_as_in_pcap(tmp_path):
    ng = tmp_path / "dlt147.pcapng"
    ng.write_bytes(pcapng_from_pcap(PCAP, linktype=147)[0])
    classic = tmp_path / "dlt147.pcap"
    classic.write_bytes(PCAP[:20] + struct.pack("<I", 147) + PCAP[24:])
    for path in (ng, classic):
        out = tmp_path / f"out-{path.suffix}"
        result = run_cli(path, DEMO, "-q", "--output-dir", out)
        assert result.returncode == 3
        [line] = stderr_lines(result)
        assert line.startswith(f"tcpflow-audit: error: {path} at byte ") and "link type 147" in line
        summary = json.loads((out / "summary.json").read_text())
        assert summary["input_problems"] == [line.removeprefix("tcpflow-audit: error: ")]
        assert summary["packets_read"] == 83  # demo.pcap's
    # the pcapng's skipped packets are counted
    assert summary_of(ng)["skipped_packets"] == {"unsupported_linktype": 83}


def summary_of(path: Path) -> dict:
    return json.loads(run_cli(path, "-q", "--report", "summary", "--json").stdout)["summary"]


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_every_framing_bit_flip_that_loses_packets_is_an_error(kind):
    """Every bit of every record's captured length (pcap) and every block's type and length (pcapng)
    flipped in turn: a mutant that yields fewer packets than the intact file gives an input error."""
    data, ends, headers = FORMATS[kind]
    if kind == "pcap":  # each record's captured length; the file's snap length and link type
        fields = [start + 8 for start in [24, *ends[:-1]]] + [16, 20]
    else:  # each block's type and length; the interface's link type
        fields = [start + i for start in [0, *headers, *ends[:-1]] for i in (0, 4)] + [headers[0] + 8]
    silent = []
    for field in fields:
        for bit in range(32):
            mutant = bytearray(data)
            mutant[field + bit // 8] ^= 1 << (bit % 8)
            records, problems = read(bytes(mutant))
            if len(records) < len(ends) and not any(p.fatal for p in problems):
                silent.append((field, bit, [str(p) for p in problems]))
    assert silent == []


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_every_cut_gives_the_intact_prefix_and_one_warning(kind):
    """A capture cut short anywhere (a killed tcpdump) is a warning, never taken for damage."""
    data, ends, headers = FORMATS[kind]
    whole, _ = read(data)
    assert len(whole) == len(ends) == 83
    for cut in range(1, len(data)):
        records, problems = read(data[:cut])
        assert records == whole[: sum(1 for end in ends if end <= cut)], cut
        assert all(p.kind == "truncated" and not p.fatal for p in problems), (cut, problems)
        assert len(problems) == (cut not in ends + headers), cut


# ------------------------------------------------------------------ 6. hostile names
@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("capture 2024-01-01.pcap", "capture 2024-01-01.pcap"),  # spaces: as they are
        ("città_ñandú_東京.pcap", "città_ñandú_東京.pcap"),  # letters of any script: as they are
        ("a\nb.pcap", "a\\nb.pcap"),
        ("a\rb\tc.pcap", "a\\rb\\tc.pcap"),
        ("a\x1b[31mred.pcap", "a\\x1b[31mred.pcap"),
        ("a\x7f\x85b.pcap", "a\\x7f\\x85b.pcap"),
        ("evil\u202egnp.exe", "evil\\u202egnp.exe"),  # a bidi override
        ("a\u2028b\u2066c.pcap", "a\\u2028b\\u2066c.pcap"),
        ("back\\slash.pcap", "back\\\\slash.pcap"),  # so that an escape reads back one way
        (b"caf\xe9.pcap", "caf\\xe9.pcap"),  # Latin-1 bytes: not UTF-8
        (os.fsdecode(b"caf\xe9.pcap"), "caf\\xe9.pcap"),  # the same, as Python carries it
    ],
)
def test_shown_escapes_what_would_break_a_line_and_nothing_else(name, escaped):
    assert shown(name) == escaped
    assert shown(name).isprintable()
    shown(name).encode("utf-8")  # valid UTF-8 (no lone surrogate)


HOSTILE = [
    b"forged\ntcpflow-audit: error: other.pcap: fake.pcap",
    b"cr\rback.pcap",
    b"esc\x1b[2J.pcap",
    "rlo\u202eparc.pcap".encode(),
    b"latin1-\xe9.pcap",
]


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
    lines = stderr_lines(result)  # (decoding as UTF-8 fails on a raw Latin-1 byte)
    errors = [line for line in lines if line.startswith("tcpflow-audit: error: ")]
    assert len(errors) == len(HOSTILE) == len(lines)  # one line each: no name splits or forges one
    for raw in HOSTILE:
        expected = shown(os.path.join(os.fsencode(tmp_path), raw))
        wanted = f"tcpflow-audit: error: {expected} at byte 0: not a pcap"
        assert sum(line.startswith(wanted) for line in errors) == 1, expected
    assert all(line.isprintable() for line in lines)
    summary_bytes = (out / "summary.json").read_bytes()
    summary = json.loads(summary_bytes.decode("utf-8"))  # valid UTF-8: no lone surrogates
    assert "\\udc" not in summary_bytes.decode("utf-8")
    assert summary["files"][0] == shown(good)
    assert sorted(summary["input_problems"]) == sorted(line.removeprefix("tcpflow-audit: error: ") for line in errors)
    # the summary table on standard output
    table = run_cli(good, "-q")
    assert table.returncode == 0
    text = table.stdout.decode("utf-8")
    assert f"files         {shown(good)}\n" in text and "good\nname" not in text


# ------------------------------------------------------------------ 5. directories
@pytest.mark.parametrize(
    ("name", "capture"),
    [
        ("a.pcap", True),
        ("a.PCAPNG", True),
        ("a.cap", True),
        ("a.pcap0", True),
        ("a.pcap12", True),
        ("a.pcap.1", True),
        ("a.pcap.gz", True),
        ("a.pcapng.bz2", True),
        ("a.pcap.3.xz", True),
        ("a.cap1.gz", True),
        ("README", False),
        ("a.pcap.txt", False),
        ("a.pcap.md5", False),
        ("capture", False),
        ("a.gz", False),
        ("a.pcapx", False),
        ("pcap", False),
    ],
)
def test_capture_names(name, capture):
    from tcpflow_audit.inputs import CAPTURE_NAME

    assert (CAPTURE_NAME.search(name) is not None) == capture


def test_directory_inputs_report_unreadable_captures_and_count_what_they_pass_over(tmp_path):
    import gzip

    demo = DEMO.read_bytes()
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "a.pcap").write_bytes(demo)
    (d / "b.pcap").write_bytes(b"")  # zero-length
    (d / "c.pcap").write_bytes(bytes(4096))  # zeroed
    (d / "sub" / "rot.pcap.1").write_bytes(demo[:24])  # a header and no packet: read, not an error
    (d / "sub" / "old.pcap.gz").write_bytes(gzip.compress(b"GET / HTTP/1.1\r\n" * 8))  # not a capture inside
    (d / "sub" / "by_content").write_bytes(demo)  # a capture by its magic number, not its name
    (d / "README").write_text("captures of the night\n")
    (d / ".partial.pcap").write_bytes(demo[:1000])  # hidden: passed over
    damaged = [d / "b.pcap", d / "c.pcap", d / "sub" / "old.pcap.gz"]

    for quiet in ((), ("-q",)):
        result = run_cli(d, *quiet, "--output-dir", tmp_path / "out")
        assert result.returncode == 3
        lines = stderr_lines(result)
        errors = [line for line in lines if line.startswith("tcpflow-audit: error: ")]
        assert len(errors) == len(damaged)
        for path in damaged:
            assert sum(f"error: {path} at byte 0: " in line for line in errors) == 1, (path, errors)
        notes = [line for line in lines if "passed over" in line]
        assert notes == (
            [] if quiet else [f"tcpflow-audit: {d}: 2 files passed over (neither named nor made like a capture)"]
        )
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["files_passed_over"] == 2
        assert sorted(summary["input_problems"]) == sorted(
            line.removeprefix("tcpflow-audit: error: ") for line in errors
        )
        assert summary["packets_read"] == 2 * 83
        assert len(summary["files"]) == 6

    # the same files named one by one are the same errors
    named = run_cli(*damaged, d / "a.pcap", "-q")
    assert named.returncode == 3
    assert sorted(line for line in stderr_lines(named)) == sorted(errors)
    # the summary table says what was passed over and how many problems there were
    table = run_cli(d).stdout.decode()
    assert "files passed over  2 (in directories; not captures)" in table
    assert "input problems     3" in table
