#!/usr/bin/env python3
"""Write the crafted tunnel captures (no root needed, needs dpkt): the encapsulations this kernel cannot make.

    python sample_pcaps/make_tunnels.py

The kernel here has VXLAN only (make_vxlan.py); GRE, gretap, ERSPAN, Geneve, IPIP, sit, ip6tnl and
L2TP modules are missing, so these are built byte by byte. Every capture carries whole inner TCP
conversations: a client at port 40000 + n connects to port 80, handshake, a 120-byte request, a
1400-byte response in two segments, the client closes first (FIN, FIN, ACK): 10 packets, Zeek SF.
Outer and inner checksums are right (dpkt computes them). Times start at T0, 1 ms between packets.

* geneve.pcap: Geneve (UDP 6081) VNI 100 with an 8-byte option, inner Ethernet + IPv4.
* gre.pcap: GRE with key 7 carrying IPv4, and GRE transparent Ethernet bridging (0x6558) with
  an 802.1Q tag inside: two conversations.
* erspan.pcap: ERSPAN type I (0x88BE, no sequence), type II (session 5) and type III (0x22EB,
  session 9, with the platform header): the mirrored frames of three conversations (both
  directions arrive from the switch: outer source and destination never swap).
* ipip.pcap: 4in4, 6in4, 4in6 and 6in6, one conversation each.
* gtp.pcap: GTP-U (UDP 2152) with a PDU-session extension header, different TEIDs up and down;
  the outer IPv4 packet of the response's first segment is fragmented in two (as GTP is).
* teredo.pcap: Teredo (UDP 3544) with an origin indication on the packets from the relay.
* ayiya.pcap: AYIYA (UDP 5072) carrying IPv6.
* l2tp.pcap: L2TPv2 (UDP 1701) data messages with length and sequence numbers, PPP with address
  and control (FF 03), plus an L2TP control message (not TCP).
* ipsec_ah.pcap: IPsec AH in transport mode (IPv4 / AH / TCP) and tunnel mode (IPv4 / AH / IPv4
  / TCP), and 5 ESP packets (counted, not readable).
* shims.pcap: Ethernet shims: PPPoE with a 1-byte PPP protocol field, MPLS (two labels), an
  802.1BR E-Tag, and QinQ (802.1ad + 802.1Q).
* ppp_mpls.pcap: link type PPP (9), MPLS (PPP protocol 0x0281) carrying IPv4.
* nested.pcap: VLAN 100 inside VXLAN (VNI 5) inside IPv6, and GRE inside GRE.
* vxlan_vni_reuse.pcap: VNI 1 and VNI 2 with the same inner 4-tuple, interleaved: two connections.
"""

from __future__ import annotations

import os
import socket
import struct

import dpkt

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1_700_000_000.0

MAC_A, MAC_B = bytes.fromhex("02000a000001"), bytes.fromhex("02000a000002")
F = dpkt.tcp


def a4(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, text)


def a6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def ip_packet(src: bytes, dst: bytes, proto: int, payload, ident: int = 1, frag: int = 0x4000) -> bytes:
    """IPv4 or IPv6 (by address size) with checksums filled in (dpkt)."""
    if len(src) == 4:
        ip = dpkt.ip.IP(src=src, dst=dst, p=proto, ttl=64, id=ident, _flags_offset=frag, data=payload)
        ip.len = 20 + len(bytes(payload))
        return bytes(ip)
    ip6 = dpkt.ip6.IP6(src=src, dst=dst, nxt=proto, hlim=64, data=payload)
    ip6.plen = len(bytes(payload))
    return bytes(ip6)


def conversation(client: bytes, server: bytes, cport: int, sport: int = 80) -> list[tuple[bool, bytes]]:
    """(from the client, IP packet) for the 10 packets of one conversation."""
    c_isn, s_isn = 1000 + cport, 500000 + cport
    steps = [
        (True, F.TH_SYN, 0, 0, 0),
        (False, F.TH_SYN | F.TH_ACK, 0, 0, 0),
        (True, F.TH_ACK, 1, 1, 0),
        (True, F.TH_ACK | F.TH_PUSH, 1, 1, 120),
        (False, F.TH_ACK, 1, 121, 700),
        (False, F.TH_ACK | F.TH_PUSH, 701, 121, 700),
        (True, F.TH_ACK, 121, 1401, 0),
        (True, F.TH_FIN | F.TH_ACK, 121, 1401, 0),
        (False, F.TH_FIN | F.TH_ACK, 1401, 122, 0),
        (True, F.TH_ACK, 122, 1402, 0),
    ]
    out = []
    for from_client, flags, seq, ack, size in steps:
        if from_client:
            src, dst, sp, dp, base, peer = client, server, cport, sport, c_isn, s_isn
        else:
            src, dst, sp, dp, base, peer = server, client, sport, cport, s_isn, c_isn
        tcp = dpkt.tcp.TCP(
            sport=sp,
            dport=dp,
            seq=base + seq,
            ack=(peer + ack) if flags & F.TH_ACK else 0,
            flags=flags,
            win=64240,
            data=b"x" * size,
        )
        out.append((from_client, ip_packet(src, dst, 6, tcp)))
    return out


