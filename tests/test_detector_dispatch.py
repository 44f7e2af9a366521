"""DetectorSet shows a finished connection only to the detectors that watch one of its fact families.

The index it keeps (fact families -> detectors) is built from each detector's own declaration
(`Detector.watches`, in its module): a declaration narrower than what the detector reacts to would
drop findings or tags. Here every sample capture's connections go through a set that screens them and
through one whose detectors all watch every connection (the same detectors, the same code): tags and
findings must be the same, with the default thresholds and with thresholds that make the rules fire
on far more connections.
"""

from __future__ import annotations

import dataclasses

import pytest
from conftest import sample_captures

from tcpflow_audit.connection import FlowRecord
from tcpflow_audit.detectors import DetectorSet, finding_row
from tcpflow_audit.detectors.base import ALWAYS, EVERY_FLOW
from tcpflow_audit.detectors.thresholds import Thresholds
from tcpflow_audit.pipeline import Auditor

# thresholds at their most sensitive where a rule waits or counts: more connections are hits
_SENSITIVE = {
    "half_open_silence_s": 0.0,
    "zero_window_s": 0.0,
    "close_wait_s": 0.0,
    "close_wait_min_s": 0.0,
    "handshake_timeout_s": 0.0,
    "syn_timeout_retries": 0,
    "missing_ack_synack_retries": 0,
    "time_wait_info_peak": 1,
}


def _records() -> list[list[FlowRecord]]:
    """Each sample capture's finished connections, in finishing order."""
    captures = []
    for path in sample_captures():
        records: list[FlowRecord] = []
        auditor = Auditor()
        auditor.add_flow_sink(records.append)
        auditor.run([str(path)])
        captures.append(records)
    return captures


CAPTURES = _records()


def _run(records: list[FlowRecord], thresholds: Thresholds, screened: bool) -> tuple[list, list]:
    """(each connection's tags, the findings' rows) of a set that screens, or shows every connection to
    every detector."""
    detectors = DetectorSet(thresholds)
    if not screened:
        for d in detectors.detectors:
            d.watches = EVERY_FLOW
    tags = []
    for r in records:
        copy = dataclasses.replace(r, facts=dataclasses.replace(r.facts, anomalies=[]))
        tags.append(detectors.on_flow(copy))
    return tags, [finding_row(f) for f in detectors.finish()]


@pytest.mark.parametrize("sensitive", [False, True], ids=["default", "sensitive"])
def test_screening_drops_no_tag_and_no_finding_on_the_samples(sensitive: bool) -> None:
    thresholds = Thresholds(**_SENSITIVE) if sensitive else Thresholds()
    tagged = findings = 0
    for records in CAPTURES:
        tags, rows = _run(records, thresholds, screened=True)
        assert (tags, rows) == _run(records, thresholds, screened=False)
        tagged += sum(1 for t in tags if t)
        findings += len(rows)
    # (the comparison covers many tags and findings of many kinds)
    assert tagged > 100 and findings > 50


def test_most_connections_reach_few_detectors() -> None:
    """The screening does something: an ordinary connection (no fact family of note) reaches only the
    detectors that watch every connection, and most sample connections are ordinary ones."""
    detectors = DetectorSet()
    ordinary = detectors.watchers(ALWAYS)
    assert 0 < len(ordinary) < len(detectors.detectors) // 2
    assert all(d.watches == EVERY_FLOW for d in ordinary)
    for records in CAPTURES:
        for r in records:
            detectors.on_flow(dataclasses.replace(r, facts=dataclasses.replace(r.facts, anomalies=[])))
    # one list per combination of fact families that turned up, the ordinary one the most common
    assert ALWAYS in detectors.watching and len(detectors.watching) < 200
