#!/usr/bin/env python3
"""The flows report's evidence columns beside tshark's expert analysis, connection by connection.

    .venv/bin/python bench/evidence_vs_tshark.py [--tool PATH] [--all] CAPTURE...

For each connection (by its two ip:port ends), tcpflow-audit's `dup_acks`, `keepalive_probes`,
`zero_window_probes` and `out_of_order` beside the number of frames tshark marks
`tcp.analysis.duplicate_ack`, `tcp.analysis.keep_alive`, `tcp.analysis.zero_window_probe` and
`tcp.analysis.out_of_order`, and `missed_bytes` beside whether tshark marks any
`tcp.analysis.lost_segment` or `tcp.analysis.ack_lost_segment` (it counts frames, not bytes). Prints
the connections where they differ (all with --all) and a total line per capture. Needs tshark on PATH.
docs/flows.md says where the two are expected to differ (Linux zero-window probes, which tshark calls
keep-alives; ACKs captured before the segment they follow).
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from collections import Counter

from retransmits_vs_tshark import tshark_counts as tshark_matches  # (bench/ is the script's folder)

COLUMNS = ("dup_acks", "keepalive_probes", "zero_window_probes", "out_of_order", "missed_bytes")
TSHARK_FLAGS = {
    "dup_acks": "tcp.analysis.duplicate_ack",
    "keepalive_probes": "tcp.analysis.keep_alive",
    "zero_window_probes": "tcp.analysis.zero_window_probe",
    "out_of_order": "tcp.analysis.out_of_order",
    "missed_bytes": "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment",
}
Key = frozenset


def tool_counts(tool: str, path: str) -> dict[Key, Counter]:
    p = subprocess.run([tool, path, "--report", "flows", "--format", "csv", "-q"], capture_output=True, text=True)
    counts: dict[Key, Counter] = {}
    for row in csv.DictReader(io.StringIO(p.stdout)):
        key = frozenset({(row["client_ip"], row["client_port"]), (row["server_ip"], row["server_port"])})
        c = counts.setdefault(key, Counter())
        for name in COLUMNS:
            c[name] += int(row[name] or 0)
    return counts


def tshark_counts(path: str) -> dict[Key, Counter]:
    counts: dict[Key, Counter] = {}
    for name, flt in TSHARK_FLAGS.items():
        for key, n in tshark_matches(path, flt).items():
            counts.setdefault(key, Counter())[name] += n
    return counts


def compare(tool: str, path: str, show_all: bool) -> tuple[Counter, Counter]:
    mine, theirs = tool_counts(tool, path), tshark_counts(path)
    total_mine: Counter = Counter()
    total_theirs: Counter = Counter()
    for key in sorted(set(mine) | set(theirs), key=lambda k: sorted(k)):
        a, b = mine.get(key, Counter()), theirs.get(key, Counter())
        total_mine.update(a)
        total_theirs.update(b)
        differs = any(a[n] != b[n] for n in COLUMNS[:4]) or bool(a["missed_bytes"]) != bool(b["missed_bytes"])
        if differs or show_all:
            ends = " <-> ".join("%s:%s" % end for end in sorted(key))
            cells = "  ".join("%s %d/%d" % (n, a[n], b[n]) for n in COLUMNS)
            print("  %s%s  %s" % ("" if differs else "= ", ends, cells))
    return total_mine, total_theirs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", default=".venv/bin/tcpflow-audit")
    ap.add_argument("--all", action="store_true", help="list every connection, not only those that differ")
    ap.add_argument("captures", nargs="+")
    args = ap.parse_args()
    for path in args.captures:
        print(path)
        a, b = compare(args.tool, path, args.all)
        print("  total (tcpflow-audit/tshark): " + "  ".join("%s %d/%d" % (n, a[n], b[n]) for n in COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
