"""Report formatting helpers: the fast paths must write exactly what the plain library calls write."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpflow_audit.report import _csv_value, iso_utc

ROOT = Path(__file__).parent.parent


def strftime_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def test_times_no_date_can_hold_are_written_as_epoch_seconds(tmp_path: Path) -> None:
    """A pcapng may stamp any 64-bit time: past year 9999 the reports say epoch seconds, never crash."""
    import subprocess
    import sys

    from capture_helpers import epb, idb, shb
    from tcpflow_audit.capture import CaptureReader

    assert iso_utc(1700000000.25) == "2023-11-14T22:13:20.250000Z"
    assert iso_utc(1740423638575.0) == "1740423638575.000000"
    assert iso_utc(float("nan")) == "nan"
    frames = [frame for _, _, frame in CaptureReader(str(ROOT / "sample_pcaps" / "client_close.pcap"))]
    capture = tmp_path / "future.pcapng"
    capture.write_bytes(shb() + idb(1) + b"".join(epb(0, (1740423638575 + i) * 1_000_000, frame)
                                                  for i, frame in enumerate(frames)))
    for report, fmt in (("all", "table"), ("all", "json"), ("flows", "csv")):
        run = subprocess.run([sys.executable, "-m", "tcpflow_audit", str(capture), "--report", report, "--format", fmt],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        assert "1740423638575.000000" in run.stdout


@settings(max_examples=5000, deadline=None)
@given(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 2e10),
    st.floats(1.6e9, 1.9e9),
    # next to a half microsecond
    st.tuples(st.integers(0, 2 * 10**15), st.integers(-3, 3)).map(lambda t: _nudge((t[0] + 0.5) / 1e6, t[1])),
))
def test_epoch_seconds_are_the_formatter_s(ts: float) -> None:
    from tcpflow_audit.report import _epoch
    assert _epoch(ts) == f"{ts:.6f}"


def _nudge(x: float, steps: int) -> float:
    import math
    for _ in range(abs(steps)):
        x = math.nextafter(x, math.inf if steps > 0 else -math.inf)
    return x
