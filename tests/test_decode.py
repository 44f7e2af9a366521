"""Tests for tcpflow_audit.decode: every frame is built here with struct (checksums via dpkt)."""

from __future__ import annotations

import os
import random
import struct
from collections import Counter

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpflow_audit.decode import (
    ACK,
    ACK_FLAG,
    CHECKSUM_OK,
    CWR,
    DST_IP,
    DST_PORT,
    ECE,
    FIN,
    FLAGS,
    PAYLOAD_LEN,
    PSH,
    RST,
    SEQ,
    SRC_IP,
    SRC_PORT,
    SUPPORTED_LINKTYPES,
    SYN,
    URG,
    WINDOW,
    Decoder,
    format_ip,
    internet_checksum,
    ones_complement_sum,
)
from tcpflow_audit.link_layers import LINKTYPES

SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([192, 168, 7, 200])
SRC6 = bytes.fromhex("20010db8000000000000000000000001")
DST6 = bytes.fromhex("20010db8abcd00000000000000000002")
MAC1, MAC2 = bytes.fromhex("001122334455"), bytes.fromhex("66778899aabb")


# --------------------------------------------------------------------------------------------
# Frame builders
# --------------------------------------------------------------------------------------------


def tcp(
    payload=b"",
    sport=1234,
    dport=80,
    seq=0x11223344,
    ack=0xAABBCCDD,
    flags=ACK_FLAG | PSH,
    win=0xFEDC,
    opts=b"",
    off=None,
    csum=0,
):
    assert len(opts) % 4 == 0
    if off is None:
        off = 5 + len(opts) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, csum, 0) + opts + payload


def _fill_tcp_csum(seg: bytes, pseudo: bytes) -> bytes:
    seg = seg[:16] + b"\0\0" + seg[18:]
    c = dpkt.in_cksum(pseudo + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def ip4(seg, src=SRC4, dst=DST4, proto=6, tot=None, ihl=None, frag=0, opts=b"", ver=4, fix_tcp=True, csum=None):
    if ihl is None:
        ihl = 5 + len(opts) // 4
    if tot is None:
        tot = 4 * ihl + len(seg)
    if fix_tcp and proto == 6 and len(seg) >= 18:
        seg = _fill_tcp_csum(seg, src + dst + struct.pack("!BBH", 0, 6, len(seg)))
    hdr = struct.pack("!BBHHHBBH4s4s", ver << 4 | ihl, 0, tot, 0x1234, frag, 64, proto, 0, src, dst) + opts
    if csum is None:
        csum = dpkt.in_cksum(hdr)
    hdr = hdr[:10] + struct.pack("!H", csum) + hdr[12:]
    return hdr + seg


def ip6(seg, src=SRC6, dst=DST6, nh=6, ext=b"", plen=None, fix_tcp=True, pseudo_dst=None, ver=6):
    """ext: already-encoded extension headers; nh: the first next-header value."""
    if plen is None:
        plen = len(ext) + len(seg)
    if fix_tcp and len(seg) >= 18:
        seg = _fill_tcp_csum(seg, src + (pseudo_dst or dst) + struct.pack("!IxxxB", len(seg), 6))
    return struct.pack("!IHBB16s16s", ver << 28, plen, nh, 64, src, dst) + ext + seg


def ext_hdr(nh, body_len8=0, kind="generic"):
    """A generic extension header (Hdr Ext Len in 8-octet units beyond the first 8)."""
    if kind == "ah":  # length in 4-octet units minus 2; 12-byte AH + 4 bytes ICV = 16 bytes -> len field 2
        return struct.pack("!BBH", nh, 2, 0) + b"\x00" * 12
    return struct.pack("!BB", nh, body_len8) + b"\x00" * (6 + 8 * body_len8)


def frag6(nh, offset=0, more=False):
    return struct.pack("!BBHI", nh, 0, (offset << 3) | int(more), 0xDEADBEEF)


def eth(payload, et=0x0800):
    return MAC1 + MAC2 + struct.pack("!H", et) + payload


def vlan(et, vid=100):
    return struct.pack("!HH", vid, et)


def mpls(labels, last_bos=True):
    out = b""
    for i, lab in enumerate(labels):
        bos = 1 if (i == len(labels) - 1 and last_bos) else 0
        out += struct.pack("!I", lab << 12 | bos << 8 | 64)
    return out


def seg_fields(seg):
    """The Segment tuple minus checksum_ok, for comparisons."""
    return tuple(seg[:9]) if seg is not None else None


def dec(linktype, frame, verify=False):
    d = Decoder(verify_checksums=verify)
    s = d.decode(linktype, frame)
    # the general path alone must agree with the fast path
    d2 = Decoder(verify_checksums=verify)
    s2 = d2.decode_general(linktype, frame)
    assert s == s2, (s, s2)
    assert d.skipped == d2.skipped
    return s, d.skipped


def reason(linktype, frame, verify=False):
    s, skipped = dec(linktype, frame, verify)
    assert s is None, s
    assert sum(skipped.values()) == 1
    return next(iter(skipped))


PAY = b"hello, world!"
SEG = tcp(PAY)
V4 = ip4(SEG)
V6 = ip6(SEG)
PAY_LEN = len(PAY)


def check_v4(s, plen=PAY_LEN, ok=True):
    assert s is not None
    assert s == (SRC4, 1234, DST4, 80, 0x11223344, 0xAABBCCDD, ACK_FLAG | PSH, 0xFEDC, plen, ok)


def check_v6(s, plen=PAY_LEN, ok=True, dst=DST6):
    assert s is not None
    assert s == (SRC6, 1234, dst, 80, 0x11223344, 0xAABBCCDD, ACK_FLAG | PSH, 0xFEDC, plen, ok)


# --------------------------------------------------------------------------------------------
# API surface
# --------------------------------------------------------------------------------------------


def test_constants():
    assert (SRC_IP, SRC_PORT, DST_IP, DST_PORT, SEQ, ACK, FLAGS, WINDOW, PAYLOAD_LEN, CHECKSUM_OK) == tuple(range(10))
    assert (FIN, SYN, RST, PSH, ACK_FLAG, URG, ECE, CWR) == (1, 2, 4, 8, 16, 32, 64, 128)
    assert SUPPORTED_LINKTYPES == {0, 1, 9, 10, 12, 14, 50, 101, 108, 113, 228, 229, 276} | LINKTYPES
    assert isinstance(SUPPORTED_LINKTYPES, frozenset)


def test_format_ip():
    assert format_ip(SRC4) == "10.0.0.1"
    assert format_ip(bytes([255, 0, 9, 10])) == "255.0.9.10"
    assert format_ip(DST6) == "2001:db8:abcd::2"
    assert format_ip(bytes(16)) == "::"
    assert format_ip(bytes.fromhex("fe800000000000000000000000000001")) == "fe80::1"
    with pytest.raises(ValueError):
        format_ip(b"\x01\x02\x03")


def test_basic_ethernet_ipv4_and_types():
    s, skipped = dec(1, eth(V4))
    check_v4(s)
    assert type(s) is tuple and len(s) == 10
    assert type(s[SRC_IP]) is bytes and type(s[DST_IP]) is bytes
    assert not skipped


def test_basic_ethernet_ipv6():
    s, _ = dec(1, eth(V6, 0x86DD))
    check_v6(s)


def test_flags_and_window_raw():
    for flags in (SYN, SYN | ACK_FLAG, FIN | ACK_FLAG, RST, 0xFF, 0):
        s, _ = dec(1, eth(ip4(tcp(flags=flags, win=0xFFFF))))
        assert s[FLAGS] == flags and s[WINDOW] == 0xFFFF


def test_skipped_counter_replaced_and_cleared():
    d = Decoder()
    arp = eth(b"\x00" * 28, 0x0806)
    assert d.decode(1, arp) is None
    assert d.skipped == Counter({"not_ip": 1})
    d.skipped.clear()
    d.decode(1, arp)
    assert d.skipped["not_ip"] == 1
    d.skipped = Counter()
    d.decode(1, arp)
    d.decode(1, arp)
    assert d.skipped == Counter({"not_ip": 2})
    assert "Decoder(" in repr(d)


def test_unsupported_linktype():
    assert reason(147, eth(V4)) == "unsupported_linktype"  # DLT_USER0
    assert reason(999999, b"") == "unsupported_linktype"


# --------------------------------------------------------------------------------------------
# Link types
# --------------------------------------------------------------------------------------------


def _sll(proto, payload):
    return struct.pack("!HHH8sH", 0, 1, 6, MAC1 + b"\0\0", proto) + payload


def _sll2(proto, payload):
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 0, 6, MAC1 + b"\0\0") + payload


