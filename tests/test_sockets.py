"""The socket table (`--report sockets`) against the kernel's own `ss -tan`, and the timeline.

The kernel's counts come from captures made by sample_pcaps/make_samples.py (scenarios
`sockets_mix` and `sockets_churn`): two network namespaces, real sockets, tcpdump in the server's
namespace, and `ss -tan` in both namespaces at the moment the capture stopped (and, for
`sockets_mix`, at two quiet moments during it), recorded beside the capture in NAME.ss.json.
The shipped captures are checked without root; `test_live_kernel_captures` makes new ones (with
a few thousand connections of TIME_WAIT churn) where it can run as root.

Equality, per host and port class and per state, with one allowance: a socket the table counts
as UNKNOWN (the capture cannot tell its state) may be in any state in the kernel; each such
socket must account for exactly one kernel socket the other columns do not (docs/sockets.md says
which cases give UNKNOWN, and every case where the table and `ss` cannot agree).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, sample

from tcpflow_audit.config import EngineConfig
from tcpflow_audit.pipeline import Auditor
from tcpflow_audit.sockets import STATE_COLUMNS, SocketTable, Timeline, _Tracked, parse_duration

# ss's names for the states (`ss -tan`'s first column) -> the table's columns
SS_STATES = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT_1",
    "FIN-WAIT-2": "FIN_WAIT_2",
    "TIME-WAIT": "TIME_WAIT",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "CLOSING": "CLOSING",
    "LISTEN": "LISTEN",
}
ClassKey = tuple[str, int | None, str]


def kernel_table(ss_text: str, address: str) -> dict[ClassKey, Counter]:
    """`ss -tan` of one host as the table's rows: a socket on a listening port is the port's (server),
    any other the host's client group; a listening socket bound to every address counts as the host's."""
    sockets = []
    for line in ss_text.splitlines()[1:]:
        fields = line.split()
        if not fields:
            continue
        state, local = fields[0], fields[3]
        port = int(local.rsplit(":", 1)[1])
        sockets.append((SS_STATES[state], port))
    listening = {port for state, port in sockets if state == "LISTEN"}
    table: dict[ClassKey, Counter] = {}
    for state, port in sockets:
        key = (address, port, "server") if port in listening else (address, None, "client")
        table.setdefault(key, Counter())[state] += 1
    return table


def reconstructed(rows: list[dict[str, Any]]) -> dict[ClassKey, Counter]:
    return {
        (row["host"], row["port"], row["role"]): Counter({c: row[c] for c in STATE_COLUMNS if row[c]}) for row in rows
    }


def assert_matches_kernel(rows: list[dict[str, Any]], kernel: dict[ClassKey, Counter]) -> int:
    """The table equals the kernel's counts, but for its UNKNOWN sockets, each one kernel socket in
    some state the other columns leave over. Returns how many UNKNOWN sockets there were."""
    ours = reconstructed(rows)
    assert set(ours) == set(kernel), (ours, kernel)
    unknown_total = 0
    for key, counts in ours.items():
        unknown = counts.pop("UNKNOWN", 0)
        unknown_total += unknown
        left_over = kernel[key] - counts
        assert not counts - kernel[key], (key, "more than the kernel's", counts - kernel[key])
        assert sum(left_over.values()) == unknown, (key, "the kernel's sockets not in the table", left_over)
    return unknown_total


def socket_rows(cli, capture: Path, at: float | None = None, *options: str) -> list[dict[str, Any]]:
    args = [capture, "--report", "sockets", "--format", "json", *options]
    if at is not None:
        args += ["--at", repr(at)]
    return json.loads(cli(*args).stdout)["sockets"]


def check_against_snapshots(cli, capture: Path) -> list[int]:
    """Every ss snapshot recorded beside `capture` against the table at its instant; the UNKNOWN counts."""
    record = json.loads(capture.with_suffix(".ss.json").read_text())
    unknowns = []
    for snapshot in record["snapshots"]:
        kernel: dict[ClassKey, Counter] = {}
        for side in ("client", "server"):
            kernel.update(kernel_table(snapshot[side], record["addresses"][side]))
        unknowns.append(assert_matches_kernel(socket_rows(cli, capture, snapshot["at"]), kernel))
    return unknowns


# ------------------------------------------------------------------ the shipped kernel captures
def test_mix_equals_ss_at_the_end_and_during_the_capture(cli):
    """sockets_mix: simultaneous close (both TIME_WAIT), a SYN never answered (SYN_SENT), a third ACK
    that never left the client (server SYN_RECV; the client, ESTABLISHED in its kernel, is UNKNOWN in
    the table), a half close in progress, client and server TIME_WAITs, CLOSE_WAIT held (client
    FIN_WAIT_2), an abort and a refused connection (nothing left), and a server TIME_WAIT ended by a new
    SYN on its 4-tuple (the kernel reuses the socket)."""
    assert check_against_snapshots(cli, sample("sockets_mix.pcap")) == [0, 1, 1]
    end = reconstructed(socket_rows(cli, sample("sockets_mix.pcap")))
    assert end[("10.99.0.1", None, "client")] == Counter(TIME_WAIT=5, SYN_SENT=1, UNKNOWN=1, FIN_WAIT_2=3)
    assert end[("10.99.0.2", 8080, "server")] == Counter(LISTEN=1, SYN_RECV=1, TIME_WAIT=4, CLOSE_WAIT=3)


def test_churn_equals_ss(cli):
    assert check_against_snapshots(cli, sample("sockets_churn.pcap")) == [0]
    rows = reconstructed(socket_rows(cli, sample("sockets_churn.pcap")))
    assert rows[("10.99.0.1", None, "client")]["TIME_WAIT"] == rows[("10.99.0.2", 8080, "server")]["TIME_WAIT"] == 200


def _live_requirements() -> str | None:
    """Why the live kernel test cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux's"
    if os.geteuid() != 0:
        return "needs root (network namespaces, tcpdump, nftables)"
    missing = [tool for tool in ("ip", "tcpdump", "nft", "ss", "tshark") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install -y iproute2 tcpdump nftables tshark)"
    probe = f"tfa-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def test_live_kernel_captures(cli, tmp_path: Path):
    """New kernel captures, made now: the mix, and TIME_WAIT churn of 3000 connections on both sides."""
    reason = _live_requirements()
    if reason is not None:
        pytest.skip(f"live kernel captures: {reason}")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "sample_pcaps" / "make_samples.py"),
            "--only",
            "sockets_mix,sockets_churn",
            "--out",
            str(tmp_path),
            "--netns-prefix",
            f"tfa{os.getpid()}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TFA_SOCKETS_CHURN": "3000"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert check_against_snapshots(cli, tmp_path / "sockets_mix.pcap") == [0, 1, 1]
    assert check_against_snapshots(cli, tmp_path / "sockets_churn.pcap") == [0]
    churn = reconstructed(socket_rows(cli, tmp_path / "sockets_churn.pcap"))
    assert churn[("10.99.0.1", None, "client")] == Counter(TIME_WAIT=1500)
    # the client may pick a port whose 4-tuple the server still holds in TIME_WAIT: the kernel reuses
    # that socket for the new connection, and the table (equal to ss above) counts it once
    flows = csv.DictReader(io.StringIO(cli(tmp_path / "sockets_churn.pcap", "--report", "flows", "--csv").stdout))
    reused = sum(1 for row in flows if "syn_during_time_wait" in row["anomalies"])
    assert churn[("10.99.0.2", 8080, "server")] == Counter(TIME_WAIT=1500 - reused, LISTEN=1)


