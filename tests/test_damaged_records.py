"""Reading on past a classic pcap record whose header has a damaged field but whose framing is intact.

The captures are sample_pcaps/demo.pcap (83 packets, 9 connections) with bytes edited: a
sub-second field out of range, a captured length over the snap length or over the original length.
When the record's length is plausible and the next record header is too, the reader keeps the
record and reads on, with one warning per file (the first such record's offset, and how many there
were), counted in the summary's input problems, exit status 0. When what follows the record cannot
be a record header, the framing is lost: reading stops there, an error, exit status 3, as for every
other corrupt record.
"""

from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path

import pytest
from conftest import sample, write_capture

from tcpflow_audit.capture import CaptureReader, RecordBlock

DEMO = sample("demo.pcap").read_bytes()


def offsets(data: bytes) -> list[int]:
    """Where each record header of a little-endian classic pcap starts."""
    found, pos = [], 24
    while pos < len(data):
        found.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return found


AT = offsets(DEMO)
assert len(AT) == 83


def edited(tmp_path: Path, data: bytes | bytearray, name: str = "damaged.pcap") -> Path:
    return write_capture(tmp_path / name, bytes(data))


def set_field(data: bytearray, record: int, field: int, value: int) -> None:
    """Field 0 seconds, 1 microseconds, 2 captured length, 3 original length of a record header."""
    struct.pack_into("<I", data, AT[record] + 4 * field, value)


def summary_of(cli, path: Path, *args: str, status: int = 0) -> tuple[dict, str]:
    result = cli(path, "--report", "summary", "--format", "json", *args, status=status)
    return json.loads(result.stdout)["summary"], result.stderr


def test_sub_second_field_out_of_range_is_read_on(cli, tmp_path: Path):
    data = bytearray(DEMO)
    set_field(data, 5, 1, 1_011_041)  # the value of a real damaged capture
    path = edited(tmp_path, data)
    summary, stderr = summary_of(cli, path)
    message = (
        f"{path} at byte {AT[5]}: damaged record header: sub-second field 1011041 is out of range for "
        f"microseconds; its length and the next record header are plausible: read on"
    )
    assert stderr == f"tcpflow-audit: warning: {message}\n"
    assert summary["input_problems"] == [message]
    assert summary["packets_read"] == 83 and summary["tcp_packets"] == 83 and summary["connections"] == 9
    # the flows are the undamaged file's (the record's time is 1.011041 s past its second, as tshark reads it)
    flows = cli(path, "--report", "flows", "--format", "csv").stdout
    original = cli(sample("demo.pcap"), "--report", "flows", "--format", "csv").stdout
    states = [(r["client_port"], r["conn_state"], r["history"]) for r in csv.DictReader(io.StringIO(flows))]
    assert states == [(r["client_port"], r["conn_state"], r["history"]) for r in csv.DictReader(io.StringIO(original))]
    # --strict: a warning about the input is an input error
    summary_of(cli, path, "--strict", status=3)


def test_captured_length_over_the_snap_length_is_read_on(cli, tmp_path: Path):
    """A 65,549-byte record in a file whose snap length is 65,535 (tshark reads it whole)."""
    data = bytearray(DEMO[: AT[10]])
    struct.pack_into("<I", data, 16, 65535)  # the file's snap length
    sec, usec, caplen, _ = struct.unpack_from("<IIII", DEMO, AT[10])
    frame = DEMO[AT[10] + 16 : AT[10] + 16 + caplen] + b"\0" * (65549 - caplen)  # Ethernet padding
    data += struct.pack("<IIII", sec, usec, 65549, 65549) + frame + DEMO[AT[11] :]
    path = edited(tmp_path, data)
    summary, stderr = summary_of(cli, path)
    assert stderr == (
        f"tcpflow-audit: warning: {path} at byte {AT[10]}: damaged record header: captured length 65549 is "
        f"over the snap length 65535; its length and the next record header are plausible: read on\n"
    )
    assert summary["packets_read"] == 83 and summary["tcp_packets"] == 83 and len(summary["input_problems"]) == 1


def test_one_warning_counts_every_damaged_record(cli, tmp_path: Path):
    data = bytearray(DEMO)
    set_field(data, 3, 1, 1_653_292)
    set_field(data, 40, 3, struct.unpack_from("<I", DEMO, AT[40] + 8)[0] - 1)  # original length under captured
    set_field(data, 82, 1, 2_000_000)  # the last record: it ends where the file does
    path = edited(tmp_path, data)
    summary, stderr = summary_of(cli, path)
    assert summary["input_problems"] == [
        f"{path} at byte {AT[3]}: damaged record header: sub-second field 1653292 is out of range for "
        f"microseconds; its length and the next record header are plausible: read on "
        f"(3 damaged records in all, this the first)"
    ]
    assert len(stderr.splitlines()) == 1
    assert summary["packets_read"] == 83 and summary["tcp_packets"] == 83


