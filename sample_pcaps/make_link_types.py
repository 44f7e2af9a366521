#!/usr/bin/env python3
"""Write the crafted link-type sample captures (no root needed, needs dpkt).

    python sample_pcaps/make_link_types.py [--only NAME[,NAME...]]

Link types a Linux box will not produce on demand (Cisco HDLC, 802.11, PPI, Juniper, PKTAP,
IPNET, InfiniBand, MPLS on PPP, PPPoE with a one-byte protocol field). Each file holds the same
two TCP conversations as make_crafted.py writes them (Linux-like options, seeded ISNs, correct
checksums; reproducible byte for byte), with every IPv4 packet wrapped in the link type's header
as its own capturing system writes it:

* 10.99.0.1:41001 -> 10.99.0.2:8080: handshake, an HTTP GET and a 3,000-byte answer (3 segments),
  client FIN first: 12 packets, SF (client TIME_WAIT, server CLOSED);
* 10.99.0.1:41002 -> 10.99.0.2:8081: SYN answered by RST+ACK: 2 packets, REJ.

Besides, some files hold frames that carry no TCP, which must be passed over (and counted): a
SLARP keepalive (Cisco HDLC), beacons, ACKs, null data frames and one protected (encrypted) data
frame (802.11). tests/test_link_layers.py checks every file against tshark's reading and asserts
the connections' states.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import zlib

import dpkt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_crafted import (
    ACK,
    MAC_CLI,
    MAC_SRV,
    RST,
    SRV,
    SYN,
    T0,
    Conn,
    Endpoint,
    Writer,
    http_req,
    http_resp,
    make_chosen,
)

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = "10.99.0.1"
BSSID = bytes.fromhex("02000a6300aa")


def conversations() -> list[tuple[float, bytes]]:
    """The two conversations as Ethernet frames (time, frame), in time order."""
    rng = random.Random(0x11CC)
    w = Writer("unused.pcap")
    c = Endpoint(rng, CLI, 41001, MAC_CLI)
    s = Endpoint(rng, SRV, 8080, MAC_SRV)
    conn = Conn(w, rng, c, s, T0)
    conn.handshake()
    conn.exchange(http_req(), http_resp(3000 - 67))  # 3,000 bytes with the headers
    conn.client_close()
    c = Endpoint(rng, CLI, 41002, MAC_CLI)
    s = Endpoint(rng, SRV, 8081, MAC_SRV)
    conn = Conn(w, rng, c, s, T0 + 0.5)
    conn.send(c, s, SYN, dt=0)
    conn.send(s, c, RST | ACK, seq=0, win=0, opts=b"")
    return sorted(w.frames, key=lambda x: x[0])


def write(name: str, linktype: int, frames: list[tuple[float, bytes]]) -> None:
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144, linktype=linktype)
        for ts, fr in frames:
            w.writepkt(fr, ts=ts)
    print("wrote %s (%d packets, %d bytes)" % (path, len(frames), os.path.getsize(path)))


def from_client(eth: bytes) -> bool:
    return eth[6:12] == MAC_CLI


# --------------------------------------------------------------------------- 802.11


def wlan_data(eth: bytes, qos: bool, htc: bool = False, pad: bool = False, four_addresses: bool = False) -> bytes:
    """The Ethernet frame's IP packet as an 802.11 data frame through the access point BSSID, LLC/SNAP."""
    dst, src = eth[0:6], eth[6:12]
    a4 = b""
    if four_addresses:  # a wireless bridge (WDS): to-DS and from-DS
        flags, a1, a2, a3, a4 = 0x03, BSSID, BSSID, dst, src
    elif from_client(eth):  # station -> AP
        flags, a1, a2, a3 = 0x01, BSSID, src, dst
    else:  # AP -> station
        flags, a1, a2, a3 = 0x02, dst, BSSID, src
    fc = bytes([0x88 if qos else 0x08, flags | (0x80 if htc else 0)])
    header = fc + struct.pack("<H", 44) + a1 + a2 + a3 + struct.pack("<H", 0x10) + a4  # duration, sequence control
    if qos:
        header += struct.pack("<H", 0x0000)  # TID 0, no A-MSDU
        if htc:
            header += b"\x00\x00\x00\x00"
    if pad:
        header += b"\x00" * (-len(header) % 4)
    return header + b"\xaa\xaa\x03\x00\x00\x00" + eth[12:14] + eth[14:]


