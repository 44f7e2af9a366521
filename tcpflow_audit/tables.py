"""The table format, for people: the summary, connections and findings, drawn by tabulate and fitted to a width.

With a width, `fit` shows the most important columns (`keep`) whose narrowest form still fits,
counting each column as tabulate draws it: its widest cell line, at least its header + MIN_PADDING,
two spaces between columns. Headers are split after '_' (conn_ / state) when that makes room; text
columns (`wrap_to`) are wrapped by tabulate's `maxcolwidths`. A note under the table names the
columns left out (CSV and JSON always have everything). Without a width (a file or a pipe) every
column is whole. Cells are made printable first (a control character in a file name is shown
escaped, as Python writes it); severities are coloured with ANSI codes, which tabulate does not count.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from .detectors import SEVERITIES
from .report import summary_facts

MIN_PADDING = 2  # tabulate's: a column is at least its header + 2 wide
SEPARATOR = 2  # the spaces between two columns in tabulate's "simple" and "plain" formats
MIN_WIDTH = 40  # a narrower width is taken as this (the narrowest a findings table still shows kind and severity)
_RESET = "\x1b[0m"
SEVERITY_COLORS = (("critical", "\x1b[31m"), ("warning", "\x1b[33m"))  # red, yellow (ANSI SGR codes)

# Where a name (connection_refused, client_state) or a list of them (connection_refused;rst_abort) may break
_NAME_PIECE = re.compile(r"[^;,_]+[;,_]*|[;,_]+")


@dataclass(frozen=True)
class TableStyle:
    """How tables are drawn: `width` in characters (None: no limit) and whether severities are coloured."""

    width: int | None = None
    color: bool = False


@dataclass(frozen=True)
class Column:
    """One column: its header; `keep`, its importance (a narrow table leaves out the highest numbers
    first); `wrap_to`, the narrowest its cells may be wrapped to (0: never wrapped); `names`, whether
    its cells are names, broken after '_', ';' or ','; `colors`, (cell text, ANSI code) pairs for
    cells drawn in colour."""

    header: str
    keep: int
    wrap_to: int = 0
    names: bool = False
    colors: tuple[tuple[str, str], ...] = ()


def printable(value: Any) -> str:
    """A cell's text: None is empty; a character that is not printable is escaped as Python writes it."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def wrap_names(text: str, width: int) -> str:
    """`text`, a name or a list of names, on lines of at most `width` characters, broken after '_',
    ';' or ','; a piece still longer than a line is left whole (tabulate's `maxcolwidths` cuts it).

    tabulate wraps with textwrap, which breaks only at spaces and hyphens: it would cut
    connection_refused;rst_abort at any character (connection_r / efused;rst_a)."""
    if len(text) <= width:
        return text
    lines = [""]
    for piece in _NAME_PIECE.findall(text):
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(lines)


