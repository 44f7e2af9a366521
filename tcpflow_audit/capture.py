"""Reading captures as a stream: classic pcap and pcapng, plain or compressed, from a file or stdin.

This module owns everything between a capture file on disk (or a pipe) and the
``(timestamp, linktype, frame)`` records the rest of the package consumes:
opening the input, detecting and undoing gzip/bzip2/xz compression by content,
recognising the capture format by its magic number, framing records with bounded
memory, converting per-interface timestamps, and turning every kind of bad input
into an :class:`~tcpflow_audit.errors.InputProblem` instead of an exception.

Public API::

    reader = CaptureReader(source, supported_linktypes=None, *, name=None)
        # source: a path (str or os.PathLike), "-" for stdin, or a binary file object
        # name:   display name used in problems (default: the path, "<stdin>", or the object's .name)
    for ts, linktype, frame in reader:      # ts: float epoch seconds, linktype: int DLT, frame: bytes
        ...
    reader.problems   -> list[InputProblem] # filled as reading goes; iteration ends quietly on a fatal one
                                            # (but for a pcapng interface of an unsupported link type)
    reader.offset     -> int                # byte offset (in the decompressed stream) of the next record
    reader.packets    -> int                # records yielded so far
    reader.size       -> int | None         # bytes of the (compressed) file, for progress; None for stdin/pipes
    reader.bytes_read -> int                # bytes consumed from the underlying (compressed) file so far
    reader.skipped_unsupported -> int       # pcapng packets skipped because their interface's link type is unsupported
    reader.first_timestamp() -> float | None  # the first record's time, without disturbing a later iteration
    reader.close(); ``with CaptureReader(...) as reader:``
    for item in reader.blocks():            # the fast lane's view of the same stream: RecordBlock runs of
        ...                                 # checked records (pcap; pcapng packet blocks), else records

Informational attributes, set once the header has been read: ``reader.format`` ("pcap",
"pcap-nsec", "pcap-modified", "pcapng" or None), ``reader.compression`` ("gzip", "bzip2",
"xz" or None), ``reader.linktype`` / ``reader.snaplen`` / ``reader.fcs_len`` (classic pcap),
``reader.interfaces`` (every pcapng interface seen, in order).

A reader is single-pass: iterating it twice continues (or finishes) the same stream.

Formats: classic pcap with microsecond (a1b2c3d4) or nanosecond (a1b23c4d) timestamps and the
"modified" Kuznetzov variant (a1b2cd34, 24-byte record headers), in either byte order; pcapng
with several sections (each with its own byte order), several interfaces per section with their
own link type, ``if_tsresol`` and ``if_tsoffset``, and Enhanced, Simple and obsolete Packet Blocks.

Timestamps are ``seconds + fraction / units`` with the fraction divided exactly once, so the same
instant gives the same float whether it came from classic pcap or pcapng. A Simple Packet Block
has no timestamp and gets the previous record's (0.0 if it is the first record).

Checks: a classic pcap record header fails when its captured length exceeds 262144, the file's
snap length (when that is positive), or its original length, or when its sub-second field is out
of range. Such a record is "damaged_record" (a warning, one per file, counting them all) and is
read, its framing intact, when its captured length is at most 262144 and it ends where the input
does or where a plausible record header starts (captured length from 1 to 262144, original length
from it to 1 MiB, time within a day of the last sound record's or of the damaged one's); otherwise
it is "corrupt_record" (fatal) and reading stops there. A pcapng block is "corrupt_block" (fatal)
when its length is under 12, not a multiple of 4, over 16 MiB, or disagrees with its trailing
copy, when its contents overrun it, or when a packet names an undeclared interface. In pcapng the
block length frames each packet, so a captured length over the original length is accepted there.

A file that ends inside a record is a capture cut short ("truncated", a warning), unless records
follow inside the bytes the record claims: then its length is damaged and the file holds more
than it yields ("corrupt_record" / "corrupt_block", an error). That is looked for once, at the end:
in classic pcap a run of plausible record headers reaching the end of the file (or two complete
records), in pcapng a trailing length copy that ends the block early or a run of complete blocks.
A pcapng block of a type outside the specification's registry (or a name resolution block without
records) laid out as an Enhanced Packet Block of a declared interface, at a time near the last
packet's, is a packet block whose type is damaged ("corrupt_block").
Packets of a pcapng interface whose link type is not supported are skipped and counted
(``skipped_unsupported``, ``Interface.skipped``); the first is an "unknown_linktype" error.
"""

from __future__ import annotations

import bz2
import itertools
import lzma
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from struct import Struct
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from librt.strings import read_i16_be, read_i32_be, read_i32_le

from .errors import InputProblem

if TYPE_CHECKING:  # native 64-bit integers for the compiled build; plain int to Python
    from mypy_extensions import i64

__all__ = [
    "CaptureReader",
    "Interface",
    "Record",
    "RecordBlock",
    "pcap_record_header",
    "epb_header",
    "be16",
    "be32",
    "le32",
    "CHUNK_SIZE",
    "MAX_CAPLEN",
    "MAX_BLOCK_LEN",
]

Record = tuple[float, int, bytes]
"""What iteration yields: (timestamp in epoch seconds, link type, captured frame bytes)."""

CHUNK_SIZE: Final = 256 << 10
"""Bytes read from the file (and produced by a decompressor) per step: small enough that the chunk the
kernel has just copied is still in the CPU cache when its records are walked and decoded, beside the live
connections (on the benchmark's kernel-made capture 1 MiB chunks cost 1-3% more CPU, 4 MiB ones 13-20%)."""
MAX_CAPLEN: Final = 262144
"""Largest plausible captured length of a classic pcap record (tcpdump's MAXIMUM_SNAPLEN)."""
MAX_BLOCK_LEN: Final = 16 << 20
"""Largest pcapng block accepted; anything larger is taken as corruption."""

_PEEK_CHUNK_SIZE: Final = 64 << 10

