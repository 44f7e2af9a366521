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
