"""The less common link types that carry TCP: where their network layer starts, and what it is.

decode.py reads Ethernet, Linux cooked capture, raw IP, BSD loopback, PPP and FDDI itself (the
common captures, some of them on its fast path); every other link type it is given comes here.
Each link type has one small function that reads its pseudo-header or link header and answers
with ``(ethertype, offset)``: what follows at ``offset`` (an ethertype: 0x0800 IPv4, 0x86DD IPv6,
0x8100 a VLAN tag, 0x8847 MPLS, ...; a value up to 1500 is an 802.3 length, after which an 802.2
LLC/SNAP header names the ethertype), which decode.py's link walk follows to the IP header. When
there is nothing to follow, the answer is a skip reason (decode.py's names, plus the ones below).

    network_layer(linktype, frame, n) -> (ethertype, offset) | skip reason
    ppp_payload(frame, p, n) -> (ethertype, offset) | skip reason  # the PPP protocol field at p
    LINKTYPES: frozenset[int]  # the link types network_layer reads

How each link type is recognised (pcap LINKTYPE_* numbers):

    104 C_HDLC        Cisco HDLC: address, control, then an ethertype
    105 IEEE802_11    802.11 data frames: the MAC header (3 or 4 addresses, QoS control, HT control),
                      then LLC/SNAP. Management, control and null (no data) frames are "not_ip";
                      protected (encrypted) data frames are counted as "wlan_protected", never
                      decoded; aggregated frames (A-MSDU) are counted as "wlan_amsdu"
    127 IEEE802_11_RADIOTAP  a radiotap header (its length, and its flags field for the padding
                      after the MAC header), then 802.11 as above
    178 JUNIPER_ETHER a Juniper "MGC" pseudo-header (with its extensions), then Ethernet, or IP
                      when the flags say the layer-2 header was stripped
    192 PPI           a PPI header (its length, and the link type of what follows: Ethernet,
                      802.11 with or without radiotap, raw IP)
    226 IPNET         Solaris IPNET: a 24-byte header whose address family says IPv4 or IPv6
    239 NFLOG         Linux NFLOG (iptables/nftables "log group"): the address family, then
                      type-length-value attributes (in the logging host's byte order) of which
                      NFULA_PAYLOAD holds the IP packet
    242 IPOIB         IP over InfiniBand: a 44-byte pseudo-header (addresses) ending with an ethertype
    258 PKTAP         Apple PKTAP: a header (its length, its record type, and the link type of the
                      packet that follows: Ethernet, BSD loopback, raw IP, ...)

Skip reasons added here (stable names, counted in the summary like decode.py's):
    bad_link_header   a link header with impossible fields (wrong magic or version, a length
                      shorter than the header itself, an attribute length under 4)
    wlan_protected    an 802.11 data frame with the Protected flag: its payload is encrypted
    wlan_amsdu        an 802.11 aggregate (A-MSDU) data frame: several packets in one frame

Why by hand rather than with dpkt: each header is a few fixed offsets read in place, while dpkt
builds objects per frame and its 802.11 decoder reads neither QoS data subtypes other than
plain QoS data, nor the HT control field, nor four-address frames, nor radiotap's padding flag.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LINKTYPES", "network_layer", "ppp_payload"]

LT_C_HDLC: Final = 104
LT_IEEE802_11: Final = 105
LT_IEEE802_11_RADIOTAP: Final = 127
LT_JUNIPER_ETHER: Final = 178
LT_PPI: Final = 192
LT_IPNET: Final = 226
LT_NFLOG: Final = 239
LT_IPOIB: Final = 242
LT_PKTAP: Final = 258

LLC_FOLLOWS: Final = 0
"""The 'ethertype' for an 802.2 LLC header: decode.py's walk reads values up to 1500 as an 802.3 length."""

_IP4: Final = 0x0800
_IP6: Final = 0x86DD

# PPP protocol numbers (RFC 1661 and the IANA PPP registry) -> ethertype
_PPP_ETHERTYPES: Final = {0x0021: _IP4, 0x0057: _IP6, 0x0281: 0x8847, 0x0283: 0x8848}

Result = tuple[int, int] | str


def _le16(frame, p: int) -> int:
    return frame[p] | frame[p + 1] << 8


def _be16(frame, p: int) -> int:
    return frame[p] << 8 | frame[p + 1]


def _le32(frame, p: int) -> int:
    return frame[p] | frame[p + 1] << 8 | frame[p + 2] << 16 | frame[p + 3] << 24


