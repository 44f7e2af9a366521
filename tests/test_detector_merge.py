"""Detector state split by connection and merged gives the findings of one run over every connection.

Runs will be split across processes by connection: each process feeds its connections to its own
DetectorSet, and the sets are merged (`DetectorSet.merge`). On every sample capture, the connections
are dealt to two or three sets by their 4-tuple (every incarnation of a 4-tuple to the same set, as a
split of the packets by 4-tuple gives: syn_timeout joins the connections of one attempt by 4-tuple) in
different ways; merged, their findings must be those of one set that saw them all.
"""

from __future__ import annotations

import os
import random

import pytest

from tcpflow_audit.detectors import DetectorSet, finding_row
from tcpflow_audit.detectors.thresholds import Thresholds
from tcpflow_audit.pipeline import Auditor

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sample_pcaps")
CAPTURES = sorted(name for name in os.listdir(SAMPLES) if name.endswith(".pcap"))


def _records(name: str) -> list:
    auditor = Auditor()
    records: list = []
    auditor.add_flow_sink(records.append)
    auditor.run([os.path.join(SAMPLES, name)])
    return records


def _tuple(r) -> tuple:
    return (r.client_ip, r.client_port, r.server_ip, r.server_port)


def _rows(detectors: DetectorSet) -> list[dict]:
    return [finding_row(f) for f in detectors.finish()]


@pytest.mark.parametrize("name", CAPTURES)
def test_split_and_merged_findings_are_those_of_one_run(name: str) -> None:
    records = _records(name)
    # low thresholds, so that rows with several connections and every severity show up
    t = Thresholds(
        close_wait_s=0.5,
        half_open_silence_s=2.0,
        time_wait_info_peak=2,
        server_active_close_min=2,
        refused_storm_count=3,
    )
    whole = DetectorSet(t)
    for record in records:
        whole.on_flow(record)
    expected = _rows(whole)
    tuples = sorted({_tuple(r) for r in records})
    for parts, seed in ((2, 1), (3, 2), (2, 3)):
        rnd = random.Random(seed)
        part = {key: rnd.randrange(parts) for key in tuples}
        sets = [DetectorSet(t) for _ in range(parts)]
        for record in records:
            sets[part[_tuple(record)]].on_flow(record)
        merged = sets[0]
        for other in sets[1:]:
            merged.merge(other)
        assert _rows(merged) == expected, (name, parts, seed)


def test_the_samples_give_findings_to_compare() -> None:
    kinds = set()
    t = Thresholds(close_wait_s=0.5, half_open_silence_s=2.0, time_wait_info_peak=2, server_active_close_min=2)
    for name in CAPTURES:
        detectors = DetectorSet(t)
        for record in _records(name):
            detectors.on_flow(record)
        kinds |= {f.kind for f in detectors.finish()}
    assert len(kinds) >= 12, kinds
