"""Tests for tcpflow_audit.capture: formats, compression, streams, and every kind of bad input."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import sys
import threading
import zlib

import pytest
from capture_helpers import (
    PCAP_MAGIC_MODIFIED,
    PCAP_MAGIC_NSEC,
    PCAP_MAGIC_USEC,
    block,
    epb,
    exact_ts,
    frame_bytes,
    idb,
    obsolete_pb,
    pcap_file,
    pcap_header,
    shb,
    spb,
)
from conftest import write_capture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpflow_audit.capture import CaptureReader
from tcpflow_audit.errors import PROBLEM_KINDS

KINDS = PROBLEM_KINDS

USEC_RECORDS = [
    (1_700_000_000, 0, frame_bytes(0)),
    (1_700_000_000, 999_999, frame_bytes(1, 54)),
    (1_700_000_001, 123_457, frame_bytes(2, 1514)),
    (4_000_000_000, 1, frame_bytes(3, 1)),  # seconds above 2**31: the field is unsigned
]
NSEC_RECORDS = [
    (1_700_000_000, 0, frame_bytes(0)),
    (1_700_000_000, 999_999_999, frame_bytes(1, 54)),
    (1_700_000_002, 123_456_789, frame_bytes(2, 1514)),
]


def read_all(source, **kwargs) -> tuple[list[tuple[float, int, bytes]], CaptureReader]:
    reader = CaptureReader(source, **kwargs)
    with reader:
        records = list(reader)
    return records, reader


def pcap_offsets(records: list[tuple[int, int, bytes]], header_len: int = 16) -> list[int]:
    """Offset after each record of a classic pcap file."""
    offsets, pos = [], 24
    for _sec, _frac, frame in records:
        pos += header_len + len(frame)
        offsets.append(pos)
    return offsets


def collect_with_offsets(reader: CaptureReader) -> list[tuple[float, int, bytes, int, int]]:
    return [(ts, lt, frame, reader.offset, reader.packets) for ts, lt, frame in reader]


# --------------------------------------------------------------------------- classic pcap


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(
    "magic, records, units, fmt",
    [
        (PCAP_MAGIC_USEC, USEC_RECORDS, 10**6, "pcap"),
        (PCAP_MAGIC_NSEC, NSEC_RECORDS, 10**9, "pcap-nsec"),
        (PCAP_MAGIC_MODIFIED, USEC_RECORDS, 10**6, "pcap-modified"),
    ],
)
def test_classic_pcap_records_timestamps_and_offsets(tmp_path, order, magic, records, units, fmt):
    data = pcap_file(records, order=order, magic=magic, network=1)
    path = write_capture(tmp_path / "a.cap", data)
    reader = CaptureReader(path)
    got = collect_with_offsets(reader)
    header_len = 24 if magic == PCAP_MAGIC_MODIFIED else 16
    expected_offsets = pcap_offsets(records, header_len)
    assert [(ts, lt, frame) for ts, lt, frame, _, _ in got] == [
        (exact_ts(sec * units + frac, units), 1, frame) for sec, frac, frame in records
    ]
    assert [off for *_, off, _ in got] == expected_offsets
    assert [n for *_, n in got] == list(range(1, len(records) + 1))
    assert reader.problems == []
    assert reader.format == fmt
    assert reader.offset == len(data)
    assert reader.size == len(data) == reader.bytes_read
    assert reader.compression is None
    assert reader.snaplen == 65535


def test_pcap_timestamp_is_exact_for_known_values(tmp_path):
    path = write_capture(tmp_path / "a.pcap", pcap_file([(1_700_000_000, 500_000, b"x")]))
    ((ts, _, _),) = read_all(path)[0]
    assert ts == 1_700_000_000.5
    path = write_capture(tmp_path / "b.pcap", pcap_file([(1, 250_000_000, b"x")], magic=PCAP_MAGIC_NSEC, order=">"))
    ((ts, _, _),) = read_all(path)[0]
    assert ts == 1.25


def test_pcap_linktype_masks_fcs_bits(tmp_path):
    network = 105 | 0x04000000 | (2 << 28)  # 802.11 with a 4-byte FCS announced in the upper bits
    records, reader = read_all(write_capture(tmp_path / "fcs.pcap", pcap_file(USEC_RECORDS[:1], network=network)))
    assert [lt for _, lt, _ in records] == [105]
    assert reader.linktype == 105
    assert reader.fcs_len == 4


def test_record_may_straddle_many_small_chunks(tmp_path):
    records = [(10, i, frame_bytes(i, size)) for i, size in enumerate([9000, 1, 200_000, 4096, 4095, 4097, 0])]
    data = pcap_file(records, snaplen=262144)
    got, reader = read_all(write_capture(tmp_path / "big.pcap", data), chunk_size=4096)
    assert [frame for _, _, frame in got] == [frame for _, _, frame in records]
    assert reader.problems == []
    assert reader.offset == len(data)


# --------------------------------------------------------------------------- pcapng


def two_interface_pcapng() -> tuple[bytes, list[tuple[float, int, bytes, int]]]:
    """A pcapng file exercising interfaces, resolutions, offsets, SPB, PB, skipped blocks and sections.

    Returns the file and the expected (ts, linktype, frame, offset-after) of each record.
    """
    parts: list[bytes] = []
    expected: list[tuple[float, int, bytes, int]] = []

    def add(data: bytes, record: tuple[float, int, bytes] | None = None) -> None:
        parts.append(data)
        if record is not None:
            expected.append((*record, sum(map(len, parts))))

    t_us = 1_700_000_000 * 10**6 + 123_456
    t_ns = 1_700_000_000 * 10**9 + 987_654_321
    t_p2 = 1_700_000_003 * 2**20 + 12345
    add(shb())
    add(idb(1, tsresol=6))  # interface 0: Ethernet, microseconds (explicit)
    add(idb(101, tsresol=9, snaplen=0))  # interface 1: raw IP, nanoseconds
    add(idb(113, tsresol=0x80 | 20, tsoffset=-3))  # interface 2: Linux SLL, 2**-20 s, offset -3 s
    add(block(4, b"\x00\x00\x00\x00"))  # name resolution block: skipped
    add(epb(0, t_us, frame_bytes(1, 61)), (exact_ts(t_us, 10**6), 1, frame_bytes(1, 61)))
    add(
        epb(1, t_ns, frame_bytes(2, 40), options=b"\x01\x00\x04\x00abcd\x00\x00\x00\x00"),
        (exact_ts(t_ns, 10**9), 101, frame_bytes(2, 40)),
    )
    add(epb(2, t_p2, frame_bytes(3, 3)), (exact_ts(t_p2 - 3 * 2**20, 2**20), 113, frame_bytes(3, 3)))
    add(block(5, struct.pack("<III", 0, 0, 0)))  # interface statistics block: skipped
    # Simple packet block: interface 0, the previous record's timestamp.
    add(spb(frame_bytes(4, 17)), (exact_ts(t_p2 - 3 * 2**20, 2**20), 1, frame_bytes(4, 17)))
    add(obsolete_pb(1, t_ns + 1, frame_bytes(5, 20)), (exact_ts(t_ns + 1, 10**9), 101, frame_bytes(5, 20)))
    # A second, big-endian section: interfaces start again from 0.
    add(shb(">"))
    add(idb(101, ">", snaplen=8))  # default resolution: microseconds; SPB frames cut at the snap length
    add(epb(0, t_us + 5, frame_bytes(6, 33), ">"), (exact_ts(t_us + 5, 10**6), 101, frame_bytes(6, 33)))
    add(spb(frame_bytes(7, 12), ">"), (exact_ts(t_us + 5, 10**6), 101, frame_bytes(7, 12)[:8]))
    return b"".join(parts), expected


def test_pcapng_interfaces_resolutions_sections_and_offsets(tmp_path):
    data, expected = two_interface_pcapng()
    reader = CaptureReader(write_capture(tmp_path / "multi.pcapng", data))
    got = collect_with_offsets(reader)
    assert [(ts, lt, frame, off) for ts, lt, frame, off, _ in got] == expected
    assert [n for *_, n in got] == list(range(1, len(expected) + 1))
    assert reader.problems == []
    assert reader.format == "pcapng"
    assert reader.offset == len(data)
    assert [(i.section, i.index, i.linktype, i.units_per_second, i.tsoffset) for i in reader.interfaces] == [
        (0, 0, 1, 10**6, 0),
        (0, 1, 101, 10**9, 0),
        (0, 2, 113, 2**20, -3),
        (1, 0, 101, 10**6, 0),
    ]


def test_pcapng_and_pcap_give_identical_timestamps(tmp_path):
    records = [(1_700_000_000 + i, (i * 987_653) % 10**6, frame_bytes(i)) for i in range(200)]
    classic, _ = read_all(write_capture(tmp_path / "a.pcap", pcap_file(records)))
    ng = shb() + idb(1) + b"".join(epb(0, s * 10**6 + us, f) for s, us, f in records)
    nextgen, _ = read_all(write_capture(tmp_path / "a.pcapng", ng))
    assert classic == nextgen
    assert len(classic) == 200


def test_pcapng_unsupported_interface_is_skipped_with_one_error(tmp_path):
    head = shb() + idb(1)
    bad_idb_offset = len(head)
    first_skipped = bad_idb_offset + len(idb(147))
    data = head + idb(147) + idb(148) + epb(1, 5, b"skip") + epb(0, 7, b"keep") + epb(1, 9, b"skip2")
    first_skipped += len(idb(148))
    records, reader = read_all(write_capture(tmp_path / "u.pcapng", data), supported_linktypes={1, 101})
    assert records == [(exact_ts(7, 10**6), 1, b"keep")]
    assert reader.skipped_unsupported == 2
    assert [i.skipped for i in reader.interfaces] == [0, 2, 0]  # interface 2 (148) carries no packet: no problem
    # an input error (the file is not read whole), reported once, at the first packet skipped
    assert [(p.kind, p.offset, p.fatal) for p in reader.problems] == [("unknown_linktype", first_skipped, True)]
    assert "link type 147" in reader.problems[0].message
    assert f"declared at byte {bad_idb_offset}" in reader.problems[0].message


def test_pcapng_spb_before_any_timestamp_gets_zero(tmp_path):
    data = shb() + idb(1) + spb(b"abc")
    records, reader = read_all(write_capture(tmp_path / "s.pcapng", data))
    assert records == [(0.0, 1, b"abc")]
    assert reader.problems == []


# --------------------------------------------------------------------------- compression and streams


COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_compressed_files_are_detected_by_content(tmp_path, kind, fmt):
    plain = pcap_file(USEC_RECORDS) if fmt == "pcap" else two_interface_pcapng()[0]
    expected, _ = read_all(write_capture(tmp_path / "plain", plain))
    packed = COMPRESSORS[kind](plain)
    path = write_capture(tmp_path / "misleading.pcap", packed)  # the name says nothing about compression
    records, reader = read_all(path)
    assert records == expected
    assert len(records) >= 4
    assert reader.compression == kind
    assert reader.problems == []
    assert reader.offset == len(plain)
    assert reader.size == len(packed) == reader.bytes_read


def test_concatenated_gzip_members_are_one_stream(tmp_path):
    plain = pcap_file(USEC_RECORDS)
    packed = gzip.compress(plain[:50]) + gzip.compress(plain[50:]) + b"\0" * 8
    records, reader = read_all(write_capture(tmp_path / "cat.gz", packed))
    assert [f for _, _, f in records] == [f for _, _, f in USEC_RECORDS]
    assert reader.problems == []


def test_large_compressed_file_with_small_chunks(tmp_path):
    records = [(1_000 + i, i % 10**6, frame_bytes(i, 40 + i % 1500)) for i in range(3000)]
    plain = pcap_file(records)
    got, reader = read_all(write_capture(tmp_path / "big.xz", lzma.compress(plain)), chunk_size=4096)
    assert [f for _, _, f in got] == [f for _, _, f in records]
    assert reader.problems == [] and reader.offset == len(plain)


def pipe_of(data: bytes):
    """A non-seekable binary stream fed by a thread."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as out:
            out.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return os.fdopen(read_fd, "rb")


