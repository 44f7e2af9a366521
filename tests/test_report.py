"""Report formatting helpers: the fast paths must write exactly what the plain library calls write."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from capture_helpers import epb, idb, shb
from conftest import nudge, sample, write_capture
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpflow_audit.capture import CaptureReader
from tcpflow_audit.report import _csv_value, iso_utc


def strftime_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


EDGES = [0.0, 0.5, 0.9999994, 0.9999995, 0.9999996, 1.0000005, 1700000000.0, 1700000000.0000005,
         1700000000.9999995, 1700000000.999999, 1700000000.9999999, 1763716500.123456, 4294967295.999999,
         1e-7, 86399.9999996, 951782399.9999995]


def test_iso_utc_matches_strftime_on_edges() -> None:
    for ts in EDGES:
        assert iso_utc(ts) == strftime_iso(ts), ts
    assert iso_utc(None) == ""
    assert iso_utc(-1.25) == strftime_iso(-1.25)   # before 1970: the general formatter


@settings(max_examples=3000, deadline=None)
@given(st.floats(min_value=0.0, max_value=2 ** 33, allow_nan=False))
def test_iso_utc_matches_strftime(ts: float) -> None:
    assert iso_utc(ts) == strftime_iso(ts)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2 ** 32), st.integers(0, 10 ** 6))
def test_iso_utc_same_second_cache(second: int, micros: int) -> None:
    # consecutive calls inside one second reuse the cached date: the result must not drift
    a, b = second + micros / 1e6, second + 0.5
    assert (iso_utc(a), iso_utc(b), iso_utc(a)) == (strftime_iso(a), strftime_iso(b), strftime_iso(a))


def test_csv_cells() -> None:
    assert _csv_value(5) == 5
    assert _csv_value(True) == "true" and _csv_value(False) == "false"
    assert _csv_value(None) == "" and _csv_value(float("nan")) == "" and _csv_value(float("inf")) == ""
    assert _csv_value(1.5) == 1.5
    assert _csv_value("ShADadFf") == "ShADadFf"
    for text in ("=1+2", "+cmd", "-x", "@SUM(A1)", "\tx", "\rx"):
        assert _csv_value(text) == "'" + text
    assert _csv_value("-1.5") == "-1.5"   # a negative number stays a number


def test_times_no_date_can_hold_are_written_as_epoch_seconds(tmp_path: Path, cli) -> None:
    """A pcapng may stamp any 64-bit time: past year 9999 the reports say epoch seconds, never crash."""
    assert iso_utc(1700000000.25) == "2023-11-14T22:13:20.250000Z"
    assert iso_utc(1740423638575.0) == "1740423638575.000000"
    assert iso_utc(float("nan")) == "nan"
    frames = [frame for _, _, frame in CaptureReader(sample("client_close.pcap"))]
    capture = write_capture(tmp_path / "future.pcapng", shb() + idb(1) + b"".join(
        epb(0, (1740423638575 + i) * 1_000_000, frame) for i, frame in enumerate(frames)))
    for report, fmt in (("all", "table"), ("all", "json"), ("flows", "csv")):
        run = cli(capture, "--report", report, "--format", fmt)   # exit status 0, no traceback
        assert "1740423638575.000000" in run.stdout


@settings(max_examples=5000, deadline=None)
@given(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 2e10),
    st.floats(1.6e9, 1.9e9),
    # next to a half microsecond
    st.tuples(st.integers(0, 2 * 10**15), st.integers(-3, 3)).map(lambda t: nudge((t[0] + 0.5) / 1e6, t[1])),
))
def test_epoch_seconds_are_the_formatter_s(ts: float) -> None:
    from tcpflow_audit.report import _epoch
    assert _epoch(ts) == f"{ts:.6f}"


# ---------------------------------------------------------------------- the table format (tables.py)
def test_wrap_breaks_at_spaces_then_inside_names() -> None:
    from tcpflow_audit.tables import wrap

    assert wrap("SYN answered by RST after 0.061 ms", 12) == ["SYN answered", "by RST after", "0.061 ms"]
    assert wrap("connection_refused;rst_abort", 11) == ["connection_", "refused;", "rst_abort"]
    assert wrap("client_state", 8) == ["client_", "state"]
    assert wrap("ShADadFfRrTtWw", 5) == ["ShADa", "dFfRr", "TtWw"]   # no break point: cut at the width
    for text in ("", "a", "x" * 50, "peak 320 client-side TIME_WAIT sockets (client 10.99.0.1, at "
                 "2023-11-14T22:13:21.921500Z), 1.1% of the 28232 ephemeral ports"):
        for width in (1, 5, 11, 28, 80):
            lines = wrap(text, width)
            assert all(len(line) <= width for line in lines)
            assert "".join("".join(lines).split()) == "".join(text.split())   # nothing lost


def test_cells_are_printable_and_endpoints_join_address_and_port() -> None:
    from tcpflow_audit.tables import endpoint, printable

    assert printable("capture\n\x1b[31m.pcap") == "capture\\n\\x1b[31m.pcap"   # a file name cannot draw
    assert printable(None) == "" and printable(8080) == "8080"
    assert endpoint("10.0.0.1", 80) == "10.0.0.1:80"
    assert endpoint("2001:db8::1", 443) == "[2001:db8::1]:443"
    assert endpoint("10.0.0.1", None) == "10.0.0.1" and endpoint(None, None) == ""


def test_fit_keeps_the_important_columns_and_narrows_wrapped_ones() -> None:
    from tcpflow_audit.tables import Column, TableStyle, fit, render

    columns = (Column("name", 0), Column("detail", 1, wrap_to=10), Column("when", 2))
    rows = [("alpha", "a fairly long sentence about alpha", "2026-11-21T09:19:39Z")]
    assert fit(columns, [5, 34, 20], None) == [(0, 5), (1, 34), (2, 20)]
    assert fit(columns, [5, 34, 20], 64) == [(0, 5), (1, 34), (2, 20)]   # everything fits
    # narrowest: name 5 + detail 10 (wrap_to) + when 20, and two separators: 39
    assert fit(columns, [5, 34, 20], 39) == [(0, 5), (1, 10), (2, 20)]
    assert fit(columns, [5, 34, 20], 41) == [(0, 5), (1, 12), (2, 20)]   # spare width goes to the wrapped one
    assert fit(columns, [5, 34, 20], 38) == [(0, 5), (1, 31)]   # 'when' left out: detail takes the room
    lines = list(render(columns, rows, list, TableStyle(width=41)))
    assert lines[0].split() == ["name", "detail", "when"] and all(len(line) <= 41 for line in lines)
    lines = list(render(columns, rows, list, TableStyle(width=30)))
    assert " ".join(lines[-2:]) == "(not shown at width 30: when; --width 0 shows all)"