def _fddi(et, payload):
    return b"\x50" + MAC1 + MAC2 + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", et) + payload


LINK_CASES = [
    # (name, linktype, builder(ip_packet, version) -> frame)
    ("en10mb", 1, lambda p, v: eth(p, 0x0800 if v == 4 else 0x86DD)),
    ("null-le", 0, lambda p, v: struct.pack("<I", 2 if v == 4 else 30) + p),
    ("null-be", 0, lambda p, v: struct.pack(">I", 2 if v == 4 else 28) + p),
    ("null-le-af24", 0, lambda p, v: struct.pack("<I", 2 if v == 4 else 24) + p),
    ("null-be-af10", 0, lambda p, v: struct.pack(">I", 2 if v == 4 else 10) + p),
    ("loop", 108, lambda p, v: struct.pack(">I", 2 if v == 4 else 24) + p),
    ("raw", 101, lambda p, v: p),
    ("raw12", 12, lambda p, v: p),
    ("raw14", 14, lambda p, v: p),
    ("sll", 113, lambda p, v: _sll(0x0800 if v == 4 else 0x86DD, p)),
    ("sll2", 276, lambda p, v: _sll2(0x0800 if v == 4 else 0x86DD, p)),
    ("fddi", 10, lambda p, v: _fddi(0x0800 if v == 4 else 0x86DD, p)),
    ("ppp", 9, lambda p, v: struct.pack("!H", 0x21 if v == 4 else 0x57) + p),
    ("ppp-ff03", 9, lambda p, v: b"\xff\x03" + struct.pack("!H", 0x21 if v == 4 else 0x57) + p),
    ("ppp-pfc", 9, lambda p, v: bytes([0x21 if v == 4 else 0x57]) + p),
    ("ppp-hdlc", 50, lambda p, v: b"\xff\x03" + struct.pack("!H", 0x21 if v == 4 else 0x57) + p),
    ("ppp-hdlc-noaddr", 50, lambda p, v: struct.pack("!H", 0x21 if v == 4 else 0x57) + p),
    ("cisco-hdlc-in-50", 50, lambda p, v: b"\x0f\x00" + struct.pack("!H", 0x0800 if v == 4 else 0x86DD) + p),
    ("sll-vlan", 113, lambda p, v: _sll(0x8100, vlan(0x0800 if v == 4 else 0x86DD) + p)),
]