# ------------------------------------------------------------------ what the capture implies
def test_time_wait_lasts_two_msl(cli):
    """With --msl 0.1 a TIME_WAIT lasts 0.2 s from the active closer's last ACK, the connection's last
    packet: at the end only the connections that ended in the last 0.2 s are still in it."""
    capture = sample("client_churn.pcap")
    flows = list(csv.DictReader(io.StringIO(cli(capture, "--report", "flows", "--csv").stdout)))
    last = max(float(row["end_epoch"]) for row in flows)
    recent = sum(1 for row in flows if float(row["end_epoch"]) > last - 0.2)
    assert 0 < recent < len(flows) == 200
    rows = reconstructed(socket_rows(cli, capture, None, "--msl", "0.1"))
    assert rows[("10.99.0.1", None, "client")] == Counter(TIME_WAIT=recent)
    assert reconstructed(socket_rows(cli, capture))[("10.99.0.1", None, "client")] == Counter(TIME_WAIT=200)


def test_at_before_during_and_after(cli):
    capture = sample("close_wait.pcap")
    flow = next(csv.DictReader(io.StringIO(cli(capture, "--report", "flows", "--csv").stdout)))
    start = float(flow["start_epoch"])
    assert socket_rows(cli, capture, start - 1.0) == []
    assert reconstructed(socket_rows(cli, capture, start + 0.0001)) == {
        ("10.99.0.1", None, "client"): Counter(ESTABLISHED=1),
        ("10.99.0.2", 8080, "server"): Counter(ESTABLISHED=1, LISTEN=1),
    }
    # a CLOSE_WAIT socket stays until its FIN, however long after the capture
    assert reconstructed(socket_rows(cli, capture, start + 86400.0)) == {
        ("10.99.0.1", None, "client"): Counter(FIN_WAIT_2=1),
        ("10.99.0.2", 8080, "server"): Counter(CLOSE_WAIT=1, LISTEN=1),
    }
    iso = cli(capture, "--report", "sockets", "--json", "--at", "1970-01-01T00:00:00Z").stdout
    assert json.loads(iso) == {"at": "1970-01-01T00:00:00.000000Z", "at_epoch": 0.0, "sockets": []}
    assert "--at" in cli(capture, "--report", "sockets", "--at", "yesterday", status=2).stderr


