"""The flows report's evidence columns against tshark's expert analysis, connection by connection.

On shipped kernel captures (sample_pcaps/README.md), each connection's `dup_acks`, `keepalive_probes`,
`zero_window_probes`, `out_of_order` and `missed_bytes` are compared with the frames tshark marks, with
the differences docs/flows.md documents: tshark calls Linux's zero-window probes (SND.UNA-1, no data)
keep-alives, so the two probe counts are compared added up; tshark calls a retransmission out-of-order
when it comes within a round trip of the highest segment even though the capture holds its first copy,
so out-of-order segments and retransmissions are compared added up, and tcpflow-audit's out_of_order
alone never exceeds tshark's; tshark marks a gap when it opens ("previous segment not captured") where
missed_bytes counts only what never came, so it is compared where nothing is reordered.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pytest
from conftest import sample

from tcpflow_audit.decode import format_ip
from tcpflow_audit.pipeline import Auditor

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

RETRANSMISSION = (
    "tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission"
)
TSHARK_FLAGS = {
    "dup_acks": "tcp.analysis.duplicate_ack",
    "probes": "tcp.analysis.keep_alive || tcp.analysis.zero_window_probe",
    "out_of_order": "tcp.analysis.out_of_order",
    "resent": RETRANSMISSION,
    "lost": "tcp.analysis.lost_segment",
}


def tshark(name: str) -> dict[frozenset, Counter]:
    counts: dict[frozenset, Counter] = {}
    for key, flt in TSHARK_FLAGS.items():
        fields = ["-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport"]
        out = subprocess.run(
            ["tshark", "-r", str(sample(name)), "-Y", flt, "-T", "fields", *fields],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        for line in out.splitlines():
            src, sport, dst, dport = line.split("\t")
            counts.setdefault(frozenset({(src, int(sport)), (dst, int(dport))}), Counter())[key] += 1
    return counts


def ours(name: str) -> dict[frozenset, Counter]:
    auditor = Auditor()
    records: list = []
    auditor.add_flow_sink(records.append)
    auditor.run([str(sample(name))])
    counts: dict[frozenset, Counter] = {}
    for r in records:
        f = r.facts
        c = counts.setdefault(
            frozenset({(format_ip(r.client_ip), r.client_port), (format_ip(r.server_ip), r.server_port)}), Counter()
        )
        c["dup_acks"] += f.client_dup_acks + f.server_dup_acks
        c["probes"] += f.client_keepalives + f.server_keepalives + f.zero_window_probes
        c["out_of_order"] += f.out_of_order
        c["resent"] += r.retransmits
        c["missed"] += f.missed_bytes
    return counts


@pytest.mark.parametrize(
    "name",
    [
        "data_loss.pcap",
        "bulk_little_loss.pcap",
        "capture_gap.pcap",
        "zero_window.pcap",
        "keepalive_answered.pcap",
        "keepalive_dead_peer.pcap",
        "data_retransmit.pcap",
        "retransmit_lookalikes.pcap",
        "normal_mix.pcap",
    ],
)
def test_evidence_agrees_with_tshark(name):
    mine, theirs = ours(name), tshark(name)
    assert set(theirs) <= set(mine)
    for key, a in mine.items():
        b = theirs.get(key, Counter())
        assert a["dup_acks"] == b["dup_acks"], (key, a, b)
        assert a["probes"] == b["probes"], (key, a, b)
        assert a["out_of_order"] + a["resent"] == b["out_of_order"] + b["resent"], (key, a, b)
        assert a["out_of_order"] <= b["out_of_order"], (key, a, b)
        if name != "retransmit_lookalikes.pcap":  # (reordered there: a gap tshark marks, then filled)
            assert (a["missed"] > 0) == (b["lost"] > 0), (key, a, b)


def test_the_comparison_sees_something():
    # the captures above hold each kind of evidence at least once (the comparison cannot pass vacuously)
    seen: Counter = Counter()
    for name in ("data_loss.pcap", "zero_window.pcap", "keepalive_answered.pcap", "retransmit_lookalikes.pcap"):
        for c in ours(name).values():
            seen.update({k: 1 for k, v in c.items() if v})
    seen.update({"missed": sum(1 for c in ours("capture_gap.pcap").values() if c["missed"])})
    assert all(seen[k] for k in ("dup_acks", "probes", "out_of_order", "resent", "missed")), seen


def test_linux_zero_window_probes_are_what_tshark_calls_keep_alives():
    ((key, a),) = ours("zero_window.pcap").items()
    b = tshark("zero_window.pcap")[key]
    assert b["probes"] == a["probes"] > 0
    out = subprocess.run(
        ["tshark", "-r", str(sample("zero_window.pcap")), "-Y", "tcp.analysis.zero_window_probe"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert out.strip() == ""  # tshark: keep-alives; tcpflow-audit: zero_window_probes (the window was closed)