@pytest.mark.parametrize("name,linktype,build", LINK_CASES, ids=[c[0] for c in LINK_CASES])
def test_link_types_ipv4_ipv6(name, linktype, build):
    for verify in (False, True):
        s, _ = dec(linktype, build(V4, 4), verify)
        check_v4(s)
        s, _ = dec(linktype, build(V6, 6), verify)
        check_v6(s)


def test_dedicated_ip_linktypes():
    check_v4(dec(228, V4)[0])
    check_v6(dec(229, V6)[0])
    assert reason(228, V6) == "bad_ip_header"
    assert reason(229, V4) == "bad_ip_header"
    assert reason(101, b"\x10" + V4[1:]) == "bad_ip_header"


def test_link_not_ip():
    assert reason(1, eth(b"\x00" * 28, 0x0806)) == "not_ip"  # ARP
    assert reason(1, eth(b"\x00" * 40, 0x88CC)) == "not_ip"  # LLDP
    assert reason(0, struct.pack("<I", 7) + V4) == "not_ip"
    assert reason(108, struct.pack("<I", 2) + V4) == "not_ip"  # LOOP is network order: 0x02000000
    assert reason(9, b"\xc0\x21" + b"\x00" * 30) == "not_ip"  # LCP
    assert reason(10, b"\x50" + MAC1 + MAC2 + b"\xe0\xe0\x03" + b"\x00" * 50) == "not_ip"
    assert reason(113, _sll(0x0806, b"\x00" * 40)) == "not_ip"
    assert reason(276, _sll2(0x0004, b"\x00" * 40)) == "not_ip"
    assert reason(1, eth(b"\x42\x42\x03" + b"\x00" * 50, 100)) == "not_ip"  # 802.3 + non-SNAP LLC


# --------------------------------------------------------------------------------------------
# Encapsulations inside Ethernet
# --------------------------------------------------------------------------------------------


def _pbb(inner_et, payload):
    return eth(struct.pack("!I", 0x001EBB30) + MAC2 + MAC1 + struct.pack("!H", inner_et) + payload, 0x88E7)


def _fabricpath(inner_frame):
    return MAC1 + MAC2 + struct.pack("!HH", 0x8903, 0x0001) + inner_frame


