#!/usr/bin/env python3
"""Where the time goes: the full job's stages timed one on top of the other on one capture.

    .venv/bin/python bench/profile_stages.py bench/work/kernel.pcap [--runs 3] [--detectors] [--sinks]

Each line runs the pipeline up to and including one more stage (reading record blocks; decoding
and the connection engine, one loop; the detectors; the summary; writing the flows.csv rows to
/dev/null), takes the best CPU time of --runs
runs, and prints what that stage added, per packet and as a share of the whole. CPU time (not
wall time) and the best of several runs keep the noise of a shared machine out. The build
(compiled or pure Python) is printed first; each stage's cost is also given per connection (real
traffic differs from generated traffic mostly in the work done once per connection).
--detectors then times the detector set's own work per connection and what each detector alone adds
to it, on the capture's finished connections; --sinks each
per-connection stage alone (all detectors, the summary, the rows): steadier on a busy machine than
the differences between cumulative stages.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

from tcpflow_audit.build import describe
from tcpflow_audit.capture import CaptureReader, RecordBlock
from tcpflow_audit.connection import FlowRecord
from tcpflow_audit.decode import SUPPORTED_LINKTYPES
from tcpflow_audit.detectors import DetectorSet
from tcpflow_audit.pipeline import Auditor
from tcpflow_audit.report import FLOW_COLUMNS, RowWriter, SummaryCollector


def detector_times(path: str, runs: int) -> list[tuple[str, float]]:
    """Best CPU seconds of the detector set's own work (what it does once per connection for all of them:
    the service id, the fact families, the dispatch) with no detector, then what each detector alone adds
    to that, over the capture's finished connections (in finishing order)."""
    records: list[FlowRecord] = []
    auditor = Auditor()
    auditor.add_flow_sink(records.append)
    auditor.run([path])

    def timed(keep: Callable[[list[Any]], list[Any]]) -> float:
        best = float("inf")
        for _ in range(runs):
            alone = DetectorSet()
            alone.detectors = keep(alone.detectors)
            started = time.process_time()
            for record in records:
                alone.on_flow(record)
            alone.finish()
            best = min(best, time.process_time() - started)
            for record in records:  # (the tags it added)
                record.facts.anomalies.clear()
        return best

    # without the cyclic collector, as in the pipeline (`Auditor.run`): with it, the collections that
    # the detectors' allocations set off walk every kept record, and their time lands on the detectors
    gc.disable()
    own = timed(lambda detectors: [])
    times = [("(the set's own work, no detector)", own)]
    for i, detector in enumerate(DetectorSet().detectors):
        times.append((detector.kind, max(timed(lambda detectors, i=i: [detectors[i]]) - own, 0.0)))
    gc.enable()
    return times


def sink_times(path: str, runs: int) -> list[tuple[str, float]]:
    """Best CPU seconds of each per-connection stage alone over the capture's finished connections (in
    finishing order, the cyclic collector off as in the pipeline): all detectors, the summary counts, the
    flows.csv rows. Alone, a stage's cost stands out of the noise that the cumulative stages add."""
    records: list[FlowRecord] = []
    auditor = Auditor()
    auditor.add_flow_sink(records.append)
    auditor.run([path])
    tagged = DetectorSet()  # the rows carry the tags the detectors give
    for record in records:
        tagged.on_flow(record)

    def detectors() -> None:
        tags = [list(record.facts.anomalies) for record in records]
        for record in records:
            record.facts.anomalies.clear()
        started = time.process_time()
        alone = DetectorSet()
        for record in records:
            alone.on_flow(record)
        alone.finish()
        timed.append(time.process_time() - started)
        for record, kept in zip(records, tags, strict=True):
            record.facts.anomalies[:] = kept

    def summary() -> None:
        started = time.process_time()
        collector = SummaryCollector()
        for record in records:
            collector(record)
        timed.append(time.process_time() - started)

    def rows() -> None:
        with open("/dev/null", "w", encoding="utf-8", newline="") as sink:
            started = time.process_time()
            writer = RowWriter(sink, "csv", FLOW_COLUMNS)
            for record in records:
                writer.write_flow(record)
            timed.append(time.process_time() - started)

    times = []
    gc.disable()
    for name, stage in (("detectors", detectors), ("summary counts", summary), ("flows.csv rows", rows)):
        timed: list[float] = []
        for _ in range(runs):
            stage()
        times.append((name, min(timed)))
    gc.enable()
    return times