def test_syn_recv_ends_when_linux_gives_up(cli):
    """The flood's 750 answered SYNs hold SYN_RECV sockets until 63 s after their first SYN-ACK."""
    capture = sample("syn_flood.pcap")
    end = json.loads(cli(capture, "--report", "sockets", "--json").stdout)["at_epoch"]
    server = ("10.99.0.2", 80, "server")
    assert reconstructed(socket_rows(cli, capture))[server] == Counter(SYN_RECV=750, LISTEN=1)
    assert reconstructed(socket_rows(cli, capture, end + 61.0))[server]["SYN_RECV"] == 750
    assert reconstructed(socket_rows(cli, capture, end + 63.0))[server] == Counter(LISTEN=1)
    # the spoofed sources' SYN_SENT, as long as a client would wait; those a SYN-ACK went to may have
    # got it (ESTABLISHED) or not: UNKNOWN
    clients = [row for row in socket_rows(cli, capture, end + 120.0) if row["role"] == "client"]
    assert sum(row["SYN_SENT"] for row in clients) == 2250 and sum(row["UNKNOWN"] for row in clients) == 750
    assert not [row for row in socket_rows(cli, capture, end + 130.0) if row["SYN_SENT"]]


def test_a_new_syn_ends_the_time_wait_it_meets(cli):
    """syn_during_time_wait: the server's TIME_WAIT of the first connection ends at the second's SYN."""
    capture = sample("syn_during_time_wait.pcap")
    flows = list(csv.DictReader(io.StringIO(cli(capture, "--report", "flows", "--csv").stdout)))
    second_syn = float(flows[1]["start_epoch"])
    server = ("10.99.0.2", 8080, "server")
    assert reconstructed(socket_rows(cli, capture, second_syn - 0.001))[server] == Counter(TIME_WAIT=1, LISTEN=1)
    after = reconstructed(socket_rows(cli, capture, second_syn + 0.000001))[server]
    assert after["TIME_WAIT"] == 0
    assert reconstructed(socket_rows(cli, capture))[server] == Counter(LISTEN=1)