def wlan_others(t: float) -> list[tuple[float, bytes]]:
    """Frames carrying no TCP: a beacon, an ACK, a null data frame, a protected data frame."""
    beacon = (
        b"\x80\x00\x00\x00"
        + b"\xff" * 6
        + BSSID
        + BSSID
        + b"\x00\x00"
        + struct.pack("<QHH", 0x1234, 100, 0x0411)
        + b"\x00\x04lab1"
    )
    ack = b"\xd4\x00\x00\x00" + MAC_CLI
    null = b"\x48\x01\x2c\x00" + BSSID + MAC_CLI + BSSID + b"\x20\x00"
    ccmp = bytes(range(8))  # CCMP header (PN, key id), then ciphertext and MIC
    protected = b"\x08\x42\x2c\x00" + MAC_CLI + BSSID + MAC_SRV + b"\x30\x00" + ccmp + bytes(range(60, 140))
    return [(t - 0.1, beacon), (t - 0.05, null), (t + 0.2, protected), (t + 0.21, ack)]


def radiotap(frame: bytes, flags: int, extended: bool = False) -> bytes:
    """A radiotap header: TSFT, Flags, Rate, Channel, antenna signal (and an empty extra bitmap)."""
    present = 0x2F  # TSFT, Flags, Rate, Channel, dBm antenna signal
    words = struct.pack("<I", present | (0x80000000 if extended else 0))
    if extended:
        words += struct.pack("<I", 0)
    fields_at = 4 + len(words)
    pad = -fields_at % 8  # TSFT is aligned to 8 bytes from the header's start
    fields = b"\x00" * pad + struct.pack("<QBBHHb", 123456789, flags, 0x6C, 5180, 0x0140, -42)
    length = fields_at + len(fields)
    fcs = struct.pack("<I", zlib.crc32(frame) & 0xFFFFFFFF) if flags & 0x10 else b""
    return struct.pack("<BBH", 0, 0, length) + words + fields + frame + fcs


def ieee802_11() -> None:
    frames = conversations()
    out = [(t, wlan_data(e, qos=from_client(e))) for t, e in frames]
    write("link_ieee802_11.pcap", 105, sorted(out + wlan_others(frames[0][0])))


def ieee802_11_radiotap() -> None:
    frames = conversations()
    out = []
    for i, (t, e) in enumerate(frames):
        if i % 3 == 0:  # QoS data with HT control, padded to 4 bytes after the MAC header; FCS at the end
            out.append((t, radiotap(wlan_data(e, qos=True, htc=True, pad=True), 0x30, extended=True)))
        elif i % 3 == 1:  # plain data, FCS at the end
            frame = wlan_data(e, qos=False)
            out.append((t, radiotap(frame, 0x10)))
        else:  # four addresses (a wireless bridge), QoS, no FCS
            out.append((t, radiotap(wlan_data(e, qos=True, four_addresses=True), 0x00)))
    others = [(t, radiotap(f, 0)) for t, f in wlan_others(frames[0][0])]
    write("link_radiotap.pcap", 127, sorted(out + others))


# --------------------------------------------------------------------------- the others


def c_hdlc() -> None:
    frames = [(t, b"\x0f\x00" + e[12:]) for t, e in conversations()]
    slarp = b"\x8f\x00\x80\x35" + struct.pack("!IIIH", 2, 5, 6, 0xFFFF)  # SLARP keepalive
    write("link_c_hdlc.pcap", 104, sorted([*frames, (frames[0][0] - 0.2, slarp)]))


def ppi() -> None:
    # PPI with an 802.11-common field (type 2, 20 bytes) around 802.11, for the first conversation;
    # plain PPI around Ethernet for the second
    out = []
    for t, e in conversations():
        if 41001 in struct.unpack("!HH", e[34:38]):
            common = struct.pack("<HHQHHHHBBbb", 2, 20, 123456789, 0, 100, 5180, 0x0140, 0, 0, -42, -95)
            out.append((t, struct.pack("<BBHI", 0, 0, 8 + len(common), 105) + common + wlan_data(e, qos=False)))
        else:
            out.append((t, struct.pack("<BBHI", 0, 0, 8, 1) + e))
    write("link_ppi.pcap", 192, out)


