"""Report formatting helpers: the fast paths must write exactly what the plain library calls write."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from capture_helpers import epb, idb, shb
from conftest import nudge, sample, write_capture
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpflow_audit.capture import CaptureReader
from tcpflow_audit.report import _csv_text, iso_utc


def strftime_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


EDGES = [
    0.0,
    0.5,
    0.9999994,
    0.9999995,
    0.9999996,
    1.0000005,
    1700000000.0,
    1700000000.0000005,
    1700000000.9999995,
    1700000000.999999,
    1700000000.9999999,
    1763716500.123456,
    4294967295.999999,
    1e-7,
    86399.9999996,
    951782399.9999995,
]


def test_iso_utc_matches_strftime_on_edges() -> None:
    for ts in EDGES:
        assert iso_utc(ts) == strftime_iso(ts), ts
    assert iso_utc(None) == ""
    assert iso_utc(-1.25) == strftime_iso(-1.25)  # before 1970: the general formatter


@settings(max_examples=3000, deadline=None)
@given(st.floats(min_value=0.0, max_value=2**33, allow_nan=False))
def test_iso_utc_matches_strftime(ts: float) -> None:
    assert iso_utc(ts) == strftime_iso(ts)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 10**6))
def test_iso_utc_same_second_cache(second: int, micros: int) -> None:
    # consecutive calls inside one second reuse the cached date: the result must not drift
    a, b = second + micros / 1e6, second + 0.5
    assert (iso_utc(a), iso_utc(b), iso_utc(a)) == (strftime_iso(a), strftime_iso(b), strftime_iso(a))


def test_csv_cells() -> None:
    assert _csv_text(5) == "5" and _csv_text(-3) == "-3" and _csv_text(10**20) == str(10**20)
    assert _csv_text(True) == "true" and _csv_text(False) == "false"
    assert _csv_text(None) == "" and _csv_text(float("nan")) == "" and _csv_text(float("inf")) == ""
    assert _csv_text(1.5) == "1.5" and _csv_text(-0.0) == "-0.0" and _csv_text(0.0) == "0.0"
    assert _csv_text("ShADadFf") == "ShADadFf"
    for text in ("=1+2", "+cmd", "-x", "@SUM(A1)", "\tx", "\rx"):
        assert _csv_text(text) == "'" + text
    assert _csv_text("-1.5") == "-1.5"  # a negative number stays a number


def test_times_no_date_can_hold_are_written_as_epoch_seconds(tmp_path: Path, cli) -> None:
    """A pcapng may stamp any 64-bit time: past year 9999 the reports say epoch seconds, never crash."""
    assert iso_utc(1700000000.25) == "2023-11-14T22:13:20.250000Z"
    assert iso_utc(1740423638575.0) == "1740423638575.000000"
    assert iso_utc(float("nan")) == "nan"
    frames = [frame for _, _, frame in CaptureReader(sample("client_close.pcap"))]
    capture = write_capture(
        tmp_path / "future.pcapng",
        shb() + idb(1) + b"".join(epb(0, (1740423638575 + i) * 1_000_000, frame) for i, frame in enumerate(frames)),
    )
    for report, fmt in (("all", "table"), ("all", "json"), ("flows", "csv")):
        run = cli(capture, "--report", report, "--format", fmt)  # exit status 0, no traceback
        assert "1740423638575.000000" in run.stdout


@settings(max_examples=5000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(0, 2e10),
        st.floats(1.6e9, 1.9e9),
        # next to a half microsecond
        st.tuples(st.integers(0, 2 * 10**15), st.integers(-3, 3)).map(lambda t: nudge((t[0] + 0.5) / 1e6, t[1])),
    )
)
def test_epoch_seconds_are_the_formatter_s(ts: float) -> None:
    from tcpflow_audit.report import _epoch

    assert _epoch(ts) == f"{ts:.6f}"


# ---------------------------------------------------------------------- the table format (tables.py)
def test_names_break_after_underscores_and_semicolons() -> None:
    import re

    from tcpflow_audit.tables import wrap_names

    assert wrap_names("connection_refused;rst_abort", 11) == "connection_\nrefused;\nrst_abort"
    assert wrap_names("connection_refused;rst_abort", 19) == "connection_refused;\nrst_abort"
    assert wrap_names("client_state", 8) == "client_\nstate"
    assert wrap_names("client_state", 12) == "client_state"
    assert wrap_names("ShADadFfRrTtWw", 5) == "ShADadFfRrTtWw"  # no break point: left whole, for tabulate to cut
    for text in ("", "a", "x" * 50, "syn_during_time_wait", "zero_window_stall;half_open_peer,retransmission"):
        for width in (1, 5, 11, 28, 80):
            lines = wrap_names(text, width).split("\n")
            assert all(len(line) <= width or not re.search(r"[;,_].", line) for line in lines)
            assert "".join(lines) == text  # nothing lost, nothing added


def test_cells_are_printable_and_endpoints_join_address_and_port() -> None:
    from tcpflow_audit.tables import endpoint, printable

    assert printable("capture\n\x1b[31m.pcap") == "capture\\n\\x1b[31m.pcap"  # a file name cannot draw
    assert printable(None) == "" and printable(8080) == "8080"
    assert endpoint("10.0.0.1", 80) == "10.0.0.1:80"
    assert endpoint("2001:db8::1", 443) == "[2001:db8::1]:443"
    assert endpoint("10.0.0.1", None) == "10.0.0.1" and endpoint(None, None) == ""


def test_fit_counts_columns_as_tabulate_draws_them() -> None:
    from tcpflow_audit.tables import Column, fit

    # tabulate makes a column at least its header + 2 (MIN_PADDING) wide and puts 2 spaces between columns
    columns = (Column("name", 0), Column("detail", 1, wrap_to=10), Column("when", 2))
    assert fit(columns, [5, 34, 20], None) == [(0, 6), (1, 34), (2, 20)]
    assert fit(columns, [5, 34, 20], 64) == [(0, 6), (1, 34), (2, 20)]  # everything fits
    # narrowest: name 6 (its header + 2) + detail 10 (wrap_to) + when 20, and two separators: 40
    assert fit(columns, [5, 34, 20], 40) == [(0, 6), (1, 10), (2, 20)]
    assert fit(columns, [5, 34, 20], 42) == [(0, 6), (1, 12), (2, 20)]  # spare width goes to the wrapped one
    assert fit(columns, [5, 34, 20], 39) == [(0, 6), (1, 31)]  # 'when' left out: detail takes the room
    # of two wrapped columns, the more important gets the spare width first
    assert fit((Column("a", 0, wrap_to=5), Column("b", 1, wrap_to=5)), [10, 10], 16) == [(0, 9), (1, 5)]
    assert fit(columns, [5, 34, 20], 39, headers=False) == [(0, 5), (1, 10), (2, 20)]  # no header, no padding
    # a header split after '_' (client_ / state: 7 + 2) makes room; spare width puts it back on one line first
    states = (Column("client_state", 0), Column("detail", 1, wrap_to=10))
    assert fit(states, [6, 30], 21) == [(0, 9), (1, 10)]
    assert fit(states, [6, 30], 26) == [(0, 14), (1, 10)]
    assert fit(states, [6, 30], 25) == [(0, 9), (1, 14)]  # (not enough to put the header back: detail gets it)


def test_render_wraps_with_tabulate_and_sets_tall_rows_apart() -> None:
    from tcpflow_audit.tables import Column, TableStyle, render

    columns = (Column("client_state", 0), Column("detail", 1, wrap_to=10), Column("when", 2))
    rows = [
        ("CLOSED", "short", "09:19:39Z"),
        ("TIME_WAIT", "a fairly long sentence about alpha", "09:19:40Z"),
        ("CLOSED", "short", "09:19:41Z"),
        ("CLOSED", "short", "09:19:42Z"),
    ]
    lines = list(render(columns, rows, list, TableStyle(width=32)))
    # (detail may be 10 wide; textwrap's lines are at most 8: tabulate draws the column 8 wide)
    assert lines[:2] == ["client_    detail    when", "state"]
    rule = "---------  --------  ---------"
    assert lines[2] == rule and all(len(line) <= 32 for line in lines)
    assert lines[3:] == [
        "CLOSED     short     09:19:39Z",
        rule,  # tabulate's separating line sets the row on several lines apart
        "TIME_WAIT  a fairly  09:19:40Z",
        "           long",
        "           sentence",
        "           about",
        "           alpha",
        rule,
        "CLOSED     short     09:19:41Z",
        "CLOSED     short     09:19:42Z",
    ]
    lines = list(render(columns, rows, list, TableStyle(width=30)))
    assert " ".join(lines[-2:]) == "(not shown at width 30: when; --width 0 shows all)"
    assert all(len(line) <= 30 for line in lines)
    # without a width nothing is wrapped or left out
    assert max(map(len, render(columns, rows, list, TableStyle()))) == 14 + 2 + 34 + 2 + 9


def test_tabulate_is_only_imported_for_a_table(tmp_path) -> None:
    import subprocess
    import sys

    program = (
        "import sys\nfrom tcpflow_audit.cli import main\ntry:\n"
        "    main([sys.argv[1], '--report', 'all', '--format', 'json', '-o', sys.argv[2]])\n"
        "finally:\n    print('tabulate' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", program, str(sample("demo.pcap")), str(tmp_path / "all.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.stdout.strip() == "False", run.stderr
    assert (tmp_path / "all.json").stat().st_size > 0


def test_summary_fits_the_narrowest_width_with_every_value() -> None:
    from tcpflow_audit.tables import MIN_WIDTH, TableStyle, render_summary

    summary = {
        "files": ["sample_pcaps/a_capture_with_a_long_name.pcap", "b.pcap"],
        "first_packet": "2026-11-21T09:19:38.930416Z",
        "last_packet": "2026-11-21T09:19:41.338841Z",
        "packets_read": 5,
        "tcp_packets": 3,
        "filtered_out": 1,
        "skipped_packets": {"unsupported_linktype": 2},
        "connections": 1,
        "interrupted": True,
        "evicted_connections": 7,
        "files_passed_over": 2,
        "input_problems": ["b.pcap at byte 24: corrupt record header"],
        "conn_state": {"SF": 1},
        "client_state": {"TIME_WAIT": 1},
        "server_state": {"CLOSED": 1},
        "end_reason": {"fin": 1},
    }
    lines = list(render_summary(summary, TableStyle(width=MIN_WIDTH)))
    assert all(len(line) <= MIN_WIDTH for line in lines) and not any("not shown" in line for line in lines)
    text = "".join("".join(lines).split())
    for value in (
        "sample_pcaps/a_capture_with_a_long_name.pcap,b.pcap",
        "unsupported_linktype",
        "evicted(tablefull)7",
        "thepacketsreaduntilthen",
        "2026-11-21T09:19:41.338841Z",
        "filespassedover2(indirectories;notcaptures)",
        "inputproblems1",
    ):
        assert value in text, value