def _by_version(frame, p: int, n: int) -> Result:
    """IP at p, told apart by its version field (for headers that do not say which)."""
    if p >= n:
        return "truncated_ip"
    v = frame[p] >> 4
    if v == 4:
        return _IP4, p
    if v == 6:
        return _IP6, p
    return "not_ip"


def ppp_payload(frame, p: int, n: int) -> Result:
    """The PPP protocol field at p: one byte when compressed (odd first byte, RFC 1661 section 6.5), else two."""
    if p >= n:
        return "truncated_link"
    b = frame[p]
    if b & 1:
        proto = b
        p += 1
    else:
        if p + 2 > n:
            return "truncated_link"
        proto = b << 8 | frame[p + 1]
        p += 2
    ethertype = _PPP_ETHERTYPES.get(proto)
    if ethertype is None:
        return "not_ip"
    return ethertype, p


def _ethernet(frame, p: int, n: int) -> Result:
    if p + 14 > n:
        return "truncated_link"
    return _be16(frame, p + 12), p + 14


def _raw(frame, p: int, n: int) -> Result:
    return _by_version(frame, p, n)


def _null(frame, p: int, n: int) -> Result:
    # the 4-byte address family is in the capturing host's byte order and its values differ
    # between systems: the IP version field says the same, unambiguously
    if p + 4 > n:
        return "truncated_link"
    return _by_version(frame, p + 4, n)


def _c_hdlc(frame, p: int, n: int) -> Result:
    # address (0x0F unicast, 0x8F broadcast), control, protocol as an ethertype
    if p + 4 > n:
        return "truncated_link"
    return _be16(frame, p + 2), p + 4


def _ieee802_11(frame, p: int, n: int, padded: bool = False) -> Result:
    """An 802.11 frame at p; ``padded``: the MAC header is padded to a multiple of 4 bytes (radiotap's flag)."""
    if p + 2 > n:
        return "truncated_link"
    fc0 = frame[p]
    fc1 = frame[p + 1]
    if fc0 & 3:  # protocol version 0 is the only one
        return "bad_link_header"
    if (fc0 >> 2) & 3 != 2:  # management and control frames
        return "not_ip"
    subtype = fc0 >> 4
    if subtype & 4:  # null data, CF-Ack/Poll without data: no body
        return "not_ip"
    if fc1 & 0x40:
        return "wlan_protected"
    hl = 30 if fc1 & 3 == 3 else 24  # to-DS and from-DS: a fourth address
    if p + hl > n:
        return "truncated_link"
    if subtype & 8:  # QoS data: a 2-byte QoS control field, and HT control when the Order bit is set
        if p + hl + 2 > n:
            return "truncated_link"
        if frame[p + hl] & 0x80:
            return "wlan_amsdu"
        hl += 6 if fc1 & 0x80 else 2
    if padded:
        hl = (hl + 3) & ~3
    if p + hl > n:
        return "truncated_link"
    return LLC_FOLLOWS, p + hl


def _radiotap(frame, p: int, n: int) -> Result:
    # version 0, pad, length (LE), then present-field bitmaps (bit 31: another follows), then the fields
    if p + 8 > n:
        return "truncated_link"
    if frame[p]:
        return "bad_link_header"
    length = _le16(frame, p + 2)
    end = p + length
    if length < 8:
        return "bad_link_header"
    if end > n:
        return "truncated_link"
    present = _le32(frame, p + 4)
    q = p + 4
    while _le32(frame, q) & 0x80000000:
        q += 4
        if q + 4 > end:
            return "bad_link_header"
    flags = 0
    if present & 2:  # Flags, after TSFT (8 bytes, aligned to 8 from the header's start) when present
        at = q + 4
        if present & 1:
            at = p + ((at - p + 7) & ~7) + 8
        if at < end:
            flags = frame[at]
    return _ieee802_11(frame, end, n, bool(flags & 0x20))


def _juniper_ether(frame, p: int, n: int) -> Result:
    # "MGC", flags; extensions (2-byte length, then TLVs) when flag 0x80 is set; with flag 0x02 the
    # layer-2 header was stripped: 4 more bytes, then IP (tcpdump's print-juniper.c reads it so too)
    if p + 4 > n:
        return "truncated_link"
    if frame[p] != 0x4D or frame[p + 1] != 0x47 or frame[p + 2] != 0x43:
        return "bad_link_header"
    flags = frame[p + 3]
    q = p + 4
    if flags & 0x80:
        if q + 2 > n:
            return "truncated_link"
        q += 2 + _be16(frame, q)
    if flags & 0x02:
        return _by_version(frame, q + 4, n)
    return _ethernet(frame, q, n)