ENCAP_CASES = [
    ("vlan", lambda p, et: eth(vlan(et) + p, 0x8100)),
    ("qinq-88a8", lambda p, et: eth(vlan(0x8100, 5) + vlan(et, 6) + p, 0x88A8)),
    ("qinq-9100", lambda p, et: eth(vlan(0x8100, 5) + vlan(et, 6) + p, 0x9100)),
    ("five-tags", lambda p, et: eth(vlan(0x88A8) + vlan(0x9100) + vlan(0x8100) + vlan(0x8100) + vlan(et) + p, 0x8100)),
    ("pbb", lambda p, et: _pbb(et, p)),
    ("vlan-pbb", lambda p, et: eth(vlan(0x88E7) + _pbb(et, p)[14:], 0x8100)),
    ("pbb-inner-vlan", lambda p, et: _pbb(0x8100, vlan(et) + p)),
    ("vntag", lambda p, et: eth(struct.pack("!IH", 0x00000033, et) + p, 0x8926)),
    ("vntag-in-vlan", lambda p, et: eth(vlan(0x8926) + struct.pack("!IH", 0x33, 0x8100) + vlan(et) + p, 0x8100)),
    ("fabricpath", lambda p, et: _fabricpath(eth(p, et))),
    ("fabricpath-vlan", lambda p, et: _fabricpath(eth(vlan(et) + p, 0x8100))),
    ("mpls1", lambda p, et: eth(mpls([100]) + p, 0x8847)),
    ("mpls3", lambda p, et: eth(mpls([100, 200, 300]) + p, 0x8847)),
    ("mpls-mcast", lambda p, et: eth(mpls([16]) + p, 0x8848)),
    ("vlan-mpls", lambda p, et: eth(vlan(0x8847) + mpls([1, 2]) + p, 0x8100)),
    (
        "pppoe",
        lambda p, et: eth(
            struct.pack("!BBHHH", 0x11, 0, 0x1234, len(p) + 2, 0x21 if et == 0x0800 else 0x57) + p, 0x8864
        ),
    ),
    (
        "vlan-pppoe",
        lambda p, et: eth(
            vlan(0x8864) + struct.pack("!BBHHH", 0x11, 0, 1, len(p) + 2, 0x21 if et == 0x0800 else 0x57) + p, 0x8100
        ),
    ),
    ("llc-snap", lambda p, et: eth(b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", et) + p, 8 + len(p))),
]


@pytest.mark.parametrize("name,build", ENCAP_CASES, ids=[c[0] for c in ENCAP_CASES])
def test_ethernet_encapsulations(name, build):
    for verify in (False, True):
        check_v4(dec(1, build(V4, 0x0800), verify)[0])
        check_v6(dec(1, build(V6, 0x86DD), verify)[0])
        # padded to a minimum-size frame and beyond: payload length still from IP
        check_v4(dec(1, build(V4, 0x0800) + b"\x00" * 40, verify)[0])


def test_encapsulation_not_ip():
    assert reason(1, eth(mpls([5]) + b"\x00" * 60, 0x8847)) == "not_ip"  # e.g. Ethernet pseudowire control word
    assert reason(1, eth(struct.pack("!BBHHH", 0x11, 0, 1, 10, 0xC021) + b"\x00" * 40, 0x8864)) == "not_ip"
    assert reason(1, eth(vlan(0x0806) + b"\x00" * 28, 0x8100)) == "not_ip"
    assert reason(1, _pbb(0x8102, b"\x00" * 40)) == "not_ip"


def test_encapsulation_truncated():
    assert reason(1, eth(b"\x00\x64", 0x8100)) == "truncated_link"
    assert reason(1, eth(b"\x00" * 10, 0x88E7)) == "truncated_link"
    assert reason(1, eth(b"\x00" * 5, 0x8926)) == "truncated_link"
    assert reason(1, MAC1 + MAC2 + b"\x89\x03" + b"\x00" * 10) == "truncated_link"
    assert reason(1, eth(mpls([1, 2], last_bos=False), 0x8847)) == "truncated_link"
    assert reason(1, eth(mpls([1]), 0x8847)) == "truncated_ip"
    assert reason(1, eth(b"\x11\x00\x00\x01\x00", 0x8864)) == "truncated_link"
    assert reason(1, eth(b"\xaa\xaa\x03", 50)) == "truncated_link"


def test_null_byte_order_detection():
    for af in (2, 10, 24, 28, 30):
        pkt = V4 if af == 2 else V6
        for fmt in ("<I", ">I"):
            s, _ = dec(0, struct.pack(fmt, af) + pkt)
            assert s is not None and s[PAYLOAD_LEN] == len(PAY)
    assert reason(0, b"\x02\x00") == "truncated_link"
    assert reason(108, b"") == "truncated_link"


# --------------------------------------------------------------------------------------------
# IPv4 details
# --------------------------------------------------------------------------------------------


def test_ipv4_options_general_path():
    opts = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    for verify in (False, True):
        check_v4(dec(1, eth(ip4(SEG, opts=opts)), verify)[0])
        check_v4(dec(101, ip4(SEG, opts=opts * 10), verify)[0])  # IHL 15


def test_ipv4_bad_headers():
    assert reason(1, eth(ip4(SEG, ihl=4))) == "bad_ip_header"
    assert reason(1, eth(ip4(SEG, ihl=0))) == "bad_ip_header"
    assert reason(1, eth(ip4(SEG, ver=6))) == "bad_ip_header"
    # IHL 15 (60 bytes) but only 40 bytes of IP captured
    assert reason(1, eth(ip4(b"", ihl=15) + b"\x00" * 20)) == "bad_ip_header"
    # total length shorter than IP header + TCP fixed header
    assert reason(1, eth(ip4(SEG, tot=39))) == "bad_ip_header"
    assert reason(1, eth(ip4(SEG, tot=10))) == "bad_ip_header"
    # a TCP header (with options) longer than the IP payload, whose 20 fixed bytes are there: read with
    # them, payload 0, and counted (tshark counts it in its stream; Zeek: bad_TCP_header_len)
    seg = tcp(b"", opts=b"\x01" * 12)
    s, skipped = dec(1, eth(ip4(seg, tot=20 + 24)))
    assert s is not None and s[PAYLOAD_LEN] == 0 and s[SRC_PORT] == seg_fields(dec(1, eth(ip4(SEG)))[0])[1]
    assert not skipped
    d = Decoder()
    assert d.decode(1, eth(ip4(seg, tot=20 + 24)), 3.0) is not None
    assert (d.header_past_segment, d.header_past_segment_first) == (1, 3.0)
    # fewer than the 20 fixed bytes in the IP payload: no TCP header at all
    assert reason(1, eth(ip4(seg, tot=20 + 16))) == "bad_ip_header"


def test_ipv4_not_tcp():
    udp = struct.pack("!HHHH", 53, 53, 12, 0) + b"abcd"
    assert reason(1, eth(ip4(udp, proto=17))) == "not_tcp"
    assert reason(1, eth(ip4(b"\x08\x00" + b"\x00" * 30, proto=1))) == "not_tcp"
    assert reason(101, ip4(udp, proto=17, opts=b"\x01" * 4)) == "not_tcp"


def first_fragment_alone(linktype, frame, verify=False):
    """A TCP first fragment is held for its datagram (an ip_fragment meanwhile); given up on, it is
    read alone: its own payload length, a TCP packet and no more an ip_fragment."""
    assert reason(linktype, frame, verify) == "ip_fragment"
    d = Decoder(verify_checksums=verify)
    assert d.decode(linktype, frame, 5.0) is None and d.holding
    assert d.take_released(5.5, -1) == [] and d.holding  # within the wait
    ((ts, s, tunnel),) = d.take_released(6.5, -1)  # past it
    assert ts == 5.0 and tunnel == "" and not d.holding
    assert not d.skipped and d.fragments_incomplete == 1 and not d.fragments.pending
    return s


def test_ipv4_fragments():
    # first fragment (MF set, offset 0), held then read alone: payload length is this fragment's
    check_v4(first_fragment_alone(1, eth(ip4(SEG, frag=0x2000))))
    # verify mode: a first fragment's TCP checksum cannot be checked (segment incomplete)
    seg_part = tcp(PAY)
    s = first_fragment_alone(1, eth(ip4(seg_part, frag=0x2000, fix_tcp=False)), verify=True)
    assert s[CHECKSUM_OK] is True
    # DF alone is fine
    check_v4(dec(1, eth(ip4(SEG, frag=0x4000)))[0])
    # non-first fragments are skipped
    for frag in (1, 0x2001, 0x1FFF, 185):
        assert reason(1, eth(ip4(SEG, frag=frag))) == "ip_fragment"
        assert reason(101, ip4(SEG, frag=frag, opts=b"\x01" * 8)) == "ip_fragment"


def test_ipv4_tso_zero_total_length():
    s, _ = dec(1, eth(ip4(SEG, tot=0)))
    check_v4(s)
    s, _ = dec(113, _sll(0x0800, ip4(SEG, tot=0)))
    check_v4(s)
    # verify mode: the checksum of an offloaded segment is not checked
    s, _ = dec(1, eth(ip4(tcp(PAY), tot=0, fix_tcp=False)), verify=True)
    check_v4(s)
    # zero total length and options truncated by the snap length: payload 0, never negative
    seg = tcp(b"", opts=b"\x01" * 8)
    s, _ = dec(1, eth(ip4(seg, tot=0))[:-4])
    assert s is not None and s[PAYLOAD_LEN] == 0


def test_padding_and_snaplen():
    # pure ACK padded to 60 bytes
    f = eth(ip4(tcp(b"", flags=ACK_FLAG)))
    assert len(f) == 54
    s, _ = dec(1, f + b"\x00" * 6)
    assert s[PAYLOAD_LEN] == 0
    s, _ = dec(1, f + b"\xff" * 100)
    assert s[PAYLOAD_LEN] == 0
    # snap length cut the payload: payload length from IP
    big = eth(ip4(tcp(b"x" * 1400)))
    for cut in (54, 60, 96, 1000):
        s, _ = dec(1, big[:cut])
        assert s[PAYLOAD_LEN] == 1400
        s, _ = dec(1, big[:cut], verify=True)
        assert s[PAYLOAD_LEN] == 1400 and s[CHECKSUM_OK] is True  # not verifiable -> True
    # data offset beyond the captured bytes (options cut) is fine once 20 TCP bytes are there
    seg = tcp(b"abc", opts=b"\x01" * 20)
    s, _ = dec(1, eth(ip4(seg))[:54])
    assert s is not None and s[PAYLOAD_LEN] == 3


def test_tcp_offset_and_truncation():
    assert reason(1, eth(ip4(tcp(PAY, off=4)))) == "bad_tcp_offset"
    assert reason(1, eth(ip4(tcp(PAY, off=0)))) == "bad_tcp_offset"
    assert reason(1, eth(V6, 0x86DD)[: -len(SEG) + 19]) == "truncated_tcp"
    assert reason(1, eth(ip6(tcp(PAY, off=3)), 0x86DD)) == "bad_tcp_offset"
    check_v4(dec(1, eth(ip4(tcp(PAY, opts=b"\x01" * 40))))[0])  # data offset 15


# --------------------------------------------------------------------------------------------
# Truncation at every byte: reasons at each header boundary, never an exception
# --------------------------------------------------------------------------------------------


def _boundaries_check(linktype, frame, bounds, full_reason_ok=True):
    """bounds: sorted list of (first_length_ok, reason_below) pairs: lengths below the first bound
    give its reason, and so on; lengths >= the last bound decode."""
    for cut in range(len(frame) + 1):
        s, skipped = dec(linktype, frame[:cut])
        expect = None
        for limit, why in bounds:
            if cut < limit:
                expect = why
                break
        if expect is None:
            assert s is not None, (cut, dict(skipped))
        else:
            assert s is None and list(skipped) == [expect], (cut, dict(skipped), expect)
        s2, _ = dec(linktype, frame[:cut], verify=True)
        assert (s2 is None) == (s is None)


def test_truncation_every_boundary_ethernet_ipv4():
    _boundaries_check(1, eth(V4), [(14, "truncated_link"), (34, "truncated_ip"), (54, "truncated_tcp")])


def test_truncation_every_boundary_vlan_ipv6_ext():
    ext = ext_hdr(60, 1) + ext_hdr(44, 0) + frag6(6)
    f = eth(vlan(0x86DD) + ip6(SEG, nh=0, ext=ext), 0x8100)
    # IPv6 at 18, hop-by-hop (16 bytes) at 58, destination options (8) at 74, fragment (8) at 82, TCP at 90:
    # anything cut inside the IPv6 header or the extension chain is truncated_ip
    _boundaries_check(1, f, [(18, "truncated_link"), (90, "truncated_ip"), (110, "truncated_tcp")])


def test_truncation_every_boundary_other_links():
    _boundaries_check(113, _sll(0x0800, V4), [(16, "truncated_link"), (36, "truncated_ip"), (56, "truncated_tcp")])
    _boundaries_check(276, _sll2(0x86DD, V6), [(20, "truncated_link"), (60, "truncated_ip"), (80, "truncated_tcp")])
    _boundaries_check(
        0, struct.pack("<I", 2) + V4, [(4, "truncated_link"), (24, "truncated_ip"), (44, "truncated_tcp")]
    )
    _boundaries_check(10, _fddi(0x0800, V4), [(21, "truncated_link"), (41, "truncated_ip"), (61, "truncated_tcp")])
    _boundaries_check(101, V4, [(1, "truncated_ip"), (20, "truncated_ip"), (40, "truncated_tcp")])
    _boundaries_check(229, V6, [(40, "truncated_ip"), (60, "truncated_tcp")])
    _boundaries_check(9, b"\xff\x03\x00\x21" + V4, [(4, "truncated_link"), (24, "truncated_ip"), (44, "truncated_tcp")])
    pppoe = eth(struct.pack("!BBHHH", 0x11, 0, 1, 0, 0x21) + V4, 0x8864)
    _boundaries_check(1, pppoe, [(22, "truncated_link"), (42, "truncated_ip"), (62, "truncated_tcp")])
    m = eth(mpls([1, 2]) + V4, 0x8847)
    _boundaries_check(1, m, [(22, "truncated_link"), (23, "truncated_ip"), (42, "truncated_ip"), (62, "truncated_tcp")])
    _boundaries_check(1, _pbb(0x0800, V4), [(32, "truncated_link"), (52, "truncated_ip"), (72, "truncated_tcp")])
    _boundaries_check(1, _fabricpath(eth(V4)), [(30, "truncated_link"), (50, "truncated_ip"), (70, "truncated_tcp")])


# --------------------------------------------------------------------------------------------
# IPv6 extension headers
# --------------------------------------------------------------------------------------------


def test_ipv6_extension_chain():
    # hop-by-hop -> routing (segments left 0) -> dest opts -> AH -> fragment (first) -> mobility(135)
    # -> HIP(139) -> shim6(140) -> TCP
    ext = (
        ext_hdr(43, 0)
        + struct.pack("!BBBB", 60, 0, 4, 0)
        + b"\x00" * 4
        + ext_hdr(51, 2)
        + ext_hdr(44, kind="ah")
        + frag6(135)
        + ext_hdr(139, 0)
        + ext_hdr(140, 1)
        + ext_hdr(6, 0)
    )
    for verify in (False, True):
        s, _ = dec(1, eth(ip6(SEG, nh=0, ext=ext), 0x86DD), verify)
        check_v6(s)
        s, _ = dec(229, ip6(SEG, nh=0, ext=ext) + b"\x00" * 7, verify)  # trailing junk ignored
        check_v6(s)


def test_ipv6_ext_limit():
    def chain(k):
        ext = b"".join(ext_hdr(60, 0) for _ in range(k - 1)) + ext_hdr(6, 0)
        return ip6(SEG, nh=60, ext=ext)

    check_v6(dec(229, chain(16))[0])
    assert reason(229, chain(17)) == "ipv6_ext_loop"
    assert reason(229, chain(200)) == "ipv6_ext_loop"


def test_ipv6_fragments():
    check_v6(first_fragment_alone(229, ip6(SEG, nh=44, ext=frag6(6, 0, more=True))))
    s = first_fragment_alone(229, ip6(tcp(PAY), nh=44, ext=frag6(6, 0, more=True), fix_tcp=False), verify=True)
    assert s[CHECKSUM_OK] is True  # incomplete segment: not verified
    for off in (1, 100, 8191):
        assert reason(229, ip6(SEG, nh=44, ext=frag6(6, off))) == "ip_fragment"
    assert reason(1, eth(ip6(SEG, nh=0, ext=ext_hdr(44, 0) + frag6(6, 3, True)), 0x86DD)) == "ip_fragment"


def test_ipv6_not_tcp_and_no_next_header():
    assert reason(229, ip6(b"\x00" * 20, nh=17)) == "not_tcp"
    assert reason(229, ip6(b"", nh=59)) == "not_tcp"
    assert reason(229, ip6(b"", nh=0, ext=ext_hdr(59, 0))) == "not_tcp"
    assert reason(229, ip6(b"\x00" * 8, nh=58)) == "not_tcp"


def test_ipv6_bad_lengths_and_zero_payload_length():
    assert reason(229, ip6(SEG, plen=19)) == "bad_ip_header"
    assert reason(229, ip6(SEG, nh=60, ext=ext_hdr(6, 1), plen=30)) == "bad_ip_header"
    seg = tcp(b"", opts=b"\x01" * 12)
    assert reason(229, ip6(seg, plen=16)) == "bad_ip_header"
    s, skipped = dec(229, ip6(seg, plen=24))  # the fixed header there, the options past the segment
    assert s is not None and s[PAYLOAD_LEN] == 0 and not skipped
    # payload length 0 (offload / jumbogram): from the captured bytes
    check_v6(dec(229, ip6(SEG, plen=0))[0])
    check_v6(dec(229, ip6(tcp(PAY), plen=0, fix_tcp=False), verify=True)[0])
    check_v6(dec(229, ip6(SEG, nh=0, ext=ext_hdr(6, 2), plen=0))[0])
    # padding after the packet is ignored
    check_v6(dec(1, eth(V6, 0x86DD) + b"\x00" * 30)[0])
    assert reason(229, ip6(SEG, ver=4)) == "bad_ip_header"
    # an extension header whose length runs past the capture
    assert reason(229, ip6(b"", nh=0, ext=struct.pack("!BB", 6, 10) + b"\x00" * 6)) == "truncated_ip"


def test_ipv6_routing_header_final_destination():
    final = bytes.fromhex("20010db8ffff00000000000000000099")
    rh0 = struct.pack("!BBBBI", 6, 4, 0, 1, 0) + DST6 + final  # type 0, 2 addresses, 1 segment left
    pkt = ip6(SEG, nh=43, ext=rh0, pseudo_dst=final)
    for verify in (False, True):
        check_v6(dec(229, pkt, verify)[0], dst=final)
    rh2 = struct.pack("!BBBBI", 6, 2, 2, 1, 0) + final  # type 2 (mobile IPv6)
    check_v6(dec(229, ip6(SEG, nh=43, ext=rh2, pseudo_dst=final), True)[0], dst=final)
    # no segments left: the destination field is final
    rh0_done = struct.pack("!BBBBI", 6, 2, 0, 0, 0) + final
    check_v6(dec(229, ip6(SEG, nh=43, ext=rh0_done), True)[0])


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


def _corrupt(frame, at):
    b = bytearray(frame)
    b[at] ^= 0x5A
    return bytes(b)


@pytest.mark.parametrize("paylen", [0, 1, 13, 512, 513, 1400, 1401])
def test_checksum_ipv4(paylen):
    pay = bytes(random.Random(paylen).randrange(256) for _ in range(paylen))
    f = eth(ip4(tcp(pay)))
    for lt, fr in ((1, f), (1, eth(vlan(0x0800) + f[14:], 0x8100)), (101, f[14:])):
        s, _ = dec(lt, fr, verify=True)
        assert s[CHECKSUM_OK] is True and s[PAYLOAD_LEN] == paylen
        # corrupt the last byte of the segment / of the TCP header
        bad = _corrupt(fr, len(fr) - 1)
        s, sk = dec(lt, bad, verify=True)
        assert s[CHECKSUM_OK] is False and not sk
        # verify off: always True, even for the bad one
        assert dec(lt, bad)[0][CHECKSUM_OK] is True


def test_checksum_ipv4_options_and_header():
    f = eth(ip4(tcp(PAY), opts=b"\x01\x01\x01\x00"))
    assert dec(1, f, verify=True)[0][CHECKSUM_OK] is True
    assert dec(1, _corrupt(f, len(f) - 2), verify=True)[0][CHECKSUM_OK] is False
    # a bad IPv4 header checksum drops the packet in verify mode only
    for fr in (eth(ip4(tcp(PAY), csum=0x1234)), eth(ip4(tcp(PAY), opts=b"\x01" * 4, csum=0x1234))):
        assert reason(1, fr, verify=True) == "bad_ip_checksum"
        assert dec(1, fr)[0] is not None
    assert reason(1, _corrupt(eth(V4), 14 + 8), verify=True) == "bad_ip_checksum"  # TTL changed


@pytest.mark.parametrize("paylen", [0, 1, 13, 600, 1401])
def test_checksum_ipv6(paylen):
    pay = os.urandom(paylen)
    for ext, nh in ((b"", 6), (ext_hdr(6, 1), 60)):
        f = eth(ip6(tcp(pay), nh=nh, ext=ext), 0x86DD)
        s, _ = dec(1, f, verify=True)
        assert s[CHECKSUM_OK] is True and s[PAYLOAD_LEN] == paylen
        s, _ = dec(1, _corrupt(f, len(f) - 1), verify=True)
        assert s[CHECKSUM_OK] is False
        # corrupting the source address breaks the pseudo-header sum
        s, _ = dec(1, _corrupt(f, 14 + 8), verify=True)
        assert s[CHECKSUM_OK] is False


def test_checksum_field_ffff_equals_zero():
    """A segment whose computed checksum is 0x0000 may carry 0xFFFF (ones'-complement -0): both pass."""
    # with a zero payload word the checksum is c; using c as the payload word makes the sum 0xFFFF,
    # so the checksum of the resulting segment is 0x0000
    c = struct.unpack("!H", ip4(tcp(b"\0\0"))[36:38])[0]
    f = ip4(tcp(struct.pack("!H", c)))
    assert f[36:38] == b"\x00\x00"
    for lt, fr in ((101, f), (1, eth(f))):
        off = 36 if lt == 101 else 50
        assert dec(lt, fr, verify=True)[0][CHECKSUM_OK] is True
        g = fr[:off] + b"\xff\xff" + fr[off + 2 :]
        assert dec(lt, g, verify=True)[0][CHECKSUM_OK] is True
        h = fr[:off] + b"\xff\xfe" + fr[off + 2 :]
        assert dec(lt, h, verify=True)[0][CHECKSUM_OK] is False


def test_ones_complement_helpers_against_dpkt():
    rnd = random.Random(1)
    cases = [
        b"",
        b"\x00",
        b"\x00\x00",
        b"\xff",
        b"\xff\xff",
        b"\xff" * 7,
        b"\x00" * 1000,
        b"\xff" * 1000,
        b"\xff\xfe\x00\x01",
        b"\x80\x00\x80\x00",
        b"\x12\x34\xed\xcb",
        b"\x01",
    ]
    sizes = [*range(0, 40), 511, 512, 513, 514, 1500, 1501, 9000]
    cases += [bytes(rnd.randrange(256) for _ in range(n)) for n in sizes]
    for data in cases:
        assert internet_checksum(data) == dpkt.in_cksum(data), data[:8]
        s = ones_complement_sum(data)
        assert 0 <= s <= 0xFFFF
        assert (s == 0) == (not any(data))
        # the data followed by its checksum always verifies as 0xFFFF (when the data is word-aligned)
        if len(data) % 2 == 0:
            assert ones_complement_sum(data + struct.pack("!H", internet_checksum(data))) == 0xFFFF


# --------------------------------------------------------------------------------------------
# Cross-checks with dpkt and robustness (hypothesis)
# --------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    sport=st.integers(0, 65535),
    dport=st.integers(0, 65535),
    seq=st.integers(0, 2**32 - 1),
    ack=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 255),
    win=st.integers(0, 65535),
    payload=st.binary(max_size=1600),
    v6=st.booleans(),
    tags=st.integers(0, 2),
    opts=st.integers(0, 10),
)
def test_against_dpkt_built_frames(sport, dport, seq, ack, flags, win, payload, v6, tags, opts):
    t = dpkt.tcp.TCP(
        sport=sport,
        dport=dport,
        seq=seq,
        ack=ack,
        flags=flags,
        win=win,
        data=payload,
        opts=b"\x01" * (4 * opts),
        off=5 + opts,
    )
    if v6:
        ip = dpkt.ip6.IP6(src=SRC6, dst=DST6, nxt=6, hlim=64, data=t, plen=len(bytes(t)))
        et = 0x86DD
    else:
        ip = dpkt.ip.IP(src=SRC4, dst=DST4, p=6, data=t)
        et = 0x0800
    inner = bytes(ip)
    frame = eth(b"".join(vlan(0x8100) for _ in range(tags - 1)) + vlan(et) + inner, 0x8100) if tags else eth(inner, et)
    for verify in (False, True):
        s, _ = dec(1, frame, verify)
        assert s == (
            (SRC6 if v6 else SRC4),
            sport,
            (DST6 if v6 else DST4),
            dport,
            seq,
            ack,
            flags,
            win,
            len(payload),
            True,
        )