@pytest.mark.parametrize("compress", [None, "gzip", "bzip2", "xz"])
def test_pipe_input(compress):
    plain = pcap_file(USEC_RECORDS)
    data = plain if compress is None else COMPRESSORS[compress](plain)
    with pipe_of(data) as stream:
        records, reader = read_all(stream, name="pipe")
    assert [(lt, f) for _, lt, f in records] == [(1, f) for _, _, f in USEC_RECORDS]
    assert reader.size is None
    assert reader.bytes_read == len(data)
    assert reader.compression == compress
    assert reader.name == "pipe"


def test_dash_reads_stdin(monkeypatch):
    plain = pcap_file(USEC_RECORDS)
    stream = pipe_of(gzip.compress(plain))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))
    records, reader = read_all("-")
    assert [f for _, _, f in records] == [f for _, _, f in USEC_RECORDS]
    assert reader.name == "<stdin>"
    assert reader.size is None
    assert not stream.closed  # stdin is not ours to close
    stream.close()


def test_bytesio_source():
    data, expected = two_interface_pcapng()
    records, reader = read_all(io.BytesIO(data))
    assert [(ts, lt, f) for ts, lt, f, _ in expected] == records
    assert reader.name == "<stream>"


# --------------------------------------------------------------------------- first_timestamp


