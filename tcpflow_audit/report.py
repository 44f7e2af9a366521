"""Reporting: turning flow records, findings and run statistics into CSV and JSON (the table format,
for people, is `tables`).

Column names and order are part of the interface (documented in docs/flows.md). CSV, JSON Lines
and JSON are written row by row as connections finish, so they never hold a capture's flows in
memory (only the table format does: column widths need every row). Where the text goes,
and how a file or a set of files replaces the previous one, is `outputs`' business.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any, Final

from .connection import FlowRecord
from .decode import format_ip
from .names import shown
from .rounding import round_places

# How flows.csv writes a column's value: the text `_csv_text(value)` gives (the same functions), known
# from the column's type so that no cell's type is looked up (a row is written per connection).
INT: Final = 0  # an int: its digits
TEXT: Final = 1  # a str: as it is, guarded against formula injection (spreadsheet_safe)
FLOAT: Final = 2  # a float: str(value), nothing for an infinity or NaN
OPTIONAL_FLOAT: Final = 3  # a float or None: as FLOAT, nothing for None
BOOL: Final = 4  # true or false


def _handshake_rtt_ms(record: FlowRecord) -> float | None:
    if record.syn_synack_ms is None or record.synack_ack_ms is None:
        return None
    return round_places(record.syn_synack_ms + record.synack_ack_ms, 3)


# The flows report's columns, each defined once, in order: its name; its value in a row (`flow_row`:
# JSON, JSON Lines, the table, Parquet), a plain str/int/float/bool/None; how flows.csv writes that
# value (above); and its type in Parquet (`columnar`): "timestamp", "float", "int", "bool" or "string".
# A column added here is in every format. Names and order are part of the interface (docs/flows.md).
FLOW_SPEC: Final[tuple[tuple[str, Callable[[FlowRecord], Any], int, str], ...]] = (
    ("start", lambda r: iso_utc(r.start), TEXT, "timestamp"),
    ("start_epoch", lambda r: _epoch(r.start), TEXT, "float"),
    ("end", lambda r: iso_utc(r.end), TEXT, "timestamp"),
    ("end_epoch", lambda r: _epoch(r.end), TEXT, "float"),
    ("duration_s", lambda r: round_places(r.end - r.start, 6), FLOAT, "float"),
    ("client_ip", lambda r: _ip_text(r.client_ip), TEXT, "string"),
    ("client_port", lambda r: r.client_port, INT, "int"),
    ("server_ip", lambda r: _ip_text(r.server_ip), TEXT, "string"),
    ("server_port", lambda r: r.server_port, INT, "int"),
    ("conn_state", lambda r: r.conn_state, TEXT, "string"),
    ("history", lambda r: r.history, TEXT, "string"),
    ("client_state", lambda r: r.client_state, TEXT, "string"),
    ("server_state", lambda r: r.server_state, TEXT, "string"),
    ("client_packets", lambda r: r.client_packets, INT, "int"),
    ("server_packets", lambda r: r.server_packets, INT, "int"),
    ("client_bytes", lambda r: r.client_bytes, INT, "int"),
    ("server_bytes", lambda r: r.server_bytes, INT, "int"),
    ("retransmits", lambda r: r.retransmits, INT, "int"),
    # per-connection evidence, both sides added (docs/flows.md: what each counts, where tshark differs)
    ("dup_acks", lambda r: r.facts.client_dup_acks + r.facts.server_dup_acks, INT, "int"),
    ("keepalive_probes", lambda r: r.facts.client_keepalives + r.facts.server_keepalives, INT, "int"),
    ("zero_window_probes", lambda r: r.facts.zero_window_probes, INT, "int"),
    ("out_of_order", lambda r: r.facts.out_of_order, INT, "int"),
    ("missed_bytes", lambda r: r.facts.missed_bytes, INT, "int"),
    ("close_initiator", lambda r: r.close_initiator, TEXT, "string"),
    ("end_reason", lambda r: r.end_reason, TEXT, "string"),
    ("handshake_rtt_ms", _handshake_rtt_ms, OPTIONAL_FLOAT, "float"),
    ("syn_synack_ms", lambda r: r.syn_synack_ms, OPTIONAL_FLOAT, "float"),
    ("synack_ack_ms", lambda r: r.synack_ack_ms, OPTIONAL_FLOAT, "float"),
    ("direction_guessed", lambda r: r.direction_guessed, BOOL, "bool"),
    ("anomalies", lambda r: ";".join(r.facts.anomalies), TEXT, "string"),
    ("tunnel", lambda r: r.tunnel, TEXT, "string"),
)
FLOW_COLUMNS: Final[tuple[str, ...]] = tuple(column[0] for column in FLOW_SPEC)
FLOW_TYPES: Final[dict[str, str]] = {column[0]: column[3] for column in FLOW_SPEC}
_FLOW_VALUES: Final = [column[1] for column in FLOW_SPEC]
_INT_CELLS: Final[list[int]] = [i for i, column in enumerate(FLOW_SPEC) if column[2] == INT]
_TEXT_CELLS: Final[list[int]] = [i for i, column in enumerate(FLOW_SPEC) if column[2] == TEXT]
_FLOAT_CELLS: Final[list[int]] = [i for i, column in enumerate(FLOW_SPEC) if column[2] in (FLOAT, OPTIONAL_FLOAT)]
_BOOL_CELLS: Final[list[int]] = [i for i, column in enumerate(FLOW_SPEC) if column[2] == BOOL]


def iso_utc(ts: float | None) -> str:
    """ISO 8601 UTC with microseconds, e.g. 2026-11-21T09:15:00.123456Z.

    A time no date can hold (year 10000 or later, before year 1, not a number: a broken pcapng
    timestamp) is written as epoch seconds instead, e.g. 1740423638575.000000, rather than failing.

    Two per connection, so the date and time of day are formatted once per second of capture
    time (kept for the seconds seen lately: a connection's start and end are often seconds
    apart); the microseconds are rounded exactly as datetime.fromtimestamp rounds them (half to
    even, carrying into the next second), so the text is the same as strftime's.
    """
    if ts is None:
        return ""
    if not 0.0 <= ts < _YEAR_10000:  # before 1970, NaN, or past what a date can hold
        try:
            return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except (ValueError, OverflowError, OSError):  # (a pcapng can stamp any 64-bit time)
            return _epoch(ts)
    second = math.floor(ts)
    micros = _round_half_even((ts - second) * 1e6)  # (the fraction of a double is exact)
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    text = _iso_seconds.get(second)
    if text is None:
        if len(_iso_seconds) >= 4096:
            _iso_seconds.clear()
        text = _iso_seconds[second] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{text}{_THREE_DIGITS[micros // 1000]}{_THREE_DIGITS[micros % 1000]}Z"  # (one string built)


def _round_half_even(x: float) -> int:
    """round(x) for 0 <= x < 2**52 (half to even), without a call through the builtins."""
    whole = math.floor(x)
    fraction = x - whole  # exact
    if fraction > 0.5 or (fraction == 0.5 and whole % 2 == 1):
        whole += 1
    return whole


_iso_seconds: Final[dict[int, str]] = {}  # epoch second -> its date and time of day as iso_utc writes them
_YEAR_10000: Final = 253402300800.0  # 10000-01-01T00:00:00Z: later times are written as epoch seconds


_THREE_DIGITS: Final = [f"{n:03d}" for n in range(1000)]  # "000" to "999": six digits are two of these


def _epoch(ts: float | None) -> str:
    """f"{ts:.6f}": epoch seconds with microseconds, rounded exactly (the decimal nearest to ts).

    The seconds and the sub-second fraction are exact in floating point; the fraction times 10**6
    is off by far less than the distance to a half, except within that error of one, where (as
    for negative or huge times) the formatter itself decides. tests/test_report.py compares.
    """
    if ts is None:
        return ""
    if 0.0 < ts < 1e10:
        whole = math.floor(ts)
        scaled = (ts - whole) * 1e6
        micros = math.floor(scaled)
        fraction = scaled - micros
        if abs(fraction - 0.5) > 1e-6:
            if fraction > 0.5:
                micros += 1
                if micros == 1_000_000:
                    whole += 1
                    micros = 0
            return f"{whole}.{_THREE_DIGITS[micros // 1000]}{_THREE_DIGITS[micros % 1000]}"
    return f"{ts:.6f}"


def flow_row(record: FlowRecord) -> dict[str, Any]:
    """One flows-report row: plain values (str/int/float/bool/None), in FLOW_COLUMNS order."""
    row: dict[str, Any] = {}
    i = 0
    for value in _FLOW_VALUES:
        row[FLOW_COLUMNS[i]] = value(record)
        i += 1
    return row


def flow_csv_line(record: FlowRecord) -> str | None:
    """The record's flows.csv line, exactly what `RowWriter.write(flow_row(record))` writes, or None
    when some cell needs quoting (that way then writes it).

    Each cell is turned into its text by its column's type (a text's formula guard, a number's digits,
    nothing for an infinity, NaN or None, a bool's word) and one join in C makes the line: the row dict
    and a type dispatch per cell would cost more than the engine spends on a connection's ordinary
    segments, and a %-format of 31 cells costs four times the join (tests/test_flow_sinks.py compares
    the two ways)."""
    cells: list[Any] = [value(record) for value in _FLOW_VALUES]
    for i in _INT_CELLS:
        cells[i] = _int_text(cells[i])
    for i in _TEXT_CELLS:
        cells[i] = _text_cell(cells[i])
    for i in _FLOAT_CELLS:
        cells[i] = _float_text(cells[i])
    for i in _BOOL_CELLS:
        cells[i] = _bool_text(cells[i])
    line = ",".join(cells)
    if line.count(",") == _FLOW_COMMAS and '"' not in line and "\r" not in line and "\n" not in line:
        return line + "\n"
    return None


_FLOW_COMMAS: Final = len(FLOW_COLUMNS) - 1


def _int_text(number: int) -> str:
    """str(number), taken from a table for the small numbers most counters hold."""
    if 0 <= number < _SMALL_INTS:
        return _INT_TEXTS[number]
    return str(number)


_SMALL_INTS: Final = 1024
_INT_TEXTS: Final = [str(n) for n in range(_SMALL_INTS)]


def _float_text(number: float | None) -> str:
    """A float cell's text: str(number), nothing for None, an infinity or NaN. The text of a value seen
    lately is remembered: round-trip times rounded to microseconds take few values, and the shortest
    repr of a float costs several times a dict lookup."""
    if number is None:
        return ""
    if type(number) is not float:  # (an int equal to a remembered float has other text)
        return str(number) if _finite(number) else ""
    if number == 0.0:  # (-0.0 and 0.0 would be one key, and their texts differ)
        return "-0.0" if math.copysign(1.0, number) < 0.0 else "0.0"
    text = _float_texts.get(number)
    if text is None:
        if not _finite(number):
            return ""
        text = str(number)
        if len(_float_texts) >= 4096:
            _float_texts.clear()
        _float_texts[number] = text
    return text


_float_texts: Final[dict[float, str]] = {}


def _finite(value: float) -> bool:
    """math.isfinite(value) (which the compiled build would call through the math module)."""
    return not (math.isinf(value) or math.isnan(value))


def _ip_text(address: bytes) -> str:
    """format_ip(address), remembered for the addresses seen lately: a capture's connections mostly
    share a few hosts."""
    text = _ip_texts.get(address)
    if text is None:
        if len(_ip_texts) >= 65536:
            _ip_texts.clear()
        text = _ip_texts[address] = format_ip(address)
    return text


_ip_texts: Final[dict[bytes, str]] = {}


_FORMULA_FIRST: Final = "=+-@\t\r"  # a cell starting with one of these could be read as a formula


def spreadsheet_safe(value: Any) -> Any:
    """Guard a CSV cell against formula injection: text starting with = + - @ gets a leading quote.

    Numbers stay numbers (a negative number is not text and is left alone).
    """
    if isinstance(value, str) and value and value[0] in _FORMULA_FIRST:
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def _text_cell(text: str) -> str:
    """A text cell as written: guarded against being read as a formula (`spreadsheet_safe`)."""
    return spreadsheet_safe(text) if text and text[0] in _FORMULA_FIRST else text


def _bool_text(flag: bool) -> str:
    return "true" if flag else "false"


def _csv_text(value: Any) -> str:
    """A cell's text in CSV, by its value's type: the one rule for every table's cells (flows.csv
    applies the same functions by column type, `flow_csv_line`)."""
    kind = type(value)
    if kind is str:
        return _text_cell(value)
    if kind is int:
        return _int_text(value)
    if value is None or kind is float:
        return _float_text(value)
    if kind is bool:
        return _bool_text(value)
    return _text_cell(str(value))


def _csv_line(texts: list[str]) -> str | None:
    """The CSV line of cells that need no quoting (no comma, quote or line break in any): what
    csv.writer writes for them, built by one join; None when some cell needs quoting."""
    line = ",".join(texts)
    if line and line.count(",") == len(texts) - 1 and '"' not in line and "\n" not in line and "\r" not in line:
        return line + "\n"
    return None


class RowWriter:
    """Writes rows of one table as they come: CSV or JSON Lines to a stream, JSON into a `JsonArray`;
    for the table format (stream None) it keeps each row's `columns` values (a tuple) for `tables`."""

    def __init__(self, stream: IO[str] | JsonArray | None, fmt: str, columns: tuple[str, ...]) -> None:
        self.stream: Any = stream  # a text stream, a JsonArray, or None (table)
        self.fmt = fmt
        self.columns = columns
        self.rows: list[tuple[Any, ...]] = []
        self.count = 0
        self._csv = None
        if fmt == "csv" and stream is not None:
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(columns)

    def write_flow(self, record: FlowRecord) -> None:
        """write(flow_row(record)); for CSV, the line built straight from the record when it can be."""
        line = flow_csv_line(record) if self._csv is not None else None
        if line is None:
            self.write(flow_row(record))
        else:
            self.count += 1
            self.stream.write(line)

    def write(self, row: dict[str, Any]) -> None:
        self.count += 1
        if self._csv is not None:
            texts = [_csv_text(row[c]) for c in self.columns]
            line = _csv_line(texts)
            if line is None:
                self._csv.writerow(texts)
            else:
                self.stream.write(line)
        elif self.stream is None:
            self.rows.append(tuple(row.get(c) for c in self.columns))
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(row, separators=(",", ":")) + "\n")
        else:
            self.stream.write(row)


