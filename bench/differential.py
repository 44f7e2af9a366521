#!/usr/bin/env python3
"""Differential check: the engine's hot path against its straightforward reference path.

For each capture, the real engine (`pipeline.Auditor`: capture reader, decoder, connection
tracker, detectors attached as the CLI attaches them) runs twice:

* hot path:       what the CLI runs: the compiled fast lane (`fastlane`, when compiled and the
                  capture allows it) and `ConnectionTracker()`, whose ordinary segments of known
                  connections take the hot path;
* reference path: the record loop (`Auditor(fast_lane=False)`: one record, one decoded tuple at a
                  time) and `ConnectionTracker(reference=True)`, every segment through
                  `Connection.process`.

Every flow record (`dataclasses.asdict`, detector tags included, in the order the tracker
finalised them), every finding and the run's counters must be identical. One line per capture,
then a total; exit status 1 on any difference (or a run that fails), 0 when all are identical.

    .venv/bin/python bench/differential.py sample_pcaps/                 # files or directories
    .venv/bin/python bench/differential.py --conformance                 # the Zeek conformance traces
    .venv/bin/python bench/differential.py bench/work/traffic-2000000-s1.pcap

Directories are searched recursively for *.pcap and *.pcapng. `--conformance` adds
../shared/conformance/zeek/cases (next to the checkout) and implies --verify-checksums-from-meta:
the engine verifies checksums exactly when Zeek did for that case (no -C, no ignore_checksums).

Memory: the hot path's records are spooled to a temporary file (pickled one by one) and read back
one at a time while the reference path runs, so a capture of millions of packets needs the
engine's own memory and no more.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:  # a python without the project installed: fall back on the checkout
    sys.path.append(str(ROOT))

from tcpflow_audit.build import describe  # noqa: E402
from tcpflow_audit.config import EngineConfig  # noqa: E402
from tcpflow_audit.decode import format_ip  # noqa: E402
from tcpflow_audit.detectors import DetectorSet  # noqa: E402
from tcpflow_audit.pipeline import Auditor  # noqa: E402
from tcpflow_audit.tracker import ConnectionTracker  # noqa: E402

CONFORMANCE = ROOT.parent / "shared" / "conformance" / "zeek" / "cases"
SUFFIXES = (".pcap", ".pcapng")
# RunStats counters that must agree (what the summary report shows about the engine)
STAT_FIELDS = (
    "packets_read",
    "tcp_packets",
    "filtered_out",
    "connections",
    "evicted",
    "peak_live_connections",
    "first_ts",
    "last_ts",
)


# ---------------------------------------------------------------------- comparing
def _same(a: Any, b: Any) -> bool:
    if a == b:
        return type(a) is type(b) or not (isinstance(a, (bool, int, float)) and isinstance(b, (bool, int, float)))
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """(field path, hot value, reference value) of the first difference, None when equal.

    Values compare exactly, with their types (1 and 1.0 or True differ: they would print
    differently); NaN equals NaN.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return (f"{path}{key}", a.get(key, "<missing>"), b.get(key, "<missing>"))
            d = first_difference(a[key], b[key], f"{path}{key}.")
            if d is not None:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and type(a) is type(b):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            d = first_difference(x, y, f"{path.rstrip('.')}[{i}].")
            if d is not None:
                return d
        if len(a) != len(b):
            return (f"{path.rstrip('.')} (length)", len(a), len(b))
        return None
    if _same(a, b):
        return None
    return (path.rstrip(".") or "<value>", a, b)


def flow_label(rec: dict) -> str:
    try:
        return (
            f"{format_ip(rec['client_ip'])}:{rec['client_port']} -> "
            f"{format_ip(rec['server_ip'])}:{rec['server_port']} start {rec['start']!r}"
        )
    except (KeyError, ValueError, TypeError):
        return "?"