def test_first_timestamp_from_path_does_not_disturb_iteration(tmp_path):
    data = pcap_file(USEC_RECORDS)
    reader = CaptureReader(write_capture(tmp_path / "a.pcap", data))
    assert reader.first_timestamp() == 1_700_000_000.0
    assert reader.packets == 0
    records = list(reader)
    assert len(records) == len(USEC_RECORDS)
    assert reader.first_timestamp() == 1_700_000_000.0


def test_first_timestamp_from_stream_replays_the_first_record():
    data = pcap_file(USEC_RECORDS)
    reader = CaptureReader(io.BytesIO(gzip.compress(data)))
    assert reader.first_timestamp() == 1_700_000_000.0
    assert reader.packets == 0
    got = collect_with_offsets(reader)
    assert [f for _, _, f, _, _ in got] == [f for _, _, f in USEC_RECORDS]
    assert [off for *_, off, _ in got] == pcap_offsets(USEC_RECORDS)
    assert [n for *_, n in got] == [1, 2, 3, 4]


def test_first_timestamp_of_bad_or_empty_file(tmp_path):
    reader = CaptureReader(write_capture(tmp_path / "e.pcap", b""))
    assert reader.first_timestamp() is None
    assert reader.problems == []  # the peek records nothing; iteration does, once
    assert list(reader) == []
    assert [p.kind for p in reader.problems] == ["empty"]
    assert CaptureReader(write_capture(tmp_path / "h.pcap", pcap_header())).first_timestamp() is None


