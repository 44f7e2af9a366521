"""The hot path (ordinary segments) must give exactly the results of the reference path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tcpflow_audit.capture import CaptureReader
from tcpflow_audit.decode import SUPPORTED_LINKTYPES, Decoder
from tcpflow_audit.tracker import ConnectionTracker

SAMPLES = sorted((Path(__file__).parent.parent / "sample_pcaps").glob("*.pcap"))


def flows_of(path: Path, reference: bool) -> list[dict]:
    records = []
    tracker = ConnectionTracker(on_flow=records.append, reference=reference)
    decoder = Decoder()
    for ts, linktype, frame in CaptureReader(str(path), supported_linktypes=SUPPORTED_LINKTYPES):
        segment = decoder.decode(linktype, frame)
        if segment is not None:
            tracker.packet(ts, *segment)
    tracker.flush()
    return [dataclasses.asdict(r) for r in records]


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_hot_path_matches_reference(path: Path) -> None:
    fast = flows_of(path, reference=False)
    reference = flows_of(path, reference=True)
    assert fast, "every sample capture holds at least one connection"
    assert fast == reference
