"""bench/make_kernel_capture.py makes what it says: a small run of it in two network namespaces
holds every connection the kernel opened, both closers, 4-tuples reused, wire-size frames, loss on
the bulk port, and nothing dropped by tcpdump; and tcpflow-audit reads it back whole.

Needs root (namespaces, tcpdump, nftables) and ethtool; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from tcpflow_audit.pipeline import Auditor

SCRIPT = ROOT / "bench" / "make_kernel_capture.py"
MISSING = [tool for tool in ("ip", "tcpdump", "nft", "ethtool", "nstat", "ss") if not shutil.which(tool)]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, tcpdump, nftables"),
    pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}"),
]


def test_a_small_kernel_capture_is_what_its_description_says(tmp_path) -> None:
    out = tmp_path / "kernel.pcap"
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--connections", "400", "--clients", "2"]
    cmd += ["--concurrency", "8", "--bulk", "2", "--bulk-mib", "4", "--bulk-parallel", "2"]
    cmd += ["--loss", "2", "--port-range", "40000 40149", "--max-seconds", "90", "--netns-prefix", "tfakt"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    meta = json.loads(out.with_suffix(".json").read_text())
    seen, kernel = meta["capture"], meta["against_the_kernel"]
    run = meta["attempts"][-1]
    assert run["tcpdump"]["dropped_by_kernel"] == 0
    # 400 short connections and 2 bulk ones, each seen from its SYN, as many as the kernel opened
    assert seen["connections"] == kernel["client_TcpActiveOpens"] == kernel["server_TcpPassiveOpens"] == 402
    assert run["short"]["client_closed"] + run["short"]["server_closed"] == 400
    assert seen["client_sent_first_fin"] > 100 and seen["server_sent_first_fin"] > 100
    assert seen["client_sent_first_fin"] + seen["server_sent_first_fin"] == 402
    assert seen["syn_on_reused_4tuple"] > 200  # 150 ports for 400 connections
    assert kernel["time_wait_reused_by_connect_TcpExtTWRecycled"] > 0
    assert seen["largest_frame"] == 1514  # offloads off: wire-size frames, MTU 1500
    assert run["bulk"]["bytes"] == 2 * 4 * 2**20
    retransmitted = sum(run["kernel_counters"][side]["nstat"]["TcpRetransSegs"] for side in ("client", "server"))
    assert retransmitted > 0  # the bulk port's loss
    # the capture holds every segment the kernel sent, but those the loss rule dropped before the capture point
    assert kernel["segments_sent_by_both"] - 200 < seen["packets"] <= kernel["segments_sent_by_both"]
    stats = Auditor().run([str(out)])
    assert stats.packets_read == seen["packets"]
    assert stats.connections == 402