# Classic pcap magic numbers as they appear on disk: (format, byte order, record header size).
_PCAP_MAGICS: dict[bytes, tuple[str, str, int]] = {
    b"\xd4\xc3\xb2\xa1": ("pcap", "<", 16),
    b"\xa1\xb2\xc3\xd4": ("pcap", ">", 16),
    b"\x4d\x3c\xb2\xa1": ("pcap-nsec", "<", 16),
    b"\xa1\xb2\x3c\x4d": ("pcap-nsec", ">", 16),
    b"\x34\xcd\xb2\xa1": ("pcap-modified", "<", 24),
    b"\xa1\xb2\xcd\x34": ("pcap-modified", ">", 24),
}
_PCAPNG_MAGIC: Final = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}

_COMPRESSION_MAGICS: dict[str, bytes] = {
    "gzip": b"\x1f\x8b",
    "bzip2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
}
_UNSUPPORTED_MAGICS: dict[bytes, str] = {
    b"\x28\xb5\x2f\xfd": "zstd-compressed data (decompress it first)",
    b"PK\x03\x04": "a zip archive (extract it first)",
    b"\x04\x22\x4d\x18": "lz4-compressed data (decompress it first)",
}

# pcapng block types
_SHB: Final = 0x0A0D0D0A
_IDB: Final = 1
_PB: Final = 2
_SPB: Final = 3
_EPB: Final = 6

_NRB: Final = 4
# the block types skipped as they are, by the registry of the pcapng specification: name resolution,
# interface statistics, systemd journal export, decryption secrets, custom (copiable or not).
# A block of any other type laid out as an Enhanced Packet Block is taken for one whose type is damaged.
_SKIPPED_BLOCK_TYPES: Final = frozenset((_NRB, 5, 9, 0x0A, 0x0BAD, 0x40000BAD))
_PLAUSIBLE_FIRST_TIME: Final = (631152000.0, 4102444800.0)  # 1990-01-01 .. 2100-01-01, epoch seconds

_LINKTYPE_MASK: Final = 0xFFFF
_FCS_PRESENT: Final = 0x04000000

_DECOMPRESS_ERRORS = (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError)


@dataclass(slots=True)
class Interface:
    """One pcapng interface (from an Interface Description Block)."""

    section: int  # 0-based index of the section (SHB) that declared it
    index: int  # interface id within its section
    linktype: int
    snaplen: int
    units_per_second: int  # from if_tsresol; 10**6 by default
    tsoffset: int  # seconds added to every timestamp (if_tsoffset)
    supported: bool
    offset: int  # byte offset of the IDB in the (decompressed) stream
    skipped: int = 0  # its packets skipped (an interface of an unsupported link type)


class RecordBlock:
    """A run of complete records, already checked, lying back to back inside one read buffer.

    What `CaptureReader.blocks()` yields: `count` records in ``buf[start:end]``, all of one link
    type. Classic pcap (``pcapng`` False): each is a `hdrlen`-byte record header (read it with
    `pcap_record_header`) and its frame; the time is (seconds * units_per_second + fraction) /
    units_per_second. pcapng (``pcapng`` True): each is an Enhanced Packet Block of one interface
    (read it with `epb_header`); the time is (64-bit stamp + offset_units) / units_per_second.
    Every check a record gets in `CaptureReader.__iter__` has been made, and the reader's
    ``offset`` and ``packets`` already count the run. The fast lane walks these without making a
    Python object per record.
    """

    buf: bytes
    start: int
    end: int
    count: int
    little_endian: bool
    linktype: int
    units_per_second: int  # classic pcap: 10**6 or 10**9; pcapng: the interface's if_tsresol
    pcapng: bool
    hdrlen: int  # classic pcap: the record header's size (16, or 24 for "modified" pcap)
    offset_units: int  # pcapng: the interface's if_tsoffset, in units

    def __init__(
        self,
        buf: bytes,
        start: int,
        end: int,
        count: int,
        little_endian: bool,
        linktype: int,
        units_per_second: int,
        pcapng: bool = False,
        hdrlen: int = 16,
        offset_units: int = 0,
    ) -> None:
        self.buf = buf
        self.start = start
        self.end = end
        self.count = count
        self.little_endian = little_endian
        self.linktype = linktype
        self.units_per_second = units_per_second
        self.pcapng = pcapng
        self.hdrlen = hdrlen
        self.offset_units = offset_units

    def __repr__(self) -> str:
        kind = "enhanced packet blocks" if self.pcapng else "records"
        return f"RecordBlock({self.count} {kind}, bytes {self.start}..{self.end} of its buffer)"


def _u32(buf: bytes, pos: i64, little_endian: bool) -> int:
    """The 32-bit unsigned integer at buf[pos:pos + 4], read in place (an int, not an i64: epb_header
    shifts one by 32 bits, which a 64-bit signed integer cannot hold)."""
    return le32(buf, pos) if little_endian else be32(buf, pos)


def le32(buf: bytes, at: i64) -> i64:
    """The little-endian 32-bit unsigned number at buf[at:] (librt's reader: compiled, one bounds check
    and one load, where reading the four bytes one by one checks and converts each)."""
    return int(read_i32_le(buf, at)) & 0xFFFFFFFF


def be32(buf: bytes, at: i64) -> i64:
    """The big-endian 32-bit unsigned number at buf[at:]."""
    return int(read_i32_be(buf, at)) & 0xFFFFFFFF


def be16(buf: bytes, at: i64) -> i64:
    """The big-endian 16-bit unsigned number at buf[at:]."""
    return int(read_i16_be(buf, at)) & 0xFFFF


def epb_header(buf: bytes, pos: int, little_endian: bool) -> tuple[int, int, int, int]:
    """(block length, interface id, 64-bit timestamp, captured length) of the Enhanced Packet Block at pos."""
    return (
        _u32(buf, pos + 4, little_endian),
        _u32(buf, pos + 8, little_endian),
        _u32(buf, pos + 12, little_endian) << 32 | _u32(buf, pos + 16, little_endian),
        _u32(buf, pos + 20, little_endian),
    )


def _walk_epbs(buf: bytes, pos: int, buflen: int, little_endian: bool, ifid: int) -> tuple[int, int, int]:
    """From pos, the run of complete, valid Enhanced Packet Blocks of interface `ifid` in buf:
    (its end, how many, where the last one starts). It stops at any other block, or one that is
    incomplete or fails a check, which the caller then handles as the block-by-block path does."""
    count = 0
    last = pos
    while pos + 32 <= buflen and _u32(buf, pos, little_endian) == _EPB:
        blen, block_ifid, _stamp, caplen = epb_header(buf, pos, little_endian)
        end = pos + blen
        if (
            block_ifid != ifid
            or blen < 32
            or blen & 3
            or blen > MAX_BLOCK_LEN
            or end > buflen
            or caplen > blen - 32
            or _u32(buf, end - 4, little_endian) != blen
        ):
            break
        count += 1
        last = pos
        pos = end
    return pos, count, last


