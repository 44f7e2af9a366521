"""The shortcuts taken once per finished connection must give what the long way gives.

* FlowRecord and ConnectionFacts are dataclasses that `Connection.to_record` fills field by field
  (their generated __init__ would run interpreted): every field of every record is set, to what the
  generated __init__ would have made of it, and "nothing" is each field's own default.
* The detectors see a connection only when it has a fact family they watch: no rule fires on one without.
* The detectors drop time-bound state as they go: same findings as a run that keeps it all.
* RowWriter writes a CSV row that needs no quoting with one join instead of csv.writer: same bytes.
* RowWriter.write_flow builds the flows.csv cells straight from the record: same bytes as
  write(flow_row(record)) and as csv.writer.
* iso_utc keeps the text of many seconds, flows.csv the text of floats seen lately: same text after the
  cache is cleared, and 0.0 and -0.0 (one key) keep their own text.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random
from datetime import UTC, datetime

import pytest
from conftest import sample, sample_captures
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpflow_audit.connection import ConnectionFacts, FlowRecord
from tcpflow_audit.detectors import DetectorSet, finding_row
from tcpflow_audit.detectors.base import ALWAYS, RuleDetector, facts_seen
from tcpflow_audit.detectors.thresholds import Thresholds
from tcpflow_audit.pipeline import Auditor
from tcpflow_audit.report import FLOW_COLUMNS, RowWriter, flow_csv_line, flow_row, iso_utc, spreadsheet_safe

SAMPLES = sample_captures()


# ---------------------------------------------------------------------------------- records
def _records() -> list[FlowRecord]:
    auditor = Auditor()
    records: list[FlowRecord] = []
    auditor.add_flow_sink(records.append)
    auditor.run([str(sample("normal_mix.pcap"))])
    return records


def test_records_behave_as_dataclasses() -> None:
    record = _records()[0]
    facts = record.facts
    # defaults, and a new anomalies list for every instance
    required = [
        f.name
        for f in dataclasses.fields(ConnectionFacts)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    a = ConnectionFacts(**{name: getattr(facts, name) for name in required})
    b = ConnectionFacts(*[getattr(facts, name) for name in required])
    assert a == b and a.anomalies == [] and a.anomalies is not b.anomalies
    assert (a.time_wait_holder, a.time_wait_holder_ip, a.time_wait_holder_port, a.time_wait_until) == ("", b"", 0, None)
    # replace and asdict (the tests compare records as dicts)
    copy = dataclasses.replace(record, facts=dataclasses.replace(facts))
    assert copy == record and copy.facts is not facts
    assert dataclasses.asdict(copy) == dataclasses.asdict(record)
    assert dataclasses.asdict(record)["facts"]["anomalies"] == facts.anomalies
    assert dataclasses.replace(record, finalised_at=1.5).finalised_at == 1.5
    assert "FlowRecord(start=" in repr(record) and "ConnectionFacts(syn_ts=" in repr(facts)


def _sample_records() -> list[FlowRecord]:
    records: list[FlowRecord] = []
    for path in SAMPLES:
        auditor = Auditor()
        auditor.add_flow_sink(records.append)
        auditor.run([str(path)])
    return records


SAMPLE_RECORDS = _sample_records()


@pytest.mark.parametrize("cls", [FlowRecord, ConnectionFacts])
def test_to_record_sets_every_field_as_the_generated_init_would(cls: type) -> None:
    records = SAMPLE_RECORDS if cls is FlowRecord else [r.facts for r in SAMPLE_RECORDS]
    fields = dataclasses.fields(cls)
    assert len(records) > 100
    defaulted = 0
    for record in records:
        values = {f.name: getattr(record, f.name) for f in fields}  # AttributeError: a field left unset
        assert cls(**values) == record
        for f in fields:
            value = values[f.name]
            if f.default is not dataclasses.MISSING and not value:
                # a field with nothing in it holds its declared default, of the same type (0, 0.0, None, "")
                assert value == f.default and type(value) is type(f.default), (f.name, value)
                defaulted += 1
            elif f.default_factory is not dataclasses.MISSING and not value:
                assert value == f.default_factory() and type(value) is type(f.default_factory()), f.name
    assert defaulted > len(records) // 2  # the check above ran (tunnel is "" on most FlowRecords)


# ---------------------------------------------------------------------------------- screening
# times are seconds after the connection's start (None: never happened)
_TIME_FIELDS = {f.name for f in dataclasses.fields(ConnectionFacts) if f.name.endswith(("_ts", "_from", "_until"))}
_TIMES = st.one_of(st.none(), st.sampled_from([-1.0, 0.0, 0.001, 0.01, 0.1, 0.5, 1.0, 99.5, 100.0, 100.5, 180.0, 1e6]))
_COUNTS = st.sampled_from([0, 1, 3])
_FACT_VALUES = {
    **{name: _TIMES for name in _TIME_FIELDS},
    **{name: st.sampled_from([0.0, 1.0, 100.0, 180.0, 1e6]) for name in ("client_last_ts", "server_last_ts")},
    **{
        name: st.sampled_from([0.0, 1e-9, 0.5, 5.0, float("nan")])
        for name in ("client_zero_window_s", "server_zero_window_s")
    },
    **{name: st.booleans() for name in ("client_fin_acked", "server_fin_acked", "syn_in_time_wait")},
    **{
        name: _COUNTS
        for name in (
            "syn_retransmits",
            "synack_retransmits",
            "client_fin_retransmits",
            "server_fin_retransmits",
            "bad_synack",
            "bad_third_ack",
            "client_data_after_close",
            "server_data_after_close",
            "client_payload_packets",
            "server_payload_packets",
            "client_packets_since_peer",
            "server_packets_since_peer",
            "client_keepalives",
            "server_keepalives",
            "client_keepalives_unanswered",
            "server_keepalives_unanswered",
        )
    },
}
_SCREENED = [r for r in SAMPLE_RECORDS if facts_seen(r, 75.0) == ALWAYS]


def test_most_sample_connections_are_screened_out() -> None:
    assert len(_SCREENED) > 100 and len(_SCREENED) < len(SAMPLE_RECORDS)


@settings(max_examples=3000, deadline=None)
@given(
    base=st.sampled_from(_SCREENED or SAMPLE_RECORDS),
    changes=st.dictionaries(st.sampled_from(sorted(_FACT_VALUES)), st.just(None), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: _FACT_VALUES[k] for k in keys})
    ),
    server_packets=_COUNTS,
    silence=st.sampled_from([0.0, 1e-9, 1.0, 75.0, 1e9]),
    zero_window=st.sampled_from([0.0, 1.0, 2.0]),
    obs_end=st.sampled_from([0.0, 100.0, 1e6, 1e9, 1e10]),
)
def test_no_rule_fires_on_a_connection_without_the_facts_it_watches(
    base: FlowRecord, changes: dict, server_packets: int, silence: float, zero_window: float, obs_end: float
) -> None:
    """DetectorSet shows a connection to a detector only when it has one of the fact families the detector
    watches: a rule must never fire on a connection that has none of them."""
    changes = {
        name: base.start + value if name in _TIME_FIELDS and value is not None else value
        for name, value in changes.items()
    }
    r = dataclasses.replace(
        base, server_packets=server_packets, facts=dataclasses.replace(base.facts, anomalies=[], **changes)
    )
    t = Thresholds(
        half_open_silence_s=silence,
        zero_window_s=zero_window,
        close_wait_s=0.0,
        handshake_timeout_s=0.0,
        syn_timeout_retries=0,
        missing_ack_synack_retries=0,
    )
    detectors = DetectorSet(t)
    seen = facts_seen(r, detectors.quiet_gap)
    for d in detectors.detectors:
        if not d.watches & seen:
            if isinstance(d, RuleDetector):
                assert d.rule(r, obs_end) is None, d.kind
            else:
                assert not d.observe(r, obs_end, -1), d.kind


# ---------------------------------------------------------------------------------- pruning
def test_pruning_keeps_the_time_wait_findings_of_a_run_without_pruning(monkeypatch) -> None:
    """Detectors drop time-bound state every few thousand flows (memory bound): the TIME_WAIT populations,
    flows out of order included, must come out as in a run that never prunes, and the client windows of
    a long run must not pile up."""
    rnd = random.Random(5)
    base = _records()[0]
    servers = [bytes([10, 0, 0, i]) for i in range(3)]
    records = []
    for flow in range(1, 30001):
        end = flow * 0.03 + rnd.choice([0.0, 0.0, -5.0, -15.0])  # some flows come late (within 2 windows)
        fin = end - rnd.choice([0.0, 0.5])
        until = None if rnd.random() < 0.1 else fin + rnd.choice([-1.0, 0.0, 0.3, 1.0, 9.5, 10.0, 30.0, 60.0])
        server, client = rnd.choice(servers), bytes([10, 1, rnd.randrange(40), rnd.randrange(250)])
        records.append(
            dataclasses.replace(
                base,
                start=end - 1.0,
                end=end,
                client_ip=client,
                server_ip=server,
                server_port=80,
                client_time_wait_until=until,
                server_time_wait_until=None,
                close_initiator="client",
                facts=dataclasses.replace(
                    base.facts,
                    client_fin_ts=fin,
                    server_fin_ts=None,
                    client_last_ts=end,
                    server_last_ts=end,
                    anomalies=[],
                ),
            )
        )
    t = Thresholds(time_wait_info_peak=1)
    pruned = DetectorSet(t, time_wait_s=10.0)
    for record in records:
        pruned.on_flow(record)
    time_wait = next(d for d in pruned.detectors if d.kind == "excess_time_wait")
    kept = sum(len(s.clients) for s in time_wait.states if s is not None)
    monkeypatch.setattr("tcpflow_audit.detectors._PRUNE_EVERY", 10**9)
    whole = DetectorSet(t, time_wait_s=10.0)
    for record in records:
        whole.on_flow(record)
    # the clients kept are those with a TIME_WAIT entry in the last few windows (10 s each) of 900 s
    every = sum(len(s.clients) for s in next(d for d in whole.detectors if d.kind == "excess_time_wait").states if s)
    assert every > 14000 and kept < every // 4
    assert [finding_row(f) for f in pruned.finish()] == [finding_row(f) for f in whole.finish()]


# ---------------------------------------------------------------------------------- CSV
def reference_cell(value: object) -> object:
    """The documented cell rule, stated plainly for csv.writer (which writes numbers itself): nothing for
    None, an infinity or NaN; true/false; text guarded against formulas."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return spreadsheet_safe(value)


