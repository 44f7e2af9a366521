"""Decoding frames to the few TCP fields the engine needs, straight from the bytes.

Interface:

    decoder = Decoder(verify_checksums=False)
    seg = decoder.decode(linktype, frame)   # -> Segment tuple or None (skipped; reason counted)
    decoder.skipped -> collections.Counter[str]  # reason -> count, e.g. "not_ip", "not_tcp", "ip_fragment",
                                                 # "truncated_ip", "truncated_tcp", "bad_ip_header", "bad_tcp_offset",
                                                 # "bad_ip_checksum", "ipv6_ext_loop", "unsupported_linktype"
    SUPPORTED_LINKTYPES: frozenset[int]

Segment is a plain tuple (allocation-light on the hot path), indexed by the constants below:
    (src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int, seq: int, ack: int,
     flags: int, window: int, payload_len: int, checksum_ok: bool)

Skip reasons counted in ``Decoder.skipped`` (stable names):
    unsupported_linktype  the link type is not in SUPPORTED_LINKTYPES
    truncated_link        the frame ends inside a link-layer / tunnel header (Ethernet, VLAN, MPLS, PPPoE, ...)
    not_ip                the link layer carries something other than IPv4/IPv6 (ARP, LLDP, ...)
    truncated_ip          the frame ends inside the IPv4 fixed header / IPv6 header or extension chain
    bad_ip_header         wrong version, IHL < 5 or past the captured bytes, or inconsistent IP length fields
    bad_ip_checksum       (verify_checksums only) the IPv4 header checksum is wrong
    ip_fragment           a non-first IPv4/IPv6 fragment (first fragments are decoded)
    ipv6_ext_loop         more than 16 IPv6 extension headers
    not_tcp               IP carrying another protocol (or IPv6 "no next header")
    truncated_tcp         fewer than the 20 fixed TCP header bytes were captured
    bad_tcp_offset        TCP data offset < 5
    malformed             safety net: a decoding error nobody foresaw (should stay 0; decode() never raises)
    (and the link-layer reasons of link_layers.py: bad_link_header, wlan_protected, wlan_amsdu)

Design: ``Decoder.decode``'s fast path handles Ethernet (+ one 802.1Q tag) / LINUX_SLL / LINUX_SLL2 / RAW
carrying IPv4 with a 20-byte header and TCP, using ONE precompiled ``struct`` call that returns every
field at once (plus two int.from_bytes sums when verifying checksums); everything else goes through
the general path (link walk, IPv4/IPv6 with options and extension headers), which gives the same
answers for the frames the fast path takes.  Checksums use int.from_bytes(...) % 0xFFFF, which is
the ones'-complement sum modulo 0xFFFF (2**16 == 1 mod 0xFFFF); a valid header/segment sums to 0.
"""

from __future__ import annotations

import socket
from collections import Counter
from struct import Struct
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


# Structs.  "!" = network order, no alignment.
# Ethernet + IPv4 (IHL 5) + TCP fixed header up to the window, all at once:
#   ethertype | vhl, tot_len, frag, proto, src, dst | sport, dport, seq, ack, off, flags, window
_ETH_IP4_TCP = Struct("!12xHBxH2xHxB2x4s4sHHIIBBH")
# The same without the Ethernet header: vhl, tot_len, frag, proto, src, dst, sport, ..., window
_IP4_TCP = Struct("!BxH2xHxB2x4s4sHHIIBBH")
# IPv4 fixed header fields the general path needs (20 bytes): tot_len, frag, proto, src, dst
_IP4 = Struct("!2xH2xHxB2x4s4s")
# IPv6 fixed header (40 bytes): ver/tc byte, payload length, next header, src, dst
_IP6 = Struct("!B3xHBx16s16s")
# TCP fixed header (first 16 of the 20 bytes that must be captured): sport, dport, seq, ack, off, flags, window
_TCP = Struct("!HHIIBBH")