# ---------------------------------------------------------------------- streamed JSON
# The JSON documents are exactly what json.dump(document, stream, indent=2) writes, produced one
# member and one array element at a time, so a flows report of any size needs no memory.
_INDENT = "  "


def _nested_json(value: Any, level: int) -> str:
    """json.dumps(value, indent=2) as it appears `level` levels deep inside an indent=2 document."""
    if isinstance(value, dict) and value and not any(isinstance(v, (dict, list, tuple)) for v in value.values()):
        # a flat row (the common case, once per connection): the C encoder with the indent=2 separators
        pad = "\n" + _INDENT * (level + 1)
        body = json.dumps(value, separators=("," + pad, ": "))
        return "{" + pad + body[1:-1] + "\n" + _INDENT * level + "}"
    return json.dumps(value, indent=2).replace("\n", "\n" + _INDENT * level)


class JsonObject:
    """A top-level JSON object written member by member: `member(key, value)` or `array(key)`; `close()`."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream: Any = stream  # a text stream, a JsonArray, or None (table)
        self.members = 0
        self._open: JsonArray | None = None
        stream.write("{")

    def _key(self, key: str) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None
        self.stream.write(("," if self.members else "") + "\n" + _INDENT + json.dumps(key) + ": ")
        self.members += 1

    def member(self, key: str, value: Any) -> None:
        self._key(key)
        self.stream.write(_nested_json(value, 1))

    def array(self, key: str) -> JsonArray:
        """An array member whose elements are written one by one (closed by the next member or close())."""
        self._key(key)
        self._open = JsonArray(self.stream, 1)
        return self._open

    def close(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None
        self.stream.write("\n}\n" if self.members else "}\n")


class JsonArray:
    """A JSON array at nesting `level`, written element by element."""

    def __init__(self, stream: IO[str], level: int) -> None:
        self.stream: Any = stream  # a text stream, a JsonArray, or None (table)
        self.level = level
        self.count = 0
        self.closed = False

    def write(self, value: Any) -> None:
        pad = "\n" + _INDENT * (self.level + 1)
        self.stream.write(("," if self.count else "[") + pad + _nested_json(value, self.level + 1))
        self.count += 1

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.stream.write("\n" + _INDENT * self.level + "]" if self.count else "[]")


# ---------------------------------------------------------------------- the summary
class SummaryCollector:
    """A flow sink that counts what the summary needs and keeps the first abnormal connections."""

    def __init__(self, keep_abnormal: int = 50) -> None:
        # connections by each value (plain dicts: a Counter's += is generic code in the compiled build)
        self.conn_states: dict[str, int] = {}
        self.client_states: dict[str, int] = {}
        self.server_states: dict[str, int] = {}
        self.end_reasons: dict[str, int] = {}
        self.abnormal_total = 0
        self.keep_abnormal = keep_abnormal
        self.abnormal: list[dict[str, Any]] = []
        # capture loss: bytes the connections carried, and those acknowledged but never captured
        self.bytes_carried = 0
        self.missed_bytes = 0
        self.gap_connections = 0

    def __call__(self, record: FlowRecord) -> None:
        _count(self.conn_states, record.conn_state)
        _count(self.client_states, record.client_state)
        _count(self.server_states, record.server_state)
        _count(self.end_reasons, record.end_reason)
        self.bytes_carried += record.client_bytes + record.server_bytes
        f = record.facts
        missed = f.missed_bytes
        if missed:
            self.missed_bytes += missed
            self.gap_connections += 1
        if record.conn_state != "SF":
            self.abnormal_total += 1
            if len(self.abnormal) < self.keep_abnormal:
                self.abnormal.append(flow_row(record))


def _count(counts: dict[str, int], value: str) -> None:
    counts[value] = counts.get(value, 0) + 1


def capture_loss(collector: SummaryCollector) -> dict[str, Any]:
    """What the capture is missing: bytes acknowledged by a receiver but never captured (the flows report's
    missed_bytes, added up), against the bytes the connections carried."""
    carried = max(collector.bytes_carried, collector.missed_bytes)
    return {
        "missed_bytes": collector.missed_bytes,
        "bytes": collector.bytes_carried,
        "connections": collector.gap_connections,
        "percent": round_places(100.0 * collector.missed_bytes / carried, 3) if carried else 0.0,
    }


def summary_dict(stats: Any, collector: SummaryCollector, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "files": [shown(name) for name in stats.files],
        "files_passed_over": len(stats.passed_over),
        "first_packet": iso_utc(stats.first_ts),
        "last_packet": iso_utc(stats.last_ts),
        "packets_read": stats.packets_read,
        "tcp_packets": stats.tcp_packets,
        "filtered_out": stats.filtered_out,
        "skipped_packets": dict(sorted(stats.skipped.items())),
        "fragments_incomplete": stats.fragments_incomplete,
        "connections": stats.connections,
        "peak_live_connections": stats.peak_live_connections,
        "evicted_connections": stats.evicted,
        "conn_state": dict(Counter(collector.conn_states).most_common()),
        "client_state": dict(Counter(collector.client_states).most_common()),
        "server_state": dict(Counter(collector.server_states).most_common()),
        "end_reason": dict(Counter(collector.end_reasons).most_common()),
        "not_ended_normally": collector.abnormal_total,
        "capture_loss": capture_loss(collector),
        "input_problems": [str(p) for p in stats.problems],
        "interrupted": stats.interrupted,
    }
    if extra:
        summary.update(extra)
    return summary


def summary_facts(summary: dict[str, Any]) -> list[tuple[str, int | str]]:
    """The summary's headline facts as (label, value) lines, the terminal's summary block and the HTML
    report's "What was read" both: numbers stay numbers (each output formats them its way), a line
    that would say nothing (no files passed over, nothing filtered, no loss) is left out."""
    lines: list[tuple[str, int | str]] = [("files", ", ".join(summary["files"]))]
    if summary.get("files_passed_over"):
        lines.append(("files passed over", f"{summary['files_passed_over']} (in directories; not captures)"))
    lines += [
        ("capture span", f"{summary['first_packet']} .. {summary['last_packet']}"),
        ("packets read", summary["packets_read"]),
        ("TCP packets", summary["tcp_packets"]),
    ]
    if summary["input_problems"]:
        lines.append(("input problems", len(summary["input_problems"])))
    if summary["filtered_out"]:
        lines.append(("filtered out", summary["filtered_out"]))
    for reason, n in summary["skipped_packets"].items():
        lines.append((f"skipped: {reason}", n))
    if summary.get("fragments_incomplete"):
        lines.append(("TCP first fragments read alone", summary["fragments_incomplete"]))
    lines.append(("connections", summary["connections"]))
    if summary.get("interrupted"):
        lines.append(("interrupted", "yes (Ctrl-C): this report covers the packets read until then"))
    if summary["evicted_connections"]:
        lines.append(("evicted (table full)", summary["evicted_connections"]))
    loss = summary.get("capture_loss") or {}
    if loss.get("missed_bytes"):
        lines.append(
            (
                "capture loss",
                "%s%% missed (%d bytes acknowledged, never captured, in %d connections)"
                % (loss["percent"], loss["missed_bytes"], loss["connections"]),
            )
        )
    return lines
