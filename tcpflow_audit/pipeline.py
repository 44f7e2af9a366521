"""The library core: captures in, flows and findings out, one packet at a time.

Data flows one way: `capture` (records) -> `decode` (TCP fields) -> `tracker`/`connection`
(state) -> flow sinks (`detectors`, reports). `Auditor` is the streaming engine the CLI drives;
`audit()` is the convenience call for Python users, returning pandas DataFrames.

One loop carries packets from the readers to the tracker, `fastlane.run_lane`: capture after
capture in time order, merged by time where captures overlap (`Auditor._consume`).
"""

from __future__ import annotations

import gc
import heapq
import ipaddress
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .capture import CaptureReader
from .config import EngineConfig
from .connection import FlowRecord
from .decode import SUPPORTED_LINKTYPES, Decoder
from .errors import InputProblem
from .fastlane import LaneCounts, SegmentFilter, release_all_held, run_lane
from .report import iso_utc
from .tracker import ConnectionTracker


@contextmanager
def _no_cyclic_collections() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while packets stream through.

    The engine's objects (connections, endpoints, timer entries, flow records) form no reference
    cycles: reference counting frees each connection as it finishes (tests/test_no_cycles.py checks,
    with the CLI's flow sinks). The collector would only walk the live connections again and again
    and find nothing: each walk cost 0.1 s on a 2M-packet capture (10% of the engine), and even at
    a 250,000-object threshold it walked twice. It resumes as it was when the run ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _signals_checkpoint(packets: int) -> None:
    """Called by the loop every few thousand packets: Python runs signal handlers (Ctrl-C, SIGTERM)
    only between interpreted instructions, and the compiled loop alone has none."""


@dataclass(slots=True)
class PacketFilter:
    """Simple filters applied before the engine (nightly jobs narrow a big capture with these): the loop
    (`run_lane`) drops records stamped before `since` or at or after `until`, and segments
    `segment_ok` turns down."""

    since: float | None = None
    until: float | None = None
    hosts: frozenset[bytes] = frozenset()
    ports: frozenset[int] = frozenset()
    nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def segment_ok(self, src: bytes, sport: int, dst: bytes, dport: int) -> bool:
        if self.hosts and src not in self.hosts and dst not in self.hosts:
            return False
        if self.ports and sport not in self.ports and dport not in self.ports:
            return False
        if self.nets:
            addresses = (ipaddress.ip_address(src), ipaddress.ip_address(dst))
            if not any(a.version == n.version and a in n for a in addresses for n in self.nets):
                return False
        return True


@dataclass(slots=True)
class RunStats:
    """What was read: the numbers behind the summary report."""

    files: list[str] = field(default_factory=list)
    passed_over: list[str] = field(default_factory=list)  # files in directories that are not captures (inputs)
    packets_read: int = 0
    tcp_packets: int = 0
    filtered_out: int = 0
    skipped: Counter = field(default_factory=Counter)  # packets not decoded, by reason (decode's names)
    fragments_incomplete: int = 0  # TCP packets read from a first fragment alone (the rest of the datagram missing)
    connections: int = 0
    evicted: int = 0
    peak_live_connections: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    problems: list[InputProblem] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C (KeyboardInterrupt): everything read before it is reported
    bytes_read: int = 0  # bytes consumed from the input files (compressed size), how far a run got

    @property
    def input_errors(self) -> list[InputProblem]:
        return [p for p in self.problems if p.fatal]


class Auditor:
    """Streams packets from captures through the engine; finished flows go to `on_flow` callbacks."""

    def __init__(self, config: EngineConfig | None = None, packet_filter: PacketFilter | None = None) -> None:
        self.config = config or EngineConfig()
        self.packet_filter = packet_filter or PacketFilter()
        # after Ctrl-C, still finalise the connections that were live (a report of what was read
        # needs them); the CLI turns it off when an interrupted run writes nothing, so it stops at once
        self.finalise_when_interrupted = True
        self.decoder = Decoder(verify_checksums=self.config.verify_checksums)
        self.tracker = ConnectionTracker(self.config)
        # the tracker calls these itself (one list, shared); a tracker swapped in later can be
        # given `on_flow=auditor._emit`
        self.flow_sinks: list[Callable[[FlowRecord], None]] = self.tracker.flow_sinks
        self.stats = RunStats()
        self.progress: Callable[[list[CaptureReader], int], None] | None = None  # (readers, packets so far)
        self.segment_problems: list[InputProblem] = []  # problems of segments in the files (warnings)

    def add_flow_sink(self, sink: Callable[[FlowRecord], None]) -> None:
        self.flow_sinks.append(sink)

    def _emit(self, record: FlowRecord) -> None:
        for sink in self.flow_sinks:
            sink(record)

    # ------------------------------------------------------------------ reading
    def open_readers(self, sources: Iterable[str]) -> list[CaptureReader]:
        readers = []
        for source in sources:
            reader = CaptureReader(source, supported_linktypes=SUPPORTED_LINKTYPES)
            self.stats.files.append(str(source))
            readers.append(reader)
        return readers

    def run(self, sources: Iterable[str]) -> RunStats:
        """Read every source as one timeline (files ordered by first packet, overlaps merged by time)."""
        readers = self.open_readers(sources)
        counts = LaneCounts()
        with _no_cyclic_collections():
            try:
                self._consume(readers, counts)
            except KeyboardInterrupt:
                self.stats.interrupted = True
            finally:
                if not self.stats.interrupted or self.finalise_when_interrupted:
                    # TCP first fragments still waiting for the rest of their datagram: read alone
                    release_all_held(self.tracker, self.decoder, counts, self._segment_filter())
                self._account(counts)
                for reader in readers:
                    self.stats.problems.extend(reader.problems)
                    self.stats.bytes_read += reader.bytes_read
                    if reader.skipped_unsupported:  # (pcapng packets of an unsupported interface)
                        self.stats.skipped["unsupported_linktype"] += reader.skipped_unsupported
                    reader.close()
                self.stats.problems.extend(self.segment_problems)
                if self.stats.interrupted and not self.finalise_when_interrupted:
                    self._count()
                else:
                    self.finish()
        return self.stats

    def _consume(self, readers: list[CaptureReader], counts: LaneCounts) -> None:
        """The captures through the loop (`run_lane`), one after the other in time order.

        Files that follow each other in time (rotated captures) each go through whole. A file whose
        packets run past the next file's first packet is merged by time with the rest from that
        packet on (a stable merge: of records stamped alike, the earlier file's come first).
        """
        ordered = self._ordered(readers)
        starts = [reader.first_timestamp() for reader in ordered] if len(ordered) > 1 else [None]
        packet_filter = self.packet_filter
        since = -math.inf if packet_filter.since is None else packet_filter.since
        until = math.inf if packet_filter.until is None else packet_filter.until
        segment_ok = self._segment_filter()
        progress = self.progress
        report: Callable[[int], None] = _signals_checkpoint
        if progress is not None:
            progress(readers, 0)
            report = lambda packets: progress(readers, counts.packets_read + packets)  # noqa: E731
        tracker, decoder = self.tracker, self.decoder
        for index, reader in enumerate(ordered):
            later = [start for start in starts[index + 1 :] if start is not None]
            limit = later[0] if later else math.inf
            before = decoder.header_past_segment
            leftover = run_lane(reader.blocks(), tracker, decoder, counts, report, limit, since, until, segment_ok)
            if leftover is not None:
                merged = heapq.merge(leftover, *ordered[index + 1 :], key=lambda record: record[0])
                run_lane(merged, tracker, decoder, counts, report, math.inf, since, until, segment_ok)
                self._note_bad_headers(ordered[index:], before)
                break
            self._note_bad_headers([reader], before)

    def _segment_filter(self) -> SegmentFilter | None:
        """The filter's test of a segment's addresses and ports; None when it has none."""
        packet_filter = self.packet_filter
        by_segment = packet_filter.hosts or packet_filter.ports or packet_filter.nets
        return packet_filter.segment_ok if by_segment else None

    def _note_bad_headers(self, readers: list[CaptureReader], before: int) -> None:
        """A warning for the TCP segments the decoder read with a data offset past their end
        (`decode.tcp_header`) since it had counted `before`: one for the file, or the files merged."""
        decoder = self.decoder
        count = decoder.header_past_segment - before
        if count:
            first = iso_utc(decoder.header_past_segment_first)
            self.segment_problems.append(
                InputProblem(
                    ", ".join(reader.name for reader in readers),
                    None,
                    "bad_tcp_header_len",
                    f"{count} TCP segment{'s' if count > 1 else ''} whose data offset claims a header longer "
                    f"than the segment (the first at {first}): counted with the fixed 20-byte header (ports, "
                    "sequence and acknowledgment numbers, flags, window); options and payload unread",
                    fatal=False,
                )
            )
        decoder.header_past_segment_first = -1.0

    @staticmethod
    def _ordered(readers: list[CaptureReader]) -> list[CaptureReader]:
        if len(readers) == 1:
            return readers
        return sorted(readers, key=lambda r: (r.first_timestamp() is None, r.first_timestamp() or 0.0))

    def _account(self, counts: LaneCounts) -> None:
        stats = self.stats
        stats.packets_read += counts.packets_read
        stats.tcp_packets += counts.tcp_packets
        stats.filtered_out += counts.filtered
        if counts.first_ts is not None and (stats.first_ts is None or counts.first_ts < stats.first_ts):
            stats.first_ts = counts.first_ts
        if counts.last_ts is not None and (stats.last_ts is None or counts.last_ts > stats.last_ts):
            stats.last_ts = counts.last_ts

    def finish(self) -> None:
        """End of input: finalise every live connection, then count."""
        self.tracker.flush()
        self._count()

    def _count(self) -> None:
        self.stats.skipped.update(self.decoder.skipped)
        self.stats.fragments_incomplete = self.decoder.fragments_incomplete
        self.stats.connections = self.tracker.connections_seen
        self.stats.evicted = self.tracker.evicted
        self.stats.peak_live_connections = self.tracker.peak_live
