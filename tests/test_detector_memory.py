"""The detectors' state under a SYN flood stays small per SYN.

A spoofed flood (bench/gen_capture.py: random sources, one SYN each, to one server ip:port) is a
million one-packet connections to the detectors: per source port_scan sees a (source, host) and a
(source, port) pair, syn_timeout an unanswered attempt. Each such one-attempt record is kept
compact (one tuple by source, not two sweeps with a set and a rate window each), so what the
detectors hold after the flood is a few hundred bytes per SYN at most, and the flood is still found.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from tcpflow_audit.connection import FlowRecord
from tcpflow_audit.detectors import DetectorSet
from tcpflow_audit.pipeline import Auditor

ROOT = Path(__file__).resolve().parent.parent
SYNS = 50_000
# What all detectors hold per flood SYN once every connection was seen (compiled build): 2,227 bytes with a
# sweep (a set and a rate window) per (source, target) pair of port_scan and an object per attempt in
# syn_timeout; about 500 with each first attempt kept as a tuple (port_scan's one per source).
MAX_BYTES_PER_SYN = 700


@pytest.fixture(scope="module")
def flood_records(tmp_path_factory: pytest.TempPathFactory) -> list[FlowRecord]:
    """The finished connections of SYNS spoofed SYNs sent over one second."""
    out = tmp_path_factory.mktemp("flood") / "flood.pcap"
    subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "gen_capture.py")),
            *("--syn-flood", str(SYNS), "--flood-rate", str(SYNS), "--seed", "5", "--out", str(out)),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    records: list[FlowRecord] = []
    auditor = Auditor()
    auditor.add_flow_sink(records.append)
    auditor.run([str(out)])
    return records


def test_detector_memory_per_flood_syn_bounded(flood_records: list[FlowRecord]) -> None:
    assert len(flood_records) == SYNS
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        detectors = DetectorSet()
        for r in flood_records:
            detectors.on_flow(r)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / SYNS < MAX_BYTES_PER_SYN, f"{held / SYNS:.0f} bytes per flood SYN"
    assert "syn_flood" in {f.kind for f in detectors.finish()}