# --------------------------------------------------------------------------- bad input


def only_problem(reader: CaptureReader):
    assert len(reader.problems) == 1, reader.problems
    return reader.problems[0]


def test_empty_file(tmp_path):
    records, reader = read_all(write_capture(tmp_path / "e.pcap", b""))
    problem = only_problem(reader)
    assert records == []
    assert (problem.kind, problem.offset, problem.fatal) == ("empty", 0, True)
    assert problem.path.endswith("e.pcap")


def test_empty_after_decompression(tmp_path):
    records, reader = read_all(write_capture(tmp_path / "e.gz", gzip.compress(b"")))
    assert records == [] and only_problem(reader).kind == "empty"
    assert "gzip" in only_problem(reader).message


@pytest.mark.parametrize("data", [b"hello, this is text\n", b"ab", b"\x28\xb5\x2f\xfd" + b"\0" * 30])
def test_not_a_capture(tmp_path, data):
    records, reader = read_all(write_capture(tmp_path / "x.pcap", data))
    problem = only_problem(reader)
    assert records == []
    assert (problem.kind, problem.offset, problem.fatal) == ("not_a_capture", 0, True)
    assert "\n" not in problem.message


def test_not_a_capture_inside_gzip(tmp_path):
    records, reader = read_all(write_capture(tmp_path / "x.gz", gzip.compress(b"just some text, no capture")))
    assert records == []
    assert only_problem(reader).kind == "not_a_capture"
    assert "gzip" in only_problem(reader).message


