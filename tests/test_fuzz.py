"""Fuzzing the reader + decoder + tracker in process, and the command line on files (hypothesis).

Inputs: random bytes, and mutations of valid captures (classic pcap from sample_pcaps/demo.pcap and
a pcapng built from the same packets): bit flips, truncations, 32-bit fields set to 0, 0xFFFFFFFF,
0x7FFFFFFF and other extremes. Properties: no exception escapes `Auditor.run`; every complete record
before the first damaged byte is still read; a file cut short gives exactly the flows of its intact
prefix; one flipped bit that loses packets is an input error (only a classic pcap's last record can
lose its packet to a warning: nothing follows it to show the damage); memory stays bounded
(tracemalloc peak); the fast lane and the record loop give the same records, problems and flows.
The command line, run on mutants written to files: no traceback, an exit status in {0, 1, 3} (3
exactly when an input error is reported), every error line naming the file, and a cut-short file
exiting 0 with one warning and the flows of its intact prefix.

CI runs 200 examples per in-process test and 50 of the command-line test (a few seconds in all); a long run:
    TCPFLOW_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q tests/test_fuzz.py
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import traceback
import tracemalloc

from capture_helpers import Pcap, pcapng_from_pcap
from click.testing import CliRunner
from conftest import sample
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpflow_audit.cli import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, main
from tcpflow_audit.config import EngineConfig
from tcpflow_audit.pipeline import Auditor
from tcpflow_audit.report import flow_row

EXAMPLES = int(os.environ.get("TCPFLOW_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
# a command-line run costs a few milliseconds, several times an in-process one
CLI_FUZZ = settings(FUZZ, max_examples=max(EXAMPLES // 4, 5))
MEMORY_LIMIT = 64 << 20  # bytes traced at peak for one run over a < 20 kB input

PCAP = sample("demo.pcap").read_bytes()
PCAP_RECORDS = Pcap(PCAP).records  # (offset, record header, frame)


PCAPNG, PCAPNG_ENDS = pcapng_from_pcap(PCAP)
PCAP_ENDS = [offset + len(header) + len(frame) for offset, header, frame in PCAP_RECORDS]
VALID = {"pcap": (PCAP, PCAP_ENDS), "pcapng": (PCAPNG, PCAPNG_ENDS)}
EXTREMES = (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFF, 0x10000, 262144, 262145, 16 << 20, 12, 3)


def audit_bytes(data: bytes):
    """Run the whole engine on `data` as a BytesIO; returns (stats, traced peak bytes, flows)."""
    tracemalloc.start()
    try:
        auditor = Auditor(EngineConfig())
        flows = []
        auditor.add_flow_sink(flows.append)
        stats = auditor.run([io.BytesIO(data)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stats.connections == len(flows)
    return stats, peak, flows


def complete_before(ends: list[int], damaged_at: int) -> int:
    """Records that end at or before the first damaged byte (a record's header starts after the
    previous one ends, so these records are entirely undamaged)."""
    return sum(1 for end in ends if end <= damaged_at)


def test_undamaged_captures_read_whole():
    for data, ends in VALID.values():
        stats, _, _ = audit_bytes(data)
        assert stats.packets_read == len(ends)
        assert not stats.problems
        assert stats.connections == 9


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    stats, peak, _ = audit_bytes(data)
    assert peak < MEMORY_LIMIT
    assert (
        stats.problems
        or stats.packets_read == 0
        or data[:4]
        in (
            b"\xd4\xc3\xb2\xa1",
            b"\xa1\xb2\xc3\xd4",
            b"\x4d\x3c\xb2\xa1",
            b"\xa1\xb2\x3c\x4d",
            b"\x34\xcd\xb2\xa1",
            b"\xa1\xb2\xcd\x34",
            b"\x0a\x0d\x0d\x0a",
        )
    )


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.binary(min_size=0, max_size=64))
def test_valid_header_then_random_records(kind, tail):
    data, ends = VALID[kind]
    head = data[: ends[2]]
    stats, peak, _ = audit_bytes(head + tail)
    assert peak < MEMORY_LIMIT
    assert stats.packets_read >= 3


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_bit_flips(kind, draw):
    data, ends = VALID[kind]
    positions = draw.draw(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=8))
    mutated = bytearray(data)
    for bit in positions:
        mutated[bit // 8] ^= 1 << (bit % 8)
    stats, peak, _ = audit_bytes(bytes(mutated))
    assert peak < MEMORY_LIMIT
    assert stats.packets_read >= complete_before(ends, min(positions) // 8)


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_truncations(kind, draw):
    data, ends = VALID[kind]
    cut = draw.draw(st.integers(0, len(data)))
    stats, peak, flows = audit_bytes(data[:cut])
    assert peak < MEMORY_LIMIT
    expected = complete_before(ends, cut)
    assert stats.packets_read == expected
    if cut == 0:
        assert [p.kind for p in stats.problems] == ["empty"]
    else:  # a warning at most, and the flows of the intact prefix
        assert all(p.kind == "truncated" and not p.fatal for p in stats.problems)
        prefix_flows = audit_bytes(data[: ends[expected - 1]])[2] if expected else []
        assert [flow_row(f) for f in flows] == [flow_row(f) for f in prefix_flows]


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_a_bit_flip_that_loses_packets_is_an_input_error(kind, draw):
    data, ends = VALID[kind]
    bit = draw.draw(st.integers(0, len(data) * 8 - 1))
    mutated = bytearray(data)
    mutated[bit // 8] ^= 1 << (bit % 8)
    stats, _, _ = audit_bytes(bytes(mutated))
    if stats.packets_read < len(ends) and not stats.input_errors:
        # a classic pcap's last record made longer: the file ends inside it, as a cut-short one does
        assert kind == "pcap" and bit // 8 >= ends[-2], (bit, stats.problems)
        assert [p.kind for p in stats.problems] == ["truncated"]


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_length_and_header_fields_set_to_extremes(kind, draw):
    data, ends = VALID[kind]
    mutated = bytearray(data)
    changes = draw.draw(
        st.lists(
            st.tuples(st.integers(0, (len(data) - 4) // 4), st.sampled_from(EXTREMES), st.sampled_from("<>")),
            min_size=1,
            max_size=4,
        )
    )
    if draw.draw(st.booleans()):
        # aim at a record/block header: the word right after a record ends (a length field or block type)
        target = draw.draw(st.sampled_from([24, *ends[:-1]] if kind == "pcap" else [0, *ends[:-1]]))
        word = draw.draw(st.integers(0, 5))
        changes.append(((target + 4 * word) // 4, draw.draw(st.sampled_from(EXTREMES)), "<"))
    first = len(data)
    for index, value, order in changes:
        position = index * 4
        new = struct.pack(order + "I", value)
        if mutated[position : position + 4] != new:
            first = min(first, position)
        mutated[position : position + 4] = new
    stats, peak, _ = audit_bytes(bytes(mutated))
    assert peak < MEMORY_LIMIT
    assert stats.packets_read >= complete_before(ends, first)


@FUZZ
@given(st.data())
def test_decoder_on_mangled_frames(draw):
    """Damage inside the packets only (record framing intact): every record is read, none raises."""
    mutated = bytearray(PCAP)
    for offset, header, frame in PCAP_RECORDS:
        if frame and draw.draw(st.booleans()):
            position = offset + len(header) + draw.draw(st.integers(0, len(frame) - 1))
            mutated[position] = draw.draw(st.sampled_from([0, 0xFF, 0x40, 0x4F, 0x46, 0x60, 0x0F, 0xF0]))
    stats, peak, _ = audit_bytes(bytes(mutated))
    assert peak < MEMORY_LIMIT
    assert stats.packets_read == len(PCAP_ENDS)
    # the framing is intact: the one problem possible is a warning about a TCP data offset damaged to
    # run past its segment (such a segment is read with its fixed header)
    assert all(p.kind == "bad_tcp_header_len" and not p.fatal for p in stats.problems), stats.problems


def run_cli_on(data: bytes, *args: str) -> tuple[int, list[str], str, str]:
    """The command line on `data` written to a file: (exit status, stderr lines, stdout, the file's name)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "mutant.pcap")
        with open(path, "wb") as handle:
            handle.write(data)
        result = CliRunner().invoke(main, [path, "-q", *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), "".join(
            traceback.format_exception(result.exception)
        )
        return result.exit_code, result.stderr.splitlines(), result.stdout, path


def cli_mutants(draw) -> tuple[bytes, bytes, list[int]]:
    """A valid capture, and a mutant of it: bits flipped, a 32-bit field set to an extreme, cut short."""
    data, ends = VALID[draw.draw(st.sampled_from(sorted(VALID)))]
    mutated = bytearray(data)
    how = draw.draw(st.sampled_from(["flip", "extreme", "cut"]))
    if how == "flip":
        for bit in draw.draw(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=4)):
            mutated[bit // 8] ^= 1 << (bit % 8)
    elif how == "extreme":
        at = draw.draw(st.integers(0, (len(data) - 4) // 4)) * 4
        mutated[at : at + 4] = struct.pack("<I", draw.draw(st.sampled_from(EXTREMES)))
    else:
        del mutated[draw.draw(st.integers(1, len(data) - 1)) :]
    return data, bytes(mutated), ends


@CLI_FUZZ
@given(st.data())
def test_command_line_on_damaged_files(draw):
    data, mutated, ends = cli_mutants(draw)
    status, lines, stdout, path = run_cli_on(mutated, "--report", "flows", "--json", "--fail-on", "warning")
    assert status in (EXIT_OK, EXIT_FINDINGS, EXIT_INPUT)
    errors = [line for line in lines if line.startswith("tcpflow-audit: error: ")]
    assert (status == EXIT_INPUT) == bool(errors)
    assert all(line.startswith(f"tcpflow-audit: error: {path}") for line in errors), lines
    assert len(lines) == len(errors)  # -q: errors only (warnings and notes hidden)
    if len(mutated) < len(data) and data.startswith(mutated):  # cut short: the intact prefix's flows
        assert status != EXIT_INPUT
        intact = max([end for end in ends if end <= len(mutated)], default=0)
        if intact:
            _, _, prefix_stdout, _ = run_cli_on(data[:intact], "--report", "flows", "--json", "--fail-on", "warning")
            assert json.loads(stdout)["flows"] == json.loads(prefix_stdout)["flows"]