def pcap_record_header(buf: bytes, pos: i64, little_endian: bool) -> tuple[i64, i64, i64, i64]:
    """(seconds, sub-second fraction, captured length, original length) of the record header at pos.

    Byte by byte rather than with struct: compiled, this costs a few nanoseconds and makes no objects.
    """
    if little_endian:
        return le32(buf, pos), le32(buf, pos + 4), le32(buf, pos + 8), le32(buf, pos + 12)
    return be32(buf, pos), be32(buf, pos + 4), be32(buf, pos + 8), be32(buf, pos + 12)


def _walk_pcap_records(
    buf: bytes, pos: int, buflen: int, hdrlen: int, little_endian: bool, maxcap: int, fracmax: int
) -> tuple[int, int, int]:
    """From pos, the end of the run of complete, valid records in buf, how many there are, and where
    the last one starts.

    The walk stops at the first record that is incomplete or fails a check; the caller then reads
    more or reports that record exactly as the record-by-record path does.
    """
    count = 0
    last = pos
    while pos + hdrlen <= buflen:
        _sec, frac, caplen, wirelen = pcap_record_header(buf, pos, little_endian)
        if caplen > maxcap or frac >= fracmax or caplen > wirelen:
            break
        end = pos + hdrlen + caplen
        if end > buflen:
            break
        count += 1
        last = pos
        pos = end
    return pos, count, last


def _record_fault(frac: int, caplen: int, wirelen: int, maxcap: int, fracmax: int) -> str:
    """What is wrong with a classic pcap record header that fails the checks."""
    if caplen > MAX_CAPLEN:
        return f"captured length {caplen} is over {MAX_CAPLEN}"
    if caplen > maxcap:
        return f"captured length {caplen} is over the snap length {maxcap}"
    if caplen > wirelen:
        return f"captured length {caplen} is over the original length {wirelen}"
    unit = "nanoseconds" if fracmax > 1_000_000 else "microseconds"
    return f"sub-second field {frac} is out of range for {unit}"


MAX_WIRELEN: Final = 1 << 20
"""Largest original length taken as plausible in the record header after a damaged one."""


NEARBY_SECONDS: Final = 86400
"""Records taken for a run of real ones (after a damaged length) lie within this many seconds of each other."""


def _plausible_record_header(buf: bytes, pos: int, little_endian: bool, near: int, near_too: int) -> bool:
    """The classic pcap record header at pos could be real: a captured length from 1 to `MAX_CAPLEN`,
    an original length from it to `MAX_WIRELEN`, and a time within `NEARBY_SECONDS` of the second
    ``near`` or ``near_too`` (negative: none). Random bytes pass with a chance of about one in 2**40,
    zeros never. (Its sub-second field is not asked for: damage there leaves the framing intact,
    and that record is read on past in its turn.)"""
    sec, _, caplen, wirelen = pcap_record_header(buf, pos, little_endian)
    return (
        1 <= caplen <= MAX_CAPLEN
        and caplen <= wirelen <= MAX_WIRELEN
        and (
            (near >= 0 and -NEARBY_SECONDS <= sec - near <= NEARBY_SECONDS)
            or (near_too >= 0 and -NEARBY_SECONDS <= sec - near_too <= NEARBY_SECONDS)
        )
    )


def _pcap_records_follow(buf: bytes, pos: int, hdrlen: int, little_endian: bool, maxcap: int, fracmax: int) -> int:
    """Where records start inside the record at pos, which runs past the end of the input: -1 when none do.

    Called once, when the input ends inside that record. A capture cut short ends there; in one
    whose captured length field is damaged (too large, yet within the limits) records follow,
    hidden by the damaged length. A run of records is recognised by plausible headers (sub-second
    field in range, captured length from 1 to the snap length and at most the original length,
    times within a day of the run's first) that follow each other to the end of the input
    exactly, or by two complete ones.
    """
    buflen = len(buf)
    for start in range(pos + hdrlen, buflen - hdrlen + 1):
        at = start
        complete = 0
        first_sec = -1
        while at + hdrlen <= buflen:
            sec, frac, caplen, wirelen = pcap_record_header(buf, at, little_endian)
            if first_sec < 0:
                first_sec = sec
            if (
                frac >= fracmax
                or caplen < 1
                or caplen > maxcap
                or caplen > wirelen
                or not -NEARBY_SECONDS <= sec - first_sec <= NEARBY_SECONDS
            ):
                break
            at += hdrlen + caplen
            if at > buflen:
                break
            complete += 1
            if at == buflen or complete == 2:
                return start
    return -1


def _pcapng_block_length(buf: bytes, at: int, little_endian: bool) -> int:
    """The length of the complete, well-framed pcapng block at buf[at:] (valid length, trailing copy
    agreeing), or -1."""
    if at + 12 > len(buf):
        return -1
    length = _u32(buf, at + 4, little_endian)
    if length < 12 or length & 3 or length > MAX_BLOCK_LEN or at + length > len(buf):
        return -1
    return length if _u32(buf, at + length - 4, little_endian) == length else -1


def _pcapng_blocks_follow(buf: bytes, pos: int, little_endian: bool) -> int:
    """Where the pcapng block at pos, whose length runs past the end of the input, really ends or
    blocks start inside it: -1 when nothing says so (the input was cut short inside it).

    Called once, when the input ends inside that block. Every block ends with a copy of its
    length: a word equal to its distance from pos + 4 marks the real end of a block whose leading
    length is damaged, when the input ends right there or a complete block follows. Failing that,
    a run of complete blocks (each length agreeing with its copy) that reaches the end of the
    input exactly, or two of them, shows blocks hidden by a damaged length.
    """
    buflen = len(buf)
    for length in range(12, buflen - pos + 1, 4):
        end = pos + length
        if _u32(buf, end - 4, little_endian) == length and (
            end == buflen or _pcapng_block_length(buf, end, little_endian) > 0
        ):
            return end
    for start in range(pos + 12, buflen - 11, 4):
        at = start
        complete = 0
        while True:
            length = _pcapng_block_length(buf, at, little_endian)
            if length < 0:
                break
            at += length
            complete += 1
            if at == buflen or complete == 2:
                return start
    return -1