def test_the_fast_lane_and_the_record_loop_read_on_alike(tmp_path: Path):
    data = bytearray(DEMO)
    for record in (7, 8, 50):
        set_field(data, record, 1, 1_000_000 + record)
    path = edited(tmp_path, data)
    records = list(CaptureReader(str(path)))
    assert len(records) == 83 and records[7][0] == pytest.approx(struct.unpack_from("<I", DEMO, AT[7])[0] + 1.000007)
    blocks = CaptureReader(str(path))
    count = sum(item.count if isinstance(item, RecordBlock) else 1 for item in blocks.blocks())
    assert count == 83
    assert [(p.kind, p.offset, p.fatal) for p in blocks.problems] == [("damaged_record", AT[7], False)]


@pytest.mark.parametrize("field,value", [(1, 1_011_041), (2, 1600), (3, 10)])
def test_a_record_followed_by_no_record_header_stops_reading(cli, tmp_path: Path, field: int, value: int):
    """Damage whose framing cannot be confirmed loses data: an error, exit status 3, as before."""
    data = bytearray(DEMO)
    set_field(data, 20, field, value)
    data[AT[21] : AT[21] + 16] = b"\xff" * 16  # whatever follows record 20 is no record header
    if field == 2:  # a captured length changed (under 262,144): it ends inside another record
        data = bytearray(DEMO)
        struct.pack_into("<I", data, 16, 1514)  # the snap length
        set_field(data, 20, 2, value)
    path = edited(tmp_path, data)
    summary, stderr = summary_of(cli, path, status=3)
    assert len(summary["input_problems"]) == 1
    assert stderr.startswith(f"tcpflow-audit: error: {path} at byte {AT[20]}: corrupt record header: ")
    assert summary["packets_read"] == 20  # the records before it


def test_a_captured_length_no_tool_writes_stops_reading(cli, tmp_path: Path):
    data = bytearray(DEMO)
    set_field(data, 20, 2, 300_000)
    summary, stderr = summary_of(cli, edited(tmp_path, data), status=3)
    assert "captured length 300000 is over 262144" in stderr and summary["packets_read"] == 20


def test_what_a_plausible_record_header_is():
    from tcpflow_audit.capture import _plausible_record_header

    sec = struct.unpack_from("<I", DEMO, AT[30])[0]
    assert _plausible_record_header(DEMO, AT[30], True, sec - 5, -1)
    assert _plausible_record_header(DEMO, AT[30], True, -1, sec + 86400)
    assert not _plausible_record_header(DEMO, AT[30], True, sec - 86401, sec + 86401)  # a time far away
    assert not _plausible_record_header(DEMO, AT[30], False, sec, sec)  # the wrong byte order
    assert not _plausible_record_header(bytes(16), 0, True, 0, 0)  # zeros
    header = struct.pack("<IIII", sec, 0, 70, 2_000_000)  # an original length over 1 MiB
    assert not _plausible_record_header(header, 0, True, sec, sec)


def test_a_tcp_header_longer_than_its_segment_is_read_with_its_fixed_header(cli, tmp_path: Path):
    """Two segments whose data offset claims 60 bytes of header (the segments hold 32, by the IP
    length): counted in their connection with their fixed header, as tshark counts them, and one
    warning names them (bad_tcp_header_len); exit status 0, 3 with --strict."""
    data = bytearray(DEMO)
    for i in (4, 8):  # (frames 5 and 9: ACKs, 32 bytes of header with timestamps)
        frame = AT[i] + 16
        tcp = frame + 14 + (data[frame + 14] & 0x0F) * 4
        assert (data[tcp + 12] >> 4) * 4 == 32 and struct.unpack_from("!H", data, frame + 16)[0] == 52
        data[tcp + 12] = 0xF0 | data[tcp + 12] & 0x0F
    path = write_capture(tmp_path / "long_header.pcap", bytes(data))

    def flows(*args: str, status: int = 0) -> tuple[list[dict[str, str]], str]:
        run = cli(path, "--report", "flows", "--format", "csv", *args, status=status)
        return list(csv.DictReader(io.StringIO(run.stdout))), run.stderr

    plain, _ = flows("-q")
    got, stderr = flows()
    want, _ = flows_of_demo(cli)
    assert [(r["client_packets"], r["server_packets"], r["history"]) for r in got] == [
        (r["client_packets"], r["server_packets"], r["history"]) for r in want
    ]
    assert got == plain
    (line,) = [line for line in stderr.splitlines() if "data offset" in line]
    assert line.startswith(f"tcpflow-audit: warning: {path}: 2 TCP segments whose data offset claims a header")
    assert "counted with the fixed 20-byte header" in line
    flows("--strict", status=3)
    summary = json.loads(cli(path, "--report", "summary", "--format", "json", "-q").stdout)
    summary = summary.get("summary", summary)
    assert summary["tcp_packets"] == 83 and summary["skipped_packets"] == {}
    assert [p for p in summary["input_problems"] if "data offset" in p]


def flows_of_demo(cli) -> tuple[list[dict[str, str]], str]:
    run = cli(sample("demo.pcap"), "--report", "flows", "--format", "csv", "-q")
    return list(csv.DictReader(io.StringIO(run.stdout))), run.stderr