def test_unknown_where_the_capture_cannot_tell(cli):
    """missing_third_ack: the client's ACK of the SYN-ACK never shows, so the client may be ESTABLISHED
    (it is: its kernel got the SYN-ACK) or still SYN_SENT; the server's request is SYN_RECV."""
    rows = reconstructed(socket_rows(cli, sample("missing_third_ack.pcap")))
    assert rows == {
        ("10.99.0.1", None, "client"): Counter(UNKNOWN=1),
        ("10.99.0.2", 8080, "server"): Counter(SYN_RECV=1, LISTEN=1),
    }


def test_formats_agree(cli):
    capture = sample("demo.pcap")
    as_json = socket_rows(cli, capture)
    as_csv = list(csv.DictReader(io.StringIO(cli(capture, "--report", "sockets", "--csv").stdout)))
    as_jsonl = [json.loads(line) for line in cli(capture, "--report", "sockets", "--jsonl").stdout.splitlines()]
    assert as_jsonl == as_json and len(as_csv) == len(as_json) == 2
    for row, text in zip(as_json, as_csv, strict=True):
        assert {k: "" if v is None else str(v) for k, v in row.items()} == text
    table = cli(capture, "--report", "sockets").stdout
    assert table.splitlines()[1].split() == ["host", "port", "role", "FIN_WAIT_2", "TIME_WAIT", "CLOSE_WAIT", "LISTEN"]
    assert "(0 in every row: ESTABLISHED," in table


# ------------------------------------------------------------------ the timeline
def test_timeline_ends_where_the_table_does(cli):
    capture = sample("sockets_mix.pcap")
    timeline = list(csv.DictReader(io.StringIO(cli(capture, "--report", "timeline", "--csv").stdout)))
    last = timeline[-1]["time"]
    hosts = {row["host"]: row for row in timeline if row["time"] == last and row["port"] == ""}
    table = socket_rows(cli, capture)
    for host, row in hosts.items():
        for state in STATE_COLUMNS:
            assert int(row[state]) == sum(r[state] for r in table if r["host"] == host), (host, state)
    # the service's events, bucket by bucket, add up to its connections' events
    service = [row for row in timeline if row["port"] == "8080"]
    flows = list(csv.DictReader(io.StringIO(cli(capture, "--report", "flows", "--csv").stdout)))
    to_8080 = [f for f in flows if f["server_port"] == "8080"]
    assert sum(int(row["syn"]) for row in service) == len(to_8080) == 15
    assert sum(int(row["handshakes"]) for row in service) == sum(1 for f in to_8080 if f["synack_ack_ms"])
    assert sum(int(row["rst"]) for row in service) == 1  # the abort (the refused one was to 8081)
    buckets = [float(b) for b in dict.fromkeys(row["time_epoch"] for row in timeline)]
    assert buckets == sorted(buckets) and all(b.is_integer() for b in buckets) and len(buckets) >= 3


def test_timeline_leaves_out_the_buckets_where_nothing_happened(cli):
    """Two captures three years apart: rows for the buckets with something in them, none for the years between."""
    rows = list(
        csv.DictReader(
            io.StringIO(cli(sample("syn_flood.pcap"), sample("demo.pcap"), "--report", "timeline", "--csv").stdout)
        )
    )
    years = {row["time"][:4] for row in rows}
    assert years == {"2023", "2026"} and len(rows) < 200
    flood = [int(row["SYN_RECV"]) for row in rows if row["time"].startswith("2023") and row["port"] == "80"]
    assert max(flood) == 750 and flood[-1] == 0  # the requests given up 63 s after their SYN-ACK


