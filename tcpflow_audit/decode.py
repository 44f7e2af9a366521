"""Decoding frames to the few TCP fields the engine needs, straight from the bytes.

CONTRACT (implemented by the decoder work):

    decoder = Decoder(verify_checksums=False)
    seg = decoder.decode(linktype, frame)   # -> Segment tuple or None (skipped; reason counted)
    decoder.skipped -> collections.Counter[str]  # reason -> count, e.g. "not_ip", "not_tcp", "ip_fragment",
                                                 # "truncated_ip", "truncated_tcp", "bad_ip_header", "bad_tcp_offset",
                                                 # "bad_ip_checksum", "ipv6_ext_loop", "unsupported_linktype"
    SUPPORTED_LINKTYPES: frozenset[int]

Segment is a plain tuple (allocation-light on the hot path), indexed by the constants below:
    (src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int, seq: int, ack: int,
     flags: int, window: int, payload_len: int, checksum_ok: bool)
"""
