"""Embryonic connections stay compact: a SYN flood costs little memory per live SYN.

On a flood written by bench/gen_capture.py (spoofed SYNs to one server, 2% answered by a SYN-ACK):
every unanswered SYN's responder is one stand-in Endpoint shared by all of them and never written
(the answered ones get their own), the timers set when a connection is created take no timer
entry, and the memory the tracker holds per live SYN stays under a bound (about a third of what a
full connection cost: two Endpoints and three timer entries).

A flood of lone ACKs on distinct 4-tuples (picked up midstream) stays under a bound too: the side that
never sent is a stand-in shared per address as well (an ACK writes nothing into it that anything reads),
an Endpoint keeps its rarely used fields (retransmissions, zero windows, keepalives...) in a side record
made at its first unusual segment, and a lone ACK is not one; a Connection keeps its own (bad handshake
ACKs, a SYN in TIME_WAIT, a tunnel) in one made at the first.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from tcpflow_audit import tcp_states as rfc
from tcpflow_audit.connection import Connection, Endpoint
from tcpflow_audit.fastlane import LaneCounts
from tcpflow_audit.pipeline import Auditor
from tcpflow_audit.tracker import ConnectionTracker

ROOT = Path(__file__).resolve().parent.parent
SYNS = 50_000
SERVER = bytes([192, 168, 100, 10])
# What the tracker holds per live SYN (the Connection without its `Uncommon` record, the originator's
# Endpoint, the index entries, the attempt timer): 643 bytes in the compiled build; with the Connection's
# rarely used fields in it, 691; with its SYN's time an object too, 715; with two Endpoints and three
# timer entries, 2.9 KiB.
MAX_BYTES_PER_LIVE_SYN = 660
ACKS = 20_000
# What the tracker holds per live midstream connection (the Connection, the client's Endpoint without its
# `Unusual` record, the client's address, the index entries): 617 bytes in the compiled build; with the
# Connection's rarely used fields in it, 665; with the server's own Endpoint, 968; with every field in
# the Endpoints and a copy of the server's address each, 1,344.
MAX_BYTES_PER_LIVE_ACK = 650


def _generated(tmp_path_factory: pytest.TempPathFactory, kind: str, count: int, seed: int) -> Path:
    """`count` packets of `bench/gen_capture.py --{kind}` in one second (all live at once)."""
    out = tmp_path_factory.mktemp(kind) / f"{kind}.pcap"
    subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "gen_capture.py")),
            *(f"--{kind}", str(count), "--flood-rate", str(count), "--seed", str(seed), "--out", str(out)),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SYNS spoofed SYNs in one second (all live at once under the 5 s attempt timer)."""
    return _generated(tmp_path_factory, "syn-flood", SYNS, 3)


