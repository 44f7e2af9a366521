"""Decoding frames to the few TCP fields the engine needs, straight from the bytes, through tunnels.

Interface:

    decoder = Decoder(verify_checksums=False)
    seg = decoder.decode(linktype, frame)   # -> Segment tuple or None (skipped; reason counted)
    decoder.tunnel -> str                   # the tunnel path of the segment decode() last returned ("" for none)
    decoder.skipped -> collections.Counter[str]  # reason -> count (the names below)
    decoder.add_tunnel_port(name, port)     # e.g. ("vxlan", 4790): a UDP port the deployment uses
    decoder.holding -> bool                 # a TCP first fragment waits for the rest of its datagram
    decoder.take_released(now, pair)        # -> [(ts, Segment, tunnel)]: first fragments to read alone now
    decoder.fragments_incomplete -> int     # TCP segments read from their first fragment alone
    decoder.header_past_segment -> int      # TCP segments read whose data offset runs past their end
    SUPPORTED_LINKTYPES: frozenset[int]
    decode_in_place(buf, start, end, linktype)  # the fast case, fields read where they lie (fastlane)

Segment is a plain tuple (allocation-light on the hot path), indexed by the constants below:
    (src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int, seq: int, ack: int,
     flags: int, window: int, payload_len: int, checksum_ok: bool)

Skip reasons counted in ``Decoder.skipped`` (stable names):
    unsupported_linktype  the link type is not in SUPPORTED_LINKTYPES
    truncated_link        the frame ends inside a link-layer header (Ethernet, VLAN, MPLS, PPPoE, PPP ...)
    not_ip                the link layer (or a tunnel) carries something other than IPv4/IPv6 (ARP, LLDP, ...)
    truncated_ip          the frame ends inside the IPv4 fixed header / IPv6 header or extension chain
    bad_ip_header         wrong version, IHL < 5 or past the captured bytes, or inconsistent IP length fields
    bad_ip_checksum       (verify_checksums only) the IPv4 header checksum is wrong
    ip_fragment           an IP fragment: held until its datagram is whole (then read whole), or given up
    ipv6_ext_loop         more than 16 IPv6 extension headers
    not_tcp               IP carrying another protocol (UDP that is no tunnel, ICMP, IPv6 "no next header")
    ipsec_esp             IPsec ESP: encrypted, the TCP inside cannot be read
    truncated_tunnel      the frame ends inside a tunnel header (UDP, GRE, VXLAN, Geneve, GTP-U, ...)
    bad_<name>_header     a tunnel header with an impossible field (name: gre, erspan, vxlan, geneve,
                          gtp, teredo, l2tp, ayiya)
    ipcomp_unreadable     IPComp whose algorithm is not DEFLATE, or data that does not inflate
    tunnel_depth          more than MAX_TUNNELS tunnels nested (a decoding loop is cut there)
    truncated_tcp         fewer than the 20 fixed TCP header bytes were captured
    bad_tcp_offset        TCP data offset < 5
    malformed             safety net: a decoding error nobody foresaw (should stay 0; decode() never raises)
    (and the link-layer reasons of link_layers.py: bad_link_header, wlan_protected, wlan_amsdu)

Design. The IP and TCP header rules are written once (`ip4_header`, `ip6_header`, `tcp_header`:
native-integer functions that read the bytes in place) and called by both ways through the module:

* the fast case, `decode_in_place`: Ethernet (one 802.1Q tag), LINUX_SLL, LINUX_SLL2 and raw IP
  carrying TCP straight over IPv4 or IPv6 (no extension header, not a non-first fragment). The fast
  lane calls it on every frame; `Decoder.decode` calls it first.
* the general walk (`Decoder.decode_general`): every link type, the ethertype shims (VLAN tags,
  QinQ, E-Tag, PBB, VN-Tag, FabricPath, MPLS, PPPoE, LLC/SNAP), IPv4 options and AH, IPv6
  extension headers, IPComp (DEFLATE), and tunnels: IP-in-IP (4in4, 6in4, 4in6, 6in6), GRE (IPv4/IPv6 payload,
  transparent Ethernet bridging, ERSPAN I/II/III, WCCP, MPLS, PPTP's PPP), and over UDP by port
  then by content: VXLAN (4789, 8472), Geneve (6081), GTP-U (2152), Teredo (3544), L2TPv2 with
  PPP (1701) and AYIYA (5072). Each tunnel adds a layer to the path (`Decoder.tunnel`,
  "name:param,outer-src>outer-dst", layers outermost first joined by ";"); at most MAX_TUNNELS.
  IP fragments, outer or inner, are reassembled (`_Reassembly`: bounded in datagrams and bytes, a
  30 s timeout in capture time when the caller gives times) and the whole datagram decoded. A
  TCP datagram's first fragment is also read alone and held (`Decoder.take_released`): when the
  rest does not come (a capture filtered by port has first fragments only), that segment is read
  as it stands, before the next segment of its connection or after HELD_WINDOW.

The tunnel headers are parsed here rather than with dpkt: each is a few fixed fields, read in
place without building an object per layer, and dpkt's classes raise on the truncated and odd
frames real captures hold (a capture must never stop the run). Link types of other modules plug
into `_link` (see the marked place at its end).

Checksums use int.from_bytes(...) % 0xFFFF, which is the ones'-complement sum modulo 0xFFFF
(2**16 == 1 mod 0xFFFF); a valid header/segment sums to 0.
"""

from __future__ import annotations

import socket
import zlib
from collections import Counter
from struct import error as _StructError
from typing import TYPE_CHECKING, Final

from .capture import be16, be32
from .link_layers import LINKTYPES as _OTHER_LINKTYPES
from .link_layers import network_layer, ppp_payload

if TYPE_CHECKING:  # native 64-bit integers for the compiled build; plain int to Python
    from mypy_extensions import i64

__all__ = [
    "SUPPORTED_LINKTYPES",
    "Decoder",
    "format_ip",
    "SRC_IP",
    "SRC_PORT",
    "DST_IP",
    "DST_PORT",
    "SEQ",
    "ACK",
    "FLAGS",
    "WINDOW",
    "PAYLOAD_LEN",
    "CHECKSUM_OK",
    "FIN",
    "SYN",
    "RST",
    "PSH",
    "ACK_FLAG",
    "URG",
    "ECE",
    "CWR",
    "ones_complement_sum",
    "internet_checksum",
    "decode_in_place",
    "ip4_header",
    "ip6_header",
    "tcp_header",
    "tunnel_key",
    "UDP_TUNNEL_PORTS",
    "TUNNEL_NAMES",
    "MAX_TUNNELS",
]

# Segment tuple indexes.
SRC_IP, SRC_PORT, DST_IP, DST_PORT, SEQ, ACK, FLAGS, WINDOW, PAYLOAD_LEN, CHECKSUM_OK = range(10)

# TCP flag bits (the 8-bit flag byte).
FIN, SYN, RST, PSH, ACK_FLAG, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

