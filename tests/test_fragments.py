"""TCP's own IP fragments: put back together into one segment, or read from the first fragment alone.

Kernel-made: tcp_fragments.pcap and tcp_fragments_port80.pcap (sample_pcaps/make_fragments.py: a
router in network namespaces fragments TCP segments sent with DF clear; the second capture is
filtered by port, so it holds the first fragments only). Crafted here: fragments out of order,
over IPv6, overlapping, and hostile ones.
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import sample

from tcpflow_audit import audit
from tcpflow_audit.capture import CaptureReader
from tcpflow_audit.connection import FlowRecord
from tcpflow_audit.decode import (
    DST_IP,
    PAYLOAD_LEN,
    SEQ,
    SRC_IP,
    SUPPORTED_LINKTYPES,
    Decoder,
    format_ip,
    segment_pair,
)
from tcpflow_audit.pipeline import Auditor

CLIENT, SERVER = "10.77.1.1", "10.77.2.2"


def payload_bytes(path) -> Counter[str]:
    """TCP payload bytes per sender, as the decoder reads the capture (reassembled where it can)."""
    decoder = Decoder()
    sent: Counter[str] = Counter()
    for ts, linktype, frame in CaptureReader(str(path), supported_linktypes=SUPPORTED_LINKTYPES):
        segment = decoder.decode(linktype, frame, ts)
        for _, held, _ in decoder.take_released(ts, -1 if segment is None else segment_pair(segment)):
            sent[format_ip(held[SRC_IP])] += held[PAYLOAD_LEN]
        if segment is not None:
            sent[format_ip(segment[SRC_IP])] += segment[PAYLOAD_LEN]
    for _, held, _ in decoder.take_released(math.inf, -1):
        sent[format_ip(held[SRC_IP])] += held[PAYLOAD_LEN]
    return sent


def test_kernel_fragments_are_one_segment_each() -> None:
    path = sample("tcp_fragments.pcap")
    result = audit(str(path))
    (flow,) = result.flows.to_dict("records")
    assert (flow["client_ip"], flow["server_ip"], flow["conn_state"], flow["history"]) == (
        CLIENT,
        SERVER,
        "SF",
        "ShADadFf",
    )
    # two 1448-byte segments came in three fragments each: one packet each, nothing missed
    assert (flow["client_packets"], flow["server_packets"], flow["client_bytes"], flow["server_bytes"]) == (
        8,
        6,
        3000,
        5000,
    )
    assert flow["missed_bytes"] == 0 and result.anomalies.empty
    assert result.summary["skipped_packets"] == {"ip_fragment": 4}
    assert result.summary["tcp_packets"] == 14 and result.summary["fragments_incomplete"] == 0
    assert payload_bytes(path) == {CLIENT: 3000, SERVER: 5000}


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_kernel_fragments_agree_with_tshark_reassembly() -> None:
    path = sample("tcp_fragments.pcap")
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-o",
            "ip.defragment:TRUE",
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.len",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    tshark: Counter[str] = Counter()
    frames: Counter[str] = Counter()
    for line in out.splitlines():
        src, length = line.split("\t")
        tshark[src] += int(length)
        frames[src] += 1
    assert payload_bytes(path) == tshark
    (flow,) = audit(str(path)).flows.to_dict("records")
    assert (flow["client_packets"], flow["server_packets"]) == (frames[CLIENT], frames[SERVER])


def test_first_fragments_alone_under_a_port_filter() -> None:
    """`tcpdump tcp port 80` keeps first fragments only: each is read alone, before the next segment
    of its connection (the server's ACK of it), with its own time."""
    result = audit(str(sample("tcp_fragments_port80.pcap")))
    (flow,) = result.flows.to_dict("records")
    assert (flow["conn_state"], flow["history"], flow["client_packets"], flow["server_packets"]) == (
        "SF",
        "ShADadFf",
        8,
        6,
    )
    # the first fragments' 520 bytes each of 1448: the rest was acknowledged, never captured
    assert flow["missed_bytes"] == 2 * (1448 - 520)
    assert list(result.anomalies["kind"]) == ["capture_gap"]
    assert result.summary["fragments_incomplete"] == 2 and result.summary["skipped_packets"] == {}
    assert result.summary["tcp_packets"] == 14
    assert payload_bytes(sample("tcp_fragments_port80.pcap")) == {CLIENT: 3000 - 2 * 928, SERVER: 5000}


# -- crafted ----------------------------------------------------------------------------------------

SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SRC6, DST6 = bytes.fromhex("fd000000000000000000000000000001"), bytes.fromhex("fd000000000000000000000000000002")


def tcp_segment(payload: bytes, seq: int = 1000, flags: int = 0x18) -> bytes:
    return struct.pack("!HHIIBBHHH", 40000, 80, seq, 1, 5 << 4, flags, 1000, 0, 0) + payload


def ip4_fragment(data: bytes, offset: int, more: bool, ident: int = 7) -> bytes:
    field = offset >> 3 | (0x2000 if more else 0)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident, field, 64, 6, 0, SRC4, DST4) + data