class _Stop(Exception):
    """Ends parsing: carries the problem to record."""

    def __init__(self, kind: str, offset: int | None, message: str, fatal: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.offset = offset
        self.message = message
        self.fatal = fatal


class _GzipDecompressor:
    """zlib's gzip decoder behind the bz2/lzma decompressor interface (max_length, needs_input)."""

    __slots__ = ("_zlib", "_tail")

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(wbits=31)
        self._tail = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._zlib.decompress(self._tail + data if self._tail else data, max_length)
        self._tail = self._zlib.unconsumed_tail
        return out

    @property
    def needs_input(self) -> bool:
        return not self._tail

    @property
    def eof(self) -> bool:
        return self._zlib.eof

    @property
    def unused_data(self) -> bytes:
        return self._zlib.unused_data


_DECOMPRESSORS: dict[str, Callable[[], object]] = {
    "gzip": _GzipDecompressor,
    "bzip2": bz2.BZ2Decompressor,
    "xz": lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ),
}


def _compression_of(head: bytes) -> str | None:
    for kind, magic in _COMPRESSION_MAGICS.items():
        if head.startswith(magic):
            return kind
    return None


class CaptureReader:
    """Streams (timestamp, linktype, frame) records from one pcap or pcapng capture.

    Never raises for bad input: problems land in ``problems`` and iteration ends after a
    fatal one, having yielded every complete good record before it.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        supported_linktypes: Iterable[int] | None = None,
        *,
        name: str | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.supported_linktypes: frozenset[int] | None = (
            None if supported_linktypes is None else frozenset(supported_linktypes)
        )
        self.problems: list[InputProblem] = []
        self.offset = 0
        self.packets = 0
        self.size: int | None = None
        self.bytes_read = 0
        self.skipped_unsupported = 0
        self._damaged_records = 0  # classic pcap records read on past (see `_damaged_record`)
        self._damaged_at = 0
        self._damaged_first: tuple[int, str] = (0, "")
        self.format: str | None = None
        self.compression: str | None = None
        self.linktype: int | None = None
        self.snaplen: int | None = None
        self.fcs_len: int | None = None
        self.interfaces: list[Interface] = []

        self._chunk_size = max(int(chunk_size), 4096)
        self._path: str | None = None
        self._file: BinaryIO | None = None
        self._owns_file = False
        self._read: Callable[[int], object] | None = None  # (a text stream returns str: checked below)
        self._records: Iterator[Record] | None = None
        self._generator: Iterator[Record] | None = None  # the parsing generator behind _records
        self._chunks: Iterator[bytes] = iter(())
        self._stash = b""  # a chunk `_more` has taken only the beginning of, and where the rest starts
        self._stash_at = 0
        self._started = False
        self._closed = False
        self._first_ts: float | None = None
        self._first_ts_known = False
        self._input_failed = False  # a problem was recorded by the input layer (I/O or decompression)
        self._cut_short = False  # the compressed stream ended before its end marker
        self._produced = 0  # decompressed bytes handed to the parser so far

        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            if path == "-":
                self.name = name or "<stdin>"
                stdin = getattr(sys.stdin, "buffer", None)
                if stdin is None:
                    self._problem("unreadable", None, "there is no binary standard input to read")
                    self._input_failed = True
                else:
                    self._attach(stdin, owns=False)
                    self.size = None  # the contract: no size for stdin, even when redirected from a file
            else:
                self.name = name or path
                self._path = path
                try:
                    st = os.stat(path)
                except OSError as exc:
                    self._fail_unreadable(exc, None)
                else:
                    self.size = st.st_size if stat.S_ISREG(st.st_mode) else None
        else:
            self.name = name or str(getattr(source, "name", None) or "<stream>")
            self._attach(source, owns=False)

    # ----------------------------------------------------------------- public API

    def __iter__(self) -> Iterator[Record]:
        if self._records is None:
            self._records = self._generator = self._generate(False)
        return self._records

    def blocks(self) -> Iterator[Any]:
        """The same stream for the fast lane, as `RecordBlock` runs where it can.

        Items are `RecordBlock`s (classic pcap records; pcapng Enhanced Packet Blocks of one
        interface) or ``(timestamp, linktype, frame)`` records (other pcapng packet blocks, or a
        stream whose first record was already peeked); problems, offsets and packet counts are kept
        exactly as by plain iteration.
        """
        if self._records is None:
            self._records = self._generator = self._generate(True)
        return self._records

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and close the file if this reader opened it (never stdin or a caller's object)."""
        self._closed = True
        self._records = iter(())
        generator, self._generator = self._generator, None
        if generator is not None:
            generator.close()  # type: ignore[attr-defined]
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None and self._owns_file:
            try:
                self._file.close()
            except OSError:
                pass
        self._file = None
        self._read = None

    def first_timestamp(self) -> float | None:
        """The first record's timestamp, or None when there is no record.

        For a path this reads the start of the file through a separate, short-lived reader and
        records no problems here (iteration will). For stdin or a file object it reads the first
        record now and hands it back at the start of the iteration. For a stream whose iteration
        already started without a peek it returns None.
        """
        if self._first_ts_known:
            return self._first_ts
        if self._path is not None:
            if self._input_failed:
                return None
            with CaptureReader(
                self._path, self.supported_linktypes, name=self.name, chunk_size=_PEEK_CHUNK_SIZE
            ) as peek:
                first = next(iter(peek), None)
            self._first_ts = None if first is None else first[0]
        elif self._started or self._closed:
            return None
        else:
            records = self._generator = self._generate(False)
            before = (self.offset, self.packets)
            first = next(records, None)
            if first is None:
                self._records = records
                self._first_ts = None
            else:
                after = (self.offset, self.packets)
                self.offset, self.packets = before
                self._records = itertools.chain(self._replay(first, after), records)
                self._first_ts = first[0]
        self._first_ts_known = True
        return self._first_ts

    def __repr__(self) -> str:
        return f"CaptureReader({self.name!r}, format={self.format!r}, packets={self.packets})"

    # ----------------------------------------------------------------- input layer

    def _attach(self, file: BinaryIO, owns: bool) -> None:
        self._file = file
        self._owns_file = owns
        read1 = getattr(file, "read1", None)
        self._read = read1 if read1 is not None else file.read
        if self.size is None:
            self.size = self._size_of(file)

    @staticmethod
    def _size_of(file: BinaryIO) -> int | None:
        try:
            st = os.fstat(file.fileno())
        except (OSError, AttributeError, ValueError):
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def _fail_unreadable(self, exc: OSError, offset: int | None) -> None:
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = "cannot open" if offset is None else "read error"
        self._problem("unreadable", offset, f"{where}: {reason}")
        self._input_failed = True

    def _problem(self, kind: str, offset: int | None, message: str, fatal: bool = True) -> None:
        self.problems.append(InputProblem(self.name, offset, kind, message, fatal))

    def _read_raw(self) -> bytes:
        """Next chunk of the underlying file; b"" at its end or after an I/O error (recorded)."""
        read = self._read
        if read is None:
            return b""
        try:
            data = read(self._chunk_size)
        except OSError as exc:
            self._fail_unreadable(exc, self._produced)
            return b""
        except ValueError:  # read on a closed file
            return b""
        if not data:
            return b""
        if not isinstance(data, bytes):
            if isinstance(data, str):
                self._problem("unreadable", self._produced, "the source is a text stream, not a binary one")
                self._input_failed = True
                return b""
            data = bytes(data)  # type: ignore[call-overload]
        self.bytes_read += len(data)
        return data

    def _open_path(self) -> bool:
        if self._path is None:
            return self._file is not None
        if self._input_failed:
            return False
        try:
            file = open(self._path, "rb", buffering=0)
        except OSError as exc:
            self._fail_unreadable(exc, None)
            return False
        self._attach(file, owns=True)
        return True

    def _decompressed_chunks(self) -> Iterator[bytes]:
        """The decompressed byte stream in chunks (never empty ones), compression detected by content."""
        head = self._read_raw()
        while head and len(head) < 6:
            more = self._read_raw()
            if not more:
                break
            head += more
        if not head:
            return
        kind = _compression_of(head)
        if kind is None:
            self._produced += len(head)
            yield head
            read = self._read_raw
            while chunk := read():
                self._produced += len(chunk)
                yield chunk
            return
        self.compression = kind
        yield from self._decompress(kind, head)

    def _decompress(self, kind: str, data: bytes) -> Iterator[bytes]:
        new = _DECOMPRESSORS[kind]
        magic = _COMPRESSION_MAGICS[kind]
        chunk_size = self._chunk_size
        decompressor = new()
        while True:
            try:
                out = decompressor.decompress(data, chunk_size)  # type: ignore[attr-defined]
            except _DECOMPRESS_ERRORS as exc:
                detail = str(exc) or type(exc).__name__
                self._problem(
                    "decompress",
                    self._produced,
                    f"damaged {kind} data after {self._produced} decompressed bytes: {detail}",
                )
                self._input_failed = True
                return
            if out:
                self._produced += len(out)
                yield out
            if decompressor.eof:  # type: ignore[attr-defined]
                # End of one stream: another may follow (concatenated files); zero padding is ignored.
                rest = decompressor.unused_data  # type: ignore[attr-defined]
                while True:
                    rest = rest.lstrip(b"\0")
                    if rest:
                        break
                    rest = self._read_raw()
                    if not rest:
                        return
                if len(rest) < len(magic):
                    rest += self._read_raw()
                if not rest.startswith(magic):
                    self._problem(
                        "decompress",
                        self._produced,
                        f"unexpected data after the end of the {kind} stream ({self._produced} decompressed bytes)",
                    )
                    self._input_failed = True
                    return
                decompressor = new()
                data = rest
            elif decompressor.needs_input:  # type: ignore[attr-defined]
                data = self._read_raw()
                if not data:
                    if not self._input_failed:
                        self._cut_short = True
                    return
            else:
                data = b""

    # ----------------------------------------------------------------- parsing

    def _replay(self, first: Record, state_after: tuple[int, int]) -> Iterator[Record]:
        self.offset, self.packets = state_after
        yield first

    def _more(self, buf: bytes, pos: int, need: int) -> tuple[bytes, int]:
        """buf[pos:] followed by further input, as (buffer, start): from `start` on the buffer holds
        buf[pos:] and at least ``need`` bytes in all, or everything left when the input ends first.

        The input's bytes are copied once, by the read, not a second time here: when buf[pos:] is
        empty and the next chunk holds ``need`` bytes, that chunk itself comes back; when a record
        straddles two chunks, only the bytes it lacks are joined to it, and the rest of that chunk
        waits (`_stash`) for the next call, which returns it where it starts.
        """
        if pos >= len(buf):
            chunk, start = self._next_chunk()
            if len(chunk) - start >= need or not chunk:
                return chunk, start
            parts = [chunk[start:]]
        else:
            parts = [buf[pos:]]
        have = len(parts[0])
        while have < need:
            chunk, start = self._next_chunk()
            if not chunk:
                break
            lacking = need - have
            if len(chunk) - start > lacking:
                parts.append(chunk[start : start + lacking])
                self._stash, self._stash_at = chunk, start + lacking
                have = need
            else:
                parts.append(chunk[start:] if start else chunk)
                have += len(chunk) - start
        return (b"".join(parts) if len(parts) > 1 else parts[0]), 0

    def _next_chunk(self) -> tuple[bytes, int]:
        """The rest of the stashed chunk, or the next one (b"" at the end of the input), and where it starts."""
        stash = self._stash
        if stash:
            self._stash = b""
            return stash, self._stash_at
        return next(self._chunks, b""), 0

    def _in_stream(self) -> str:
        return f" (offset in the decompressed {self.compression} data)" if self.compression else ""

    def _truncated(self, offset: int, what: str) -> _Stop:
        """The input ended inside ``what``; said differently when a compressed stream was cut short."""
        if self._cut_short:
            message = f"{self.compression} stream ends early, inside {what}{self._in_stream()}"
        else:
            message = f"file ends inside {what}{self._in_stream()}"
        return _Stop("truncated", offset, message, fatal=False)

    def _end_of_input(self, offset: int, leftover: int, what: str) -> None:
        """Called when the input is exhausted at ``offset`` with ``leftover`` unparsed bytes."""
        if self._input_failed:
            return  # the I/O or decompression problem is already recorded
        if leftover:
            raise self._truncated(offset, what)
        if self._cut_short:
            raise _Stop(
                "truncated",
                offset,
                f"{self.compression} stream ends early (after {offset} decompressed bytes){self._in_stream()}",
                fatal=False,
            )

    def _generate(self, blocks: bool) -> Iterator[Any]:
        self._started = True
        if self._closed or not self._open_path():
            return
        self._chunks = self._decompressed_chunks()
        try:
            buf, _ = self._more(b"", 0, 24)  # (at the start of the input: from buf[0])
            if len(buf) < 4:
                self._check_start(buf)
                return
            magic = buf[:4]
            if magic in _PCAP_MAGICS:
                fmt, order, hdrlen = _PCAP_MAGICS[magic]
                yield from self._read_pcap(buf, fmt, order, hdrlen, blocks)
            elif magic == _PCAPNG_MAGIC:
                yield from self._read_pcapng(buf, blocks)
            else:
                hint = _UNSUPPORTED_MAGICS.get(magic, f"unknown magic number {magic.hex()}")
                raise _Stop(
                    "not_a_capture",
                    0,
                    f"not a pcap or pcapng capture: {hint}"
                    + (f" (after {self.compression} decompression)" if self.compression else ""),
                )
        except _Stop as stop:
            self._problem(stop.kind, stop.offset, stop.message, stop.fatal)
        except Exception as exc:  # safety net: bad input must never surface as a traceback
            self._problem(
                "corrupt_block" if self.format == "pcapng" else "corrupt_record",
                self.offset,
                f"unreadable record ({type(exc).__name__}: {exc}){self._in_stream()}",
            )
        finally:
            self._chunks = iter(())
            self._stash = b""
            if self._owns_file:
                self._close_file()

    def _check_start(self, buf: bytes) -> None:
        """The input holds fewer than 4 bytes: empty, cut short, or not a capture."""
        if self._input_failed:
            return
        if not buf:
            if self._cut_short:
                raise self._truncated(0, "the capture header")
            if self.compression:
                raise _Stop("empty", 0, f"the {self.compression} data decompresses to nothing")
            raise _Stop("empty", 0, "file is empty")
        magics = [*_PCAP_MAGICS, _PCAPNG_MAGIC]
        if any(m.startswith(buf) for m in magics):
            raise self._truncated(0, "the capture header")
        raise _Stop("not_a_capture", 0, f"not a pcap or pcapng capture: only {len(buf)} bytes")

    def _read_pcap(self, buf: bytes, fmt: str, order: str, hdrlen: int, blocks: bool) -> Iterator[Any]:
        """Classic pcap: a 24-byte global header, then fixed-size record headers and frames.

        Yields records, or with `blocks` a `RecordBlock` for each run of complete records in the
        buffer; a record that is incomplete or fails a check is handled below the same way in both.
        """
        self.format = fmt
        if len(buf) < 24:
            if self._input_failed:
                return
            raise self._truncated(0, "the 24-byte pcap file header")
        snaplen, network = Struct(order + "II").unpack_from(buf, 16)
        linktype = network & _LINKTYPE_MASK
        self.linktype = linktype
        self.snaplen = snaplen
        self.fcs_len = ((network >> 28) & 0xF) * 2 if network & _FCS_PRESENT else None
        supported = self.supported_linktypes
        if supported is not None and linktype not in supported:
            raise _Stop("unknown_linktype", 20, f"link type {linktype} is not supported")
        maxcap = min(snaplen, MAX_CAPLEN) if snaplen > 0 else MAX_CAPLEN
        fracmax = 1_000_000_000 if fmt == "pcap-nsec" else 1_000_000
        unpack = Struct(order + "IIII").unpack_from  # sec, usec/nsec, caplen, wirelen (+8 bytes if modified)
        more = self._more
        pos = 24
        base = 0  # offset of buf[0] in the decompressed stream
        buflen = len(buf)
        self.offset = 24
        little_endian = order == "<"
        last_sec = -1  # the time (seconds) of the last record read whole and sound
        while True:
            if blocks:
                run_end, count, last = _walk_pcap_records(buf, pos, buflen, hdrlen, little_endian, maxcap, fracmax)
                if count:
                    last_sec = pcap_record_header(buf, last, little_endian)[0]
                    self.offset = base + run_end
                    self.packets += count
                    yield RecordBlock(buf, pos, run_end, count, little_endian, linktype, fracmax, False, hdrlen)
                    pos = run_end
            hdr_end = pos + hdrlen
            if hdr_end > buflen:
                buf, start = more(buf, pos, hdrlen)
                base += pos - start
                pos = start
                buflen = len(buf)
                if buflen - pos < hdrlen:
                    self._end_of_input(base + pos, buflen - pos, f"a {hdrlen}-byte record header")
                    return
                continue
            sec, frac, caplen, wirelen = unpack(buf, pos)
            if caplen > maxcap or frac >= fracmax or caplen > wirelen:
                if caplen > MAX_CAPLEN:  # a length no capture tool writes: the framing is lost
                    raise self._corrupt_record(base + pos, sec, frac, caplen, wirelen, maxcap, fracmax)
                # a damaged field that may leave the framing intact: read on when the record ends
                # where the input does or where a plausible record header starts
                need = 2 * hdrlen + caplen
                if buflen - pos < need:
                    buf, start = more(buf, pos, need)
                    base += pos - start
                    pos = start
                    buflen = len(buf)
                end = pos + hdrlen + caplen
                if not (
                    (end == buflen and not self._input_failed)
                    or (end + hdrlen <= buflen and _plausible_record_header(buf, end, little_endian, last_sec, sec))
                ):
                    raise self._corrupt_record(base + pos, sec, frac, caplen, wirelen, maxcap, fracmax)
                self._damaged_record(base + pos, _record_fault(frac, caplen, wirelen, maxcap, fracmax))
                self.offset = base + end
                self.packets += 1
                yield ((sec * fracmax + frac) / fracmax, linktype, buf[pos + hdrlen : end])
                pos = end
                continue
            end = hdr_end + caplen
            if end > buflen:
                buf, start = more(buf, pos, hdrlen + caplen)
                base += pos - start
                pos = start
                buflen = len(buf)
                if buflen - pos < hdrlen + caplen:
                    present = max(buflen - pos - hdrlen, 0)
                    if not self._input_failed:
                        follow = _pcap_records_follow(buf, pos, hdrlen, little_endian, maxcap, fracmax)
                        if follow >= 0:
                            raise _Stop(
                                "corrupt_record",
                                base + pos,
                                f"corrupt record header: captured length {caplen} runs past the end "
                                f"of the input, but records follow from byte {base + follow}"
                                f"{self._in_stream()}",
                            )
                    self._end_of_input(
                        base + pos, buflen - pos, f"a record ({caplen} captured bytes, {present} present)"
                    )
                    return
                continue
            self.offset = base + end
            self.packets += 1
            last_sec = sec
            yield ((sec * fracmax + frac) / fracmax, linktype, buf[hdr_end:end])
            pos = end

    def _corrupt_record(
        self, offset: int, sec: int, frac: int, caplen: int, wirelen: int, maxcap: int, fracmax: int
    ) -> _Stop:
        reason = _record_fault(frac, caplen, wirelen, maxcap, fracmax)
        return _Stop("corrupt_record", offset, f"corrupt record header: {reason}{self._in_stream()}")

    def _damaged_record(self, offset: int, reason: str) -> None:
        """A record with a damaged header field whose framing is intact, kept: one warning per file,
        at the first such record, with the count of them all (bounded memory for any number)."""
        self._damaged_records += 1
        count = self._damaged_records
        if count == 1:
            self._damaged_at = len(self.problems)
            self._damaged_first = (offset, reason)
        else:
            offset, reason = self._damaged_first
        also = f" ({count} damaged records in all, this the first)" if count > 1 else ""
        problem = InputProblem(
            self.name,
            offset,
            "damaged_record",
            f"damaged record header: {reason}; its length and the next record header are plausible: "
            f"read on{also}{self._in_stream()}",
            False,
        )
        if count == 1:
            self.problems.append(problem)
        else:
            self.problems[self._damaged_at] = problem

    def _corrupt_block(self, offset: int, reason: str) -> _Stop:
        return _Stop("corrupt_block", offset, f"corrupt pcapng block: {reason}{self._in_stream()}")

    def _bad_packet_block(self, offset: int, blen: int, caplen: int, ifid: int) -> _Stop:
        if caplen > blen - 32:
            return self._corrupt_block(offset, f"captured length {caplen} overruns its {blen}-byte block")
        return self._corrupt_block(offset, f"packet refers to undeclared interface {ifid}")

    def _read_pcapng(self, buf: bytes, blocks: bool) -> Iterator[Any]:
        """pcapng: a sequence of blocks, each sections' byte order set by its Section Header Block.

        Yields records, or with `blocks` a `RecordBlock` for each run of Enhanced Packet Blocks of
        one supported interface; every other block (and one that is incomplete or fails a check) is
        handled below the same way in both.
        """
        self.format = "pcapng"
        more = self._more
        pos = 0
        base = 0
        buflen = len(buf)
        section = -1
        # Per-section fast lookup: interface id -> (linktype, units_per_second, tsoffset in units),
        # or None when the link type is unsupported.
        fast: list[tuple[int, int, int] | None] = []
        current: list[Interface] = []
        last_ts = 0.0
        order = "<"
        head = Struct("<II").unpack_from
        word = Struct("<I").unpack_from
        epb = Struct("<IIIII").unpack_from
        shb_type, epb_type, max_block_len = _SHB, _EPB, MAX_BLOCK_LEN
        while True:
            if blocks and pos + 32 <= buflen:
                little_endian = order == "<"
                ifid = _u32(buf, pos + 8, little_endian)
                if _u32(buf, pos, little_endian) == epb_type and ifid < len(fast):
                    iface = fast[ifid]
                    if iface is not None:
                        run_end, count, last = _walk_epbs(buf, pos, buflen, little_endian, ifid)
                        if count:
                            linktype, units, offset_units = iface
                            self.offset = base + run_end
                            self.packets += count
                            yield RecordBlock(
                                buf, pos, run_end, count, little_endian, linktype, units, True, 0, offset_units
                            )
                            _, hi, lo, _, _ = epb(buf, last + 8)
                            last_ts = ((hi << 32 | lo) + offset_units) / units
                            pos = run_end
                            continue
            if pos + 12 > buflen:
                buf, start = more(buf, pos, 12)
                base += pos - start
                pos = start
                buflen = len(buf)
                if buflen - pos < 12:
                    self._end_of_input(base + pos, buflen - pos, "a block header")
                    return
                continue
            btype, blen = head(buf, pos)
            if btype == shb_type:  # a new section may switch the byte order
                bom = buf[pos + 8 : pos + 12]
                if bom not in _PCAPNG_BOM:
                    raise self._corrupt_block(base + pos, f"bad byte-order magic {bom.hex()} in section header")
                order = _PCAPNG_BOM[bom]
                head = Struct(order + "II").unpack_from
                word = Struct(order + "I").unpack_from
                epb = Struct(order + "IIIII").unpack_from
                blen = head(buf, pos)[1]
            if blen < 12 or blen & 3 or blen > max_block_len:
                raise self._corrupt_block(base + pos, f"block length {blen} is invalid")
            end = pos + blen
            if end > buflen:
                buf, start = more(buf, pos, blen)
                base += pos - start
                pos = start
                buflen = len(buf)
                if buflen - pos < blen:
                    follow = -1 if self._input_failed else _pcapng_blocks_follow(buf, pos, order == "<")
                    if follow >= 0:
                        raise self._corrupt_block(
                            base + pos,
                            f"block length {blen} runs past the end of the input, but the blocks' "
                            f"lengths place a block boundary at byte {base + follow}",
                        )
                    self._end_of_input(base + pos, buflen - pos, f"a block of {blen} bytes ({buflen - pos} present)")
                    return
                continue
            if word(buf, end - 4)[0] != blen:
                raise self._corrupt_block(
                    base + pos, f"trailing length {word(buf, end - 4)[0]} differs from leading length {blen}"
                )
            if btype == epb_type:  # the hot path: Enhanced Packet Block
                if blen < 32:
                    raise self._corrupt_block(base + pos, f"enhanced packet block of {blen} bytes is too short")
                ifid, hi, lo, caplen, _wirelen = epb(buf, pos + 8)
                if caplen > blen - 32 or ifid >= len(fast):
                    raise self._bad_packet_block(base + pos, blen, caplen, ifid)
                iface = fast[ifid]
                if iface is not None:
                    linktype, units, offset_units = iface
                    last_ts = ((hi << 32 | lo) + offset_units) / units
                    self.offset = base + end
                    self.packets += 1
                    yield (last_ts, linktype, buf[pos + 28 : pos + 28 + caplen])
                    pos = end
                    continue
                self._skip_unsupported(current[ifid], base + pos)
            elif btype == _SPB:
                if blen < 16:
                    raise self._corrupt_block(base + pos, f"simple packet block of {blen} bytes is too short")
                if not fast:
                    raise self._corrupt_block(base + pos, "simple packet block before any interface")
                wirelen = word(buf, pos + 8)[0]
                caplen = min(wirelen, blen - 16)
                if current[0].snaplen > 0:
                    caplen = min(caplen, current[0].snaplen)
                iface = fast[0]
                if iface is None:
                    self._skip_unsupported(current[0], base + pos)
                else:
                    self.offset = base + end
                    self.packets += 1
                    yield (last_ts, iface[0], buf[pos + 12 : pos + 12 + caplen])
            elif btype == _PB:
                if blen < 32:
                    raise self._corrupt_block(base + pos, f"packet block of {blen} bytes is too short")
                ifid, _drops, hi, lo, caplen, _wirelen = Struct(order + "HHIIII").unpack_from(buf, pos + 8)
                if caplen > blen - 32 or ifid >= len(fast):
                    raise self._bad_packet_block(base + pos, blen, caplen, ifid)
                iface = fast[ifid]
                if iface is None:
                    self._skip_unsupported(current[ifid], base + pos)
                else:
                    linktype, units, offset_units = iface
                    last_ts = ((hi << 32 | lo) + offset_units) / units
                    self.offset = base + end
                    self.packets += 1
                    yield (last_ts, linktype, buf[pos + 28 : pos + 28 + caplen])
            elif btype == _IDB:
                interface = self._parse_idb(buf, pos, end, order, base, section, len(current))
                current.append(interface)
                self.interfaces.append(interface)
                fast.append(
                    (interface.linktype, interface.units_per_second, interface.tsoffset * interface.units_per_second)
                    if interface.supported
                    else None
                )
            elif btype == _SHB:
                if blen < 28:
                    raise self._corrupt_block(base + pos, f"section header block of {blen} bytes is too short")
                major, minor = Struct(order + "HH").unpack_from(buf, pos + 12)
                if major != 1:
                    raise self._corrupt_block(base + pos, f"unsupported pcapng version {major}.{minor}")
                section += 1
                fast = []
                current = []
            elif (
                btype not in _SKIPPED_BLOCK_TYPES or (btype == _NRB and not word(buf, pos + 8)[0])
            ) and self._packet_block_shape(buf, pos, blen, order, fast, last_ts):
                # (a name resolution block without records is one too: "end of records" where an EPB
                # has interface 0)
                raise self._corrupt_block(
                    base + pos,
                    f"block type {btype:#010x} is unknown, but the block is laid out as an enhanced "
                    f"packet block of a declared interface (a damaged block type)",
                )
            # every other block type (name resolution, statistics, secrets, custom...) is skipped
            pos = end
            self.offset = base + pos

    @staticmethod
    def _packet_block_shape(
        buf: bytes, pos: int, blen: int, order: str, fast: list[tuple[int, int, int] | None], last_ts: float
    ) -> bool:
        """Whether the block at pos is laid out as an Enhanced Packet Block: at least 32 bytes, a declared
        interface, a captured length that fits, and for a supported interface a time within a day of
        the last packet's (before the first packet: between 1990 and 2100)."""
        if blen < 32:
            return False
        ifid, hi, lo, caplen, _wirelen = Struct(order + "IIIII").unpack_from(buf, pos + 8)
        if ifid >= len(fast) or caplen > blen - 32:
            return False
        iface = fast[ifid]
        if iface is None:
            return True
        _linktype, units, offset_units = iface
        ts = ((hi << 32 | lo) + offset_units) / units
        if not last_ts:
            return _PLAUSIBLE_FIRST_TIME[0] <= ts < _PLAUSIBLE_FIRST_TIME[1]
        return abs(ts - last_ts) <= NEARBY_SECONDS

    def _parse_idb(self, buf: bytes, pos: int, end: int, order: str, base: int, section: int, index: int) -> Interface:
        offset = base + pos
        if end - pos < 20:
            raise self._corrupt_block(offset, f"interface description block of {end - pos} bytes is too short")
        linktype, _reserved, snaplen = Struct(order + "HHI").unpack_from(buf, pos + 8)
        units = 1_000_000
        tsoffset = 0
        option = Struct(order + "HH").unpack_from
        p = pos + 16
        limit = end - 4
        while p + 4 <= limit:
            code, length = option(buf, p)
            if code == 0:  # opt_endofopt
                break
            value = p + 4
            if value + length > limit:
                raise self._corrupt_block(offset, f"interface option {code} runs past the end of its block")
            if code == 9 and length >= 1:  # if_tsresol
                resol = buf[value]
                units = 2 ** (resol & 0x7F) if resol & 0x80 else 10**resol
            elif code == 14 and length >= 8:  # if_tsoffset
                tsoffset = Struct(order + "q").unpack_from(buf, value)[0]
            p = value + ((length + 3) & ~3)
        supported = self.supported_linktypes is None or linktype in self.supported_linktypes
        return Interface(section, index, linktype, snaplen, units, tsoffset, supported, offset)

    def _skip_unsupported(self, interface: Interface, offset: int) -> None:
        """A packet of an interface whose link type is unsupported: counted, and the first one is an input
        error (the file is not read whole; an interface that carries no packet costs nothing)."""
        self.skipped_unsupported += 1
        interface.skipped += 1
        if interface.skipped == 1:
            self._problem(
                "unknown_linktype",
                offset,
                f"packets of interface {interface.index} (declared at byte {interface.offset}) have link type "
                f"{interface.linktype}, which is not supported: they are skipped{self._in_stream()}",
            )