_VALID_FRAMES = [
    (1, eth(V4)),
    (1, eth(V6, 0x86DD)),
    (1, eth(vlan(0x0800) + V4, 0x8100)),
    (1, eth(ip6(SEG, nh=0, ext=ext_hdr(44, 0) + frag6(6)), 0x86DD)),
    (1, eth(mpls([1, 2]) + V6, 0x8847)),
    (1, _pbb(0x0800, V4)),
    (1, _fabricpath(eth(V4))),
    (1, eth(struct.pack("!BBHHH", 0x11, 0, 1, 0, 0x57) + V6, 0x8864)),
    (1, eth(struct.pack("!IH", 0x33, 0x0800) + V4, 0x8926)),
    (113, _sll(0x0800, V4)),
    (276, _sll2(0x86DD, V6)),
    (10, _fddi(0x0800, V4)),
    (0, struct.pack("<I", 2) + V4),
    (108, struct.pack(">I", 30) + V6),
    (101, V4),
    (229, V6),
    (228, ip4(SEG, opts=b"\x01" * 8)),
    (9, b"\xff\x03\x00\x21" + V4),
    (50, b"\x0f\x00\x08\x00" + V4),
]


def _check_never_raises(linktype, frame):
    for verify in (False, True):
        d = Decoder(verify_checksums=verify)
        s = d.decode(linktype, frame)  # must not raise
        assert "malformed" not in d.skipped
        if s is None:
            assert sum(d.skipped.values()) == 1
        else:
            assert type(s) is tuple and len(s) == 10
            assert len(s[SRC_IP]) in (4, 16) and len(s[DST_IP]) == len(s[SRC_IP])
            assert 0 <= s[SRC_PORT] <= 65535 and 0 <= s[DST_PORT] <= 65535
            assert 0 <= s[FLAGS] <= 255 and 0 <= s[WINDOW] <= 65535
            assert s[PAYLOAD_LEN] >= 0 and s[CHECKSUM_OK] in (True, False)
            assert not d.skipped
        # general path agrees with the fast path
        d2 = Decoder(verify_checksums=verify)
        assert d2.decode_general(linktype, frame) == s


_LINKTYPES = st.sampled_from([*sorted(SUPPORTED_LINKTYPES), 2, 105, 127])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linktype=_LINKTYPES, frame=st.binary(max_size=200))
def test_random_bytes_never_raise(linktype, frame):
    _check_never_raises(linktype, frame)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(_VALID_FRAMES), data=st.data())
def test_mutated_frames_never_raise(case, data):
    linktype, frame = case
    b = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if op in ("flip", "set") and b:
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] = data.draw(st.integers(0, 255)) if op == "set" else b[i] ^ (1 << data.draw(st.integers(0, 7)))
        elif op == "cut":
            del b[data.draw(st.integers(0, len(b))) :]
        elif op == "insert":
            i = data.draw(st.integers(0, len(b)))
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and b:
            i = data.draw(st.integers(0, len(b) - 1))
            del b[i : i + data.draw(st.integers(1, 8))]
    _check_never_raises(linktype, bytes(b))
    _check_never_raises(linktype, memoryview(bytes(b)))  # any bytes-like frame works too
