"""The table format, for people: the summary, connections and findings as text fitted to a width.

A table's columns are listed in reading order, each with its importance (`keep`). With a width,
`fit` shows every column whose narrowest form still fits, the most important first; a header
narrower than its name is split after '_' (conn_ / state), and the cells of a text column
(`wrap_to`) are wrapped after spaces, ';', ',' or '_' down to that width. Spare width goes first
to putting headers back on one line, then to the narrowest wrapped column. A note under the table
names the columns left out; CSV and JSON always have everything. Without a width (a file or a
pipe) every column is shown whole and no row is wrapped.

Widths are counted in characters: cells are made printable first (a control character in a file
name is shown escaped, as Python writes it), and colour codes are added after the padding, so
they take no width. Rows are turned into cells twice, once to measure and once to write, and
the lines are yielded one by one: a table of many connections is not held as text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from .detectors import SEVERITIES

SEPARATOR = "  "
MIN_WIDTH = 40        # a narrower width is taken as this (the narrowest a findings table still shows kind and severity)
_RESET = "\x1b[0m"
SEVERITY_COLORS = (("critical", "\x1b[31m"), ("warning", "\x1b[33m"))   # red, yellow (ANSI SGR codes)

# Where a line may break: after a word's spaces; inside a word too long for the line, after ';', ',' or
# '_' (names such as connection_refused or client_state, the anomalies of one connection).
_WORD = re.compile(r" *[^ ]+ *| +")
_PIECE = re.compile(r"[^;,_]+[;,_]*|[;,_]+")


@dataclass(frozen=True)
class TableStyle:
    """How tables are drawn: `width` in characters (None: no limit) and whether severities are coloured."""

    width: int | None = None
    color: bool = False


@dataclass(frozen=True)
class Column:
    """One column: its header; `wrap_to`, the narrowest its cells may be wrapped to (0: never wrapped);
    `keep`, its importance (a narrow table leaves out the highest numbers first); `colors`,
    (cell text, ANSI code) pairs for cells drawn in colour."""

    header: str
    keep: int
    wrap_to: int = 0
    colors: tuple[tuple[str, str], ...] = ()


def printable(value: Any) -> str:
    """A cell's text: None is empty; a character that is not printable is escaped as Python writes it."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def wrap(text: str, width: int) -> list[str]:
    """`text` on lines of at most `width` characters, broken after spaces; a word longer than a line
    is broken after ';', ',' or '_' (connection_refused, client_state), and inside a name only when
    a piece is still longer than the line."""
    width = max(width, 1)
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for word in _WORD.findall(text):
        for piece in [word] if len(word.rstrip()) <= width else _PIECE.findall(word):
            if len(line) + len(piece.rstrip()) <= width:   # (spaces that end a line are dropped)
                line += piece
                continue
            if line.strip():
                lines.append(line.rstrip())
            line = piece
            while len(line.rstrip()) > width:
                lines.append(line[:width])
                line = line[width:]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def fit(columns: Sequence[Column], widest: Sequence[int], width: int | None) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown, in reading order, for a table at most `width` wide;
    `widest` holds each column's widest cell."""
    natural = [max(len(c.header), w) for c, w in zip(columns, widest, strict=True)]
    if width is None:
        return list(enumerate(natural))
    least = []
    for column, cells_widest in zip(columns, widest, strict=True):
        header_least = max(len(piece.rstrip()) for piece in _PIECE.findall(column.header)) if column.header else 0
        cells_least = min(cells_widest, column.wrap_to) if column.wrap_to else cells_widest
        least.append(max(header_least, cells_least))
    by_importance = sorted(range(len(columns)), key=lambda i: (columns[i].keep, i))
    shown: list[int] = []
    used = -len(SEPARATOR)
    for i in by_importance:
        if used + len(SEPARATOR) + least[i] <= width:
            shown.append(i)
            used += len(SEPARATOR) + least[i]
    if not shown:   # not even one column at its narrowest: the most important one, wrapped to the width
        return [(by_importance[0], width)]
    widths = {i: least[i] for i in shown}
    spare = width - used
    for i in shown:   # (in importance order) first every header on one line...
        grow = min(spare, max(0, min(natural[i], len(columns[i].header)) - widths[i]))
        widths[i] += grow
        spare -= grow
    while spare > 0:   # ... then the narrowest of the wrapped columns gets the next character
        growable = [i for i in shown if widths[i] < natural[i]]
        if not growable:
            break
        narrowest = min(widths[i] for i in growable)
        for i in growable:
            if widths[i] == narrowest and spare > 0:
                widths[i] += 1
                spare -= 1
    return [(i, widths[i]) for i in sorted(shown)]


