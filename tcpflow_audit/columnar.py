"""Parquet output (`--format parquet`, `--parquet` with `--output-dir`): the reports as typed columns.

The rows are the CSV/JSON rows (`report.flow_row`, `detectors.finding_row`, `sockets`' rows), the
column names and order too; each column gets a type instead of text: times as timestamps
(microseconds, UTC), ports and counts as integers, durations as floats, flags as booleans, a
missing value as null. A month of nightly runs is then one query away in pandas, Polars or DuckDB.

pyarrow is an optional dependency (`pip install 'tcpflow-audit[parquet]'`): `require()` says so in
one line when it is missing. Rows are written in row groups of `ROW_GROUP` rows as they come, so
the flows of a capture of any size are never all in memory.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any, Final

from .detectors import ANOMALY_COLUMNS
from .report import FLOW_COLUMNS
from .sockets import EVENT_COLUMNS, SOCKET_COLUMNS, STATE_COLUMNS, TIMELINE_COLUMNS

ROW_GROUP: Final = 16384
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# The type of every column of every report: "timestamp", "float", "int", "bool" or "string".
FLOW_TYPES: Final = {
    "start": "timestamp",
    "start_epoch": "float",
    "end": "timestamp",
    "end_epoch": "float",
    "duration_s": "float",
    "client_ip": "string",
    "client_port": "int",
    "server_ip": "string",
    "server_port": "int",
    "conn_state": "string",
    "history": "string",
    "client_state": "string",
    "server_state": "string",
    "client_packets": "int",
    "server_packets": "int",
    "client_bytes": "int",
    "server_bytes": "int",
    "retransmits": "int",
    "dup_acks": "int",
    "keepalive_probes": "int",
    "zero_window_probes": "int",
    "out_of_order": "int",
    "missed_bytes": "int",
    "close_initiator": "string",
    "end_reason": "string",
    "handshake_rtt_ms": "float",
    "syn_synack_ms": "float",
    "synack_ack_ms": "float",
    "direction_guessed": "bool",
    "anomalies": "string",
}
ANOMALY_TYPES: Final = {
    "kind": "string",
    "severity": "string",
    "first_seen": "timestamp",
    "last_seen": "timestamp",
    "client_ip": "string",
    "client_port": "int",
    "server_ip": "string",
    "server_port": "int",
    "count": "int",
    "detail": "string",
}
SOCKET_TYPES: Final = {"host": "string", "port": "int", "role": "string", **dict.fromkeys(STATE_COLUMNS, "int")}
TIMELINE_TYPES: Final = {
    "time": "timestamp",
    "time_epoch": "float",
    "host": "string",
    "port": "int",
    **dict.fromkeys(STATE_COLUMNS, "int"),
    **dict.fromkeys(EVENT_COLUMNS, "int"),
}

#: report name -> (its columns, their types)
SCHEMAS: Final[dict[str, tuple[tuple[str, ...], dict[str, str]]]] = {
    "flows": (FLOW_COLUMNS, FLOW_TYPES),
    "anomalies": (ANOMALY_COLUMNS, ANOMALY_TYPES),
    "sockets": (SOCKET_COLUMNS, SOCKET_TYPES),
    "timeline": (TIMELINE_COLUMNS, TIMELINE_TYPES),
}


class ParquetMissing(Exception):
    """pyarrow is not installed."""


def require() -> Any:
    """The pyarrow module (with pyarrow.parquet loaded), or ParquetMissing saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ParquetMissing("Parquet output needs pyarrow: pip install 'tcpflow-audit[parquet]'") from None
    return pyarrow


def _arrow_type(pa: Any, kind: str) -> Any:
    return {
        "timestamp": pa.timestamp("us", tz="UTC"),
        "float": pa.float64(),
        "int": pa.int64(),
        "bool": pa.bool_(),
        "string": pa.string(),
    }[kind]


def _microseconds(value: Any) -> int | None:
    """A time cell (ISO 8601 UTC text as iso_utc writes it, epoch seconds as text or a number) as
    microseconds since the epoch; None when empty or not a finite time."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if value.endswith("Z"):
            moment = datetime.fromisoformat(value[:-1] + "+00:00")
            return (moment - _EPOCH) // _ONE_MICROSECOND
        exact = Decimal(value)  # (epoch seconds as text: exact, as far in time as it goes)
        return int((exact * 1000000).to_integral_value()) if exact.is_finite() else None
    if not math.isfinite(value):
        return None
    return round(value * 1e6)


_ONE_MICROSECOND: Final = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _cell(kind: str, value: Any) -> Any:
    """A row's value as the column's type wants it (None for a missing value)."""
    if kind == "timestamp":
        return _microseconds(value)
    if value is None or value == "":
        return None
    if kind == "float":
        number = float(value)
        return number if math.isfinite(number) else None
    if kind == "int":
        return int(value)
    if kind == "bool":
        return value if isinstance(value, bool) else value == "true"
    return str(value)


class ParquetRows:
    """Rows of one report written to a binary stream as Parquet, a row group at a time."""

    def __init__(self, stream: IO[bytes], report: str) -> None:
        pa = require()
        self.pa = pa
        self.columns, types = SCHEMAS[report]
        self.kinds = [types[c] for c in self.columns]
        self.schema = pa.schema([(c, _arrow_type(pa, k)) for c, k in zip(self.columns, self.kinds, strict=True)])
        self.writer = pa.parquet.ParquetWriter(stream, self.schema, compression="zstd")
        self.pending: list[list[Any]] = [[] for _ in self.columns]
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        for values, column, kind in zip(self.pending, self.columns, self.kinds, strict=True):
            values.append(_cell(kind, row.get(column)))
        self.count += 1
        if len(self.pending[0]) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.pending[0]:
            arrays = [
                self.pa.array(values, type=field.type) for values, field in zip(self.pending, self.schema, strict=True)
            ]
            self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))
            self.pending = [[] for _ in self.columns]

    def close(self) -> None:
        """Write what is pending and the file's footer (a report of no rows is a valid, empty file)."""
        self._flush()
        self.writer.close()