def test_missing_file_is_unreadable_at_construction(tmp_path):
    reader = CaptureReader(str(tmp_path / "nope.pcap"))
    problem = only_problem(reader)
    assert (problem.kind, problem.offset, problem.fatal) == ("unreadable", None, True)
    assert list(reader) == []
    assert len(reader.problems) == 1
    assert reader.first_timestamp() is None


def test_directory_is_unreadable(tmp_path):
    records, reader = read_all(str(tmp_path))
    assert records == [] and only_problem(reader).kind == "unreadable"
    assert reader.size is None


@pytest.mark.parametrize("cut", [1, 10, 16 + 1513, 16 + 1514 + 5])
def test_truncated_pcap_keeps_complete_records(tmp_path, cut):
    data = pcap_file(USEC_RECORDS[:3])
    third = pcap_offsets(USEC_RECORDS[:3])[1]
    data = data[: third + cut] if cut < 16 + 1514 else data + b"\x00" * 5  # a partial 4th header
    records, reader = read_all(write_capture(tmp_path / "t.pcap", data))
    problem = only_problem(reader)
    complete = 3 if cut >= 16 + 1514 else 2
    assert [f for _, _, f in records] == [f for _, _, f in USEC_RECORDS[:complete]]
    expected_offset = pcap_offsets(USEC_RECORDS[:3])[complete - 1]
    assert (problem.kind, problem.offset, problem.fatal) == ("truncated", expected_offset, False)
    assert reader.offset == expected_offset


@pytest.mark.parametrize("length", [4, 10, 23])
def test_truncated_global_header(tmp_path, length):
    records, reader = read_all(write_capture(tmp_path / "t.pcap", pcap_header()[:length]))
    problem = only_problem(reader)
    assert records == [] and (problem.kind, problem.offset, problem.fatal) == ("truncated", 0, False)


def test_header_only_pcap_is_fine(tmp_path):
    records, reader = read_all(write_capture(tmp_path / "h.pcap", pcap_header()))
    assert records == [] and reader.problems == []


@pytest.mark.parametrize(
    "order, magic, snaplen, sec, frac, caplen, wirelen, needle",
    [
        ("<", PCAP_MAGIC_USEC, 0, 1, 0, 262145, 262145, "262144"),
        (">", PCAP_MAGIC_USEC, 65535, 1, 0, 65536, 65536, "snap length"),
        ("<", PCAP_MAGIC_USEC, 65535, 1, 0, 60, 59, "original length"),
        ("<", PCAP_MAGIC_USEC, 65535, 1, 1_000_000, 60, 60, "microseconds"),
        (">", PCAP_MAGIC_NSEC, 65535, 1, 1_000_000_000, 60, 60, "nanoseconds"),
    ],
)
def test_corrupt_record_header(tmp_path, order, magic, snaplen, sec, frac, caplen, wirelen, needle):
    good = [(5, 6, frame_bytes(1))]
    data = pcap_file(good, order=order, magic=magic, snaplen=snaplen)
    bad_offset = len(data)
    data += struct.pack(order + "IIII", sec, frac, caplen, wirelen) + b"\0" * min(caplen, 70000)
    data += b"\xff" * 16  # no record header can follow it: the framing is lost (tests/test_damaged_records.py)
    records, reader = read_all(write_capture(tmp_path / "c.pcap", data))
    problem = only_problem(reader)
    assert [f for _, _, f in records] == [frame_bytes(1)]
    assert (problem.kind, problem.offset, problem.fatal) == ("corrupt_record", bad_offset, True)
    assert needle in problem.message