def juniper_ether() -> None:
    # "MGC", flags: direction (0x01 in), extensions present (0x80), layer 2 stripped (0x02, then a
    # 4-byte protocol number, 2 = IPv4, in the router's byte order)
    ext = bytes([1, 4]) + struct.pack("<I", 7) + bytes([4, 4]) + struct.pack("<I", 69)  # ifd index, ifl index
    out = []
    for i, (t, e) in enumerate(conversations()):
        direction = 0x01 if from_client(e) else 0x00
        if i == 4:  # one packet as the router saw it without its Ethernet header
            out.append(
                (
                    t,
                    b"MGC"
                    + bytes([0x80 | 0x02 | direction])
                    + struct.pack("!H", len(ext))
                    + ext
                    + b"\x02\0\0\0"
                    + e[14:],
                )
            )
        elif i % 2:
            out.append((t, b"MGC" + bytes([direction]) + e))
        else:
            out.append((t, b"MGC" + bytes([0x80 | direction]) + struct.pack("!H", len(ext)) + ext + e))
    write("link_juniper_ether.pcap", 178, out)


def pktap_header(dlt: int, ifname: bytes, pid: int, comm: bytes) -> bytes:
    # macOS struct pktap_header (108 bytes): length, record type (1: a packet), DLT, interface name,
    # flags, protocol family, frame pre/post length, pid, command, service class, interface type/unit,
    # effective pid and command
    return struct.pack("<III24sIIIIi17sxxxIHHi17sxxx", 108, 1, dlt, ifname, 0, 2, 0, 0, pid, comm, 0, 6, 0, pid, comm)


def pktap() -> None:
    out = []
    for t, e in conversations():
        if 41001 in struct.unpack("!HH", e[34:38]):  # through en0 (Ethernet)
            out.append((t, pktap_header(1, b"en0", 4242, b"curl") + e))
        else:  # through a tunnel interface (DLT_NULL: address family, then IP)
            out.append((t, pktap_header(0, b"utun3", 4243, b"nc") + struct.pack("<I", 2) + e[14:]))
    write("link_pktap.pcap", 258, out)


def ipnet() -> None:
    # version 1, family 2 (IPv4), htype 0, packet length, interface index, group interface, zones
    frames = [(t, struct.pack("!BBHIIIII", 1, 2, 0, len(e) - 14, 2, 0, 0, 0) + e[14:]) for t, e in conversations()]
    write("link_ipnet.pcap", 226, frames)


def ipoib() -> None:
    # 44 bytes: source and destination link-layer addresses (QPN, GID), the ethertype, reserved
    def address(mac: bytes, qpn: int) -> bytes:
        return struct.pack("!I", 0x80000000 | qpn) + bytes.fromhex("fe800000000000000002c903") + mac[2:]

    out = []
    for t, e in conversations():
        src, dst = (address(MAC_CLI, 0x48), address(MAC_SRV, 0x4A))
        if not from_client(e):
            src, dst = dst, src
        out.append((t, src + dst + e[12:14] + b"\x00\x00" + e[14:]))
    write("link_ipoib.pcap", 242, out)


def ppp_mpls() -> None:
    # PPP in HDLC-like framing (FF 03), protocol 0x0281 (MPLS unicast), one label (bottom of stack)
    label = struct.pack("!I", (1001 << 12) | (0 << 9) | (1 << 8) | 64)
    frames = [(t, b"\xff\x03\x02\x81" + label + e[14:]) for t, e in conversations()]
    write("link_ppp_mpls.pcap", 9, frames)


def pppoe_1byte() -> None:
    # Ethernet, PPPoE session (0x8864), PPP protocol field compressed to one byte (0x21 IPv4)
    out = []
    for t, e in conversations():
        payload = b"\x21" + e[14:]
        out.append((t, e[:12] + b"\x88\x64" + struct.pack("!BBHH", 0x11, 0, 0x2D, len(payload)) + payload))
    write("link_pppoe_1byte.pcap", 1, out)


MADE = {
    "link_c_hdlc": c_hdlc,
    "link_ieee802_11": ieee802_11,
    "link_radiotap": ieee802_11_radiotap,
    "link_juniper_ether": juniper_ether,
    "link_ppi": ppi,
    "link_ipnet": ipnet,
    "link_ipoib": ipoib,
    "link_pktap": pktap,
    "link_ppp_mpls": ppp_mpls,
    "link_pppoe_1byte": pppoe_1byte,
}


def main() -> int:
    return make_chosen(MADE, __doc__)


if __name__ == "__main__":
    sys.exit(main())