def ip6_fragment(data: bytes, offset: int, more: bool, ident: int = 7) -> bytes:
    fragment = struct.pack("!BBHI", 6, 0, offset | more, ident)
    return struct.pack("!IHBB16s16s", 6 << 28, 8 + len(data), 44, 64, SRC6, DST6) + fragment + data


def pieces(segment: bytes, cuts: list[tuple[int, int]]) -> list[tuple[bytes, int, bool]]:
    return [(segment[a:b], a, b < len(segment)) for a, b in cuts]


@pytest.mark.parametrize("linktype,fragment", [(228, ip4_fragment), (229, ip6_fragment)])
def test_fragments_in_any_order_give_one_whole_segment(linktype, fragment) -> None:
    segment = tcp_segment(b"x" * 3000)
    parts = pieces(segment, [(0, 1000), (1000, 2000), (2000, len(segment))])
    for order in ((0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0)):
        decoder = Decoder()
        got = [decoder.decode(linktype, fragment(*parts[i]), 1.0 + i / 1000) for i in order]
        assert got[:2] == [None, None]
        assert got[2] is not None and got[2][PAYLOAD_LEN] == 3000 and got[2][SEQ] == 1000
        assert decoder.skipped == {"ip_fragment": 2}
        assert not decoder.fragments.pending and not decoder.fragments.held
        assert decoder.take_released(math.inf, -1) == [] and not decoder.holding


def test_overlapping_and_repeated_fragments() -> None:
    segment = tcp_segment(bytes(range(256)) * 8)
    decoder = Decoder()
    parts = pieces(segment, [(0, 1000), (0, 1000), (800, 1600), (1200, len(segment))])
    got = [decoder.decode(228, ip4_fragment(*part), 1.0) for part in parts]
    assert got[:3] == [None, None, None]
    assert got[3] is not None and got[3][PAYLOAD_LEN] == len(segment) - 20
    assert decoder.skipped == {"ip_fragment": 3} and not decoder.fragments.pending


def test_a_segment_of_the_connection_releases_its_held_first_fragment() -> None:
    decoder = Decoder()
    first = ip4_fragment(tcp_segment(b"x" * 1000)[:520], 0, True)
    assert decoder.decode(228, first, 1.0) is None and decoder.holding
    ack = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 9, 0, 64, 6, 0, DST4, SRC4)
    ack += struct.pack("!HHIIBBHHH", 80, 40000, 1, 1500, 5 << 4, 0x10, 1000, 0, 0)
    reply = decoder.decode(228, ack, 1.001)
    assert reply is not None
    other_connection = segment_pair((SRC4, 40001, DST4, 80))
    assert decoder.take_released(1.001, other_connection) == []
    ((ts, held, tunnel),) = decoder.take_released(1.001, segment_pair(reply))
    assert (ts, held[PAYLOAD_LEN], held[DST_IP], tunnel) == (1.0, 500, DST4, "")
    assert decoder.fragments_incomplete == 1 and not decoder.fragments.pending and not decoder.holding