def render(columns: Sequence[Column], rows: Sequence[Any], cells: Callable[[Any], list[str]],
           style: TableStyle, headers: bool = True) -> Iterator[str]:
    """The table's lines: `cells(row)` gives a row's cell texts (printable), in `columns` order.

    With headers: a header (on several lines where it was split), a rule of dashes, the rows, a row
    that takes several lines set apart by empty lines. A note under the table names the columns
    left out at this width.
    """
    widest = [0] * len(columns)
    for row in rows:
        for i, cell in enumerate(cells(row)):
            widest[i] = max(widest[i], len(cell))
    layout = fit(columns, widest, style.width)
    widths = [w for _, w in layout]
    if headers:
        yield from _block([wrap(columns[i].header, w) for i, w in layout], widths, [""] * len(layout))
        yield SEPARATOR.join("-" * w for w in widths)
    palettes = [(i, dict(columns[i].colors) if style.color else {}) for i, _ in layout]
    previous_height = 1
    for n, row in enumerate(rows):
        row_cells = cells(row)
        parts = [wrap(row_cells[i], w) for i, w in layout]
        height = max(len(p) for p in parts)
        if headers and n and max(height, previous_height) > 1:   # a row on several lines is set apart
            yield ""
        previous_height = height
        yield from _block(parts, widths, [palette.get(row_cells[i], "") for i, palette in palettes])
    left_out = [c.header for i, c in enumerate(columns) if i not in {i for i, _ in layout}]
    if left_out and style.width is not None:   # (only a width leaves columns out)
        yield from wrap(f"(not shown at width {style.width}: {', '.join(left_out)}; --width 0 shows all)", style.width)


def _block(parts: list[list[str]], widths: list[int], codes: list[str]) -> Iterator[str]:
    """The text lines of one row whose cells are `parts` (each its lines), padded to `widths`, in colour
    where `codes` has an ANSI code; without trailing spaces."""
    for k in range(max(len(lines) for lines in parts)):
        out = []
        for lines, width, code in zip(parts, widths, codes, strict=True):
            text = lines[k] if k < len(lines) else ""
            padding = " " * (width - len(text))
            out.append(code + text + _RESET + padding if code and text else text + padding)
        yield SEPARATOR.join(out).rstrip()


def titled(title: str, lines: Iterable[str], style: TableStyle) -> Iterator[str]:
    """The title, wrapped to the width, then the lines."""
    yield from (wrap(title, style.width) if style.width is not None else [title])
    yield from lines