def udp(sport: int, dport: int, payload: bytes) -> dpkt.udp.UDP:
    return dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(payload), data=payload)


def eth(payload: bytes, ethertype: int = 0x0800, tags: bytes = b"") -> bytes:
    return MAC_B + MAC_A + tags + struct.pack("!H", ethertype) + payload


def ether_type(packet: bytes) -> int:
    return 0x0800 if packet[0] >> 4 == 4 else 0x86DD


def write(name: str, frames: list[bytes], linktype: int = 1) -> None:
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=linktype, snaplen=65535)
        for i, frame in enumerate(frames):
            writer.writepkt(frame, ts=T0 + i * 0.001)
    print("wrote", path)


def tunnelled(conversations, wrap) -> list[bytes]:
    """Each conversation's packets wrapped by wrap(from_client, inner packet, conversation index)."""
    frames = []
    for index, packets in enumerate(conversations):
        for from_client, inner in packets:
            frames.extend(wrap(from_client, inner, index))
    return frames


def outer_pair(from_client: bool, a: bytes, b: bytes) -> tuple[bytes, bytes]:
    return (a, b) if from_client else (b, a)


def geneve() -> None:
    o1, o2 = a4("192.0.2.1"), a4("192.0.2.2")

    def wrap(from_client, inner, _):
        s, d = outer_pair(from_client, o1, o2)
        option = struct.pack("!HBB", 0x0104, 0x01, 1) + b"\0\0\0\x2a"  # class, type, length 1 word
        header = struct.pack("!BBH", len(option) // 4, 0, 0x6558) + struct.pack("!I", 100 << 8) + option
        return [eth(ip_packet(s, d, 17, udp(50000, 6081, header + eth(inner))))]

    write("geneve.pcap", tunnelled([conversation(a4("10.1.0.1"), a4("10.1.0.2"), 40000)], wrap))


def gre() -> None:
    o1, o2 = a4("192.0.2.1"), a4("192.0.2.2")

    def wrap(from_client, inner, index):
        s, d = outer_pair(from_client, o1, o2)
        if index == 0:  # key present: IPv4 payload
            header = struct.pack("!HHI", 0x2000, 0x0800, 7)
            return [eth(ip_packet(s, d, 47, header + inner))]
        tag = struct.pack("!HH", 0x8100, 30)
        return [eth(ip_packet(s, d, 47, struct.pack("!HH", 0, 0x6558) + eth(inner, 0x0800, tag)))]

    convs = [conversation(a4("10.2.0.1"), a4("10.2.0.2"), 40000), conversation(a4("10.2.1.1"), a4("10.2.1.2"), 40001)]
    write("gre.pcap", tunnelled(convs, wrap))


def erspan() -> None:
    switch, collector = a4("192.0.2.10"), a4("192.0.2.20")
    seq = [0]

    def wrap(from_client, inner, index):
        seq[0] += 1
        frame = eth(inner)
        if index == 0:  # type I: GRE without sequence number, the frame follows
            gre = struct.pack("!HH", 0, 0x88BE)
        elif index == 1:  # type II: sequence number, 8-byte ERSPAN header (version 1, session 5)
            gre = struct.pack("!HHI", 0x1000, 0x88BE, seq[0]) + struct.pack("!HHI", 0x1000 | 0, 5, 0)
        else:  # type III: 12 bytes (version 2, session 9), O bit: 8-byte platform header
            gre = (
                struct.pack("!HHI", 0x1000, 0x22EB, seq[0])
                + struct.pack("!HHI", 0x2000, 9, 0)
                + struct.pack("!HH", 0, 0x0001)
                + b"\0" * 8
            )
        return [eth(ip_packet(switch, collector, 47, gre + frame))]

    convs = [conversation(a4("10.3.0.1"), a4("10.3.0.2"), 40000 + i) for i in range(3)]
    write("erspan.pcap", tunnelled(convs, wrap))


def ipip() -> None:
    outer4, outer6 = (a4("192.0.2.1"), a4("192.0.2.2")), (a6("2001:db8::1"), a6("2001:db8::2"))
    inner4, inner6 = (a4("10.4.0.1"), a4("10.4.0.2")), (a6("fd04::1"), a6("fd04::2"))
    cases = [(inner4, outer4), (inner6, outer4), (inner4, outer6), (inner6, outer6)]
    convs = [conversation(inner[0], inner[1], 40000 + i) for i, (inner, _) in enumerate(cases)]

    def wrap(from_client, packet, index):
        outer = cases[index][1]
        s, d = outer_pair(from_client, *outer)
        proto = 4 if packet[0] >> 4 == 4 else 41
        whole = ip_packet(s, d, proto, packet)
        return [eth(whole, ether_type(whole))]

    write("ipip.pcap", tunnelled(convs, wrap))


def gtp() -> None:
    enb, upf = a4("192.0.2.1"), a4("192.0.2.2")
    ident = [100]

    def wrap(from_client, inner, _):
        s, d = outer_pair(from_client, enb, upf)
        teid = 0x1111 if from_client else 0x2222
        ext = bytes([1, 0x00, 0x09, 0x00])  # PDU session container: 1 word, QFI 9, no next
        header = struct.pack("!BBHI", 0x34, 0xFF, 4 + len(ext) + len(inner), teid) + struct.pack("!HBB", 0, 0, 0x85)
        header += ext
        datagram = bytes(udp(2152, 2152, header + inner))
        ident[0] += 1
        if len(datagram) < 600:
            return [eth(ip_packet(s, d, 17, datagram, ident[0], 0))]
        # fragmented at 400 bytes of payload (a multiple of 8), as GTP's outer packets are
        ip = dpkt.ip.IP(src=s, dst=d, p=17, ttl=64, id=ident[0])
        ip.data = datagram
        first = dpkt.ip.IP(src=s, dst=d, p=17, ttl=64, id=ident[0], _flags_offset=0x2000, data=datagram[:400])
        first.len = 420
        second = dpkt.ip.IP(src=s, dst=d, p=17, ttl=64, id=ident[0], _flags_offset=400 // 8, data=datagram[400:])
        second.len = 20 + len(datagram) - 400
        return [eth(bytes(first)), eth(bytes(second))]

    write("gtp.pcap", tunnelled([conversation(a4("10.45.0.7"), a4("198.51.100.80"), 40000)], wrap))


def teredo() -> None:
    client, relay = a4("192.0.2.1"), a4("203.0.113.1")

    def wrap(from_client, inner, _):
        if from_client:
            return [eth(ip_packet(client, relay, 17, udp(40123, 3544, inner)))]
        origin = struct.pack("!HH", 0, 3544 ^ 0xFFFF) + bytes(b ^ 0xFF for b in relay)
        return [eth(ip_packet(relay, client, 17, udp(3544, 40123, origin + inner)))]

    conv = conversation(a6("2001::4136:e378:8000:63bf:3fff:fdd2"), a6("2001:db8:7::80"), 40000)
    write("teredo.pcap", tunnelled([conv], wrap))


def ayiya() -> None:
    o1, o2 = a4("192.0.2.1"), a4("192.0.2.2")

    def wrap(from_client, inner, _):
        s, d = outer_pair(from_client, o1, o2)
        # id length 2**4 = 16 bytes (type 1: IPv6 address), signature 5 words (SHA-1), auth 2, opcode 1
        header = struct.pack("!BBBB", 0x41, 0x52, 0x21, 41) + struct.pack("!I", 1700000000) + s.rjust(16, b"\0")
        header += b"\x5a" * 20
        return [eth(ip_packet(s, d, 17, udp(5072, 5072, header + inner)))]

    write("ayiya.pcap", tunnelled([conversation(a6("2001:db8:a::1"), a6("2001:db8:b::2"), 40000)], wrap))


def l2tp() -> None:
    lac, lns = a4("192.0.2.1"), a4("192.0.2.2")
    ns = [0]
    control = struct.pack("!HHHHHH", 0xC802, 12, 1, 0, 0, 0)  # T, L, S: a zero-length body (ZLB) ack
    frames = [eth(ip_packet(lac, lns, 17, udp(1701, 1701, control)))]

    def wrap(from_client, inner, _):
        s, d = outer_pair(from_client, lac, lns)
        ns[0] += 1
        body = b"\xff\x03\x00\x21" + inner
        header = struct.pack("!HHHHHH", 0x4802, 12 + len(body), 5 if from_client else 6, 9, ns[0], 0)
        return [eth(ip_packet(s, d, 17, udp(1701, 1701, header + body)))]

    frames += tunnelled([conversation(a4("100.64.0.7"), a4("198.51.100.80"), 40000)], wrap)
    write("l2tp.pcap", frames)


def ipsec_ah() -> None:
    a, b = a4("192.0.2.1"), a4("192.0.2.2")

    def ah(next_header: int, spi: int, seq: int) -> bytes:
        return struct.pack("!BBHII", next_header, 4, 0, spi, seq) + b"\x11" * 12  # 96-bit ICV: 6 words - 2

    def wrap(from_client, inner, index):
        s, d = outer_pair(from_client, a, b)
        if index == 0:  # transport mode: the TCP segment after AH (its checksum covers the real addresses)
            ip = dpkt.ip.IP(inner)
            segment = bytes(ip.data)
            whole = dpkt.ip.IP(src=ip.src, dst=ip.dst, p=51, ttl=64, data=ah(6, 0x100, 1) + segment)
            whole.len = 20 + 24 + len(segment)
            return [eth(bytes(whole))]
        return [eth(ip_packet(s, d, 51, ah(4, 0x200, 1) + inner))]

    convs = [conversation(a, b, 40000), conversation(a4("10.6.0.1"), a4("10.6.0.2"), 40001)]
    frames = tunnelled(convs, wrap)
    for i in range(5):
        frames.append(eth(ip_packet(a, b, 50, struct.pack("!II", 0x300, i + 1) + bytes(range(64)))))
    write("ipsec_ah.pcap", frames)


def shims() -> None:
    def wrap(from_client, inner, index):
        if index == 0:  # PPPoE session, 1-byte PPP protocol (0x21)
            body = b"\x21" + inner
            return [eth(struct.pack("!BBHH", 0x11, 0, 0x0042, len(body)) + body, 0x8864)]
        if index == 1:  # MPLS, two labels
            return [eth(struct.pack("!II", 100 << 12 | 64, 200 << 12 | 1 << 8 | 64) + inner, 0x8847)]
        if index == 2:  # 802.1BR E-Tag
            return [eth(inner, 0x0800, struct.pack("!H", 0x893F) + struct.pack("!HHH", 0, 0x0123, 0))]
        return [eth(inner, 0x0800, struct.pack("!HHHH", 0x88A8, 10, 0x8100, 20))]  # QinQ

    convs = [conversation(a4("10.7.0.1"), a4("10.7.0.2"), 40000 + i) for i in range(4)]
    write("shims.pcap", tunnelled(convs, wrap))


def ppp_mpls() -> None:
    def wrap(from_client, inner, _):
        return [b"\xff\x03\x02\x81" + struct.pack("!I", 300 << 12 | 1 << 8 | 64) + inner]

    write("ppp_mpls.pcap", tunnelled([conversation(a4("10.8.0.1"), a4("10.8.0.2"), 40000)], wrap), linktype=9)


def nested() -> None:
    v1, v2 = a6("2001:db8:5::1"), a6("2001:db8:5::2")
    g1, g2, h1, h2 = a4("192.0.2.1"), a4("192.0.2.2"), a4("198.18.0.1"), a4("198.18.0.2")

    def wrap(from_client, inner, index):
        if index == 0:  # VLAN 100 inside VXLAN (VNI 5) inside IPv6
            s, d = outer_pair(from_client, v1, v2)
            vxlan = struct.pack("!II", 0x08000000, 5 << 8) + eth(inner, 0x0800, struct.pack("!HH", 0x8100, 100))
            whole = ip_packet(s, d, 17, udp(51000, 4789, vxlan))
            return [eth(whole, 0x86DD)]
        s, d = outer_pair(from_client, h1, h2)
        inner_gre = ip_packet(s, d, 47, struct.pack("!HH", 0, 0x0800) + inner)
        s, d = outer_pair(from_client, g1, g2)
        return [eth(ip_packet(s, d, 47, struct.pack("!HH", 0, 0x0800) + inner_gre))]

    convs = [conversation(a4("10.9.0.1"), a4("10.9.0.2"), 40000), conversation(a4("10.9.1.1"), a4("10.9.1.2"), 40001)]
    write("nested.pcap", tunnelled(convs, wrap))


def vxlan_vni_reuse() -> None:
    o1, o2 = a4("192.0.2.1"), a4("192.0.2.2")
    convs = [conversation(a4("10.10.0.1"), a4("10.10.0.2"), 40000) for _ in range(2)]
    frames = []
    for step in range(10):  # interleaved: packet n of VNI 1, then packet n of VNI 2
        for vni in (1, 2):
            from_client, inner = convs[vni - 1][step]
            s, d = outer_pair(from_client, o1, o2)
            vxlan = struct.pack("!II", 0x08000000, vni << 8) + eth(inner)
            frames.append(eth(ip_packet(s, d, 17, udp(50000 + vni, 4789, vxlan))))
    write("vxlan_vni_reuse.pcap", frames)


def main() -> int:
    for make in (
        geneve,
        gre,
        erspan,
        ipip,
        gtp,
        teredo,
        ayiya,
        l2tp,
        ipsec_ah,
        shims,
        ppp_mpls,
        nested,
        vxlan_vni_reuse,
    ):
        make()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