# The structs stop after the window field; the fast path still requires all 20 fixed TCP header
# bytes to be captured (Ethernet: 54 bytes, 58 with a VLAN tag; IP alone: 40).
assert _ETH_IP4_TCP.size == 50 and _IP4_TCP.size == 36 and _IP4.size == 20 and _IP6.size == 40
assert _TCP.size == 16

# "Shim" headers walked inside Ethernet: ethertype -> (bytes from the payload start to the next
# payload start, offset of the next ethertype from the payload start).
_SHIMS: dict[int, tuple[int, int]] = {
    0x8100: (4, 2),  # 802.1Q: TCI, ethertype
    0x88A8: (4, 2),  # 802.1ad QinQ S-tag
    0x9100: (4, 2),  # old QinQ
    0x88E7: (18, 16),  # 802.1ah PBB: I-TAG(4), inner dst(6), inner src(6), ethertype
    0x8926: (6, 4),  # Cisco VN-Tag: tag(4), ethertype
    0x8903: (16, 14),  # Cisco FabricPath: rest of the 16-byte outer header (ftag/ttl), inner dst/src, ethertype
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
# General path.  Each function returns a Segment tuple, or a skip-reason string.
# ---------------------------------------------------------------------------------------------


def _walk_ethertype(frame, et: int, p: int, n: int):
    """Follow an ethertype whose payload starts at ``p`` through tags/tunnels to IP.

    Returns (ip_version, offset) with ip_version 4 or 6, or a skip reason.
    """
    shims = _SHIMS
    while True:
        if et == _ETHERTYPE_IP4:
            return 4, p
        if et == _ETHERTYPE_IP6:
            return 6, p
        shim = shims.get(et)
        if shim is not None:
            hlen, eo = shim
            if p + hlen > n:
                return "truncated_link"
            et = frame[p + eo] << 8 | frame[p + eo + 1]
            p += hlen
            continue
        if et == 0x8847 or et == 0x8848:  # MPLS unicast / multicast: pop to bottom of stack
            while True:
                if p + 4 > n:
                    return "truncated_link"
                bos = frame[p + 2] & 1
                p += 4
                if bos:
                    break
            if p >= n:
                return "truncated_ip"
            v = frame[p] >> 4
            if v == 4:
                return 4, p
            if v == 6:
                return 6, p
            return "not_ip"
        if et == 0x8864:  # PPPoE session: ver/type, code, session id, length, then PPP protocol
            r = ppp_payload(frame, p + 6, n)
            if isinstance(r, str):
                return r
            et, p = r
            continue
        if et <= 1500:  # 802.3 length field: accept an 802.2 LLC/SNAP header carrying an ethertype
            if p + 8 > n:
                return "truncated_link"
            if frame[p] == 0xAA and frame[p + 1] == 0xAA and frame[p + 2] == 0x03:
                et = frame[p + 6] << 8 | frame[p + 7]
                p += 8
                continue
            return "not_ip"
        return "not_ip"


def _ip4(frame, o: int, n: int, verify: bool):
    """IPv4 at offset ``o`` of a ``n``-byte frame, then TCP."""
    if n - o < 20:
        return "truncated_ip"
    vhl = frame[o]
    hl = (vhl & 0x0F) << 2
    if vhl >> 4 != 4 or hl < 20 or o + hl > n:
        return "bad_ip_header"
    if verify and _from_bytes(frame[o : o + hl], "big") % 0xFFFF:
        # a correct header sums (ones' complement) to 0xFFFF; it cannot be all zeros (version 4)
        return "bad_ip_checksum"
    if hl == 20 and n - o >= 40:
        _, tot, frag, proto, src, dst, sport, dport, seq, ack, off, flags, win = _IP4_TCP.unpack_from(frame, o)
        tcp_in = True
    else:
        tot, frag, proto, src, dst = _IP4.unpack_from(frame, o)
        tcp_in = False
    if proto != 6:
        return "not_tcp"
    if frag & 0x1FFF:
        return "ip_fragment"
    t = o + hl
    if tot:
        if tot < hl + 20:
            return "bad_ip_header"
        seglen = tot - hl
    if not tcp_in:
        if n - t < 20:
            return "truncated_tcp"
        sport, dport, seq, ack, off, flags, win = _TCP.unpack_from(frame, t)
    thl = (off >> 4) << 2
    if thl < 20:
        return "bad_tcp_offset"
    if tot:
        plen = seglen - thl
        if plen < 0:
            return "bad_ip_header"
        ok = True
        # verify only when the whole segment is here (and not a first fragment: MF set)
        if verify and t + seglen <= n and not frag & 0x2000:
            ok = (
                not (_word_sum(frame, t, t + seglen) + _from_bytes(src, "big") + _from_bytes(dst, "big") + 6 + seglen)
                % 0xFFFF
            )
    else:
        # total length 0: segmentation offload on the capturing host; use what was captured
        plen = n - t - thl
        if plen < 0:
            plen = 0
        ok = True
    return (src, sport, dst, dport, seq, ack, flags, win, plen, ok)


def _ip6(frame, o: int, n: int, verify: bool):
    """IPv6 at offset ``o`` of a ``n``-byte frame, through extension headers, then TCP."""
    if n - o < 40:
        return "truncated_ip"
    vtc, plen6, nh, src, dst = _IP6.unpack_from(frame, o)
    if vtc >> 4 != 6:
        return "bad_ip_header"
    p = o + 40
    count = 0
    more_frags = False
    pseudo_dst = dst
    ext_set = _IP6_EXT
    while nh != 6:
        if nh not in ext_set:
            return "not_tcp"  # includes 59 (no next header)
        count += 1
        if count > _IP6_MAX_EXT:
            return "ipv6_ext_loop"
        if nh == 44:  # fragment
            if p + 8 > n:
                return "truncated_ip"
            fo = frame[p + 2] << 8 | frame[p + 3]
            if fo & 0xFFF8:
                return "ip_fragment"
            more_frags = bool(fo & 1)
            hlen = 8
        else:
            if p + 2 > n:
                return "truncated_ip"
            if nh == 51:  # AH: length in 4-byte units, minus 2
                hlen = (frame[p + 1] + 2) << 2
            else:
                hlen = (frame[p + 1] + 1) << 3
                if nh == 43 and p + 4 <= n and frame[p + 3]:
                    # routing header with segments left: the final destination goes in the
                    # pseudo-header (RFC 8200 8.1) and, as in Zeek, in the connection id
                    rtype = frame[p + 2]
                    ln = frame[p + 1]
                    if rtype == 0 and ln >= 2 and not ln & 1:
                        a = p + 8 + 16 * (ln // 2 - 1)
                        if a + 16 <= n:
                            pseudo_dst = bytes(frame[a : a + 16])
                    elif rtype == 2 and ln == 2 and p + 24 <= n:
                        pseudo_dst = bytes(frame[p + 8 : p + 24])
        nh = frame[p]
        p += hlen
    if p > n:
        return "truncated_ip"
    ext_len = p - o - 40
    if plen6 and plen6 < ext_len + 20:
        return "bad_ip_header"
    if n - p < 20:
        return "truncated_tcp"
    sport, dport, seq, ack, off, flags, win = _TCP.unpack_from(frame, p)
    thl = (off >> 4) << 2
    if thl < 20:
        return "bad_tcp_offset"
    ok = True
    if plen6:
        seglen = plen6 - ext_len
        plen = seglen - thl
        if plen < 0:
            return "bad_ip_header"
        if verify and p + seglen <= n and not more_frags:
            ok = (
                not (
                    _word_sum(frame, p, p + seglen)
                    + _from_bytes(src, "big")
                    + _from_bytes(pseudo_dst, "big")
                    + 6
                    + seglen
                )
                % 0xFFFF
            )
    else:
        # payload length 0 (offload, or a jumbogram): use what was captured
        plen = n - p - thl
        if plen < 0:
            plen = 0
    return (src, sport, pseudo_dst, dport, seq, ack, flags, win, plen, ok)


def _guess_ip(frame, o: int, n: int, verify: bool, other: str):
    if o >= n:
        return "truncated_ip"
    v = frame[o] >> 4
    if v == 4:
        return _ip4(frame, o, n, verify)
    if v == 6:
        return _ip6(frame, o, n, verify)
    return other


def _after_walk(frame, r, n: int, verify: bool):
    if r.__class__ is str:
        return r
    v, o = r
    if v == 4:
        return _ip4(frame, o, n, verify)
    return _ip6(frame, o, n, verify)


def _after_link(frame, r, n: int, verify: bool):
    """A link layer's (ethertype, payload offset), or its skip reason, through the walk to TCP."""
    if isinstance(r, str):
        return r
    et, p = r
    return _after_walk(frame, _walk_ethertype(frame, et, p, n), n, verify)


def _decode_general(linktype: int, frame, verify: bool):
    """Any supported link type; returns a Segment tuple or a skip reason."""
    n = len(frame)
    if linktype == LT_EN10MB:
        if n < 14:
            return "truncated_link"
        return _after_walk(frame, _walk_ethertype(frame, frame[12] << 8 | frame[13], 14, n), n, verify)
    if linktype == LT_RAW or linktype == LT_RAW_12 or linktype == LT_RAW_14:
        return _guess_ip(frame, 0, n, verify, "bad_ip_header")
    if linktype == LT_LINUX_SLL:
        if n < 16:
            return "truncated_link"
        return _after_walk(frame, _walk_ethertype(frame, frame[14] << 8 | frame[15], 16, n), n, verify)
    if linktype == LT_LINUX_SLL2:
        if n < 20:
            return "truncated_link"
        return _after_walk(frame, _walk_ethertype(frame, frame[0] << 8 | frame[1], 20, n), n, verify)
    if linktype == LT_IPV4:
        return _ip4(frame, 0, n, verify)
    if linktype == LT_IPV6:
        return _ip6(frame, 0, n, verify)
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
            return _ip4(frame, 4, n, verify)
        if af in _AF_INET6_VALUES:
            return _ip6(frame, 4, n, verify)
        return "not_ip"
    if linktype == LT_PPP or linktype == LT_PPP_HDLC:
        p = 0
        if n >= 1:
            b0 = frame[0]
            if b0 == 0xFF:  # HDLC address: FF 03 (0xFF is no protocol number)
                if n < 2:
                    return "truncated_link"
                if frame[1] != 0x03:
                    return "not_ip"
                p = 2
            elif linktype == LT_PPP_HDLC and (b0 == 0x0F or b0 == 0x8F):
                # Cisco HDLC framing seen under this link type: address, control, ethertype
                if n < 4:
                    return "truncated_link"
                return _after_walk(frame, _walk_ethertype(frame, frame[2] << 8 | frame[3], 4, n), n, verify)
        return _after_link(frame, ppp_payload(frame, p, n), n, verify)
    if linktype == LT_FDDI:
        # frame control(1), dst(6), src(6), then 802.2 LLC/SNAP: AA AA 03 OUI(3) ethertype(2)
        if n < 21:
            return "truncated_link"
        if frame[13] != 0xAA or frame[14] != 0xAA or frame[15] != 0x03:
            return "not_ip"
        return _after_walk(frame, _walk_ethertype(frame, frame[19] << 8 | frame[20], 21, n), n, verify)
    return _after_link(frame, network_layer(linktype, frame, n), n, verify)


def _general_safe(linktype: int, frame, verify: bool):
    try:
        return _decode_general(linktype, frame, verify)
    except (IndexError, _StructError, TypeError, ValueError):  # pragma: no cover - safety net
        return "malformed"


# ---------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------


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
    decode it); ip_offset is the IP header's position in buf. IPv4 (the frames of the fast path
    in `Decoder.decode`) comes with its addresses as 32-bit integers; IPv6 with src and dst 0:
    its addresses are ``buf[ip_offset + 8:ip_offset + 24]`` and ``buf[ip_offset + 24:ip_offset + 40]``.
    IPv6 is taken when TCP follows the fixed header directly with a non-zero payload length
    (extension headers, jumbograms and the like go to `Decoder.decode`). For every frame it takes
    the fields are the ones `Decoder.decode` gives (checksums are not verified: the fast lane
    does not run with --verify-checksums). Compiled, it reads the bytes in place and makes no objects;
    its offsets and fields are native 64-bit integers (`i64`), so the arithmetic is single instructions.
    """
    n = end - start
    o: i64 = -1  # where the IPv4 header starts
    o6: i64 = -1  # where the IPv6 header starts
    if linktype == 1:
        if n >= 54:
            ethertype = be16(buf, start + 12)
            if ethertype == 0x8100:  # one 802.1Q tag
                if n >= 58:
                    o, o6 = _ip_at(be16(buf, start + 16), start + 18)
            else:
                o, o6 = _ip_at(ethertype, start + 14)
    elif linktype == 113:  # LINUX_SLL: the protocol at 14
        if n >= 56:
            o, o6 = _ip_at(be16(buf, start + 14), start + 16)
    elif linktype == 101 or linktype == 12 or linktype == 14:  # raw IP: the version says which
        if n >= 40:
            version: i64 = buf[start]
            if version >> 4 == 6:
                o6 = start
            else:
                o = start
    elif linktype == 228:
        if n >= 40:
            o = start
    elif linktype == 229:
        o6 = start
    elif linktype == 276:  # LINUX_SLL2: the protocol at 0
        if n >= 60:
            o, o6 = _ip_at(be16(buf, start), start + 20)
    if o >= 0:
        version_ihl: i64 = buf[o]
        protocol: i64 = buf[o + 9]
        fragment: i64 = be16(buf, o + 6)
        if version_ihl != 0x45 or protocol != 6 or fragment & 0x1FFF:
            return (0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        t = o + 20
        offset_byte: i64 = buf[t + 12]
        thl = offset_byte >> 2 & 0x3C
        plen = be16(buf, o + 2) - 20 - thl
        if plen < 0 or thl < 20:
            return (0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        flags: i64 = buf[t + 13]
        return (
            4,
            o,
            be32(buf, o + 12),
            be16(buf, t),
            be32(buf, o + 16),
            be16(buf, t + 2),
            be32(buf, t + 4),
            be32(buf, t + 8),
            flags,
            be16(buf, t + 14),
            plen,
        )
    if o6 >= 0 and end - o6 >= 60:
        version6: i64 = buf[o6]
        next_header: i64 = buf[o6 + 6]
        if version6 >> 4 == 6 and next_header == 6:
            t = o6 + 40
            payload = be16(buf, o6 + 4)
            offset_byte6: i64 = buf[t + 12]
            thl = offset_byte6 >> 2 & 0x3C
            plen = payload - thl
            if thl >= 20 and payload >= 20 and plen >= 0:
                flags6: i64 = buf[t + 13]
                return (
                    6,
                    o6,
                    0,
                    be16(buf, t),
                    0,
                    be16(buf, t + 2),
                    be32(buf, t + 4),
                    be32(buf, t + 8),
                    flags6,
                    be16(buf, t + 14),
                    plen,
                )
    return (0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0)


class Decoder:
    """Decodes one frame at a time to a Segment tuple; counts skipped frames by reason.

    ``decode`` has a fast path for the common cases, then the general path. Fast path: Ethernet
    (optionally one 802.1Q tag), LINUX_SLL, LINUX_SLL2 and raw IPv4 carrying IPv4 without options
    (IHL 5), not a non-first fragment, and TCP with consistent lengths. One struct call yields every
    field; with ``verify_checksums`` the two checksums cost one int.from_bytes each (the TCP sum
    covers src, dst and the segment in one contiguous slice of the frame). Everything else - and
    every frame the fast path declines - goes through ``decode_general``, which gives the same
    answer for every frame (tests/test_decode.py checks both on each case).
    """

    def __init__(self, verify_checksums: bool = False) -> None:
        self.verify_checksums = bool(verify_checksums)
        self.skipped: Counter[str] = Counter()  # skip reason -> frames (see the module docstring)

    def decode(self, linktype: int, frame: bytes | bytearray | memoryview) -> tuple | None:
        """Decode one frame of the given pcap link type: a Segment tuple, or None (reason counted)."""
        n = len(frame)
        o = -1
        vhl = tot = frag = proto = sport = dport = seq = ack = off = flags = win = 0
        src = dst = b""
        if linktype == 1:
            if n >= 54:
                et, vhl, tot, frag, proto, src, dst, sport, dport, seq, ack, off, flags, win = _ETH_IP4_TCP.unpack_from(
                    frame
                )
                if et == 0x0800:
                    o = 14
                elif et == 0x8100 and n >= 58:
                    et, vhl, tot, frag, proto, src, dst, sport, dport, seq, ack, off, flags, win = (
                        _ETH_IP4_TCP.unpack_from(frame, 4)
                    )
                    if et == 0x0800:
                        o = 18
        else:
            if linktype == 113:  # LINUX_SLL, protocol IPv4
                o = 16 if n >= 56 and frame[14] == 8 and not frame[15] else -1
            elif linktype == 101 or linktype == 228 or linktype == 12 or linktype == 14:
                o = 0 if n >= 40 else -1
            elif linktype == 276:  # LINUX_SLL2, protocol IPv4
                o = 20 if n >= 60 and frame[0] == 8 and not frame[1] else -1
            if o >= 0:
                vhl, tot, frag, proto, src, dst, sport, dport, seq, ack, off, flags, win = _IP4_TCP.unpack_from(
                    frame, o
                )
        if o >= 0 and vhl == 0x45 and proto == 6 and not frag & 0x1FFF:
            thl = off >> 2 & 0x3C
            seglen = tot - 20
            plen = seglen - thl
            if plen >= 0 and thl >= 20:  # (also means tot != 0: TSO frames take the general path)
                if not self.verify_checksums:
                    return (src, sport, dst, dport, seq, ack, flags, win, plen, True)
                if _from_bytes(frame[o : o + 20], "big") % 0xFFFF:
                    self.skipped["bad_ip_checksum"] += 1
                    return None
                end = o + tot
                if end <= n and not frag & 0x2000:
                    # src, dst and the whole segment are contiguous: frame[o+12:end] (8 + seglen bytes)
                    return (
                        src,
                        sport,
                        dst,
                        dport,
                        seq,
                        ack,
                        flags,
                        win,
                        plen,
                        not (_word_sum(frame, o + 12, end) + 6 + seglen) % 0xFFFF,
                    )
                return (src, sport, dst, dport, seq, ack, flags, win, plen, True)
        return self.decode_general(linktype, frame)

    def decode_general(self, linktype: int, frame: bytes | bytearray | memoryview) -> tuple | None:
        """The general path alone (link walk, IP options, IPv6 extension headers): same answers."""
        r = _general_safe(linktype, frame, self.verify_checksums)
        if isinstance(r, tuple):
            return r
        self.skipped[r] += 1
        return None

    def __repr__(self) -> str:
        return f"Decoder(verify_checksums={self.verify_checksums}, skipped={dict(self.skipped)})"