# ---------------------------------------------------------------------- running
@dataclasses.dataclass
class Run:
    flows: int = 0
    findings: list[dict] = dataclasses.field(default_factory=list)
    stats: dict = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def run_engine(path: Path, reference: bool, verify: bool, sink: Callable[[dict], None]) -> Run:
    """The CLI's engine set-up (Auditor + DetectorSet), the tracker in hot or reference mode."""
    run = Run()
    t0 = time.perf_counter()
    # the reference run is the straightforward one all the way: the record loop, not the fast lane
    auditor = Auditor(EngineConfig(verify_checksums=verify), fast_lane=not reference)
    if reference:
        auditor.tracker = ConnectionTracker(auditor.config, on_flow=auditor._emit, reference=True)
    if auditor.tracker.reference is not reference:
        raise SystemExit("could not set the tracker's mode (has ConnectionTracker changed?)")
    detectors = DetectorSet.attach(auditor)  # after the swap: its clock reads the tracker that runs

    def collect(record: Any) -> None:
        run.flows += 1
        sink(dataclasses.asdict(record))

    auditor.add_flow_sink(collect)
    try:
        stats = auditor.run([str(path)])
        if stats.interrupted:
            raise KeyboardInterrupt
        run.findings = [dataclasses.asdict(f) for f in detectors.finish()]
        run.stats = {name: getattr(stats, name) for name in STAT_FIELDS}
        run.stats["skipped"] = dict(sorted(stats.skipped.items()))
        run.problems = [str(p) for p in stats.problems]
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    run.seconds = time.perf_counter() - t0
    return run


@dataclasses.dataclass
class Outcome:
    name: str
    path: str
    verify_checksums: bool
    packets: int = 0
    flows: int = 0
    findings: int = 0
    identical: bool = False
    difference: str | None = None
    differing_flows: int = 0
    hot_s: float = 0.0
    reference_s: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)


class FlowChecker:
    """Reads the hot path's spooled records back one by one and compares each reference record."""

    def __init__(self, spool: BinaryIO, hot_flows: int) -> None:
        self.spool = spool
        self.hot_flows = hot_flows
        self.index = 0
        self.differing = 0
        self.first: str | None = None

    def __call__(self, rec: dict) -> None:
        i = self.index
        self.index += 1
        if i >= self.hot_flows:
            self.differing += 1
            if self.first is None:
                self.first = (
                    f"flow #{i + 1} ({flow_label(rec)}): only the reference path has it "
                    f"(hot path: {self.hot_flows} flows)"
                )
            return
        # one complete pickle per record, each read by a fresh unpickler (a reused Unpickler keeps its
        # memo across loads, which would put it out of step with the pickles written)
        mine = pickle.load(self.spool)
        d = first_difference(mine, rec)
        if d is not None:
            self.differing += 1
            if self.first is None:
                field, a, b = d
                self.first = f"flow #{i + 1} ({flow_label(mine)}) field {field}: hot={a!r} reference={b!r}"


def compare_capture(name: str, path: Path, verify: bool) -> Outcome:
    out = Outcome(name, str(path), verify)
    with tempfile.TemporaryFile(prefix="tcpflow-diff-") as spool:

        def spool_record(rec: dict) -> None:
            pickle.dump(rec, spool, protocol=pickle.HIGHEST_PROTOCOL)

        hot = run_engine(path, False, verify, spool_record)
        spool.flush()
        spool.seek(0)
        checker = FlowChecker(spool, hot.flows)
        ref = run_engine(path, True, verify, checker)
    out.hot_s, out.reference_s = hot.seconds, ref.seconds
    out.packets = hot.stats.get("packets_read", 0)
    out.flows = hot.flows
    out.findings = len(hot.findings)
    out.problems = hot.problems
    out.differing_flows = checker.differing
    if hot.error or ref.error:
        out.difference = f"run failed: hot path: {hot.error or 'ok'}; reference path: {ref.error or 'ok'}"
        return out
    diffs: list[str] = []
    if checker.first is not None:
        diffs.append(checker.first)
    if hot.flows != ref.flows:
        diffs.append(f"flow count: hot={hot.flows} reference={ref.flows}")
    d = first_difference(hot.findings, ref.findings, "findings")
    if d is not None:
        diffs.append(f"field {d[0]}: hot={d[1]!r} reference={d[2]!r}")
    d = first_difference(hot.stats, ref.stats, "stats.")
    if d is not None:
        diffs.append(f"field {d[0]}: hot={d[1]!r} reference={d[2]!r}")
    if hot.problems != ref.problems:
        diffs.append(f"input problems: hot={hot.problems[:3]!r} reference={ref.problems[:3]!r}")
    if diffs:
        if out.differing_flows > 1:
            diffs.append(f"{out.differing_flows} flows differ in all")
        out.difference = "; ".join(diffs)
    else:
        out.identical = True
    return out