def read_blocks(path: str) -> int:
    """What the loop reads: RecordBlock runs, records otherwise."""
    packets = 0
    for item in CaptureReader(path, supported_linktypes=SUPPORTED_LINKTYPES).blocks():
        packets += item.count if isinstance(item, RecordBlock) else 1
    return packets


CONNECTIONS: list[int] = []  # connections of the latest Auditor run


def auditor_with(level: int) -> Callable[[str], int]:
    """The real Auditor with the first `level` flow sinks of the CLI's --output-dir job."""

    def run(path: str) -> int:
        stats = run_stats(path)
        CONNECTIONS[:] = [stats.connections]
        return stats.packets_read

    def run_stats(path: str) -> Any:
        auditor = Auditor()
        if level >= 1:
            DetectorSet.attach(auditor)
        if level >= 2:
            auditor.add_flow_sink(SummaryCollector())
        if level >= 3:
            with open("/dev/null", "w", encoding="utf-8", newline="") as sink:
                writer = RowWriter(sink, "csv", FLOW_COLUMNS)
                auditor.add_flow_sink(writer.write_flow)
                return auditor.run([path])
        return auditor.run([path])

    return run


# The loop decodes in place as it goes, so decoding is not a stage of its own
STAGES: list[tuple[str, Callable[[str], int]]] = [
    ("read record blocks (capture.py)", read_blocks),
    ("decode + engine (fastlane, decode, tracker, connection)", auditor_with(0)),
    ("detectors", auditor_with(1)),
    ("summary counts", auditor_with(2)),
    ("flows.csv rows (RowWriter.write_flow)", auditor_with(3)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--detectors", action="store_true", help="then time each detector alone")
    parser.add_argument(
        "--sinks", action="store_true", help="then time the per-connection stages alone (detectors, summary, rows)"
    )
    args = parser.parse_args()
    print(f"build: {describe()}")
    previous = 0.0
    rows = []
    packets = 0
    for name, stage in STAGES:
        best = float("inf")
        for _ in range(args.runs):
            started = time.process_time()
            packets = stage(args.capture)
            best = min(best, time.process_time() - started)
        rows.append((name, best, max(best - previous, 0.0)))
        previous = best
    total = rows[-1][1]
    conns = max(CONNECTIONS[0] if CONNECTIONS else 0, 1)
    print(
        f"{packets:,} packets, {conns:,} connections; whole job {total:.2f} s CPU = {packets / total:,.0f} "
        f"packets/s, {total / conns * 1e6:.1f} us per connection (no start-up)"
    )
    print(f"{'stage':50} {'cumulative s':>12} {'added s':>8} {'us/packet':>9} {'us/conn':>8} {'share':>6}")
    for name, cumulative, added in rows:
        print(
            f"{name:50} {cumulative:12.3f} {added:8.3f} {added / packets * 1e6:9.3f} "
            f"{added / conns * 1e6:8.2f} {added / total:6.1%}"
        )
    if args.sinks:
        print(f"\n{'per-connection stage (alone, on the finished connections)':60} {'CPU s':>8} {'us/conn':>8}")
        for name, seconds in sink_times(args.capture, args.runs):
            print(f"{name:60} {seconds:8.3f} {seconds / conns * 1e6:8.2f}")
    if args.detectors:
        print(f"\n{'detector (alone, on the finished connections)':50} {'CPU s':>8} {'us/conn':>8}")
        for kind, seconds in detector_times(args.capture, args.runs):
            print(f"{kind:50} {seconds:8.3f} {seconds / conns * 1e6:8.2f}")


if __name__ == "__main__":
    main()