def csv_writer_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    """csv.writer, cell by cell, on the documented cell rule: what RowWriter's joined lines must equal."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([reference_cell(row[c]) for c in columns])
    return out.getvalue()


def row_writer_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = RowWriter(out, "csv", columns)
    for row in rows:
        writer.write(row)
    return out.getvalue()


_CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.sampled_from(list(',"\r\n\t =+-@;:^.0123456789aZé\u2028\x00')), max_size=6),
)


@settings(max_examples=2000, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n: st.lists(st.lists(_CELLS, min_size=n, max_size=n), max_size=4)))
def test_csv_rows_are_what_csv_writer_writes(cells: list[list]) -> None:
    columns = tuple(f"c{i}" for i in range(len(cells[0]))) if cells else ("c0",)
    rows = [dict(zip(columns, row, strict=True)) for row in cells]
    assert row_writer_text(rows, columns) == csv_writer_text(rows, columns)


def test_csv_rows_that_need_quoting() -> None:
    columns = ("a", "b")
    rows = [
        {"a": "x,y", "b": 1},
        {"a": 'say "hi"', "b": None},
        {"a": "two\nlines", "b": True},
        {"a": "cr\rhere", "b": 2.5},
        {"a": "", "b": ""},
        {"a": "=1+2", "b": math.inf},
    ]
    assert row_writer_text(rows, columns) == csv_writer_text(rows, columns)
    for value in ("", None, "x", ",", 0):  # one column: csv.writer quotes a lone empty cell
        assert row_writer_text([{"a": value}], ("a",)) == csv_writer_text([{"a": value}], ("a",))


def flow_writer_text(records: list[FlowRecord]) -> str:
    out = io.StringIO()
    writer = RowWriter(out, "csv", FLOW_COLUMNS)
    for record in records:
        writer.write_flow(record)
    assert writer.count == len(records)
    return out.getvalue()


def test_flow_rows_straight_from_the_records_on_the_samples() -> None:
    records: list[FlowRecord] = []
    for path in SAMPLES:
        auditor = Auditor()
        DetectorSet.attach(auditor)  # tags the anomalies before the next sink sees the record
        auditor.add_flow_sink(records.append)
        auditor.run([str(path)])
    rows = [flow_row(r) for r in records]
    assert len(records) > 1000 and any(r.facts.anomalies for r in records)
    assert any(len(r.client_ip) == 16 for r in records) and any(r.syn_synack_ms is None for r in records)
    assert flow_writer_text(records) == csv_writer_text(rows, FLOW_COLUMNS)


_ODD_TEXTS = st.sampled_from(["", "SF", "-x", "=1+2", "@a", "+1", "-1.5", "a,b", 'q"q', "two\nlines", "\tT"])


@settings(max_examples=1500, deadline=None)
@given(
    base=st.sampled_from(SAMPLE_RECORDS),
    start=st.one_of(
        st.just(None),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, -1.5, 1e-7, 0.9999995, 1700000000.0000005, 253402300800.0, 1e300]),
    ),
    duration=st.sampled_from([0.0, 1e-7, 0.5, 3.25e-4, 1e9, float("nan")]),
    texts=st.fixed_dictionaries(
        {
            name: _ODD_TEXTS
            for name in ("conn_state", "history", "client_state", "server_state", "close_initiator", "end_reason")
        }
    ),
    handshake=st.sampled_from([None, 0.0, -0.0, 0.1234, 1e-9, 1.0, float("inf"), float("nan")]),
    anomalies=st.lists(_ODD_TEXTS, max_size=3),
    big=st.sampled_from([0, 7, 2**70]),
)
def test_flow_rows_straight_from_odd_records(
    base: FlowRecord,
    start: float | None,
    duration: float,
    texts: dict,
    handshake: float | None,
    anomalies: list[str],
    big: int,
) -> None:
    begin = base.start if start is None else start
    record = dataclasses.replace(
        base,
        start=begin,
        end=begin + duration,
        syn_synack_ms=handshake,
        client_bytes=big,
        retransmits=-big,
        direction_guessed=bool(big),
        facts=dataclasses.replace(base.facts, anomalies=anomalies),
        **texts,
    )
    assert flow_writer_text([record]) == csv_writer_text([flow_row(record)], FLOW_COLUMNS)


# ---------------------------------------------------------------------------------- iso_utc
def test_iso_utc_over_more_seconds_than_it_keeps() -> None:
    for ts in [1700000000 + i * 1.25 + 0.0000005 for i in range(10000)] + [3.5, 1700000000.9999995]:
        assert iso_utc(ts) == datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), ts


def test_float_cells_over_more_values_than_it_keeps() -> None:
    base = SAMPLE_RECORDS[0]
    values = [0.0, -0.0, 1.0, -1.0, 0.5] + [round(i * 0.001, 3) for i in range(9000)] + [-0.0, 0.0, 1.0, 0.5]
    for value in values:
        record = dataclasses.replace(base, syn_synack_ms=value, synack_ack_ms=-value)
        line = flow_csv_line(record)
        assert line is not None and line == csv_writer_text([flow_row(record)], FLOW_COLUMNS).split("\n")[1] + "\n"
        assert f",{value!r},{-value!r}," in line