def fit(
    columns: Sequence[Column], widest: Sequence[int], width: int | None, headers: bool = True
) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown, in reading order, for a table at most `width` wide;
    `widest` holds each column's widest cell. A width is the column's as tabulate draws it."""
    whole_header = [len(c.header) + MIN_PADDING if headers else 0 for c in columns]
    natural = [max(h, w) for h, w in zip(whole_header, widest, strict=True)]
    if width is None:
        return list(enumerate(natural))
    least = []
    for column, cells_widest in zip(columns, widest, strict=True):
        split_header = (max(map(len, _NAME_PIECE.findall(column.header)), default=0) + MIN_PADDING) if headers else 0
        least.append(max(split_header, min(cells_widest, column.wrap_to) if column.wrap_to else cells_widest))
    by_importance = sorted(range(len(columns)), key=lambda i: (columns[i].keep, i))
    shown: list[int] = []
    used = -SEPARATOR
    for i in by_importance:
        if used + SEPARATOR + least[i] <= width:
            shown.append(i)
            used += SEPARATOR + least[i]
    if not shown:  # not even one column at its narrowest: the most important one, wrapped to the width
        return [(by_importance[0], width)]
    widths = {i: least[i] for i in shown}
    spare = width - used
    for i in shown:  # (in importance order) first a header back on one line where the room allows...
        if 0 < whole_header[i] - widths[i] <= spare:
            spare -= whole_header[i] - widths[i]
            widths[i] = whole_header[i]
    for i in shown:  # ... then the wrapped columns, the most important first
        grow = min(spare, max(0, widest[i] - widths[i]))
        widths[i] += grow
        spare -= grow
    return [(i, widths[i]) for i in sorted(shown)]


def render(
    columns: Sequence[Column],
    rows: Sequence[Any],
    cells: Callable[[Any], list[str]],
    style: TableStyle,
    headers: bool = True,
) -> Iterator[str]:
    """The table's lines: `cells(row)` gives a row's cell texts (printable), in `columns` order.

    With headers, tabulate's "simple" format (a row on several lines is set apart by a separating
    line); without, its "plain" format. A note under the table names the columns left out at this width.
    """
    # (imported here, not with the module: a run writing only CSV or JSON never loads it)
    from tabulate import SEPARATING_LINE, tabulate

    table = [cells(row) for row in rows]
    widest = [max((len(row[i]) for row in table), default=0) for i in range(len(columns))]
    layout = fit(columns, widest, style.width, headers)
    palettes = [dict(columns[i].colors) if style.color else {} for i, _ in layout]
    data: list[Any] = []
    tall_before = False
    for row in table:
        tall = any(len(row[i]) > w for i, w in layout)  # (tabulate wraps exactly the cells wider than their column)
        if headers and data and (tall or tall_before):
            data.append(SEPARATING_LINE)
        tall_before = tall
        drawn = []
        for (i, w), palette in zip(layout, palettes, strict=True):
            text = wrap_names(row[i], w) if columns[i].names else row[i]
            code = palette.get(text)
            drawn.append(code + text + _RESET if code else text)
        data.append(drawn)
    header_texts = (
        [
            columns[i].header
            if len(columns[i].header) + MIN_PADDING <= w
            else wrap_names(columns[i].header, w - MIN_PADDING)
            for i, w in layout
        ]
        if headers
        else ()
    )
    yield from tabulate(
        data,
        header_texts,
        tablefmt="simple" if headers else "plain",
        disable_numparse=True,
        maxcolwidths=[w if widest[i] > w else None for i, w in layout],
    ).splitlines()
    left_out = [c.header for i, c in enumerate(columns) if i not in {i for i, _ in layout}]
    if left_out and style.width is not None:  # (only a width leaves columns out)
        yield from textwrap.wrap(
            f"(not shown at width {style.width}: {', '.join(left_out)}; --width 0 shows all)", style.width
        )


def titled(title: str, lines: Iterable[str], style: TableStyle) -> Iterator[str]:
    """The title, wrapped to the width, then the lines."""
    yield from (textwrap.wrap(title, style.width) if style.width is not None else [title])
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
    "client_ip",
    "client_port",
    "server_ip",
    "server_port",
    "conn_state",
    "history",
    "client_state",
    "server_state",
    "end_reason",
    "anomalies",
    "duration_s",
    "start",
    "tunnel",
)

# What tells one connection's story first; the byte and packet counts are in CSV/JSON only.
# The tunnel, which tells apart connections of the same addresses in two tunnels, is drawn last and
# only in a table that has a tunnelled connection (`render_connections`).
CONNECTION_COLUMNS = (
    Column("client", 0, wrap_to=21),
    Column("server", 1, wrap_to=21),
    Column("conn_state", 2),
    Column("history", 3, wrap_to=10),
    Column("client_state", 4),
    Column("server_state", 5),
    Column("end_reason", 6, wrap_to=8, names=True),
    Column("anomalies", 7, wrap_to=11, names=True),
    Column("duration_s", 9),
    Column("start", 10),
    Column("tunnel", 8, wrap_to=26, names=True),
)

# A finding is read as: what, how bad, where, the numbers; the times are left out first.
FINDING_COLUMNS = (
    Column("kind", 0, wrap_to=14, names=True),
    Column("severity", 1, colors=SEVERITY_COLORS),
    Column("count", 3),
    Column("server", 2, wrap_to=21),
    Column("client", 5, wrap_to=21),
    Column("detail", 4, wrap_to=20),
    Column("first_seen", 6),
    Column("last_seen", 7),
)


def _connection_cells(row: dict[str, Any] | tuple[Any, ...]) -> list[str]:
    """A connection's cells: a flow row (dict), or its FLOW_TABLE_COLUMNS values (RowWriter's table rows)."""
    values = tuple(row.get(c) for c in FLOW_TABLE_COLUMNS) if isinstance(row, dict) else row
    (
        client_ip,
        client_port,
        server_ip,
        server_port,
        conn_state,
        history,
        client_state,
        server_state,
        end_reason,
        anomalies,
        duration,
        start,
        tunnel,
    ) = values
    return [
        endpoint(client_ip, client_port),
        endpoint(server_ip, server_port),
        printable(conn_state),
        printable(history),
        printable(client_state),
        printable(server_state),
        printable(end_reason),
        printable(anomalies),
        seconds(duration),
        printable(start),
        printable(tunnel),
    ]


def _finding_cells(row: dict[str, Any]) -> list[str]:
    return [
        printable(row["kind"]),
        printable(row["severity"]),
        printable(row["count"]),
        endpoint(row["server_ip"], row["server_port"]),
        endpoint(row["client_ip"], row["client_port"]),
        printable(row["detail"]),
        printable(row["first_seen"]),
        printable(row["last_seen"]),
    ]


def render_connections(
    title: str, rows: Sequence[dict[str, Any]] | Sequence[tuple[Any, ...]], style: TableStyle
) -> Iterator[str]:
    """A connections table under its title: flow rows (dicts) or RowWriter's table rows. The tunnel
    column is there when some connection is tunnelled: a capture without tunnels looks as it would
    without the column."""
    if not rows:
        return titled(title, ["(none)"], style)
    tunnel = len(FLOW_TABLE_COLUMNS) - 1
    if any(row.get("tunnel") if isinstance(row, dict) else row[tunnel] for row in rows):
        return titled(title, render(CONNECTION_COLUMNS, rows, _connection_cells, style), style)
    plain = CONNECTION_COLUMNS[:-1]
    return titled(title, render(plain, rows, lambda row: _connection_cells(row)[:-1], style), style)


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
    lines = summary_facts(summary)
    # (labels wrap to 20 and values to 16: both columns fit the narrowest width, 40)
    yield from render(
        (Column("", 0, wrap_to=20), Column("", 1, wrap_to=16)),
        lines,
        lambda line: [printable(line[0]), printable(line[1])],
        style,
        headers=False,
    )
    for title, key in (
        ("conn_state", "conn_state"),
        ("final client state", "client_state"),
        ("final server state", "server_state"),
        ("end reason", "end_reason"),
    ):
        if summary[key]:
            yield ""
            counts = sorted(summary[key].items(), key=lambda kv: -kv[1])
            yield from render(
                (Column(title, 0), Column("connections", 1)),
                counts,
                lambda kv: [printable(kv[0]), printable(kv[1])],
                style,
            )


def write_blocks(stream: IO[str], blocks: Iterable[Iterable[str]]) -> None:
    """The blocks' lines, an empty line between two blocks."""
    for n, block in enumerate(blocks):
        if n:
            stream.write("\n")
        for line in block:
            stream.write(line + "\n")
