#!/usr/bin/env python3
"""Retransmissions counted by tcpflow-audit beside tshark's, capture by capture.

    .venv/bin/python bench/retransmits_vs_tshark.py [--tool PATH] [--per-flow] CAPTURE...

tcpflow-audit's count is the sum of the flows report's `retransmits`; tshark's is the number of
frames carrying `tcp.analysis.retransmission`, `tcp.analysis.fast_retransmission` or
`tcp.analysis.spurious_retransmission`. With --per-flow, connections where the two differ are
listed by tshark stream (client ip:port -> server ip:port). Needs tshark on PATH.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import subprocess
import sys
from collections import Counter

TSHARK_FILTER = (
    "tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission"
)


def tool_counts(tool: str, path: str) -> Counter:
    p = subprocess.run([tool, path, "--report", "flows", "--format", "csv", "-q"], capture_output=True, text=True)
    counts: Counter = Counter()
    for row in csv.DictReader(io.StringIO(p.stdout)):
        key = frozenset({(row["client_ip"], row["client_port"]), (row["server_ip"], row["server_port"])})
        counts[key] += int(row["retransmits"] or 0)
    return counts


def tshark_counts(path: str, display_filter: str = TSHARK_FILTER) -> Counter:
    """Packets tshark's display filter matches, per connection (the set of its two address/port ends)."""
    fields = [
        "-e",
        "ip.src",
        "-e",
        "ipv6.src",
        "-e",
        "tcp.srcport",
        "-e",
        "ip.dst",
        "-e",
        "ipv6.dst",
        "-e",
        "tcp.dstport",
    ]
    p = subprocess.run(
        ["tshark", "-r", path, "-Y", display_filter, "-T", "fields", "-E", "occurrence=l", *fields],
        capture_output=True,
        text=True,
    )
    counts: Counter = Counter()
    for line in p.stdout.splitlines():
        s4, s6, sport, d4, d6, dport = line.split("\t")
        counts[frozenset({(s4 or s6, sport), (d4 or d6, dport)})] += 1
    return counts


def _name(path: str) -> str:
    """The file name; for Zeek's cases (every trace is trace.pcap), its folder's name too."""
    base = os.path.basename(path)
    return os.path.basename(os.path.dirname(path)) + "/" + base if base.startswith("trace.") else base


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tool", default=".venv/bin/tcpflow-audit")
    ap.add_argument("--per-flow", action="store_true")
    ap.add_argument("captures", nargs="+")
    args = ap.parse_args()
    total_tool = total_tshark = 0
    for path in args.captures:
        mine, theirs = tool_counts(args.tool, path), tshark_counts(path)
        a, b = sum(mine.values()), sum(theirs.values())
        total_tool += a
        total_tshark += b
        if mine != theirs:
            print("%-60s tcpflow-audit %5d  tshark %5d" % (_name(path), a, b))
            if args.per_flow:
                for key in sorted(set(mine) | set(theirs), key=str):
                    if mine[key] != theirs[key]:
                        print(
                            "    %-60s %5d %5d"
                            % (" <-> ".join("%s:%s" % e for e in sorted(key)), mine[key], theirs[key])
                        )
    print("total over %d captures: tcpflow-audit %d, tshark %d" % (len(args.captures), total_tool, total_tshark))
    return 0


if __name__ == "__main__":
    sys.exit(main())
