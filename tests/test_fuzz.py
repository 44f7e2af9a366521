"""Fuzzing the reader + decoder + tracker in process (hypothesis).

Inputs: random bytes, and mutations of valid captures (classic pcap from sample_pcaps/demo.pcap and
a pcapng built from the same packets): bit flips, truncations, 32-bit fields set to 0, 0xFFFFFFFF,
0x7FFFFFFF and other extremes. Properties: no exception escapes `Auditor.run`; every complete record
before the first damaged byte is still read; memory stays bounded (tracemalloc peak); the fast lane
and the record loop give the same records, problems and flows.

CI runs 200 examples per test; a long run:
    TCPFLOW_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q tests/test_fuzz.py
"""

from __future__ import annotations

import io
import os
import struct
import tracemalloc

from capture_helpers import Pcap, epb, idb, shb
from conftest import sample
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpflow_audit.config import EngineConfig
from tcpflow_audit.pipeline import Auditor
from tcpflow_audit.report import flow_row

EXAMPLES = int(os.environ.get("TCPFLOW_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MEMORY_LIMIT = 64 << 20   # bytes traced at peak for one run over a < 20 kB input

PCAP = sample("demo.pcap").read_bytes()
PCAP_RECORDS = Pcap(PCAP).records   # (offset, record header, frame)


def _pcapng_of(records: list[tuple[int, bytes, bytes]]) -> tuple[bytes, list[int]]:
    """The records as a pcapng (microsecond stamps) and where each of its blocks ends."""
    out = bytearray(shb() + idb(1, snaplen=65535))
    ends = []
    for _, header, frame in records:
        sec, usec = struct.unpack_from("<II", header)
        out += epb(0, sec * 1_000_000 + usec, frame)
        ends.append(len(out))
    return bytes(out), ends


PCAPNG, PCAPNG_ENDS = _pcapng_of(PCAP_RECORDS)
PCAP_ENDS = [offset + len(header) + len(frame) for offset, header, frame in PCAP_RECORDS]
VALID = {"pcap": (PCAP, PCAP_ENDS), "pcapng": (PCAPNG, PCAPNG_ENDS)}
EXTREMES = (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFF, 0x10000, 262144, 262145, 16 << 20, 12, 3)


def audit_bytes(data: bytes):
    """Run the whole engine on `data` as a BytesIO; returns (stats, traced peak bytes).

    Every example is also a differential check: the fast lane (the compiled build's default) and
    the record loop must read the same records, hit the same problem and give the same flows."""
    tracemalloc.start()
    try:
        auditor = Auditor(EngineConfig(), fast_lane=True)
        flows = []
        auditor.add_flow_sink(flows.append)
        stats = auditor.run([io.BytesIO(data)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stats.connections == len(flows)
    record_loop = Auditor(EngineConfig(), fast_lane=False)
    loop_flows = []
    record_loop.add_flow_sink(loop_flows.append)
    loop_stats = record_loop.run([io.BytesIO(data)])
    assert _outcome(loop_stats, loop_flows) == _outcome(stats, flows)
    return stats, peak


def _outcome(stats, flows) -> tuple:
    return ((stats.packets_read, stats.tcp_packets, stats.first_ts, stats.last_ts, dict(stats.skipped),
             stats.connections, stats.peak_live_connections),
            [(p.kind, p.offset, p.message, p.fatal) for p in stats.problems],
            [flow_row(flow) for flow in flows])


def complete_before(ends: list[int], damaged_at: int) -> int:
    """Records that end at or before the first damaged byte (a record's header starts after the
    previous one ends, so these records are entirely undamaged)."""
    return sum(1 for end in ends if end <= damaged_at)


def test_undamaged_captures_read_whole():
    for data, ends in VALID.values():
        stats, _ = audit_bytes(data)
        assert stats.packets_read == len(ends)
        assert not stats.problems
        assert stats.connections == 9


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    stats, peak = audit_bytes(data)
    assert peak < MEMORY_LIMIT
    assert stats.problems or stats.packets_read == 0 or data[:4] in (
        b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
        b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34", b"\x0a\x0d\x0d\x0a")


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.binary(min_size=0, max_size=64))
def test_valid_header_then_random_records(kind, tail):
    data, ends = VALID[kind]
    head = data[:ends[2]]
    stats, peak = audit_bytes(head + tail)
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
    stats, peak = audit_bytes(bytes(mutated))
    assert peak < MEMORY_LIMIT
    assert stats.packets_read >= complete_before(ends, min(positions) // 8)


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_truncations(kind, draw):
    data, ends = VALID[kind]
    cut = draw.draw(st.integers(0, len(data)))
    stats, peak = audit_bytes(data[:cut])
    assert peak < MEMORY_LIMIT
    expected = complete_before(ends, cut)
    assert stats.packets_read == expected
    if cut == 0:
        assert [p.kind for p in stats.problems] == ["empty"]


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_length_and_header_fields_set_to_extremes(kind, draw):
    data, ends = VALID[kind]
    mutated = bytearray(data)
    changes = draw.draw(st.lists(st.tuples(st.integers(0, (len(data) - 4) // 4), st.sampled_from(EXTREMES),
                                           st.sampled_from("<>")), min_size=1, max_size=4))
    if draw.draw(st.booleans()):
        # aim at a record/block header: the word right after a record ends (a length field or block type)
        target = draw.draw(st.sampled_from([24, *ends[:-1]] if kind == "pcap" else [0, *ends[:-1]]))
        word = draw.draw(st.integers(0, 5))
        changes.append(((target + 4 * word) // 4, draw.draw(st.sampled_from(EXTREMES)), "<"))
    first = len(data)
    for index, value, order in changes:
        position = index * 4
        new = struct.pack(order + "I", value)
        if mutated[position:position + 4] != new:
            first = min(first, position)
        mutated[position:position + 4] = new
    stats, peak = audit_bytes(bytes(mutated))
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
    stats, peak = audit_bytes(bytes(mutated))
    assert peak < MEMORY_LIMIT
    assert stats.packets_read == len(PCAP_ENDS)
    assert not stats.problems