def endpoint(ip: Any, port: Any) -> str:
    """'10.0.0.1:80', '[2001:db8::1]:80', the address alone without a port, or '' for neither."""
    address = printable(ip)
    if port is None or port == "":
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def seconds(value: Any) -> str:
    """A duration for people: microseconds, like the CSV; empty when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.6f}"


# ---------------------------------------------------------------------- the report's tables
#: The flow-row values the connections table is made of: RowWriter keeps these for each connection.
FLOW_TABLE_COLUMNS: tuple[str, ...] = (
    "client_ip", "client_port", "server_ip", "server_port", "conn_state", "history", "client_state",
    "server_state", "end_reason", "anomalies", "duration_s", "start",
)

# What tells one connection's story first; the byte and packet counts are in CSV/JSON only.
CONNECTION_COLUMNS = (
    Column("client", 0, wrap_to=21), Column("server", 1, wrap_to=21), Column("conn_state", 2),
    Column("history", 3, wrap_to=10), Column("client_state", 4), Column("server_state", 5), Column("end_reason", 6),
    Column("anomalies", 7, wrap_to=11), Column("duration_s", 8), Column("start", 9),
)

# A finding is read as: what, how bad, where, the numbers; the times are left out first.
FINDING_COLUMNS = (
    Column("kind", 0), Column("severity", 1, colors=SEVERITY_COLORS), Column("count", 3),
    Column("server", 2, wrap_to=21), Column("client", 5, wrap_to=21), Column("detail", 4, wrap_to=24),
    Column("first_seen", 6), Column("last_seen", 7),
)


def _connection_cells(row: dict[str, Any] | tuple[Any, ...]) -> list[str]:
    """A connection's cells: a flow row (dict), or its FLOW_TABLE_COLUMNS values (RowWriter's table rows)."""
    values = tuple(row.get(c) for c in FLOW_TABLE_COLUMNS) if isinstance(row, dict) else row
    (client_ip, client_port, server_ip, server_port, conn_state, history, client_state, server_state,
     end_reason, anomalies, duration, start) = values
    return [endpoint(client_ip, client_port), endpoint(server_ip, server_port), printable(conn_state),
            printable(history), printable(client_state), printable(server_state), printable(end_reason),
            printable(anomalies), seconds(duration), printable(start)]


def _finding_cells(row: dict[str, Any]) -> list[str]:
    return [printable(row["kind"]), printable(row["severity"]), printable(row["count"]),
            endpoint(row["server_ip"], row["server_port"]), endpoint(row["client_ip"], row["client_port"]),
            printable(row["detail"]), printable(row["first_seen"]), printable(row["last_seen"])]


def render_connections(title: str, rows: Sequence[dict[str, Any]] | Sequence[tuple[Any, ...]],
                       style: TableStyle) -> Iterator[str]:
    """A connections table under its title: flow rows (dicts) or RowWriter's table rows."""
    if not rows:
        return titled(title, ["(none)"], style)
    return titled(title, render(CONNECTION_COLUMNS, rows, _connection_cells, style), style)


def render_findings(rows: Sequence[dict[str, Any]], style: TableStyle) -> Iterator[str]:
    """The findings table, titled with how many there are of each severity."""
    by_severity = Counter(row["severity"] for row in rows)
    title = f"Findings: {len(rows)}"
    if rows:
        title += " (" + ", ".join(f"{by_severity[s]} {s}" for s in reversed(SEVERITIES) if by_severity[s]) + ")"
        return titled(title, render(FINDING_COLUMNS, rows, _finding_cells, style), style)
    return titled(title, ["(none)"], style)


def render_summary(summary: dict[str, Any], style: TableStyle) -> Iterator[str]:
    """The summary block: the run's numbers, then connections counted by state and by end reason."""
    lines: list[tuple[str, Any]] = [
        ("files", ", ".join(summary["files"])),
        ("capture span", f"{summary['first_packet']} .. {summary['last_packet']}"),
        ("packets read", summary["packets_read"]),
        ("TCP packets", summary["tcp_packets"]),
    ]
    if summary["filtered_out"]:
        lines.append(("filtered out", summary["filtered_out"]))
    for reason, n in summary["skipped_packets"].items():
        lines.append((f"skipped: {reason}", n))
    lines.append(("connections", summary["connections"]))
    if summary.get("interrupted"):
        lines.append(("interrupted", "yes (Ctrl-C): this report covers the packets read until then"))
    if summary["evicted_connections"]:
        lines.append(("evicted (table full)", summary["evicted_connections"]))
    yield from render((Column("", 0), Column("", 1, wrap_to=20)), lines,
                      lambda line: [printable(line[0]), printable(line[1])], style, headers=False)
    for title, key in (("conn_state", "conn_state"), ("final client state", "client_state"),
                       ("final server state", "server_state"), ("end reason", "end_reason")):
        if summary[key]:
            yield ""
            counts = sorted(summary[key].items(), key=lambda kv: -kv[1])
            yield from render((Column(title, 0), Column("connections", 1)), counts,
                              lambda kv: [printable(kv[0]), printable(kv[1])], style)


def write_blocks(stream: IO[str], blocks: Iterable[Iterable[str]]) -> None:
    """The blocks' lines, an empty line between two blocks."""
    for n, block in enumerate(blocks):
        if n:
            stream.write("\n")
        for line in block:
            stream.write(line + "\n")