def test_nanosecond_field_below_limit_is_fine(tmp_path):
    data = pcap_file([(0, 999_999_999, b"z")], magic=PCAP_MAGIC_NSEC)
    records, reader = read_all(write_capture(tmp_path / "n.pcap", data))
    assert reader.problems == [] and records == [(exact_ts(999_999_999, 10**9), 1, b"z")]


def test_unknown_linktype_classic(tmp_path):
    records, reader = read_all(
        write_capture(tmp_path / "l.pcap", pcap_file(USEC_RECORDS, network=147)),
        supported_linktypes=frozenset({1, 101, 113}),
    )
    problem = only_problem(reader)
    assert records == []
    assert (problem.kind, problem.offset, problem.fatal) == ("unknown_linktype", 20, True)


def pcapng_with_bad_block(bad: bytes) -> tuple[bytes, int]:
    good = shb() + idb(1) + epb(0, 1_000_000, b"good")
    return good + bad + epb(0, 2_000_000, b"never"), len(good)


@pytest.mark.parametrize(
    "bad",
    [
        struct.pack("<II", 6, 8) + b"\0" * 4,  # total length < 12
        struct.pack("<II", 6, 14) + b"\0" * 6,  # not a multiple of 4
        struct.pack("<II", 6, 16) + b"\0" * 4 + struct.pack("<I", 20),  # trailing length differs
        struct.pack("<II", 6, (16 << 20) + 4) + b"\0" * 8,  # over 16 MiB
        epb(3, 5, b"undeclared interface"),
        block(6, struct.pack("<IIIII", 0, 0, 0, 100, 100) + b"\0" * 8),  # caplen overruns the block
        block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 40)),  # option overruns the IDB
    ],
)
def test_corrupt_pcapng_block(tmp_path, bad):
    data, bad_offset = pcapng_with_bad_block(bad)
    records, reader = read_all(write_capture(tmp_path / "b.pcapng", data))
    problem = only_problem(reader)
    assert records == [(1.0, 1, b"good")]
    assert (problem.kind, problem.offset, problem.fatal) == ("corrupt_block", bad_offset, True)
    assert reader.offset == bad_offset


def test_new_section_forgets_interfaces(tmp_path):
    data = shb() + idb(1) + idb(1) + shb(">") + idb(1, ">")
    bad_offset = len(data)
    data += epb(1, 5, b"x", ">")
    records, reader = read_all(write_capture(tmp_path / "s.pcapng", data))
    problem = only_problem(reader)
    assert records == [] and (problem.kind, problem.offset) == ("corrupt_block", bad_offset)


def test_truncated_pcapng_block(tmp_path):
    data, _ = two_interface_pcapng()
    cut = len(data) - 10
    records, reader = read_all(write_capture(tmp_path / "t.pcapng", data[:cut]))
    problem = only_problem(reader)
    assert len(records) == 6
    assert (problem.kind, problem.fatal) == ("truncated", False)
    assert problem.offset == reader.offset == len(data) - len(spb(frame_bytes(7, 12), ">"))


