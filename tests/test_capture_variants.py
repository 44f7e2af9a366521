"""The same packets give the same results however they are stored, filtered or split into files.

On generated traffic (bench/gen_capture.py's mix plus the IPv6 sample): every classic-pcap variant,
the link types read in place, pcapng with several interfaces and timestamp resolutions, the same
connections under IPv6 addresses (folding alike in the tracker's index), rotated and overlapping
files, and connections whose segments share the tracker's index keys or `recent` slots all give
the flows, findings and counts of the plain capture; a filter that keeps every packet changes
nothing (frames then go through the general decoder); broken files stop at the right record.
"""

from __future__ import annotations

import heapq
import ipaddress
import random
import struct
from pathlib import Path

import pytest
from capture_helpers import (
    PCAP_MAGIC_MODIFIED,
    PCAP_MAGIC_NSEC,
    PCAP_MAGIC_USEC,
    end_of_options,
    epb,
    idb,
    obsolete_pb,
    option,
    pcap_file,
    shb,
    spb,
)
from conftest import generated_traffic, sample, sample_captures, write_capture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpflow_audit.capture import CaptureReader, RecordBlock
from tcpflow_audit.decode import Decoder, decode_in_place
from tcpflow_audit.detectors import DetectorSet, finding_row
from tcpflow_audit.pipeline import Auditor, PacketFilter
from tcpflow_audit.report import flow_row
from tcpflow_audit.tracker import address_key, fast_key, recent_slot

SAMPLES = sample_captures()


def audit(path: Path | list[Path], packet_filter: PacketFilter | None = None) -> dict:
    auditor = Auditor(packet_filter=packet_filter)
    rows: list[dict] = []
    auditor.add_flow_sink(lambda record: rows.append(flow_row(record)))
    detectors = DetectorSet.attach(auditor)
    stats = auditor.run([str(p) for p in (path if isinstance(path, list) else [path])])
    return {
        "flows": rows,
        "findings": [finding_row(f) for f in detectors.finish()],
        "stats": (
            stats.packets_read,
            stats.tcp_packets,
            stats.first_ts,
            stats.last_ts,
            dict(stats.skipped),
            stats.connections,
            stats.peak_live_connections,
            stats.filtered_out,
        ),
        "problems": [(p.kind, p.offset, p.message, p.fatal) for p in stats.problems],
    }


KEEP_ALL = PacketFilter(nets=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))
"""A filter every packet passes: frames then go through the general decoder, not in place."""


def assert_same_results(path: Path | list[Path], expected: dict | None = None) -> dict:
    """`path`'s results are `expected`'s (those of the same packets stored otherwise), and a filter
    that keeps every packet changes none of them."""
    result = audit(path)
    for other in ([expected] if expected is not None else []) + [audit(path, KEEP_ALL)]:
        for part in ("stats", "problems", "findings", "flows"):
            assert result[part] == other[part], f"{path}: {part} differ"
    return result


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_a_filter_keeping_every_packet_changes_nothing(path: Path) -> None:
    result = assert_same_results(path)
    assert result["flows"], "every sample capture holds at least one connection"


