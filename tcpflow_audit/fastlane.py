"""The one loop from the captures to the tracker: records counted, filtered, decoded and fed in order.

It owns no rule of its own, only the loop. `capture` delimits and checks the records
(`CaptureReader.blocks()` yields `RecordBlock` runs of classic pcap records or pcapng Enhanced
Packet Blocks, and single records), `decode.decode_in_place` reads the header fields of an
ordinary frame where it lies, and `ConnectionTracker.segment` takes the segment with its addresses
still in the frame's buffer. Every other frame (and every frame when a host, port or net filter or
checksum verification is asked for, which the in-place decoder does not do) goes the general way,
`Decoder.decode` then `ConnectionTracker.packet`, which is `ConnectionTracker.segment` too.
Data flows one way: capture -> decode -> tracker.

Compiled with mypyc (setup.py) this loop makes no Python object for an ordinary packet, which is
where the packet rate comes from.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from .capture import Record, RecordBlock, be32, epb_header, pcap_record_header
from .decode import Decoder, decode_in_place, pair_key, segment_pair
from .tracker import ConnectionTracker, address_key_at, ipv4_key

if TYPE_CHECKING:  # native 64-bit integers for the compiled build; plain int to Python
    from mypy_extensions import i64

SegmentFilter = Callable[[bytes, int, bytes, int], bool]
"""Whether a segment (source address and port, destination address and port) is kept."""

PROGRESS_EVERY: Final = 0x4000
"""Packets between two calls of the progress callback."""


EXACT_IN_DOUBLE: Final = 1 << 53
"""Integers below this are exact as doubles: dividing two of them natively rounds like Python does."""


def seconds(units: int, per_second: int) -> float:
    """units / per_second exactly as Python divides the two integers (as CaptureReader's records are stamped):
    natively while both are exact as doubles, which then gives the same correctly rounded result."""
    if 0 <= units < EXACT_IN_DOUBLE and per_second < EXACT_IN_DOUBLE:
        return float(units) / per_second
    return exact_quotient(units, per_second)


def exact_quotient(units: Any, per_second: int) -> float:
    """units / per_second rounded once, as Python divides integers (as CaptureReader's records are stamped).

    Compiled code divides two native integers as doubles, which rounds twice once the dividend
    passes 2**53 (nanosecond captures do); `units` is typed Any so this division is Python's.
    """
    return float(units / per_second)


class LaneCounts:
    """What was read, in reading order: folded into the run's statistics by `pipeline.Auditor`."""

    packets_read: int = 0
    tcp_packets: int = 0
    filtered: int = 0
    first_ts: float | None = None  # of the first record read
    last_ts: float | None = None  # of the last record read


def run_lane(
    items: Iterator[Any],
    tracker: ConnectionTracker,
    decoder: Decoder,
    counts: LaneCounts,
    progress: Callable[[int], None] | None,
    limit: float = math.inf,
    since: float = -math.inf,
    until: float = math.inf,
    segment_ok: SegmentFilter | None = None,
) -> Iterator[Record] | None:
    """Feed the records of `items` (from `CaptureReader.blocks()`, or records) to the tracker, in order.

    Records stamped before `since` or at or after `until` are counted as filtered out, and so are
    segments `segment_ok` (when given) turns down. Frames are decoded in place unless there is such a
    filter or the decoder verifies checksums (neither is done in place).

    Stops at the first record stamped after `limit` (the next capture's first packet, where the
    two must be merged by time) and returns the records from that one on, unread; returns None
    when `items` is exhausted. `counts` is kept up to date even when the loop is interrupted
    (Ctrl-C); `progress`, when given, is called with the number of packets this call has read
    every `PROGRESS_EVERY` packets.
    """
    in_place = segment_ok is None and not decoder.verify_checksums
    packets_read = tcp_packets = filtered = 0
    pos: i64 = 0
    end: i64 = 0
    have_first = False
    first_ts = last_ts = 0.0
    try:
        for item in items:
            # a run of records in the reader's buffer, or one record on its own (a frame of its own)
            block: RecordBlock | None = None
            if isinstance(item, RecordBlock):
                block = item
                buf, pos, end, linktype = item.buf, item.start, item.end, item.linktype
                record_ts = 0.0
            else:
                record_ts, linktype, buf = item
                pos, end = 0, 1
            while pos < end:
                if block is not None:
                    ts, frame_start, frame_end, next_pos = record_at(block, pos)
                else:
                    ts, frame_start, frame_end, next_pos = record_ts, 0, len(buf), end
                if ts > limit:
                    if block is not None:
                        return _records_from(block, pos, items)
                    return itertools.chain((item,), items)
                pos = next_pos
                packets_read += 1
                if not have_first:
                    have_first = True
                    first_ts = ts
                last_ts = ts
                if progress is not None and not packets_read % PROGRESS_EVERY:
                    progress(packets_read)
                if ts < since or ts >= until:
                    filtered += 1
                    continue
                if in_place:
                    version, ip, src, sport, dst, dport, seq, ack, flags, window, length = decode_in_place(
                        buf, frame_start, frame_end, linktype
                    )
                else:  # (version 0: the general way below)
                    version, ip, src, sport, dst, dport, seq, ack, flags, window, length = (
                        0,
                        -1,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                    )
                if version == 4:
                    tcp_packets += 1
                    if decoder.holding:  # (a TCP first fragment waits for its datagram: it may come first)
                        release_held(ts, pair_key(src, dst, sport, dport), tracker, decoder, counts, segment_ok)
                    # (methods called on the tracker directly: compiled, that is a native call)
                    tracker.segment(
                        ts, ipv4_key(src, sport), ipv4_key(dst, dport), buf, ip + 12, 4, seq, ack, flags, window, length
                    )
                elif version == 6:
                    tcp_packets += 1
                    if decoder.holding:
                        pair = pair_key(be32(buf, ip + 20), be32(buf, ip + 36), sport, dport)
                        release_held(ts, pair, tracker, decoder, counts, segment_ok)
                    tracker.segment(
                        ts,
                        address_key_at(buf, ip + 8, 16, sport),
                        address_key_at(buf, ip + 24, 16, dport),
                        buf,
                        ip + 8,
                        16,
                        seq,
                        ack,
                        flags,
                        window,
                        length,
                    )
                else:
                    frame = buf if block is None else buf[frame_start:frame_end]
                    taken = feed_record(ts, linktype, frame, tracker, decoder, segment_ok, counts)
                    if taken == TAKEN:
                        tcp_packets += 1
                    elif taken == FILTERED:
                        filtered += 1
    finally:
        counts.packets_read += packets_read
        counts.tcp_packets += tcp_packets
        counts.filtered += filtered
        if have_first:
            if counts.first_ts is None:
                counts.first_ts = first_ts
            counts.last_ts = last_ts
    return None


def record_at(block: RecordBlock, pos: i64) -> tuple[float, i64, i64, i64]:
    """(timestamp, frame start, frame end, next record's position) of the record at pos in block."""
    buf = block.buf
    per_second = block.units_per_second
    if block.pcapng:
        blen, _ifid, stamp, caplen = epb_header(buf, pos, block.little_endian)
        return seconds(stamp + block.offset_units, per_second), pos + 28, pos + 28 + caplen, pos + blen
    sec, frac, caplen, _wirelen = pcap_record_header(buf, pos, block.little_endian)
    frame_start = pos + block.hdrlen
    units = float(sec) * per_second + float(frac)  # (in floating point: no integer overflow checks per record)
    ts = units / per_second if units < EXACT_IN_DOUBLE else exact_quotient(int(sec) * per_second + frac, per_second)
    return ts, frame_start, frame_start + caplen, frame_start + caplen


def _records_from(block: RecordBlock, pos: int, items: Iterator[Any]) -> Iterator[Record]:
    """The records of `block` from the one at `pos` on, then those of every item after it."""
    while pos < block.end:
        ts, frame_start, frame_end, pos = record_at(block, pos)
        yield ts, block.linktype, block.buf[frame_start:frame_end]
    for item in items:
        if isinstance(item, RecordBlock):
            yield from _records_from(item, item.start, iter(()))
        else:
            yield item


NOT_TCP: Final = 0
TAKEN: Final = 1
FILTERED: Final = 2


def feed_record(
    ts: float,
    linktype: int,
    frame: bytes,
    tracker: ConnectionTracker,
    decoder: Decoder,
    segment_ok: SegmentFilter | None = None,
    counts: LaneCounts | None = None,
) -> int:
    """One record the general way: decode it, hand a TCP segment `segment_ok` lets through to the
    tracker. NOT_TCP, TAKEN, or FILTERED (a TCP segment the filter turned down). TCP first fragments
    the decoder gives up waiting for go to the tracker first (`release_held`, counted in `counts`)."""
    segment = decoder.decode(linktype, frame, ts)
    if decoder.holding:
        pair = -1 if segment is None else segment_pair(segment)
        release_held(ts, pair, tracker, decoder, counts, segment_ok)
    if segment is None:
        return NOT_TCP
    src, sport, dst, dport, seq, ack, flags, window, length, checksum_ok = segment
    if segment_ok is not None and not segment_ok(src, sport, dst, dport):
        return FILTERED
    tracker.packet(ts, src, sport, dst, dport, seq, ack, flags, window, length, checksum_ok, decoder.tunnel)
    return TAKEN


def release_held(
    now: float,
    pair: int,
    tracker: ConnectionTracker,
    decoder: Decoder,
    counts: LaneCounts | None,
    segment_ok: SegmentFilter | None = None,
) -> None:
    """The TCP first fragments the decoder stops waiting for (`Decoder.take_released`: before a segment
    of their connection, `pair`, or after the wait) to the tracker, each read alone with its own time,
    which lies a little before the tracker's clock: nothing of the same connection has come between."""
    for ts, segment, tunnel in decoder.take_released(now, pair):
        src, sport, dst, dport, seq, ack, flags, window, length, checksum_ok = segment
        if segment_ok is not None and not segment_ok(src, sport, dst, dport):
            if counts is not None:
                counts.filtered += 1
            continue
        tracker.packet(ts, src, sport, dst, dport, seq, ack, flags, window, length, checksum_ok, tunnel)
        if counts is not None:
            counts.tcp_packets += 1


def release_all_held(
    tracker: ConnectionTracker, decoder: Decoder, counts: LaneCounts, segment_ok: SegmentFilter | None = None
) -> None:
    """End of input: every TCP first fragment still waiting for its datagram, read alone."""
    if decoder.holding or decoder.fragments.released:
        release_held(math.inf, -1, tracker, decoder, counts, segment_ok)