def test_truncated_gzip_is_a_truncation_warning(tmp_path):
    plain = pcap_file([(i, i, frame_bytes(i, 300)) for i in range(500)])
    packed = gzip.compress(plain)
    records, reader = read_all(write_capture(tmp_path / "t.gz", packed[: len(packed) // 2]))
    problem = only_problem(reader)
    assert 0 < len(records) < 500
    assert [f for _, _, f in records] == [frame_bytes(i, 300) for i in range(len(records))]
    assert (problem.kind, problem.fatal) == ("truncated", False)
    assert problem.offset == reader.offset == 24 + len(records) * 316
    assert "gzip" in problem.message and "decompressed" in problem.message


def test_gzip_cut_at_record_boundary_still_warns(tmp_path):
    plain = pcap_file(USEC_RECORDS)
    compressor = zlib.compressobj(wbits=31)
    partial = compressor.compress(plain) + compressor.flush(zlib.Z_SYNC_FLUSH)  # no end of stream
    records, reader = read_all(write_capture(tmp_path / "t.gz", partial))
    problem = only_problem(reader)
    assert len(records) == len(USEC_RECORDS)
    assert (problem.kind, problem.offset, problem.fatal) == ("truncated", len(plain), False)


def test_damaged_gzip_member_keeps_the_good_prefix(tmp_path):
    plain = pcap_file(USEC_RECORDS)
    first_member = gzip.compress(plain)
    damaged = bytearray(gzip.compress(b"more data that will never be read" * 10))
    damaged[10] = 0xFF  # first deflate block header: BTYPE 11 is invalid
    records, reader = read_all(write_capture(tmp_path / "d.gz", first_member + bytes(damaged)))
    problem = only_problem(reader)
    assert [f for _, _, f in records] == [f for _, _, f in USEC_RECORDS]
    assert (problem.kind, problem.offset, problem.fatal) == ("decompress", len(plain), True)


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_bad_checksum_is_a_decompress_problem(tmp_path, kind):
    plain = pcap_file(USEC_RECORDS)
    packed = bytearray(COMPRESSORS[kind](plain))
    if kind == "gzip":
        packed[-8] ^= 0xFF  # CRC32 in the trailer
    else:
        lzma_footer = 12 + 8  # stream footer + a little of the index: the check lives just before
        packed[-lzma_footer - 8] ^= 0xFF
    records, reader = read_all(write_capture(tmp_path / "d", bytes(packed)))
    problem = only_problem(reader)
    assert (problem.kind, problem.fatal) == ("decompress", True)
    assert [f for _, _, f in records] == [f for _, _, f in USEC_RECORDS][: len(records)]


def test_garbage_after_gzip_stream(tmp_path):
    plain = pcap_file(USEC_RECORDS)
    records, reader = read_all(write_capture(tmp_path / "g.gz", gzip.compress(plain) + b"garbage!"))
    assert len(records) == len(USEC_RECORDS)
    assert only_problem(reader).kind == "decompress"


def test_damaged_bzip2(tmp_path):
    records, reader = read_all(write_capture(tmp_path / "d.bz2", b"BZh9" + b"\x00" * 40))
    assert records == [] and only_problem(reader).kind == "decompress"


def test_read_error_is_unreadable():
    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = False

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            if not self.sent:
                self.sent = True
                return pcap_file(USEC_RECORDS[:1])
            raise OSError(5, "Input/output error")

    records, reader = read_all(Failing())
    problem = only_problem(reader)
    assert len(records) == 1
    assert (problem.kind, problem.fatal) == ("unreadable", True)
    assert "Input/output error" in problem.message


def test_close_stops_iteration_and_context_manager(tmp_path):
    path = write_capture(tmp_path / "a.pcap", pcap_file(USEC_RECORDS))
    with CaptureReader(path) as reader:
        iterator = iter(reader)
        next(iterator)
    assert list(iterator) == []
    assert list(reader) == []
    assert reader.packets == 1


# --------------------------------------------------------------------------- properties

frames = st.binary(min_size=0, max_size=3000)
records_strategy = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 10**6 - 1), frames), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=records_strategy, chunk=st.integers(4096, 70000), order=st.sampled_from("<>"), ng=st.booleans())
def test_roundtrip_any_chunking(tmp_path, records, chunk, order, ng):
    if ng:
        data = shb(order) + idb(1, order) + b"".join(epb(0, s * 10**6 + us, f, order) for s, us, f in records)
    else:
        data = pcap_file(records, order=order)
    got, reader = read_all(io.BytesIO(data), chunk_size=chunk)
    assert got == [(exact_ts(s * 10**6 + us, 10**6), 1, f) for s, us, f in records]
    assert reader.problems == [] and reader.offset == len(data)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_damaged_input_never_raises(data):
    base = data.draw(
        st.sampled_from(
            [
                pcap_file(USEC_RECORDS[:3]),
                two_interface_pcapng()[0],
                gzip.compress(pcap_file(USEC_RECORDS[:3])),
                bz2.compress(two_interface_pcapng()[0]),
            ]
        )
    )
    blob = bytearray(base)
    for _ in range(data.draw(st.integers(1, 6))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    reader = CaptureReader(io.BytesIO(bytes(blob)), supported_linktypes={1, 113})
    records = list(reader)
    assert all(isinstance(ts, float) and isinstance(lt, int) and isinstance(f, bytes) for ts, lt, f in records)
    assert {p.kind for p in reader.problems} <= KINDS
    # at most one problem ends the reading; the others are interfaces whose packets were skipped
    assert sum(p.fatal and p.kind != "unknown_linktype" for p in reader.problems) <= 1
    assert reader.packets == len(records)


def test_text_stream_is_unreadable_not_a_crash(tmp_path):
    path = write_capture(tmp_path / "a.pcap", b"not really a capture")
    with open(path, encoding="latin-1") as text:
        records, reader = read_all(text)
    assert records == [] and only_problem(reader).kind == "unreadable"


class _ShortReads:
    """A binary stream whose reads return fewer bytes than asked (as a pipe or a socket may): the
    sizes cycle through `sizes`."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.pos, self.calls = data, sizes, 0, 0

    def read(self, n: int = -1) -> bytes:
        size = self.sizes[self.calls % len(self.sizes)]
        self.calls += 1
        piece = self.data[self.pos : self.pos + min(n if n >= 0 else len(self.data), size)]
        self.pos += len(piece)
        return piece


def _reading(source, chunk_size: int, blocks: bool) -> tuple:
    """Everything a reading gives: records (from blocks rebuilt one by one), problems, offset, packets."""
    from tcpflow_audit.capture import RecordBlock
    from tcpflow_audit.fastlane import record_at

    reader = CaptureReader(source, chunk_size=chunk_size, supported_linktypes={1, 113})
    records = []
    with reader:
        for item in reader.blocks() if blocks else reader:
            if isinstance(item, RecordBlock):
                pos = item.start
                while pos < item.end:
                    ts, start, end, pos = record_at(item, pos)
                    records.append((ts, item.linktype, item.buf[start:end]))
            else:
                records.append(item)
    return records, [(p.kind, p.offset, p.message) for p in reader.problems], reader.offset, reader.packets


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1),
            st.integers(0, 10**6 - 1),
            st.integers(0, 9000).map(lambda n: bytes((i * 7 + n) & 0xFF for i in range(n))),
        ),
        min_size=1,
        max_size=30,
    ),
    ng=st.booleans(),
    order=st.sampled_from("<>"),
    cut=st.floats(0.0, 1.0),
    damage=st.booleans(),
    chunk=st.integers(4096, 20000),
    sizes=st.lists(st.integers(1, 9000), min_size=1, max_size=5),
    blocks=st.booleans(),
    data=st.data(),
)
def test_any_chunking_and_short_reads_read_as_one_chunk(records, ng, order, cut, damage, chunk, sizes, blocks, data):
    """Records that straddle chunks are put together from the bytes they lack (the rest of the chunk
    waits for the next call): the records, problems, offsets and counts must be exactly those of
    reading the whole input as one chunk, for intact, cut and damaged input, records or blocks."""
    if ng:
        blob = shb(order) + idb(1, order) + b"".join(epb(0, s * 10**6 + us, f, order) for s, us, f in records)
    else:
        blob = pcap_file(records, order=order)
    blob = bytearray(blob[: max(24, int(len(blob) * cut))] if cut < 0.98 else blob)
    if damage and len(blob) > 24:
        blob[data.draw(st.integers(24, len(blob) - 1))] ^= 0xFF
    blob = bytes(blob)
    whole = _reading(io.BytesIO(blob), len(blob) + 4096, blocks)
    assert _reading(io.BytesIO(blob), chunk, blocks) == whole
    assert _reading(_ShortReads(blob, sizes), chunk, blocks) == whole
