"""Builders for small pcap and pcapng files, written with struct so tests control every byte, and
`Pcap`, which splits a classic pcap into its records so tests can cut, reorder and damage real ones."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D
PCAP_MAGIC_MODIFIED = 0xA1B2CD34


def exact_ts(units_count: int, units_per_second: int) -> float:
    """The correctly rounded float of units_count / units_per_second (the oracle for timestamps)."""
    return float(Fraction(units_count, units_per_second))


def pcap_header(order: str = "<", magic: int = PCAP_MAGIC_USEC, snaplen: int = 65535, network: int = 1) -> bytes:
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, network)


def pcap_record(
    order: str,
    sec: int,
    frac: int,
    frame: bytes,
    wirelen: int | None = None,
    caplen: int | None = None,
    modified: bool = False,
) -> bytes:
    caplen = len(frame) if caplen is None else caplen
    wirelen = len(frame) if wirelen is None else wirelen
    header = struct.pack(order + "IIII", sec, frac, caplen, wirelen)
    if modified:
        header += struct.pack(order + "IHBB", 3, 0x0800, 0, 0)
    return header + frame


def pcap_file(
    records: list[tuple[int, int, bytes]],
    order: str = "<",
    magic: int = PCAP_MAGIC_USEC,
    snaplen: int = 65535,
    network: int = 1,
) -> bytes:
    modified = magic == PCAP_MAGIC_MODIFIED
    return pcap_header(order, magic, snaplen, network) + b"".join(
        pcap_record(order, sec, frac, frame, modified=modified) for sec, frac, frame in records
    )


def block(block_type: int, body: bytes, order: str = "<") -> bytes:
    """A pcapng block with the body padded to 32 bits and both length fields."""
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


def option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def end_of_options(order: str = "<") -> bytes:
    return struct.pack(order + "HH", 0, 0)


def shb(order: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def idb(
    linktype: int, order: str = "<", snaplen: int = 0, tsresol: int | None = None, tsoffset: int | None = None
) -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, snaplen)
    opts = b""
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), order)
    if tsoffset is not None:
        opts += option(14, struct.pack(order + "q", tsoffset), order)
    if opts:
        opts += end_of_options(order)
    return block(1, body + opts, order)


def epb(
    interface: int, ts_units: int, frame: bytes, order: str = "<", wirelen: int | None = None, options: bytes = b""
) -> bytes:
    wirelen = len(frame) if wirelen is None else wirelen
    body = struct.pack(order + "IIIII", interface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(frame), wirelen)
    body += frame + b"\0" * (-len(frame) % 4) + options
    return block(6, body, order)


def spb(frame: bytes, order: str = "<", wirelen: int | None = None) -> bytes:
    wirelen = len(frame) if wirelen is None else wirelen
    return block(3, struct.pack(order + "I", wirelen) + frame, order)


def obsolete_pb(interface: int, ts_units: int, frame: bytes, order: str = "<") -> bytes:
    body = struct.pack(order + "HHIIII", interface, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(frame), len(frame))
    return block(2, body + frame, order)


def frame_bytes(i: int, size: int = 60) -> bytes:
    """A deterministic frame whose content depends on i."""
    return bytes((i * 7 + k) & 0xFF for k in range(size))


class Pcap:
    """A classic little-endian pcap split into its global header and records (offset, header, data)."""

    def __init__(self, data: bytes) -> None:
        assert data[:4] == b"\xd4\xc3\xb2\xa1"
        self.header = data[:24]
        self.records: list[tuple[int, bytes, bytes]] = []
        offset = 24
        while offset < len(data):
            caplen = struct.unpack_from("<I", data, offset + 8)[0]
            self.records.append((offset, data[offset : offset + 16], data[offset + 16 : offset + 16 + caplen]))
            offset += 16 + caplen

    @classmethod
    def load(cls, path: Path) -> Pcap:
        return cls(path.read_bytes())

    @property
    def linktype(self) -> int:
        return struct.unpack_from("<I", self.header, 20)[0]

    def ts(self, i: int) -> float:
        sec, usec = struct.unpack_from("<II", self.records[i][1])
        return sec + usec / 1e6

    def build(self, records) -> bytes:
        return self.header + b"".join(h + d for _, h, d in records)

    def ip_offset(self) -> int:
        return {1: 14, 113: 16}[self.linktype]

    def ports(self, i: int) -> tuple[int, int]:
        data = self.records[i][2]
        o = self.ip_offset() + (data[self.ip_offset()] & 0x0F) * 4
        return struct.unpack_from("!HH", data, o)


def pcap_records(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """The records of a little-endian classic pcap (microseconds): (offset, seconds, microseconds, frame)."""
    records = []
    offset = 24
    while offset + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, offset)
        if offset + 16 + caplen > len(data):
            break
        records.append((offset, sec, usec, data[offset + 16 : offset + 16 + caplen]))
        offset += 16 + caplen
    return records


def pcapng_from_pcap(data: bytes, linktype: int | None = None) -> tuple[bytes, list[int]]:
    """The same packets as one pcapng section (an interface of the pcap's link type, or `linktype`), and where
    each Enhanced Packet Block ends."""
    network = struct.unpack_from("<I", data, 20)[0] if linktype is None else linktype
    out = bytearray(shb() + idb(network, snaplen=65535))
    ends = []
    for _, sec, usec, frame in pcap_records(data):
        out += epb(0, sec * 1_000_000 + usec, frame)
        ends.append(len(out))
    return bytes(out), ends