@pytest.fixture(scope="module")
def ack_flood(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ACKS lone ACKs on distinct 4-tuples in one second (all live at once)."""
    return _generated(tmp_path_factory, "ack-flood", ACKS, 7)


def _fields(endpoint: Endpoint) -> dict[str, object]:
    names = [name for name in Endpoint.__annotations__ if name not in ("ip", "port", "addr_key", "stand_in")]
    return {name: getattr(endpoint, name) for name in names}


def _live_at_end(flood: Path) -> tuple[Auditor, list[Connection], int]:
    """The flood through the engine, stopped before the end of input (every connection still live), and
    the memory traced while it ran, at its last look (the progress callback's)."""
    auditor = Auditor()
    held = [0]

    def progress(_readers: object, _packets: int) -> None:
        held[0] = tracemalloc.get_traced_memory()[0]

    auditor.progress = progress
    readers = auditor.open_readers([str(flood)])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        auditor._consume(readers, LaneCounts())
        held[0] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        for reader in readers:
            reader.close()
    return auditor, auditor.tracker.live, held[0] - before


def test_unanswered_syns_share_one_responder_never_written(flood: Path) -> None:
    auditor, live, _ = _live_at_end(flood)
    assert len(live) == SYNS  # (1 s of flood: none has timed out)
    answered = [conn for conn in live if conn.synack_ts is not None]
    unanswered = [conn for conn in live if conn.synack_ts is None]
    assert len(answered) == SYNS // 50
    stand_ins = {id(conn.resp) for conn in unanswered}
    assert len(stand_ins) == 1
    shared = unanswered[0].resp
    assert shared.stand_in and shared.ip == SERVER and shared.port == 80
    assert _fields(shared) == _fields(Endpoint(SERVER, 80, False))  # no step wrote into it
    # a responder that answered has its own Endpoint, with what it sent
    assert all(not conn.resp.stand_in and conn.resp.packets == 1 for conn in answered)
    # the timers set at creation (expire, inactivity, the SYN's attempt timer) are the connections
    # themselves in their lanes: no timer entry at all
    timers = auditor.tracker.timers
    assert sum(len(lane) for lane in timers.lanes.values()) + len(timers.heap) == 0
    assert [len(lane.conns) for lane in timers.new_lanes] == [SYNS, SYNS, SYNS]


def test_memory_per_live_syn_bounded(flood: Path) -> None:
    _, live, held = _live_at_end(flood)
    assert len(live) == SYNS
    assert held / SYNS < MAX_BYTES_PER_LIVE_SYN, f"{held / SYNS:.0f} bytes per live SYN"


def test_flood_output_every_syn_a_row(flood: Path, tmp_path: Path, cli) -> None:
    """Compact as it is, the flood is still found and every SYN is still a flow row."""
    cli(flood, "--output-dir", tmp_path / "out", "-q")
    rows = (tmp_path / "out" / "flows.csv").read_text().splitlines()
    assert len(rows) == 1 + SYNS
    assert "syn_flood" in (tmp_path / "out" / "anomalies.csv").read_text()


def test_memory_per_live_midstream_connection_bounded(ack_flood: Path) -> None:
    _, live, held = _live_at_end(ack_flood)
    assert len(live) == ACKS  # (1 s of flood: none has timed out)
    assert all(conn.direction_guessed and conn.history == "A" for conn in live)
    # a lone ACK is nothing unusual: neither side has the side record, nor the connection its own
    assert all(conn.orig.unusual is None and conn.uncommon is None for conn in live)
    # the server, which sent nothing, is one stand-in for all of them, never written
    assert len({id(conn.resp) for conn in live}) == 1
    shared = live[0].resp
    assert shared.stand_in and shared.state == rfc.UNKNOWN and shared.ip == SERVER
    fresh = Endpoint(SERVER, 80, False)
    fresh.state = rfc.UNKNOWN
    assert _fields(shared) == _fields(fresh)
    assert held / ACKS < MAX_BYTES_PER_LIVE_ACK, f"{held / ACKS:.0f} bytes per live midstream connection"


CLIENT_A, CLIENT_B, HOST = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 3]), bytes([10, 0, 0, 2])
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


def test_midstream_responder_shared_until_a_segment_writes_into_it() -> None:
    """Two connections picked up midstream share their silent server's stand-in through ACKs, data and a
    FIN from the clients; a client's RST (which moves the server's state) or the server's own segment
    gives that connection the server's own Endpoint, and the stand-in stays as it was."""
    records: list = []
    tracker = ConnectionTracker(on_flow=records.append)
    a = tracker.packet(1.0, CLIENT_A, 40000, HOST, 80, 1000, 7000, ACK, 500, 0)
    b = tracker.packet(1.1, CLIENT_B, 40001, HOST, 80, 3000, 9000, ACK, 500, 0)
    shared = a.resp
    assert b.resp is shared and shared.stand_in and shared.state == rfc.UNKNOWN
    tracker.packet(1.2, CLIENT_A, 40000, HOST, 80, 1000, 7000, ACK, 500, 100)  # data
    tracker.packet(1.3, CLIENT_A, 40000, HOST, 80, 1100, 7000, FIN | ACK, 500, 0)
    assert a.resp is shared and a.orig.state == rfc.FIN_WAIT_1
    tracker.packet(1.4, CLIENT_B, 40001, HOST, 80, 3000, 9000, RST | ACK, 0, 0)
    assert b.resp is not shared and not b.resp.stand_in and b.resp.state == rfc.CLOSED
    tracker.packet(1.5, HOST, 80, CLIENT_A, 40000, 7000, 1101, ACK, 500, 0)  # the server acks the FIN
    assert a.resp is not shared and a.resp.packets == 1 and a.resp.state == rfc.CLOSE_WAIT
    assert a.orig.state == rfc.FIN_WAIT_2
    fresh = Endpoint(HOST, 80, False)
    fresh.state = rfc.UNKNOWN
    assert _fields(shared) == _fields(fresh)  # no step wrote into it
    tracker.flush()
    by_client = {record.client_ip: record for record in records}
    assert (by_client[CLIENT_A].server_packets, by_client[CLIENT_A].client_bytes) == (1, 100)
    assert by_client[CLIENT_B].server_state == rfc.CLOSED