# ---------------------------------------------------------------------------------------------- variants


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, int, bytes]]:
    """(seconds, microseconds, Ethernet frame) of bench/gen_capture.py's traffic mix plus the IPv6 sample."""
    out = generated_traffic(tmp_path_factory.mktemp("lane") / "traffic.pcap", 20000, seed=11, concurrency=100)
    records = []
    for path in (out, sample("ipv6_client_close.pcap")):
        for ts, linktype, frame in CaptureReader(str(path)):
            assert linktype == 1
            micros = round(ts * 1_000_000)
            records.append((micros // 1_000_000, micros % 1_000_000, frame))
    records.sort(key=lambda r: (r[0], r[1]))
    return records


def pcap_of(
    records: list[tuple[int, int, bytes]],
    order: str = "<",
    magic: int = PCAP_MAGIC_USEC,
    network: int = 1,
    snaplen: int = 65535,
) -> bytes:
    """A classic pcap of the (seconds, microseconds, frame) records, in the variant `order` and `magic` give."""
    if magic == PCAP_MAGIC_NSEC:
        records = [(sec, usec * 1000, frame) for sec, usec, frame in records]
    return pcap_file(records, order, magic, snaplen, network)


ARP = bytes.fromhex("ffffffffffff0200000000010806") + bytes(28)


def relinked(records: list[tuple[int, int, bytes]], linktype: int) -> list[tuple[int, int, bytes]]:
    """The same packets behind another link-layer header (frames that are not IP keep their Ethernet
    type word, so the decoder still has to skip them)."""
    out = []
    for sec, frac, frame in records:
        ethertype, payload = frame[12:14], frame[14:]
        if linktype == 113:  # LINUX_SLL: packet type, ARPHRD, address length, address (8), protocol
            frame = struct.pack("!HHH8s", 0, 1, 6, frame[6:12]) + ethertype + payload
        elif linktype == 276:  # LINUX_SLL2: protocol, reserved, ifindex, ARPHRD, packet type, address length, address
            frame = ethertype + struct.pack("!HIHBB8s", 0, 1, 1, 0, 6, frame[6:12]) + payload
        elif linktype == 101:  # raw IP
            frame = payload
        out.append((sec, frac, frame))
    return out


def mixed(records: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Every third IPv4 frame 802.1Q-tagged, ARP frames in between, some frames cut to 40 bytes,
    one IPv4 header with options: all but the VLAN frames leave the in-place decoder."""
    rng = random.Random(5)
    out = []
    for i, (sec, frac, frame) in enumerate(records):
        if i % 3 == 0 and frame[12:14] == b"\x08\x00":
            frame = frame[:12] + b"\x81\x00\x00\x07" + frame[12:]
        elif i % 97 == 0:
            out.append((sec, frac, ARP))
        elif i % 211 == 0:
            frame = frame[:40]
        elif i == 500 and frame[12:14] == b"\x08\x00" and frame[14] == 0x45:
            ip = frame[14:]
            total = struct.unpack("!H", ip[2:4])[0] + 4
            frame = (
                frame[:14]
                + bytes([0x46])
                + ip[1:2]
                + struct.pack("!H", total)
                + ip[4:20]
                + b"\x01\x01\x01\x00"
                + ip[20:]
            )
        if rng.random() < 0.01:
            frame = frame[: rng.randrange(0, len(frame) + 1)]  # cut anywhere: the decoder must cope
        out.append((sec, frac, frame))
    return out


def as_ipv6(records: list[tuple[int, int, bytes]], folding_alike: bool) -> list[tuple[int, int, bytes]]:
    """The IPv4 TCP frames as IPv6 ones, the IPv4 address in the last word of 2001:db8::/64. With
    `folding_alike` every address folds to the same 32 bits in the fast index (its third word is
    the fourth XOR a constant), so connections share keys whenever their ports do: the lane must
    tell them apart by their addresses."""
    out = []
    for sec, frac, frame in records:
        if frame[12:14] == b"\x08\x00" and len(frame) >= 34 and frame[14] >> 4 == 4:
            ihl = (frame[14] & 0x0F) * 4
            total = struct.unpack("!H", frame[16:18])[0]
            addresses = []
            for ip4 in (frame[26:30], frame[30:34]):
                third = bytes(b ^ 0x5A for b in ip4) if folding_alike else bytes(4)
                addresses.append(bytes.fromhex("20010db800000000") + third + ip4)
            header = struct.pack("!IHBB", 6 << 28, max(total - ihl, 0), frame[23], 64) + b"".join(addresses)
            frame = frame[:12] + b"\x86\xdd" + header + frame[14 + ihl :]
        out.append((sec, frac, frame))
    return out


def with_colliding_twins(records: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Every IPv4 TCP frame followed by a twin whose lower address (by `address_key`) has its last bit
    flipped and whose higher address has bit 12 flipped: the twin has the original's fast index key
    (`fast_key` shifts the lower one 12 bits), so the two connections live side by side and the
    twin's must be found by its 4-tuple."""
    out = []
    for sec, frac, frame in records:
        out.append((sec, frac, frame))
        if frame[12:14] == b"\x08\x00" and len(frame) >= 38 and frame[14] == 0x45 and frame[23] == 6:
            sport, dport = struct.unpack("!HH", frame[34:38])
            src, dst = int.from_bytes(frame[26:30], "big"), int.from_bytes(frame[30:34], "big")
            if address_key(frame[26:30], sport) < address_key(frame[30:34], dport):
                src, dst = src ^ 1, dst ^ 0x1000
            else:
                src, dst = src ^ 0x1000, dst ^ 1
            out.append((sec, frac, frame[:26] + src.to_bytes(4, "big") + dst.to_bytes(4, "big") + frame[34:]))
    return out


def fast_key_of(frame: bytes) -> int:
    sport, dport = struct.unpack("!HH", frame[34:38])
    return fast_key(address_key(frame[26:30], sport), address_key(frame[30:34], dport))


def with_slot_twins(records: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Every IPv4 TCP frame followed by two twins, one with bit 12 of the client's port flipped (the
    port of 32768 and above), one with bit 12 of the server's: other connections, under other fast
    index keys, whose segments fall in the same slot of the tracker's `recent` list as the original's,
    so the three keep taking the slot from each other; each twin shares one endpoint with the original."""
    out = []
    for sec, frac, frame in records:
        out.append((sec, frac, frame))
        if frame[12:14] == b"\x08\x00" and len(frame) >= 38 and frame[14] == 0x45 and frame[23] == 6:
            sport, dport = struct.unpack("!HH", frame[34:38])
            for flip_client in (True, False):
                if (sport >= 32768) == flip_client:
                    ports = struct.pack("!HH", sport ^ 0x1000, dport)
                else:
                    ports = struct.pack("!HH", sport, dport ^ 0x1000)
                out.append((sec, frac, frame[:34] + ports + frame[38:]))
    return out


def recent_slot_of(frame: bytes) -> int:
    sport, dport = struct.unpack("!HH", frame[34:38])
    return recent_slot(address_key(frame[26:30], sport), address_key(frame[30:34], dport))


def shuffled_times(records: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Timestamps that jump back now and then (merged interfaces): timers must fire in the same order."""
    out = list(records)
    for i in range(0, len(out) - 40, 37):
        (s1, f1, a), (s2, f2, b) = out[i], out[i + 30]
        out[i], out[i + 30] = (s2, f2, a), (s1, f1, b)
    return out


VARIANTS = {
    "little-endian usec": dict(),
    "big-endian usec": dict(order=">"),
    "nanosecond": dict(magic=PCAP_MAGIC_NSEC),
    "modified (24-byte headers)": dict(magic=PCAP_MAGIC_MODIFIED),
    "big-endian nanosecond": dict(order=">", magic=PCAP_MAGIC_NSEC),
}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, traffic: list) -> dict:
    """The results of the traffic as a little-endian microsecond Ethernet pcap."""
    return audit(write_capture(tmp_path_factory.mktemp("plain") / "plain.pcap", pcap_of(traffic)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pcap_variant_gives_the_same_results(tmp_path: Path, traffic: list, plain: dict, variant: str) -> None:
    path = write_capture(tmp_path / "v.pcap", pcap_of(traffic, **VARIANTS[variant]))
    result = assert_same_results(path, plain)
    assert len(result["flows"]) > 300
    assert result["stats"][1] == len(traffic)


@pytest.mark.parametrize("linktype", [113, 276, 101])
def test_other_link_types_give_the_same_results(tmp_path: Path, traffic: list, plain: dict, linktype: int) -> None:
    path = write_capture(tmp_path / "l.pcap", pcap_of(relinked(traffic, linktype), network=linktype))
    result = assert_same_results(path, plain)
    assert result["stats"][1] == len(traffic)


def test_frames_not_decoded_in_place_are_decoded(tmp_path: Path, traffic: list) -> None:
    path = write_capture(tmp_path / "m.pcap", pcap_of(mixed(traffic)))
    result = assert_same_results(path)
    skipped = result["stats"][4]
    assert skipped.get("not_ip", 0) > 100 and sum(skipped.values()) > skipped["not_ip"]


@pytest.mark.parametrize("folding_alike", [False, True])
def test_ipv6_gives_the_same_results(tmp_path: Path, traffic: list, plain: dict, folding_alike: bool) -> None:
    path = write_capture(tmp_path / "v6.pcap", pcap_of(as_ipv6(traffic, folding_alike)))
    result = assert_same_results(path)
    assert result["stats"][1] == len(traffic) and len(result["flows"]) > 300
    assert all(":" in flow["client_ip"] for flow in result["flows"])

    # each connection goes exactly as over IPv4 (same times, ports, flags and numbers)
    def key(flow: dict) -> tuple:
        return tuple(value for column, value in flow.items() if column not in ("client_ip", "server_ip"))

    assert list(map(key, result["flows"])) == list(map(key, plain["flows"]))
    assert result["stats"] == plain["stats"]


def test_connections_sharing_an_index_key_are_told_apart(tmp_path: Path, traffic: list, plain: dict) -> None:
    twins = with_colliding_twins(traffic)
    pairs = [
        (twins[i][2], twins[i + 1][2])
        for i in range(len(twins) - 1)
        if twins[i][2][34:] == twins[i + 1][2][34:] and twins[i][2][26:34] != twins[i + 1][2][26:34]
    ]
    assert len(pairs) > 0.9 * len(traffic)
    assert all(fast_key_of(original) == fast_key_of(twin) for original, twin in pairs)  # as intended
    result = assert_same_results(write_capture(tmp_path / "twins.pcap", pcap_of(twins)))
    single = plain
    assert len(twins) > 1.9 * len(traffic) and len(result["flows"]) > 1.9 * len(single["flows"])

    # each twin goes exactly as its original (same times, ports, flags and numbers)
    def key(flow: dict) -> tuple:
        return tuple(value for column, value in flow.items() if column not in ("client_ip", "server_ip"))

    ipv4 = [flow for flow in single["flows"] if ":" not in flow["client_ip"]]
    assert sorted(map(key, result["flows"])) == sorted(map(key, single["flows"] + ipv4))


def test_connections_sharing_a_recent_slot_are_told_apart(tmp_path: Path, traffic: list, plain: dict) -> None:
    twins = with_slot_twins(traffic)
    pairs = [
        (twins[i][2], twins[i + 1][2])
        for i in range(len(twins) - 1)
        if twins[i][2][14:34] == twins[i + 1][2][14:34] and twins[i][2][34:38] != twins[i + 1][2][34:38]
    ]
    assert len(pairs) > 1.8 * len(traffic)
    assert all(recent_slot_of(original) == recent_slot_of(twin) for original, twin in pairs)  # as intended
    result = assert_same_results(write_capture(tmp_path / "slot-twins.pcap", pcap_of(twins)))
    single = plain
    assert len(result["flows"]) > 2.8 * len(single["flows"])

    # each twin goes exactly as its original (same times, addresses, flags and numbers)
    def key(flow: dict) -> tuple:
        return tuple(value for column, value in flow.items() if column not in ("client_port", "server_port"))

    ipv4 = [flow for flow in single["flows"] if ":" not in flow["client_ip"]]
    assert sorted(map(key, result["flows"])) == sorted(map(key, single["flows"] + ipv4 + ipv4))


def test_time_jumping_back_is_read_in_capture_order(tmp_path: Path, traffic: list) -> None:
    path = write_capture(tmp_path / "t.pcap", pcap_of(shuffled_times(traffic)))
    result = assert_same_results(path)
    assert result["stats"][0] == len(traffic) and len(result["flows"]) > 300


def test_a_broken_capture_stops_at_the_broken_record(tmp_path: Path, traffic: list) -> None:
    data = pcap_of(traffic)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    result = assert_same_results(cut)
    assert [p[0] for p in result["problems"]] == ["truncated"]
    # a corrupt record header (captured length over the snap length) two thirds in
    corrupt = bytearray(data)
    pos, n = 24, 0
    while n < len(traffic) * 2 // 3:
        pos += 16 + struct.unpack_from("<I", corrupt, pos + 8)[0]
        n += 1
    struct.pack_into("<I", corrupt, pos + 8, 300_000)
    bad = tmp_path / "corrupt.pcap"
    bad.write_bytes(bytes(corrupt))
    result = assert_same_results(bad)
    assert [p[0] for p in result["problems"]] == ["corrupt_record"]
    assert result["stats"][0] == n


def test_rotated_captures_give_the_results_of_one_capture(tmp_path: Path, traffic: list) -> None:
    """Files that follow each other in time (tcpdump -G/-C rotation) are read one after the other."""
    files = [write_capture(tmp_path / f"part{i}.pcap", pcap_of(traffic[i * 5000 : (i + 1) * 5000])) for i in range(4)]
    files.reverse()  # the order given does not matter: files are ordered by their first packet
    whole = audit(write_capture(tmp_path / "whole.pcap", pcap_of(traffic[:20000])))
    result = assert_same_results(files, whole)
    assert result["stats"][0] == 20000


def by_time(*parts: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """The records of several captures merged by time (of records stamped alike, the earlier part's first)."""
    return list(heapq.merge(*parts, key=lambda record: (record[0], record[1])))


def test_overlapping_captures_are_merged_by_time(tmp_path: Path, traffic: list) -> None:
    """Two interfaces captured at once: the second file starts inside the first."""
    even, odd = traffic[0::2][:6000], traffic[1::2][3000:9000]
    files = [write_capture(tmp_path / "even.pcap", pcap_of(even)), write_capture(tmp_path / "odd.pcap", pcap_of(odd))]
    merged = audit(write_capture(tmp_path / "merged.pcap", pcap_of(by_time(even, odd))))
    result = assert_same_results(files, merged)
    assert result["stats"][0] == 12000
    # and three rotated files, the last one starting before the second has ended
    parts = [traffic[:4000], traffic[4000:8000], traffic[7000:12000]]
    files = [write_capture(tmp_path / f"{name}.pcap", pcap_of(part)) for name, part in zip("abc", parts, strict=True)]
    merged = audit(write_capture(tmp_path / "abc.pcap", pcap_of(by_time(*parts))))
    assert_same_results(files, merged)


def test_time_filters_keep_the_packets_between(tmp_path: Path, traffic: list) -> None:
    parts = [
        write_capture(tmp_path / "a.pcap", pcap_of(traffic[:8000])),
        write_capture(tmp_path / "b.pcap", pcap_of(traffic[8000:])),
    ]
    since = traffic[3000][0] + traffic[3000][1] / 1e6
    until = traffic[15000][0] + traffic[15000][1] / 1e6
    between = [r for r in traffic if since <= r[0] + r[1] / 1e6 < until]
    result = audit(parts, PacketFilter(since=since, until=until))
    expected = audit(write_capture(tmp_path / "between.pcap", pcap_of(between)))
    assert result["flows"] == expected["flows"] and result["findings"] == expected["findings"]
    assert result["stats"][7] == len(traffic) - len(between) and result["stats"][1] == len(between)
    # a port filter keeps the segments to or from the port
    result = audit(parts, PacketFilter(ports=frozenset({80})))
    assert result["flows"] and all(80 in (flow["client_port"], flow["server_port"]) for flow in result["flows"])
    assert result["stats"][7] + result["stats"][1] == len(traffic)


@pytest.mark.parametrize("chunk_size", [4096, 5000, 1 << 20])
def test_blocks_hold_exactly_the_records(tmp_path: Path, traffic: list, chunk_size: int) -> None:
    """`CaptureReader.blocks()` delimits the same records `iter()` yields, whatever the read size."""
    path = write_capture(tmp_path / "b.pcap", pcap_of(traffic[:5000], order=">", magic=PCAP_MAGIC_MODIFIED))
    records = list(CaptureReader(str(path), chunk_size=chunk_size))
    reader = CaptureReader(str(path), chunk_size=chunk_size)
    from_blocks = []
    blocks = 0
    for block in reader.blocks():
        assert isinstance(block, RecordBlock)
        blocks += 1
        pos = block.start
        for _ in range(block.count):
            sec, frac, caplen, _ = struct.unpack_from(">IIII", block.buf, pos)
            start = pos + block.hdrlen
            pos = start + caplen
            per_second = block.units_per_second
            from_blocks.append(((sec * per_second + frac) / per_second, block.linktype, block.buf[start:pos]))
        assert pos == block.end
    assert from_blocks == records
    assert reader.packets == len(records) and reader.problems == []
    assert blocks > (1 if chunk_size < 100_000 else 0)


def pcapng_of(
    records: list[tuple[int, int, bytes]],
    order: str = "<",
    interfaces: int = 1,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    extras: bool = False,
) -> bytes:
    """A pcapng of the records: `interfaces` Ethernet interfaces taking turns in runs of 1-7 packets,
    optionally nanosecond stamps (tsresol 9) and an offset; `extras` adds a Simple Packet Block,
    an obsolete Packet Block, an interface of an unsupported link type and a second section."""
    per_second = 10 ** (tsresol or 6)
    head = shb(order) + b"".join(idb(1, order, tsresol=tsresol, tsoffset=tsoffset) for _ in range(interfaces))
    if extras:
        head += idb(147, order)  # a user link type nobody decodes: its packets are skipped
    shift = -(tsoffset or 0) * per_second
    parts = [head]
    rng = random.Random(3)
    interface, left = 0, 1
    for i, (sec, frac, frame) in enumerate(records):
        left -= 1
        if left == 0:
            interface, left = rng.randrange(interfaces), rng.randrange(1, 8)
        units = (sec * 1_000_000 + frac) * (per_second // 1_000_000) + shift
        if extras and i % 501 == 0:
            parts.append(spb(frame, order))
        elif extras and i % 703 == 0:
            parts.append(obsolete_pb(interface, units, frame, order))
        elif extras and i % 911 == 0:
            parts.append(epb(interfaces, units, frame, order))
        elif extras and i == len(records) // 2:
            parts.append(
                shb(order)
                + idb(1, order, tsresol=tsresol, tsoffset=tsoffset)
                + idb(147, order)
                + epb(0, units, frame, order)
            )
            interface, interfaces = 0, 1
        else:
            options = b"" if i % 5 else option(1, b"hi") + end_of_options(order)
            parts.append(epb(interface, units, frame, order, options=options))
    return b"".join(parts)


PCAPNG_VARIANTS = {
    "one interface": dict(),
    "big-endian": dict(order=">"),
    "three interfaces": dict(interfaces=3),
    "nanoseconds with an offset": dict(tsresol=9, tsoffset=-3600),
    # the same times, stamped as nanoseconds since 10**10 s before the epoch: stamps past 2**63
    "stamps past 2**63": dict(tsresol=9, tsoffset=-(10**10)),
    "other blocks between": dict(interfaces=2, extras=True),
}


@pytest.mark.parametrize("variant", PCAPNG_VARIANTS)
def test_pcapng_gives_the_same_results(tmp_path: Path, traffic: list, plain: dict, variant: str) -> None:
    path = tmp_path / "t.pcapng"
    path.write_bytes(pcapng_of(traffic, **PCAPNG_VARIANTS[variant]))
    items = list(CaptureReader(str(path)).blocks())
    runs = [item for item in items if isinstance(item, RecordBlock)]
    assert runs and sum(run.count for run in runs) > len(traffic) * 0.9
    # (with other blocks between, some packets are in blocks without a time or of an unread interface)
    result = assert_same_results(path, None if PCAPNG_VARIANTS[variant].get("extras") else plain)
    assert result["stats"][0] >= len(traffic) - 60


def test_a_broken_pcapng_stops_at_the_broken_block(tmp_path: Path, traffic: list) -> None:
    data = pcapng_of(traffic, interfaces=2)
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) // 2 + 7])
    assert [p[0] for p in assert_same_results(cut)["problems"]] == ["truncated"]
    corrupt = bytearray(data)
    pos = len(corrupt) * 2 // 3
    pos = corrupt.index(struct.pack("<I", 6), pos)  # an Enhanced Packet Block two thirds in
    while struct.unpack_from("<I", corrupt, pos + 4)[0] > 4000:
        pos = corrupt.index(struct.pack("<I", 6), pos + 1)
    struct.pack_into("<I", corrupt, pos + 20, 5000)  # its captured length overruns the block
    bad = tmp_path / "corrupt.pcapng"
    bad.write_bytes(bytes(corrupt))
    assert [p[0] for p in assert_same_results(bad)["problems"]] == ["corrupt_block"]


# ---------------------------------------------------------------------------------------------- decoding


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_in_place_decoding_agrees_with_the_decoder(traffic: list, data: st.DataObject) -> None:
    """Whatever the bytes, a frame the in-place decoder takes decodes to the same fields by the general walk."""
    ipv6 = [frame for _, _, frame in traffic if frame[12:14] == b"\x86\xdd"]
    if data.draw(st.booleans()):
        frame = data.draw(st.sampled_from(ipv6))
    else:
        _, _, frame = traffic[data.draw(st.integers(0, len(traffic) - 1))]
    linktype = data.draw(st.sampled_from([1, 113, 276, 101, 228, 229, 12, 14]))
    if linktype in (113, 276, 101, 12, 14, 228, 229):
        frame = relinked([(0, 0, frame)], 101 if linktype in (12, 14, 228, 229) else linktype)[0][2]
    frame = bytearray(frame[: data.draw(st.integers(0, len(frame)))])
    for _ in range(data.draw(st.integers(0, 4))):  # change bytes in the headers
        if frame:
            frame[data.draw(st.integers(0, min(len(frame), 80) - 1))] = data.draw(st.integers(0, 255))
    padding = data.draw(st.integers(0, 9))
    buf = bytes(padding) + bytes(frame) + b"\xee" * 3
    version, ip, src, sport, dst, dport, seq, ack, flags, window, length = decode_in_place(
        buf, padding, padding + len(frame), linktype
    )
    if version == 0:
        return
    expected = Decoder().decode_general(linktype, bytes(frame))
    assert expected is not None
    if version == 4:
        assert (expected[0], expected[2]) == (src.to_bytes(4, "big"), dst.to_bytes(4, "big"))
        assert buf[ip + 12 : ip + 16] == expected[0] and buf[ip + 16 : ip + 20] == expected[2]
    else:
        assert buf[ip + 8 : ip + 24] == expected[0] and buf[ip + 24 : ip + 40] == expected[2]
    assert expected[1] == sport and expected[3:] == (dport, seq, ack, flags, window, length, True)


@pytest.mark.parametrize("linktype", [1, 113, 276, 101])
def test_in_place_decoding_takes_ordinary_tcp_frames(traffic: list, linktype: int) -> None:
    frames = [frame for _, _, frame in relinked(traffic, linktype)]
    versions = [decode_in_place(frame, 0, len(frame), linktype)[0] for frame in frames]
    # the generated traffic is plain IPv4 TCP, the sample's is IPv6 TCP: all of it is taken
    assert versions.count(4) > 19000 and versions.count(6) == 10 and versions.count(0) == 0