def test_hostile_fragments_stay_bounded() -> None:
    decoder = Decoder()
    data = tcp_segment(b"y" * 1000)
    released = 0
    # first fragments whose rest never comes, each of its own datagram, all at once
    for ident in range(5000):
        assert decoder.decode(228, ip4_fragment(data, 0, True, ident), 1.0) is None
        released += len(decoder.take_released(1.0, -1))
        assert len(decoder.fragments.pending) <= 1024 and decoder.fragments.size <= 8 << 20
    released += len(decoder.take_released(math.inf, -1))
    assert released == 5000 == decoder.fragments_incomplete and not decoder.skipped
    # a datagram past 65,535 bytes, zero-length and tiny fragments, a TCP header cut by the fragmenting
    frames = [
        ip4_fragment(b"z" * 100, 65528, False, 1),
        ip4_fragment(b"", 0, True, 2),
        ip4_fragment(b"", 8, False, 2),
        ip4_fragment(data[:8], 0, True, 3),  # the TCP header in two fragments: only the whole is read
        ip4_fragment(data[8:], 8, False, 3),
        ip6_fragment(data[:16], 0, True, 4),
        ip6_fragment(data[16:], 16, False, 4),
    ]
    got = [decoder.decode(linktype, frame, 2.0) for linktype, frame in zip([228] * 5 + [229] * 2, frames, strict=True)]
    assert got[:2] == [None, None] and got[3] is None and got[5] is None
    assert got[2] is None  # the empty datagram holds no TCP header
    assert got[4] is not None and got[4][PAYLOAD_LEN] == 1000
    assert got[6] is not None and got[6][PAYLOAD_LEN] == 1000
    assert "malformed" not in decoder.skipped and decoder.take_released(math.inf, -1) == []


def test_the_summary_table_counts_first_fragments_read_alone(cli) -> None:
    lines = cli(sample("tcp_fragments_port80.pcap"), "--width", "0").stdout.splitlines()
    assert ["TCP", "first", "fragments", "read", "alone", "2"] in [line.split() for line in lines]
    plain = cli(sample("tcp_fragments.pcap"), "--width", "0").stdout
    assert "read alone" not in plain and "skipped: ip_fragment  4" in plain


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("linktype,fragment", [(228, ip4_fragment), (229, ip6_fragment)])
def test_crafted_fragments_out_of_order_agree_with_tshark(tmp_path, linktype, fragment) -> None:
    """Two segments, each in three fragments sent last first, and one whose rest is missing."""
    from capture_helpers import pcap_file

    records = []
    for n, ident in enumerate((1, 2)):
        segment = tcp_segment(bytes([n]) * 2500, seq=1000 + 2500 * n)
        parts = pieces(segment, [(0, 800), (800, 1600), (1600, len(segment))])
        records += [(100 + n, i * 10, fragment(*parts[i], ident=ident)) for i in (2, 0, 1)]
    lonely = tcp_segment(b"z" * 2000, seq=6000)
    records.append((110, 0, fragment(lonely[:1000], 0, True, ident=3)))
    path = tmp_path / "fragments.pcap"
    path.write_bytes(pcap_file(records, network=linktype))

    def tshark(defragment: str, *fields: str) -> list[str]:
        command = [
            "tshark",
            "-r",
            str(path),
            "-o",
            f"ip.defragment:{defragment}",
            "-o",
            f"ipv6.defragment:{defragment}",
        ]
        run = subprocess.run(
            [*command, "-Y", "tcp", "-T", "fields", *(arg for field in fields for arg in ("-e", field))],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return run.stdout.split()

    # reassembling (its default), tshark reads the two whole segments, and the lonely first fragment as
    # no TCP at all; not reassembling, it reads that one as TCP (with 980 bytes of payload), as we do
    assert tshark("TRUE", "tcp.len") == ["2500", "2500"]
    assert tshark("FALSE", "frame.number", "tcp.seq_raw")[-2:] == ["7", "6000"]
    assert sum(payload_bytes(path).values()) == 2500 + 2500 + 980
    result = audit(str(path))
    assert result.summary["tcp_packets"] == 3 and result.summary["fragments_incomplete"] == 1
    assert result.summary["skipped_packets"] == {"ip_fragment": 4}


def test_a_whole_datagram_checksum_is_verified() -> None:
    """--verify-checksums: the kernel-made segments put back together have good TCP checksums (tshark
    agrees); a byte changed in a middle fragment makes its segment's checksum bad."""
    from tcpflow_audit.decode import CHECKSUM_OK

    records = list(CaptureReader(str(sample("tcp_fragments.pcap")), supported_linktypes=SUPPORTED_LINKTYPES))
    for damage in (False, True):
        decoder = Decoder(verify_checksums=True)
        whole = []
        for ts, linktype, frame in records:
            if damage and len(frame) == 586 and frame[14 + 6 : 14 + 8] != b"\x20\x00":  # a middle fragment
                frame = frame[:100] + bytes([frame[100] ^ 0xFF]) + frame[101:]
            segment = decoder.decode(linktype, frame, ts)
            if segment is not None and segment[PAYLOAD_LEN] == 1448:
                whole.append(segment[CHECKSUM_OK])
        assert whole == ([False, False] if damage else [True, True])


@pytest.mark.parametrize("linktype,fragment", [(228, ip4_fragment), (229, ip6_fragment)])
def test_a_held_first_fragment_reaches_the_tracker_before_its_connections_next_segment(
    tmp_path, linktype, fragment
) -> None:
    """The peer's ACK (decoded in place, on the fast lane) comes half a second after a lonely first
    fragment: the fragment is read first, so it starts the connection, at its own time."""
    from capture_helpers import pcap_file

    if linktype == 228:
        ack = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 9, 0, 64, 6, 0, DST4, SRC4)
    else:
        ack = struct.pack("!IHBB16s16s", 6 << 28, 20, 6, 64, DST6, SRC6)
    ack += struct.pack("!HHIIBBHHH", 80, 40000, 1, 1000 + 2000, 5 << 4, 0x10, 1000, 0, 0)
    records = [(100, 0, fragment(tcp_segment(b"x" * 2000)[:1000], 0, True)), (100, 500000, ack)]
    path = tmp_path / "held.pcap"
    path.write_bytes(pcap_file(records, network=linktype))
    result = audit(str(path))
    (flow,) = result.flows.to_dict("records")
    assert flow["start"] == "1970-01-01T00:01:40.000000Z" and flow["client_port"] == 40000
    assert (flow["client_packets"], flow["server_packets"]) == (1, 1)
    assert result.summary["fragments_incomplete"] == 1 and result.summary["tcp_packets"] == 2