def test_timeline_buckets_and_top(cli):
    capture = sample("syn_flood.pcap")
    rows = list(
        csv.DictReader(
            io.StringIO(cli(capture, "--report", "timeline", "--csv", "--bucket", "500ms", "--top", "2").stdout)
        )
    )
    assert {(row["host"], row["port"]) for row in rows} == {("10.99.0.2", ""), ("10.99.0.1", ""), ("10.99.0.2", "80")}
    service = [row for row in rows if row["port"] == "80"]
    assert len(service) == 5 and sum(int(row["syn"]) for row in service) == 3020
    assert [int(row["SYN_RECV"]) for row in service] == sorted(int(row["SYN_RECV"]) for row in service)
    assert int(service[-1]["SYN_RECV"]) == 750
    assert parse_duration("1m") == 60.0 and parse_duration("500ms") == 0.5 and parse_duration("2") == 2.0
    assert "--bucket" in cli(capture, "--report", "timeline", "--bucket", "0s", status=2).stderr


def test_timeline_memory_is_bounded_by_the_hosts_shown():
    """Under the flood, 3000 spoofed sources: the changes of at most 2 * max(4 * top, 16) hosts are kept."""
    auditor = Auditor()
    timeline = Timeline.attach(auditor, 1.0, top=2)
    table = SocketTable.attach(auditor)
    auditor.run([str(sample("syn_flood.pcap"))])
    # every host is counted (the table's rows: each client host's group, and the server's one port)
    assert len(timeline.hosts.activity) == len(table.counts) > 2900
    assert len(timeline.hosts.buckets) <= 32 and len(timeline.services.buckets) <= 32
    assert timeline.hosts.top(2) == [bytes([10, 99, 0, 2]), bytes([10, 99, 0, 1])]
    tracked = _Tracked(keep=3)
    for n in range(100):
        tracked.active(n % 7)
        series = tracked.series(n % 7)
        if series is not None:
            series[n] = [1]
        assert len(tracked.buckets) <= 6
    for _ in range(5):  # one more active than the rest is taken in (the others were dropped or refused)
        tracked.active("busy")
    assert tracked.series("busy") == {} and "busy" in tracked.buckets and "busy" not in tracked.incomplete
    tracked.active("idle")
    assert tracked.series("idle") is None and "idle" in tracked.incomplete


def test_running_spans_are_let_go_as_time_passes():
    """The socket table at the capture's end keeps the spans still running, not every connection's."""
    auditor = Auditor(EngineConfig(msl=0.05))
    table = SocketTable.attach(auditor)
    auditor.run([str(sample("client_churn.pcap"))])
    assert len(table._running) < 40


def test_state_changes_are_kept_only_when_asked():
    """The engine keeps each endpoint's state changes only for a socket table or timeline (they cost a
    list and a tuple per change); a sink fed records without them says so instead of counting nothing."""
    plain = Auditor()
    records: list = []
    plain.add_flow_sink(records.append)
    plain.run([str(sample("client_close.pcap"))])
    assert records[0].facts.client_state_changes is None
    with pytest.raises(ValueError, match="no state changes"):
        SocketTable(60.0)(records[0])
    auditor = Auditor()
    SocketTable.attach(auditor)
    auditor.add_flow_sink(records.append)
    auditor.run([str(sample("client_close.pcap"))])
    facts = records[1].facts
    assert [state for _, state in facts.client_state_changes] == [
        "SYN_SENT",
        "ESTABLISHED",
        "FIN_WAIT_1",
        "FIN_WAIT_2",
        "TIME_WAIT",
    ]
    assert [state for _, state in facts.server_state_changes] == [
        "SYN_RCVD",
        "ESTABLISHED",
        "CLOSE_WAIT",
        "LAST_ACK",
        "CLOSED",
    ]
    times = [ts for ts, _ in facts.client_state_changes]
    assert times == sorted(times) and times[0] == facts.syn_ts