def _ipnet(frame, p: int, n: int) -> Result:
    # version, address family (2 IPv4, 26 IPv6), then 22 bytes (type, length, interfaces, zones)
    if p + 24 > n:
        return "truncated_link"
    family = frame[p + 1]
    if family == 2:
        return _IP4, p + 24
    if family == 26:
        return _IP6, p + 24
    return "not_ip"


def _nflog(frame, p: int, n: int) -> Result:
    # family, version, resource id; then attributes: length (including its 4-byte header), type,
    # value padded to 4 bytes. Lengths and types are in the logging host's byte order: the first
    # attribute's type is small and non-zero, so its low byte says which order that is.
    if p + 4 > n:
        return "truncated_link"
    family = frame[p]
    q = p + 4
    if q + 4 > n:
        return "truncated_link"
    little = frame[q + 2] != 0
    while q + 4 <= n:
        if little:
            length = _le16(frame, q)
            kind = _le16(frame, q + 2)
        else:
            length = _be16(frame, q)
            kind = _be16(frame, q + 2)
        if length < 4:
            return "bad_link_header"
        if kind & 0x3FFF == 9:  # NFULA_PAYLOAD (the top two bits are netlink's nested/byte-order flags)
            if family == 2:
                return _IP4, q + 4
            if family == 10:
                return _IP6, q + 4
            return _by_version(frame, q + 4, n)
        q += (length + 3) & ~3
    return "not_ip" if q == n else "truncated_link"


def _ipoib(frame, p: int, n: int) -> Result:
    # a 44-byte pseudo-header: link-layer addresses (40 bytes), the ethertype, 2 reserved bytes
    if p + 44 > n:
        return "truncated_link"
    return _be16(frame, p + 40), p + 44


def _ppi(frame, p: int, n: int) -> Result:
    # version 0, flags, header length (LE), link type of what follows (LE), then fields
    if p + 8 > n:
        return "truncated_link"
    if frame[p]:
        return "bad_link_header"
    length = _le16(frame, p + 2)
    if length < 8:
        return "bad_link_header"
    return _inner(_le32(frame, p + 4), frame, p + length, n)


def _pktap(frame, p: int, n: int) -> Result:
    # header length, record type (1: a packet), link type of the packet (DLT_* numbers), then the
    # interface and process; all in the capturing Mac's byte order, little-endian
    if p + 12 > n:
        return "truncated_link"
    length = _le32(frame, p)
    if length < 12:
        return "bad_link_header"
    if _le32(frame, p + 4) != 1:
        return "not_ip"
    return _inner(_le32(frame, p + 8), frame, p + length, n)


# the link types a PPI or PKTAP header may announce (one level: they do not nest)
_INNER: Final = {
    0: _null,
    1: _ethernet,
    12: _raw,
    14: _raw,
    101: _raw,
    108: _null,
    228: _raw,
    229: _raw,
    LT_C_HDLC: _c_hdlc,
    LT_IEEE802_11: _ieee802_11,
    LT_IEEE802_11_RADIOTAP: _radiotap,
}


def _inner(linktype: int, frame, p: int, n: int) -> Result:
    if p > n:
        return "truncated_link"
    read = _INNER.get(linktype)
    if read is None:
        return "unsupported_linktype"
    return read(frame, p, n)


_READERS: Final = {
    LT_C_HDLC: _c_hdlc,
    LT_IEEE802_11: _ieee802_11,
    LT_IEEE802_11_RADIOTAP: _radiotap,
    LT_JUNIPER_ETHER: _juniper_ether,
    LT_PPI: _ppi,
    LT_IPNET: _ipnet,
    LT_NFLOG: _nflog,
    LT_IPOIB: _ipoib,
    LT_PKTAP: _pktap,
}

LINKTYPES: Final = frozenset(_READERS)


def network_layer(linktype: int, frame, n: int) -> Result:
    """Where the network layer of a frame of one of `LINKTYPES` starts: (ethertype, offset), or a skip reason."""
    read = _READERS.get(linktype)
    if read is None:
        return "unsupported_linktype"
    return read(frame, 0, n)