def test_ctrl_c_after_the_last_block_still_reads_the_held_first_fragment(tmp_path, monkeypatch) -> None:
    """Ctrl-C as the reader finishes (the report still covers what was read): a first fragment waiting
    for the rest of its datagram is read alone, as at the end of the input, not left counted as a
    skipped ip_fragment."""
    from capture_helpers import pcap_file

    records = [(100, 0, ip4_fragment(tcp_segment(b"x" * 2000)[:1000], 0, True))]
    path = tmp_path / "lone.pcap"
    path.write_bytes(pcap_file(records, network=228))
    whole = Auditor().run([str(path)])
    assert (whole.interrupted, whole.fragments_incomplete, whole.tcp_packets) == (False, 1, 1)

    blocks = CaptureReader.blocks

    def blocks_then_ctrl_c(reader: CaptureReader) -> Iterator[Any]:
        yield from blocks(reader)
        raise KeyboardInterrupt

    monkeypatch.setattr(CaptureReader, "blocks", blocks_then_ctrl_c)
    auditor = Auditor()
    flows: list[FlowRecord] = []
    auditor.add_flow_sink(flows.append)
    stats = auditor.run([str(path)])
    assert (stats.interrupted, stats.fragments_incomplete, stats.tcp_packets) == (True, 1, 1)
    assert not stats.skipped and [(f.client_port, f.client_packets) for f in flows] == [(40000, 1)]
    # when an interrupted run writes nothing (the CLI's output files), it stops at once: nothing read alone
    auditor = Auditor()
    auditor.finalise_when_interrupted = False
    stats = auditor.run([str(path)])
    assert (stats.interrupted, stats.fragments_incomplete, stats.skipped) == (True, 0, {"ip_fragment": 1})