# ---------------------------------------------------------------------- inputs
def find_captures(arg: Path) -> list[tuple[str, Path]]:
    """(display name, path): a file as given; a directory's captures by their path below it."""
    if arg.is_dir():
        found = sorted(p for p in arg.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        named = []
        for p in found:
            rel = p.relative_to(arg)
            # conformance layout: <case>/trace.pcap -> the case's name says which it is
            name = str(rel.parent) if p.stem == "trace" and str(rel.parent) != "." else str(rel)
            named.append((name, p))
        return named
    return [(str(arg), arg)]


def verify_from_meta(path: Path) -> tuple[bool, str]:
    """Zeek verified checksums unless the case ran with -C or an ignore_checksums redef."""
    meta = path.parent / "meta.json"
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        return False, f"no usable meta.json ({type(exc).__name__}): checksums not verified"
    return not data.get("ignore_checksums", False), ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 all identical, 1 a difference or a failed run, 2 nothing to check.",
    )
    ap.add_argument(
        "captures",
        nargs="*",
        type=Path,
        help="capture files, or directories searched for *.pcap / *.pcapng recursively",
    )
    ap.add_argument(
        "--conformance",
        action="store_true",
        help=f"add the Zeek conformance traces ({CONFORMANCE}); implies --verify-checksums-from-meta",
    )
    ap.add_argument(
        "--verify-checksums-from-meta",
        action="store_true",
        help="verify checksums as Zeek did for that case (meta.json beside the trace)",
    )
    ap.add_argument("--verify-checksums", action="store_true", help="verify checksums for every capture")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the outcome as JSON")
    args = ap.parse_args(argv)

    from_meta = args.verify_checksums_from_meta
    inputs = list(args.captures)
    if args.conformance:
        from_meta = True
        if CONFORMANCE.is_dir():
            inputs.append(CONFORMANCE)
        else:
            print(f"no conformance traces at {CONFORMANCE}: nothing to check there")
            if not args.captures:
                return 0
    if not inputs:
        ap.error("give capture files or directories, or --conformance")

    captures: list[tuple[str, Path]] = []
    for arg in inputs:
        if not arg.exists():
            print(f"{arg}: no such file or directory", file=sys.stderr)
            return 2
        captures.extend(find_captures(arg))
    if not captures:
        print("no *.pcap / *.pcapng captures found in " + ", ".join(map(str, inputs)), file=sys.stderr)
        return 2

    build = describe()
    print(f"build: {build} (python {sys.version.split()[0]}, {sys.executable})")
    print(
        f"comparing hot path (ConnectionTracker()) with reference path (ConnectionTracker(reference=True)) "
        f"on {len(captures)} capture(s)",
        flush=True,
    )
    width = min(max(len(name) for name, _ in captures), 72)
    outcomes: list[Outcome] = []
    t0 = time.perf_counter()
    for name, path in captures:
        note = ""
        verify = args.verify_checksums
        if from_meta:
            verify, note = verify_from_meta(path)
        if path.stat().st_size > 50 * 2**20:
            print(f"  {name}: {path.stat().st_size / 2**20:.0f} MiB, running both paths ...", flush=True)
        out = compare_capture(name, path, verify)
        outcomes.append(out)
        verdict = "identical" if out.identical else f"DIFFERENT: {out.difference}"
        extra = [f"checksums {'verified' if verify else 'not verified'}"] if from_meta or verify else []
        if note:
            extra.append(note)
        if out.problems:
            extra.append(f"{len(out.problems)} input problem(s): {out.problems[0]}")
        if out.hot_s + out.reference_s >= 1.0:
            extra.append(f"hot {out.hot_s:.1f} s, reference {out.reference_s:.1f} s")
        print(
            f"{name:<{width}}  {out.packets:>9,} packets  {out.flows:>8,} flows  {out.findings:>5,} findings  "
            f"{verdict}" + (f"  [{'; '.join(extra)}]" if extra else ""),
            flush=True,
        )

    bad = [o for o in outcomes if not o.identical]
    total = (
        f"total: {len(outcomes)} capture(s), {sum(o.packets for o in outcomes):,} packets, "
        f"{sum(o.flows for o in outcomes):,} flows, {sum(o.findings for o in outcomes):,} findings: "
    )
    total += (
        "all identical"
        if not bad
        else f"{len(bad)} DIFFERENT ({', '.join(o.name for o in bad[:10])}{', ...' if len(bad) > 10 else ''})"
    )
    print(total + f" ({time.perf_counter() - t0:.1f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "build": build,
                    "python": sys.version.split()[0],
                    "identical": not bad,
                    "captures": len(outcomes),
                    "packets": sum(o.packets for o in outcomes),
                    "flows": sum(o.flows for o in outcomes),
                    "findings": sum(o.findings for o in outcomes),
                    "results": [dataclasses.asdict(o) for o in outcomes],
                },
                indent=1,
            )
        )
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