# Link types (pcap LINKTYPE_* values).
LT_NULL: Final = 0
LT_EN10MB: Final = 1
LT_PPP: Final = 9
LT_FDDI: Final = 10
LT_RAW_12: Final = 12
LT_RAW_14: Final = 14
LT_PPP_HDLC: Final = 50
LT_RAW: Final = 101
LT_LOOP: Final = 108
LT_LINUX_SLL: Final = 113
LT_IPV4: Final = 228
LT_IPV6: Final = 229
LT_LINUX_SLL2: Final = 276

SUPPORTED_LINKTYPES: frozenset[int] = frozenset(
    {
        LT_NULL,
        LT_EN10MB,
        LT_PPP,
        LT_FDDI,
        LT_RAW_12,
        LT_RAW_14,
        LT_PPP_HDLC,
        LT_RAW,
        LT_LOOP,
        LT_LINUX_SLL,
        LT_IPV4,
        LT_IPV6,
        LT_LINUX_SLL2,
        *_OTHER_LINKTYPES,  # the rarer ones, read in link_layers.py
    }
)


# "Shim" headers walked inside Ethernet: ethertype -> (bytes from the payload start to the next
# payload start, offset of the next ethertype from the payload start).
_SHIMS: dict[int, tuple[int, int]] = {
    0x8100: (4, 2),  # 802.1Q: TCI, ethertype
    0x88A8: (4, 2),  # 802.1ad QinQ S-tag
    0x9100: (4, 2),  # old QinQ
    0x88E7: (18, 16),  # 802.1ah PBB: I-TAG(4), inner dst(6), inner src(6), ethertype
    0x8926: (6, 4),  # Cisco VN-Tag: tag(4), ethertype
    0x8903: (16, 14),  # Cisco FabricPath: rest of the 16-byte outer header (ftag/ttl), inner dst/src, ethertype
    0x893F: (8, 6),  # 802.1BR E-Tag: the rest of the 8-byte tag (6 bytes), ethertype
}

_ETHERTYPE_IP4: Final = 0x0800
_ETHERTYPE_IP6: Final = 0x86DD
_AF_INET6_VALUES: Final = frozenset({10, 24, 28, 30})  # Linux, NetBSD/OpenBSD, FreeBSD, Darwin

# IPv6 extension headers walked to reach TCP (59 "no next header" is not walked: -> not_tcp).
_IP6_EXT: Final = frozenset({0, 43, 44, 60, 51, 135, 139, 140})
_IP6_MAX_EXT: Final = 16

_from_bytes = int.from_bytes


def _word_sum(buf, a: int, b: int) -> int:
    """A non-negative integer congruent mod 0xFFFF to the sum of the big-endian 16-bit words of
    ``buf[a:b]`` (an odd length is padded with a zero byte).

    2**16 == 1 (mod 0xFFFF), so the big integer made of the bytes is congruent to the sum of its
    words.  Long inputs are cut into four chunks at even offsets and the chunk values added: the
    same congruence holds, and reducing a quarter-size number is cheaper than a full-size one.
    """
    n = b - a
    if n > 512:
        q = (n >> 3) << 1
        a1 = a + q
        a2 = a1 + q
        a3 = a2 + q
        last = _from_bytes(buf[a3:b], "big")
        if n & 1:
            last <<= 8
        return _from_bytes(buf[a:a1], "big") + _from_bytes(buf[a1:a2], "big") + _from_bytes(buf[a2:a3], "big") + last
    x = _from_bytes(buf[a:b], "big")
    if n & 1:
        x <<= 8
    return x


def ones_complement_sum(data) -> int:
    """16-bit ones'-complement (end-around carry) sum of ``data``'s big-endian words, odd length
    padded with a zero byte.

    The result is 0 only for all-zero data; words adding up to a non-zero multiple of 0xFFFF give
    0xFFFF (ones'-complement "negative zero"), never 0.  A received header or segment (with its
    pseudo-header) is valid when this sum is 0xFFFF, i.e. when the word sum is 0 mod 0xFFFF.
    """
    x = _word_sum(data, 0, len(data))
    if not x:
        return 0
    r = x % 0xFFFF
    return r if r else 0xFFFF


def internet_checksum(data) -> int:
    """The RFC 1071 Internet checksum of ``data`` (the value to store in a checksum field)."""
    return ~ones_complement_sum(data) & 0xFFFF


def format_ip(b: bytes) -> str:
    """Text form of a 4-byte (dotted quad) or 16-byte (RFC 5952 compressed) address."""
    if len(b) == 4:
        return "%d.%d.%d.%d" % (b[0], b[1], b[2], b[3])
    if len(b) == 16:
        return socket.inet_ntop(socket.AF_INET6, bytes(b))
    raise ValueError(f"not an IPv4/IPv6 address: {len(b)} bytes")


# ---------------------------------------------------------------------------------------------
# The IP and TCP header rules, written once: the fast case and the general walk both call them.
# They return native integers (no objects), a reason number first: 0, or an index of _REASONS.
# ---------------------------------------------------------------------------------------------

_TRUNCATED_IP: Final = 1
_BAD_IP_HEADER: Final = 2
_TRUNCATED_TCP: Final = 3
_BAD_TCP_OFFSET: Final = 4
_IPV6_EXT_LOOP: Final = 5
_HEADER_PAST_SEGMENT: Final = 6  # (not a skip: the general walk reads such a segment; see tcp_header)
_REASONS: Final = (
    "",
    "truncated_ip",
    "bad_ip_header",
    "truncated_tcp",
    "bad_tcp_offset",
    "ipv6_ext_loop",
    "bad_tcp_header_len",
)


def ip4_header(buf: bytes, o: i64, end: i64) -> tuple[i64, i64, i64, i64, i64]:
    """The IPv4 header at buf[o:end]: (reason, protocol, payload offset, payload length, fragment field).

    The payload length is -1 when the total length is 0 (segmentation offload on the capturing
    host: the caller uses what was captured). The header checksum is the caller's to verify.
    """
    if end - o < 20:
        return (_TRUNCATED_IP, 0, 0, 0, 0)
    version_ihl: i64 = buf[o]
    hl = (version_ihl & 0x0F) << 2
    if version_ihl >> 4 != 4 or hl < 20 or o + hl > end:
        return (_BAD_IP_HEADER, 0, 0, 0, 0)
    total = be16(buf, o + 2)
    protocol: i64 = buf[o + 9]
    payload: i64 = -1  # (an if statement: compiled, a conditional expression here would box the number)
    if total:
        payload = total - hl
    if total and payload < 0:
        return (_BAD_IP_HEADER, 0, 0, 0, 0)
    return (0, protocol, o + hl, payload, be16(buf, o + 6))


