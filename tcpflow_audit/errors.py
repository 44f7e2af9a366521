"""Error and warning records for bad input: what went wrong, in which file, at which byte offset.

Reading never raises on bad input; readers record an `InputProblem` and stop (or carry on),
and the pipeline reports every problem once, after keeping everything read before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .names import shown

# every `InputProblem.kind` (their meanings are in its docstring)
PROBLEM_KINDS = frozenset(
    {
        "truncated",
        "damaged_record",
        "corrupt_record",
        "corrupt_block",
        "not_a_capture",
        "empty",
        "unknown_linktype",
        "unreadable",
        "decompress",
        "bad_tcp_header_len",
    }
)


@dataclass(slots=True, frozen=True)
class InputProblem:
    """One problem with one input file.

    kind: a stable machine-readable name, one of
        "truncated"          the file ends in the middle of a record (normal for a killed tcpdump): a warning
        "damaged_record"     a classic pcap record header has a damaged field but its framing is intact (a
                             plausible record header follows it): the records are read on; a warning, one per
                             file, counting them
        "corrupt_record"     a record header is absurd (length over the snap length or 256 KiB, bad timestamp),
                             or its length runs past the end of the file while further records follow
        "corrupt_block"      a pcapng block with a bad length or layout (also: a length that runs past the end
                             of the file while further blocks follow; an unknown block type on a packet block)
        "not_a_capture"      the file does not start with a pcap/pcapng magic number (after decompression)
        "empty"              the file holds no bytes at all
        "unknown_linktype"   a link type this tool cannot decode (classic pcap: the file; pcapng: an
                             interface, reported at its first packet, whose packets are skipped)
        "unreadable"         the OS refused (missing file, permission, I/O error)
        "decompress"         the compressed stream is damaged
        "bad_tcp_header_len" TCP segments whose data offset claims a header longer than the segment: read
                             with their fixed 20-byte header; a warning, one per file, counting them
    fatal: True for an input error (exit status 3): the file was not read whole. Reading stops at
        every one but "unknown_linktype" in pcapng, after which the other interfaces' packets are read.
        False for a warning: "truncated", "damaged_record", "bad_tcp_header_len" (errors too with --strict).
    """

    path: str
    offset: int | None
    kind: str
    message: str
    fatal: bool = True

    def __str__(self) -> str:
        where = f" at byte {self.offset}" if self.offset is not None else ""
        return f"{shown(self.path)}{where}: {self.message}"
