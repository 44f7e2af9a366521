"""Parquet output: the same values as the CSV, typed (timestamps as timestamps, ports and counts as
integers, flags as booleans, a missing value as null), read back through pandas."""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import sample

from tcpflow_audit.columnar import ROW_GROUP, SCHEMAS, ParquetRows, _microseconds

pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow (the parquet extra)")

CAPTURES = ["demo.pcap", "syn_flood.pcap", "sockets_mix.pcap"]


def csv_frame(text: str) -> pd.DataFrame:
    """The CLI's CSV as plain text cells ("" for empty), so no reader guesses types."""
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


def assert_same_values(parquet: pd.DataFrame, text: pd.DataFrame, report: str) -> None:
    columns, types = SCHEMAS[report]
    assert list(parquet.columns) == list(text.columns) == list(columns)
    assert len(parquet) == len(text)
    for column in columns:
        kind = types[column]
        typed, cells = parquet[column], text[column]
        if kind == "timestamp":
            assert str(typed.dtype) == "datetime64[us, UTC]", column
            expected = pd.to_datetime(cells.replace("", None), utc=True, format="ISO8601")
            assert (typed.isna() == expected.isna()).all() and (typed.dropna() == expected.dropna()).all(), column
        elif kind == "int":
            assert str(typed.dtype) in ("int64", "Int64") or typed.isna().any(), (column, typed.dtype)
            for value, cell in zip(typed, cells, strict=True):
                assert (cell == "" and pd.isna(value)) or int(cell) == value, (column, value, cell)
        elif kind == "float":
            for value, cell in zip(typed, cells, strict=True):
                assert (cell == "" and pd.isna(value)) or float(cell) == value, (column, value, cell)
        elif kind == "bool":
            assert typed.dtype == bool and list(typed) == [cell == "true" for cell in cells], column
        else:
            assert [("" if pd.isna(v) else v) for v in typed] == list(cells), column


@pytest.mark.parametrize("capture", CAPTURES)
@pytest.mark.parametrize("report", ["flows", "anomalies", "sockets", "timeline"])
def test_parquet_has_the_csv_values_typed(cli, tmp_path: Path, capture: str, report: str):
    out = tmp_path / f"{report}.parquet"
    cli(sample(capture), "--report", report, "--format", "parquet", "-o", out)
    text = csv_frame(cli(sample(capture), "--report", report, "--csv").stdout)
    assert_same_values(pd.read_parquet(out), text, report)


def test_output_dir_parquet_beside_the_csv(cli, tmp_path: Path):
    out = tmp_path / "nightly"
    cli(sample("syn_flood.pcap"), sample("demo.pcap"), "--output-dir", out, "--parquet", "--sockets")
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "anomalies.csv",
        "anomalies.parquet",
        "flows.csv",
        "flows.parquet",
        "report.html",
        "sockets.csv",
        "sockets.parquet",
        "summary.json",
        "timeline.csv",
        "timeline.parquet",
    ]
    for report in ("flows", "anomalies", "sockets", "timeline"):
        assert_same_values(
            pd.read_parquet(out / f"{report}.parquet"), csv_frame((out / f"{report}.csv").read_text()), report
        )
    # without --sockets the set holds no socket tables (they cost the engine a record of every state change)
    plain = tmp_path / "plain"
    cli(sample("demo.pcap"), "--output-dir", plain, "--parquet")
    assert sorted(p.name for p in plain.iterdir()) == [
        "anomalies.csv",
        "anomalies.parquet",
        "flows.csv",
        "flows.parquet",
        "summary.json",
    ]
    flows = pd.read_parquet(out / "flows.parquet")
    assert len(flows) == 3029 and str(flows["client_port"].dtype) == "int64"
    # one query over a month of such sets: the nightly directory's files, one glob
    assert len(pd.read_parquet([out / "flows.parquet", out / "flows.parquet"])) == 2 * 3029


def test_row_groups_stream(tmp_path: Path):
    """Rows go out a row group at a time: a report longer than one group is whole, in order."""
    path = tmp_path / "many.parquet"
    with open(path, "wb") as stream:
        rows = ParquetRows(stream, "sockets")
        for n in range(4 * ROW_GROUP + 3):  # (the writer keeps one row group at most)
            rows.write({"host": "10.0.0.1", "port": n % 65536, "role": "server", "ESTABLISHED": n})
            assert len(rows.pending[0]) < ROW_GROUP
        rows.close()
    frame = pd.read_parquet(path)
    assert list(frame["ESTABLISHED"]) == list(range(4 * ROW_GROUP + 3))
    assert frame["SYN_SENT"].isna().all()


def test_times_as_the_csv_writes_them():
    assert _microseconds("2026-11-21T09:19:38.930416Z") == 1795252778930416
    assert _microseconds("1740423638575.000000") == 1740423638575000000
    assert _microseconds(1.5) == 1500000 and _microseconds("") is None and _microseconds(math.nan) is None


def test_parquet_needs_a_file_and_one_table(cli):
    assert "-o FILE" in cli(sample("demo.pcap"), "--report", "flows", "--format", "parquet", status=2).stderr
    assert "one table" in cli(sample("demo.pcap"), "--format", "parquet", "-o", "x.parquet", status=2).stderr


def test_without_pyarrow_parquet_says_what_to_install(cli, monkeypatch, tmp_path: Path):
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # (import fails, as without the package)
    result = cli(
        sample("demo.pcap"), "--report", "flows", "--format", "parquet", "-o", tmp_path / "f.parquet", status=2
    )
    assert "pip install 'tcpflow-audit[parquet]'" in result.stderr and not (tmp_path / "f.parquet").exists()
    assert "parquet" in cli(sample("demo.pcap"), "--output-dir", tmp_path / "out", "--parquet", status=2).stderr
    cli(sample("demo.pcap"), "--output-dir", tmp_path / "out")  # the rest works