def ip6_header(buf: bytes, o: i64, end: i64) -> tuple[i64, i64, i64, i64, i64, i64]:
    """The IPv6 header at buf[o:end] and its extension headers:
    (reason, next header, payload offset, payload length, fragment header offset, destination offset).

    The walk stops at the first header that is no extension header (TCP, UDP, IP-in-IP, ...), or
    after a fragment header whose offset is not 0 (the rest is another fragment's). The payload
    length is what follows the extension headers, -1 when the IPv6 payload length is 0 (offload,
    or a jumbogram: the caller uses what was captured). The fragment header offset is -1 when there
    is none. The destination is where the connection's destination address lies: the fixed
    header's, or a routing header's final destination (RFC 8200 8.1; Zeek does the same).
    """
    if end - o < 40:
        return (_TRUNCATED_IP, 0, 0, 0, 0, 0)
    version: i64 = buf[o]
    if version >> 4 != 6:
        return (_BAD_IP_HEADER, 0, 0, 0, 0, 0)
    payload6 = be16(buf, o + 4)
    nh: i64 = buf[o + 6]
    p = o + 40
    count: i64 = 0
    fragment_at: i64 = -1
    dst_at = o + 24
    while nh in _IP6_EXT:
        count += 1
        if count > _IP6_MAX_EXT:
            return (_IPV6_EXT_LOOP, 0, 0, 0, 0, 0)
        if p + 2 > end:
            return (_TRUNCATED_IP, 0, 0, 0, 0, 0)
        if nh == 44:  # fragment
            if p + 8 > end:
                return (_TRUNCATED_IP, 0, 0, 0, 0, 0)
            fragment_at = p
            if be16(buf, p + 2) & 0xFFF8:  # not the first: the headers after it are not here
                following: i64 = buf[p]
                return (0, following, p + 8, payload6 - (p + 8 - o - 40) if payload6 else -1, p, dst_at)
            hlen: i64 = 8
        elif nh == 51:  # AH: length in 4-byte units, minus 2
            length: i64 = buf[p + 1]
            hlen = (length + 2) << 2
        else:
            length = buf[p + 1]
            hlen = (length + 1) << 3
            if nh == 43 and p + 4 <= end and buf[p + 3]:
                # routing header with segments left: the final destination goes in the
                # pseudo-header (RFC 8200 8.1) and, as in Zeek, in the connection id
                rtype: i64 = buf[p + 2]
                if rtype == 0 and length >= 2 and not length & 1:
                    a = p + 8 + 16 * (length // 2 - 1)
                    if a + 16 <= end:
                        dst_at = a
                elif rtype == 2 and length == 2 and p + 24 <= end:
                    dst_at = p + 8
        nh = buf[p]
        p += hlen
    if p > end:
        return (_TRUNCATED_IP, 0, 0, 0, 0, 0)
    payload: i64 = -1  # (as in ip4_header)
    if payload6:
        payload = payload6 - (p - o - 40)
    if payload6 and payload < 0:
        return (_BAD_IP_HEADER, 0, 0, 0, 0, 0)
    return (0, nh, p, payload, fragment_at, dst_at)


def tcp_header(buf: bytes, t: i64, segment: i64, end: i64) -> tuple[i64, i64, i64, i64, i64, i64, i64, i64]:
    """The TCP header at buf[t:end] of a `segment`-byte segment (-1: unknown, use what was captured):
    (reason, sport, dport, seq, ack, flags, window, payload length).

    A data offset past the end of a segment that holds the 20 fixed bytes is _HEADER_PAST_SEGMENT,
    with every field read and a payload length of 0: the fixed header is sound, the options and
    payload cannot be told apart (tshark counts such a segment in its stream; Zeek calls it
    bad_TCP_header_len). The fast case leaves it to the general walk, which reads it and counts it.
    """
    if 0 <= segment < 20:
        return (_BAD_IP_HEADER, 0, 0, 0, 0, 0, 0, 0)
    if end - t < 20:
        return (_TRUNCATED_TCP, 0, 0, 0, 0, 0, 0, 0)
    offset: i64 = buf[t + 12]
    thl = offset >> 2 & 0x3C
    if thl < 20:
        return (_BAD_TCP_OFFSET, 0, 0, 0, 0, 0, 0, 0)
    reason: i64 = 0
    if segment >= 0:
        plen = segment - thl
        if plen < 0:
            reason = _HEADER_PAST_SEGMENT
            plen = 0
    else:
        plen = end - t - thl
        if plen < 0:
            plen = 0
    flags: i64 = buf[t + 13]
    return (reason, be16(buf, t), be16(buf, t + 2), be32(buf, t + 4), be32(buf, t + 8), flags, be16(buf, t + 14), plen)


def _tcp_checksum_ok(buf: bytes, src: bytes, dst: bytes, t: int, segment: int) -> bool:
    """The TCP checksum of buf[t:t + segment] with its pseudo-header (from src to dst) is right."""
    return (
        not (_word_sum(buf, t, t + segment) + _from_bytes(src, "big") + _from_bytes(dst, "big") + 6 + segment) % 0xFFFF
    )


# ---------------------------------------------------------------------------------------------
# The fast case
# ---------------------------------------------------------------------------------------------

_NOT_TAKEN: Final = (0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def _ip_at(ethertype: i64, offset: i64) -> tuple[i64, i64]:
    """(IPv4 header offset, IPv6 header offset) for an ethertype's payload at offset; -1 for neither."""
    if ethertype == 0x0800:
        return offset, -1
    if ethertype == 0x86DD:
        return -1, offset
    return -1, -1


def decode_in_place(
    buf: bytes, start: i64, end: i64, linktype: i64
) -> tuple[i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64]:
    """`Decoder.decode` for the common frames, reading ``buf[start:end]`` where it lies.

    Returns (ip_version, ip_offset, src, sport, dst, dport, seq, ack, flags, window, payload_len).
    ip_version is 4 or 6 for a frame it takes, 0 for any other (then `Decoder.decode` must
    decode it); ip_offset is the IP header's position in buf. IPv4 comes with its addresses as
    32-bit integers; IPv6 with src and dst 0: its addresses are ``buf[ip_offset + 8:ip_offset + 24]``
    and ``buf[ip_offset + 24:ip_offset + 40]``. It takes TCP straight over IPv4 (any header length,
    not a fragment) or IPv6 (no extension header) on Ethernet with at most one 802.1Q tag,
    LINUX_SLL, LINUX_SLL2 or raw IP; checksums are not verified (the fast lane does not run with
    --verify-checksums). The header rules are `ip4_header`, `ip6_header` and `tcp_header`, the
    general walk's. Compiled, it reads the bytes in place and makes no objects.
    """
    n = end - start
    o: i64 = -1  # where the IPv4 header starts
    o6: i64 = -1  # where the IPv6 header starts
    if linktype == 1:
        if n >= 14:
            ethertype = be16(buf, start + 12)
            if ethertype == 0x8100:  # one 802.1Q tag
                if n >= 18:
                    o, o6 = _ip_at(be16(buf, start + 16), start + 18)
            else:
                o, o6 = _ip_at(ethertype, start + 14)
    elif linktype == 113:  # LINUX_SLL: the protocol at 14
        if n >= 16:
            o, o6 = _ip_at(be16(buf, start + 14), start + 16)
    elif linktype == 101 or linktype == 12 or linktype == 14:  # raw IP: the version says which
        if n >= 1:
            version: i64 = buf[start]
            if version >> 4 == 6:
                o6 = start
            else:
                o = start
    elif linktype == 228:
        o = start
    elif linktype == 229:
        o6 = start
    elif linktype == 276:  # LINUX_SLL2: the protocol at 0
        if n >= 20:
            o, o6 = _ip_at(be16(buf, start), start + 20)
    if o >= 0:
        reason, protocol, t, segment, fragment = ip4_header(buf, o, end)
        if reason or protocol != 6 or fragment & 0x3FFF:  # (a fragment: the general walk reassembles it)
            return _NOT_TAKEN
        reason, sport, dport, seq, ack, flags, window, plen = tcp_header(buf, t, segment, end)
        if reason:
            return _NOT_TAKEN
        return (4, o, be32(buf, o + 12), sport, be32(buf, o + 16), dport, seq, ack, flags, window, plen)
    if o6 >= 0 and end - o6 >= 40:
        next_header: i64 = buf[o6 + 6]
        if next_header != 6:
            return _NOT_TAKEN
        reason, _protocol, t, segment, _fragment_at, _dst_at = ip6_header(buf, o6, end)
        if reason or segment < 0:  # (payload length 0: the general walk's case)
            return _NOT_TAKEN
        reason, sport, dport, seq, ack, flags, window, plen = tcp_header(buf, t, segment, end)
        if reason:
            return _NOT_TAKEN
        return (6, o6, 0, sport, 0, dport, seq, ack, flags, window, plen)
    return _NOT_TAKEN


# ---------------------------------------------------------------------------------------------
# Tunnels
# ---------------------------------------------------------------------------------------------

MAX_TUNNELS: Final = 8  # tunnels nested in one frame; deeper is a loop or a hostile frame
# UDP ports of the tunnels recognised over UDP (checked by content too); --tunnel-port adds to them
UDP_TUNNEL_PORTS: Final[dict[int, str]] = {
    4789: "vxlan",  # IANA
    8472: "vxlan",  # the Linux kernel's default (and flannel's)
    6081: "geneve",
    2152: "gtp",  # GTP-U
    3544: "teredo",
    1701: "l2tp",
    5072: "ayiya",
}
TUNNEL_NAMES: Final = frozenset(UDP_TUNNEL_PORTS.values())

# Pseudo-ethertypes for what the walk meets next when no ethertype says it
_ET_ETHERNET: Final = 0x6558  # an Ethernet frame (transparent Ethernet bridging)
_ET_GUESS_IP: Final = -1  # IPv4 or IPv6, by the version nibble

_FRAGMENT_TIMEOUT: Final = 30.0  # seconds of capture time, as Linux's ipfrag_time
_FRAGMENT_DATAGRAMS: Final = 1024  # datagrams being reassembled at once
_FRAGMENT_BYTES: Final = 8 << 20  # bytes held for them
# How long TCP's first fragment waits for the rest of its datagram, in capture time. A host or a
# router sends the fragments of one datagram back to back (a 64 KiB datagram is on a 1 Mb/s link
# within 0.53 s; paths reorder by milliseconds); past this the rest is taken to be missing from the
# capture (a port filter keeps first fragments only: the others carry no ports).
HELD_WINDOW: Final = 1.0

Held = tuple[float, tuple, str]
"""A TCP first fragment read alone: (its capture time, its Segment tuple, its tunnel path)."""


def pair_key(a: i64, b: i64, sport: i64, dport: i64) -> i64:
    """The same integer for both directions of a connection, from the low 32 bits of each address
    and the ports: which held first fragments a segment's arrival releases (two connections that
    share it only release each other's a little early)."""
    return (a ^ b) << 16 | (sport ^ dport)


def segment_pair(segment: tuple) -> int:
    """`pair_key` of a Segment tuple."""
    src: bytes = segment[SRC_IP]
    dst: bytes = segment[DST_IP]
    return pair_key(be32(src, len(src) - 4), be32(dst, len(dst) - 4), segment[SRC_PORT], segment[DST_PORT])


class _Datagram:
    """The fragments of one IP datagram received so far."""

    def __init__(self, first_ts: float) -> None:
        self.first_ts = first_ts
        self.parts: list[tuple[int, bytes]] = []
        self.total = -1  # known once the last fragment (MF clear) has come
        self.size = 0
        self.held: Held | None = None  # TCP: the first fragment, read alone, should the rest not come
        self.pair = 0  # pair_key of the held segment


class _Reassembly:
    """IP datagrams being put back together from fragments, bounded in number, bytes and time:
    past either bound, or after _FRAGMENT_TIMEOUT of capture time, the oldest is dropped.

    A TCP datagram's first fragment, read alone, is kept with it (`hold`): when the datagram is
    dropped, or given up by `release`, that segment goes to ``released``, to be read as it stands.
    """

    def __init__(self) -> None:
        self.pending: dict[tuple, _Datagram] = {}
        self.size = 0
        self.dropped = 0  # datagrams given up (timeout, bounds, impossible sizes)
        self.held: dict[tuple, _Datagram] = {}  # those with a held first fragment, in the order they came
        self.held_pairs: Counter[int] = Counter()  # their pair keys
        self.released: list[Held] = []  # first fragments given up on, in order: to be read alone

    def add(self, key: tuple, offset: int, more: bool, data: bytes, now: float) -> bytes | None:
        """Add a fragment; the whole datagram's payload when this one completes it."""
        pending = self.pending
        while pending:
            oldest_key = next(iter(pending))
            oldest = pending[oldest_key]
            if (
                oldest.first_ts + _FRAGMENT_TIMEOUT >= now
                and len(pending) < _FRAGMENT_DATAGRAMS
                and self.size + len(data) <= _FRAGMENT_BYTES
            ):
                break
            self._drop(oldest_key)
        if offset + len(data) > 0xFFFF:
            self.dropped += 1
            return None
        datagram = pending.get(key)
        if datagram is None:
            datagram = pending[key] = _Datagram(now)
        datagram.parts.append((offset, data))
        datagram.size += len(data)
        self.size += len(data)
        if not more:
            datagram.total = offset + len(data)
        if datagram.total < 0:
            return None
        reached = 0
        for part_offset, part in sorted(datagram.parts, key=lambda item: item[0]):
            if part_offset > reached:
                return None  # a hole
            reached = max(reached, part_offset + len(part))
        if reached < datagram.total:
            return None
        whole = bytearray(datagram.total)
        for part_offset, part in datagram.parts:
            whole[part_offset : part_offset + len(part)] = part
        self._drop(key, counted=False)
        return bytes(whole[: datagram.total])

    def hold(self, key: tuple, held: Held) -> None:
        """Keep the first fragment of the datagram `key` (pending), read alone, until it is whole."""
        datagram = self.pending.get(key)
        if datagram is None or datagram.held is not None:  # (a copy of the first fragment: the first kept)
            return
        datagram.held = held
        datagram.pair = segment_pair(held[1])
        self.held[key] = datagram
        self.held_pairs[datagram.pair] += 1

    def release(self, now: float, pair: int) -> None:
        """Give up on the held datagrams of the connection `pair` (a segment of it has come: its first
        fragment must be read before that segment), and on those held HELD_WINDOW before `now`."""
        held = self.held
        if pair in self.held_pairs:
            for key in [key for key, datagram in held.items() if datagram.pair == pair]:
                self._drop(key)
        while held:
            oldest_key = next(iter(held))
            oldest = held[oldest_key].held
            if oldest is None or oldest[0] + HELD_WINDOW >= now:
                break
            self._drop(oldest_key)

    def _drop(self, key: tuple, counted: bool = True) -> None:
        datagram = self.pending.pop(key)
        self.size -= datagram.size
        if counted:
            self.dropped += 1
        if datagram.held is not None:
            del self.held[key]
            pair = datagram.pair
            self.held_pairs[pair] -= 1
            if not self.held_pairs[pair]:
                del self.held_pairs[pair]
            if counted:
                self.released.append(datagram.held)


_tunnel_keys: dict[str, str] = {}


def tunnel_key(tunnel: str) -> str:
    """The tunnel path as a connection's identity, the same in both directions: each layer's two
    outer endpoints in a fixed order ("a>b" and "b>a" give one key)."""
    key = _tunnel_keys.get(tunnel)
    if key is None:
        layers = []
        for layer in tunnel.split(";"):
            head, comma, ends = layer.rpartition(",")
            if not comma:
                head, _, ends = layer.partition(":")
                head += ":"
            else:
                head += ","
            a, _, b = ends.partition(">")
            layers.append(head + (a + ">" + b if a <= b else b + ">" + a))
        key = ";".join(layers)
        if len(_tunnel_keys) >= 4096:
            _tunnel_keys.clear()
        _tunnel_keys[tunnel] = key
    return key


# ---------------------------------------------------------------------------------------------
# Decoder: the fast case, then the general walk
# ---------------------------------------------------------------------------------------------


class Decoder:
    """Decodes one frame at a time to a Segment tuple; counts skipped frames by reason.

    ``decode`` tries the fast case (`decode_in_place`), then the general walk (``decode_general``),
    which gives the same answer for every frame the fast case takes (tests/test_decode.py checks
    both on each case). ``tunnel`` is the tunnel path of the last segment returned ("" for none).
    Give ``decode`` the frame's capture time (``ts``) to time out fragments left incomplete.
    """

    def __init__(self, verify_checksums: bool = False) -> None:
        self.verify_checksums = bool(verify_checksums)
        self.skipped: Counter[str] = Counter()  # skip reason -> frames (see the module docstring)
        self.tunnel = ""
        self.udp_tunnels: dict[int, str] = dict(UDP_TUNNEL_PORTS)
        self.fragments = _Reassembly()
        self.now = 0.0
        self.frame_ts = -1.0  # the time of the frame being decoded
        # a TCP first fragment is held for its datagram (`take_released` gives it back): the loop's one test
        self.holding = False
        self.fragments_incomplete = 0  # TCP datagrams read from their first fragment alone
        # segments read with their data offset past their end (tcp_header): how many, and the time of the
        # first since the caller last set it to -1
        self.header_past_segment = 0
        self.header_past_segment_first = -1.0

    def take_released(self, now: float, pair: int) -> list[Held]:
        """The held TCP first fragments to read alone now, in the order they came: those of the
        connection `pair` (`pair_key` of the segment about to be read: they come before it; -1 for
        none), those held HELD_WINDOW before `now` (math.inf: all, at the end of input), and those
        the reassembly's bounds gave up. Each is a TCP packet then, no more an `ip_fragment`."""
        fragments = self.fragments
        fragments.release(now, pair)
        released = fragments.released
        self.holding = bool(fragments.held)
        if not released:
            return []
        fragments.released = []
        self.fragments_incomplete += len(released)
        skipped = self.skipped
        skipped["ip_fragment"] -= len(released)
        if skipped["ip_fragment"] <= 0:
            del skipped["ip_fragment"]
        return released

    def add_tunnel_port(self, name: str, port: int) -> None:
        """Recognise tunnel `name` (one of TUNNEL_NAMES) on UDP `port` too."""
        if name not in TUNNEL_NAMES:
            raise ValueError(f"unknown tunnel {name!r} (one of {', '.join(sorted(TUNNEL_NAMES))})")
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is not a UDP port (1 to 65535)")
        self.udp_tunnels[port] = name

    def decode(self, linktype: int, frame: bytes | bytearray | memoryview, ts: float = -1.0) -> tuple | None:
        """Decode one frame of the given pcap link type: a Segment tuple, or None (reason counted)."""
        if frame.__class__ is not bytes:
            frame = bytes(frame)
        self.frame_ts = ts
        if ts > self.now:
            self.now = ts
        if not self.verify_checksums:
            buf: bytes = frame
            version, o, _, sport, _, dport, seq, ack, flags, window, plen = decode_in_place(buf, 0, len(buf), linktype)
            if version == 4:
                self.tunnel = ""
                return (buf[o + 12 : o + 16], sport, buf[o + 16 : o + 20], dport, seq, ack, flags, window, plen, True)
            if version == 6:
                self.tunnel = ""
                return (buf[o + 8 : o + 24], sport, buf[o + 24 : o + 40], dport, seq, ack, flags, window, plen, True)
        return self.decode_general(linktype, frame)

    def decode_general(self, linktype: int, frame: bytes | bytearray | memoryview) -> tuple | None:
        """The general walk alone (every link type, IP options and extension headers, tunnels)."""
        buf = frame if frame.__class__ is bytes else bytes(frame)
        try:
            r = self._link(linktype, buf)
        except (IndexError, _StructError, TypeError, ValueError, RecursionError):  # pragma: no cover - safety net
            r = "malformed"
        if isinstance(r, tuple):
            return r
        self.skipped[r] += 1
        return None

    # -- link layers -----------------------------------------------------------------------------
    def _link(self, linktype: int, frame: bytes):
        """Any supported link type; returns a Segment tuple or a skip reason."""
        n = len(frame)
        if linktype == LT_EN10MB:
            if n < 14:
                return "truncated_link"
            return self._ether(frame, frame[12] << 8 | frame[13], 14, n, [])
        if linktype == LT_RAW or linktype == LT_RAW_12 or linktype == LT_RAW_14:
            return self._ether(frame, _ET_GUESS_IP, 0, n, [], "bad_ip_header")
        if linktype == LT_LINUX_SLL:
            if n < 16:
                return "truncated_link"
            return self._ether(frame, frame[14] << 8 | frame[15], 16, n, [])
        if linktype == LT_LINUX_SLL2:
            if n < 20:
                return "truncated_link"
            return self._ether(frame, frame[0] << 8 | frame[1], 20, n, [])
        if linktype == LT_IPV4:
            return self._ip4(frame, 0, n, [])
        if linktype == LT_IPV6:
            return self._ip6(frame, 0, n, [])
        if linktype == LT_NULL or linktype == LT_LOOP:
            if n < 4:
                return "truncated_link"
            if linktype == LT_LOOP:
                af = _from_bytes(frame[0:4], "big")
            else:  # host byte order of the capturing machine: the family is small, so guess the order
                af = _from_bytes(frame[0:4], "little")
                if af > 0xFFFF:
                    af = _from_bytes(frame[0:4], "big")
            if af == 2:
                return self._ip4(frame, 4, n, [])
            if af in _AF_INET6_VALUES:
                return self._ip6(frame, 4, n, [])
            return "not_ip"
        if linktype == LT_PPP or linktype == LT_PPP_HDLC:
            if linktype == LT_PPP_HDLC and n >= 1 and (frame[0] == 0x0F or frame[0] == 0x8F):
                # Cisco HDLC framing seen under this link type: address, control, ethertype
                if n < 4:
                    return "truncated_link"
                return self._ether(frame, frame[2] << 8 | frame[3], 4, n, [])
            return self._ppp(frame, 0, n, [])
        if linktype == LT_FDDI:
            # frame control(1), dst(6), src(6), then 802.2 LLC/SNAP: AA AA 03 OUI(3) ethertype(2)
            if n < 21:
                return "truncated_link"
            if frame[13] != 0xAA or frame[14] != 0xAA or frame[15] != 0x03:
                return "not_ip"
            return self._ether(frame, frame[19] << 8 | frame[20], 21, n, [])
        # the rarer link types: link_layers.py finds where their network layer starts
        r = network_layer(linktype, frame, n)
        if isinstance(r, str):
            return r
        return self._ether(frame, r[0], r[1], n, [])

    def _ppp(self, buf: bytes, p: int, end: int, path: list[str]):
        """A PPP frame at p: optional HDLC address and control (FF 03), a 1- or 2-byte protocol."""
        if p < end and buf[p] == 0xFF:  # HDLC address: FF 03 (0xFF is no protocol number)
            if p + 2 > end:
                return "truncated_link"
            if buf[p + 1] != 0x03:
                return "not_ip"
            p += 2
        r = ppp_payload(buf, p, end)
        if isinstance(r, str):
            return r
        return self._ether(buf, r[0], r[1], end, path)

    def _ether(self, buf: bytes, et: int, p: int, end: int, path: list[str], other: str = "not_ip"):
        """Follow an ethertype whose payload starts at p through tags and shims to IP."""
        shims = _SHIMS
        while True:
            if et == _ETHERTYPE_IP4:
                return self._ip4(buf, p, end, path)
            if et == _ETHERTYPE_IP6:
                return self._ip6(buf, p, end, path)
            shim = shims.get(et)
            if shim is not None:
                hlen, eo = shim
                if p + hlen > end:
                    return "truncated_link"
                et = buf[p + eo] << 8 | buf[p + eo + 1]
                p += hlen
                continue
            if et == _ET_GUESS_IP:
                if p >= end:
                    return "truncated_ip"
                v = buf[p] >> 4
                if v == 4:
                    return self._ip4(buf, p, end, path)
                if v == 6:
                    return self._ip6(buf, p, end, path)
                return other
            if et == _ET_ETHERNET:  # an Ethernet frame inside a tunnel
                if p + 14 > end:
                    return "truncated_link"
                et = buf[p + 12] << 8 | buf[p + 13]
                p += 14
                continue
            if et == 0x8847 or et == 0x8848:  # MPLS unicast / multicast: pop to bottom of stack
                while True:
                    if p + 4 > end:
                        return "truncated_link"
                    bos = buf[p + 2] & 1
                    p += 4
                    if bos:
                        break
                if p >= end:
                    return "truncated_ip"
                et = _ET_GUESS_IP
                continue
            if et == 0x8864:  # PPPoE session: ver/type, code, session id, length, then PPP
                if p + 6 > end:
                    return "truncated_link"
                return self._ppp(buf, p + 6, end, path)
            if et <= 1500:  # 802.3 length field: accept an 802.2 LLC/SNAP header carrying an ethertype
                if p + 8 > end:
                    return "truncated_link"
                if buf[p] == 0xAA and buf[p + 1] == 0xAA and buf[p + 2] == 0x03:
                    et = buf[p + 6] << 8 | buf[p + 7]
                    p += 8
                    continue
            return other

    # -- IP ----------------------------------------------------------------------------------------
    def _ip4(self, buf: bytes, o: int, end: int, path: list[str]):
        reason, proto, t, payload, fragment = ip4_header(buf, o, end)
        if reason:
            return _REASONS[reason]
        if self.verify_checksums and _from_bytes(buf[o:t], "big") % 0xFFFF:
            # a correct header sums (ones' complement) to 0xFFFF; it cannot be all zeros (version 4)
            return "bad_ip_checksum"
        src, dst = buf[o + 12 : o + 16], buf[o + 16 : o + 20]
        if fragment & 0x3FFF:  # a fragment (offset, or more fragments): the datagram is put back together
            stop = end if payload < 0 else min(end, t + payload)
            key = (src, dst, be16(buf, o + 4), proto)
            whole = self.fragments.add(key, (fragment & 0x1FFF) << 3, bool(fragment & 0x2000), buf[t:stop], self.now)
            if whole is None:
                if proto == 6 and not fragment & 0x1FFF:
                    self._hold(key, buf, t, payload, end, src, dst, path)
                return "ip_fragment"
            return self._payload(whole, proto, 0, len(whole), len(whole), False, src, True, dst, path)
        return self._payload(buf, proto, t, payload, end, False, src, True, dst, path)

    def _ip6(self, buf: bytes, o: int, end: int, path: list[str]):
        reason, nh, t, payload, fragment_at, dst_at = ip6_header(buf, o, end)
        if reason:
            return _REASONS[reason]
        src, dst = buf[o + 8 : o + 24], buf[dst_at : dst_at + 16]
        if fragment_at >= 0:
            field = be16(buf, fragment_at + 2)
            if field & 0xFFF9:  # a fragment (offset, or more): the datagram is put back together
                payload6 = be16(buf, o + 4)
                stop = end if not payload6 else min(end, o + 40 + payload6)
                key = (src, buf[o + 24 : o + 40], be32(buf, fragment_at + 4))
                whole = self.fragments.add(key, field & 0xFFF8, bool(field & 1), buf[fragment_at + 8 : stop], self.now)
                if whole is None:
                    if nh == 6 and not field & 0xFFF8:
                        self._hold(key, buf, t, payload, end, src, dst, path)
                    return "ip_fragment"
                return self._payload(whole, buf[fragment_at], 0, len(whole), len(whole), False, src, True, dst, path)
        return self._payload(buf, nh, t, payload, end, False, src, True, dst, path)

    def _hold(
        self, key: tuple, buf: bytes, t: int, payload: int, end: int, src: bytes, dst: bytes, path: list[str]
    ) -> None:
        """Keep a TCP first fragment (its datagram `key` pending), read alone, in case the rest never comes.
        A first fragment too short for the fixed TCP header is not kept: only the whole datagram can be read."""
        segment = self._payload(buf, 6, t, payload, end, True, src, False, dst, path)
        if isinstance(segment, tuple):
            self.fragments.hold(key, (self.frame_ts, segment, self.tunnel))
            self.holding = True

    def _payload(
        self,
        buf: bytes,
        proto: int,
        t: int,
        payload: int,
        end: int,
        more_fragments: bool,
        src: bytes,
        checkable: bool,
        dst: bytes,
        path: list[str],
    ):
        """What an IP header at (src, dst) carries: `proto` at buf[t:], `payload` bytes long (-1: to end).
        A TCP checksum is verified (when asked) if `checkable` and the whole segment is there."""
        while proto == 51:  # AH (IPv4; IPv6 walks it as an extension header): length in 4-byte units, minus 2
            if t + 2 > end:
                return "truncated_ip"
            ah_length = (buf[t + 1] + 2) << 2
            proto = buf[t]
            t += ah_length
            if payload >= 0:
                payload -= ah_length
                if payload < 0:
                    return "bad_ip_header"
        if proto == 6:
            reason, sport, dport, seq, ack, flags, window, plen = tcp_header(buf, t, payload, end)
            if reason:
                if reason != _HEADER_PAST_SEGMENT:
                    return _REASONS[reason]
                if not more_fragments:  # (in a first fragment, the header goes on in the next one)
                    self.header_past_segment += 1
                    if self.header_past_segment_first < 0:
                        self.header_past_segment_first = self.frame_ts
            ok = True
            # verify only when the whole segment is here (and not a first fragment: MF set)
            if self.verify_checksums and payload >= 0 and t + payload <= end and not more_fragments and checkable:
                ok = _tcp_checksum_ok(buf, src, dst, t, payload)
            self.tunnel = ";".join(path)
            return (src, sport, dst, dport, seq, ack, flags, window, plen, ok)
        stop = end if payload < 0 else min(end, t + payload)
        if proto == 4 or proto == 41:  # IP in IP
            inner = "4" if proto == 4 else "6"
            outer = "4" if len(src) == 4 else "6"
            deeper = _deeper(path, inner + "in" + outer + ":", src, dst)
            if deeper is None:
                return "tunnel_depth"
            if proto == 4:
                return self._ip4(buf, t, stop, deeper)
            return self._ip6(buf, t, stop, deeper)
        if proto == 17:
            return self._udp(buf, t, stop, src, dst, path)
        if proto == 47:
            return self._gre(buf, t, stop, src, dst, path)
        if proto == 50:
            return "ipsec_esp"
        if proto == 108:  # IPComp (RFC 3173): DEFLATE (RFC 2394) is inflated, within an IP datagram's size
            if t + 4 > stop:
                return "truncated_ip"
            cpi = be16(buf, t + 2)
            if cpi == 1 or cpi == 3 or cpi == 4:  # OUI, LZS, LZJH: not inflated here
                return "ipcomp_unreadable"
            try:  # DEFLATE (2), or a CPI negotiated for the SA (256 and up): DEFLATE is tried, as tshark does
                whole = zlib.decompressobj(-15).decompress(buf[t + 4 : stop], 0xFFFF)
            except zlib.error:
                return "ipcomp_unreadable"
            if buf[t] == 108:  # IPComp inside IPComp: never sent; a decompression bomb's nesting
                return "ipcomp_unreadable"
            return self._payload(whole, buf[t], 0, len(whole), len(whole), False, src, False, dst, path)
        return "not_tcp"

    # -- tunnels -----------------------------------------------------------------------------------
    def _gre(self, buf: bytes, p: int, end: int, src: bytes, dst: bytes, path: list[str]):
        """GRE (RFC 2784/2890; version 1 is PPTP's enhanced GRE, RFC 2637) at p."""
        if p + 4 > end:
            return "truncated_tunnel"
        flags = buf[p] << 8 | buf[p + 1]
        proto = buf[p + 2] << 8 | buf[p + 3]
        version = flags & 7
        q = p + 4
        param = ""
        if version == 0:
            if flags & 0x4000:  # routing present (RFC 1701 source routing): obsolete, not followed
                return "bad_gre_header"
            if flags & 0x8000:  # checksum and reserved
                q += 4
            if flags & 0x2000:  # key
                if q + 4 > end:
                    return "truncated_tunnel"
                param = "key=%d," % be32(buf, q)
                q += 4
            if flags & 0x1000:  # sequence number
                q += 4
        elif version == 1:  # PPTP: key (payload length, call id: not the same both ways), [seq], [ack]
            q += 4
            if flags & 0x1000:
                q += 4
            if flags & 0x0080:
                q += 4
        else:
            return "bad_gre_header"
        if q > end:
            return "truncated_tunnel"
        name = "gre:"
        if proto == 0x88BE or proto == 0x22EB:
            name = "erspan:"
            if proto == 0x22EB:  # ERSPAN type III: 12 bytes, and an 8-byte platform header when O is set
                if q + 12 > end:
                    return "truncated_tunnel"
                session = be16(buf, q + 2) & 0x3FF
                optional = buf[q + 11] & 1
                q += 12 + 8 * optional
            elif flags & 0x1000:  # ERSPAN type II (sequence number present): 8 bytes
                if q + 8 > end:
                    return "truncated_tunnel"
                if buf[q] >> 4 != 1:
                    return "bad_erspan_header"
                session = be16(buf, q + 2) & 0x3FF
                q += 8
            else:  # type I: the Ethernet frame follows GRE directly
                session = -1
            if session >= 0:
                param = "id=%d," % session
            proto = _ET_ETHERNET
        elif proto == 0x883E:  # WCCP redirect header (4 bytes), then IPv4
            q += 4
            proto = _ET_GUESS_IP
        deeper = _deeper(path, name + param, src, dst)
        if deeper is None:
            return "tunnel_depth"
        if proto == 0x880B:  # PPP (PPTP)
            return self._ppp(buf, q, end, deeper)
        if proto == 0x0800 or proto == 0x86DD or proto == _ET_ETHERNET or proto == _ET_GUESS_IP or proto == 0x8847:
            return self._ether(buf, proto, q, end, deeper)
        return "not_ip"

    def _udp(self, buf: bytes, p: int, end: int, src: bytes, dst: bytes, path: list[str]):
        """UDP at p: a tunnel when one of its ports is a tunnel's and the content is that tunnel's."""
        if p + 8 > end:
            return "not_tcp"
        sport = buf[p] << 8 | buf[p + 1]
        dport = buf[p + 2] << 8 | buf[p + 3]
        length = buf[p + 4] << 8 | buf[p + 5]
        if 8 <= length and p + length < end:
            end = p + length
        tunnels = self.udp_tunnels
        first = tunnels.get(dport)
        second = tunnels.get(sport)
        if first is None:
            first, second = second, None
        if first is None:
            # no tunnel's port: Teredo by content alone (its relays use any port), as Zeek and tshark
            # do: IPv6 filling the datagram, from or to a Teredo address (2001:0::/32)
            if _looks_like_teredo(buf, p + 8, end):
                r = self._udp_tunnel("teredo", buf, p + 8, end, src, dst, path)
                if r is not None:
                    return r
            return "not_tcp"
        r = self._udp_tunnel(first, buf, p + 8, end, src, dst, path)
        if r is None and second is not None and second != first:
            r = self._udp_tunnel(second, buf, p + 8, end, src, dst, path)
        return "not_tcp" if r is None else r

    def _udp_tunnel(self, name: str, buf: bytes, p: int, end: int, src: bytes, dst: bytes, path: list[str]):
        """The tunnel `name` over UDP at p; None when the content is not that tunnel's."""
        if name == "vxlan":  # RFC 7348: flags (I = 0x08), 3 reserved, VNI (3), reserved
            if p + 8 > end:
                return "truncated_tunnel"
            flags = buf[p]
            if not flags & 0x08:
                return None
            vni = buf[p + 4] << 16 | buf[p + 5] << 8 | buf[p + 6]
            deeper = _deeper(path, "vxlan:vni=%d," % vni, src, dst)
            if deeper is None:
                return "tunnel_depth"
            if flags & 0x04:  # VXLAN-GPE: next protocol in byte 3
                next_protocol = buf[p + 3]
                if next_protocol == 1:
                    return self._ip4(buf, p + 8, end, deeper)
                if next_protocol == 2:
                    return self._ip6(buf, p + 8, end, deeper)
                if next_protocol != 3:
                    return "not_ip"
            return self._ether(buf, _ET_ETHERNET, p + 8, end, deeper)
        if name == "geneve":  # RFC 8926: version, option length, flags, protocol type, VNI, options
            if p + 8 > end:
                return "truncated_tunnel"
            if buf[p] >> 6:
                return "bad_geneve_header"
            q = p + 8 + ((buf[p] & 0x3F) << 2)
            proto = buf[p + 2] << 8 | buf[p + 3]
            vni = buf[p + 4] << 16 | buf[p + 5] << 8 | buf[p + 6]
            if q > end:
                return "truncated_tunnel"
            deeper = _deeper(path, "geneve:vni=%d," % vni, src, dst)
            if deeper is None:
                return "tunnel_depth"
            if proto == _ET_ETHERNET or proto == 0x0800 or proto == 0x86DD:
                return self._ether(buf, proto, q, end, deeper)
            return "not_ip"
        if name == "gtp":  # GTP-U version 1 (3GPP TS 29.281)
            if p + 8 > end:
                return "truncated_tunnel"
            flags = buf[p]
            if flags >> 5 != 1 or not flags & 0x10:
                return None
            if buf[p + 1] != 0xFF:  # not a G-PDU (echo, error indication, end marker)
                return "not_tcp"
            q = p + 8
            if flags & 0x07:  # sequence number, N-PDU number, next extension header type
                if q + 4 > end:
                    return "truncated_tunnel"
                following = buf[q + 3]
                q += 4
                while following:
                    if q >= end:
                        return "truncated_tunnel"
                    size = buf[q] << 2
                    if not size:
                        return "bad_gtp_header"
                    if q + size > end:
                        return "truncated_tunnel"
                    following = buf[q + size - 1]
                    q += size
            deeper = _deeper(path, "gtp:", src, dst)
            if deeper is None:
                return "tunnel_depth"
            return self._ether(buf, _ET_GUESS_IP, q, end, deeper)
        if name == "teredo":  # RFC 4380: optional authentication and origin indication, then IPv6
            q = _teredo_start(buf, p, end)
            if q >= end or buf[q] >> 4 != 6:
                return None
            deeper = _deeper(path, "teredo:", src, dst)
            if deeper is None:
                return "tunnel_depth"
            return self._ip6(buf, q, end, deeper)
        if name == "l2tp":  # L2TPv2 (RFC 2661) data messages carry PPP
            if p + 6 > end:
                return "truncated_tunnel"
            flags = buf[p] << 8 | buf[p + 1]
            if flags & 0x0F != 2:
                return None
            if flags & 0x8000:  # control message
                return "not_tcp"
            q = p + 2
            if flags & 0x4000:  # length
                q += 2
            q += 4  # tunnel id, session id (each side's own: not the same both ways)
            if flags & 0x0800:  # Ns, Nr
                q += 4
            if flags & 0x0200:  # offset size, then that much padding
                if q + 2 > end:
                    return "truncated_tunnel"
                q += 2 + (buf[q] << 8 | buf[q + 1])
            if q > end:
                return "truncated_tunnel"
            deeper = _deeper(path, "l2tp:", src, dst)
            if deeper is None:
                return "tunnel_depth"
            return self._ppp(buf, q, end, deeper)
        if name == "ayiya":  # Anything In Anything: id and signature lengths, opcode, next header
            if p + 8 > end:
                return "truncated_tunnel"
            q = p + 8 + (1 << (buf[p] >> 4)) + ((buf[p + 1] >> 4) << 2)
            if buf[p + 2] & 0x0F != 1:  # not "forward": no packet inside
                return "not_tcp"
            following = buf[p + 3]
            if q > end:
                return "truncated_tunnel"
            deeper = _deeper(path, "ayiya:", src, dst)
            if deeper is None:
                return "tunnel_depth"
            if following == 4:
                return self._ip4(buf, q, end, deeper)
            if following == 41:
                return self._ip6(buf, q, end, deeper)
            return "not_ip"
        return None

    def __repr__(self) -> str:
        return f"Decoder(verify_checksums={self.verify_checksums}, skipped={dict(self.skipped)})"


def _teredo_start(buf: bytes, p: int, end: int) -> int:
    """Where the IPv6 packet of a Teredo datagram at p starts, past its optional authentication
    and origin indication headers (RFC 4380 5.1.1)."""
    if p + 2 <= end and buf[p] == 0 and buf[p + 1] == 1:  # authentication
        if p + 4 > end:
            return end
        p += 4 + buf[p + 2] + buf[p + 3] + 9
    if p + 2 <= end and buf[p] == 0 and buf[p + 1] == 0:  # origin indication
        p += 8
    return p


def _looks_like_teredo(buf: bytes, p: int, end: int) -> bool:
    """A UDP payload that is Teredo by its content: an IPv6 packet filling the rest of the datagram
    whose source or destination is a Teredo address (2001:0::/32)."""
    q = _teredo_start(buf, p, end)
    if q + 40 > end or buf[q] >> 4 != 6 or q + 40 + be16(buf, q + 4) != end:
        return False
    for a in (q + 8, q + 24):
        if buf[a] == 0x20 and buf[a + 1] == 0x01 and buf[a + 2] == 0 and buf[a + 3] == 0:
            return True
    return False


def _deeper(path: list[str], head: str, src: bytes, dst: bytes) -> list[str] | None:
    """The tunnel path with one more layer ("name:param," then the outer endpoints), or None past MAX_TUNNELS."""
    if len(path) >= MAX_TUNNELS:
        return None
    return [*path, head + format_ip(src) + ">" + format_ip(dst)]
