"""The connection engine, driven segment by segment through the tracker.

Every test builds a conversation between a client (10.0.0.1:51000) and a server
(10.0.0.2:9999, a port Zeek does not take for a server) one segment at a time and checks,
after the steps that matter, both views of it:

* the RFC 9293 endpoint states the observer infers (conn.orig.state / conn.resp.state, and
  FlowRecord.client_state / server_state once the connection is finalised);
* Zeek's view: FlowRecord.conn_state and .history, as conn.log would show them.

`Conv` fills in sequence and acknowledgement numbers the way a well-behaved stack would
(each side acks everything the other has sent so far) unless a test gives them explicitly.
"""

from __future__ import annotations

import pytest

from tcpflow_audit import tcp_states as rfc
from tcpflow_audit.config import EngineConfig
from tcpflow_audit.connection import seq_delta
from tcpflow_audit.detectors import DetectorSet
from tcpflow_audit.detectors.base import Context
from tcpflow_audit.detectors.kinds import syn_during_time_wait, zero_window_stall
from tcpflow_audit.detectors.thresholds import Thresholds
from tcpflow_audit.tracker import ConnectionTracker

FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
MASK = 0xFFFFFFFF

CLIENT_IP = bytes([10, 0, 0, 1])
SERVER_IP = bytes([10, 0, 0, 2])
CLIENT_PORT = 51000
SERVER_PORT = 9999  # not a likely server port: only a bare SYN decides the direction
CISN = 1000
SISN = 5000

CLOSED, SYN_SENT, SYN_RCVD, ESTABLISHED = rfc.CLOSED, rfc.SYN_SENT, rfc.SYN_RCVD, rfc.ESTABLISHED
FIN_WAIT_1, FIN_WAIT_2, CLOSING, TIME_WAIT = rfc.FIN_WAIT_1, rfc.FIN_WAIT_2, rfc.CLOSING, rfc.TIME_WAIT
CLOSE_WAIT, LAST_ACK, UNKNOWN = rfc.CLOSE_WAIT, rfc.LAST_ACK, rfc.UNKNOWN


class Conv:
    """A client/server conversation on one 4-tuple, fed to a ConnectionTracker one segment at a time."""

    def __init__(
        self,
        tracker: ConnectionTracker | None = None,
        *,
        cport: int = CLIENT_PORT,
        sport: int = SERVER_PORT,
        cisn: int = CISN,
        sisn: int = SISN,
        t: float = 1.0,
        config: EngineConfig | None = None,
    ) -> None:
        self.records: list = []
        self.tracker = tracker or ConnectionTracker(config, on_flow=self.records.append)
        self.t = t
        self.addr = {"c": (CLIENT_IP, cport), "s": (SERVER_IP, sport)}
        self.nxt = {"c": cisn, "s": sisn}  # the next sequence number each side will use
        self.conn = None

    def send(
        self,
        side: str,
        flags: int,
        length: int = 0,
        *,
        seq: int | None = None,
        ack: int | None = None,
        at: float | None = None,
        dt: float = 0.01,
        window: int = 65535,
        checksum_ok: bool = True,
    ):
        other = "s" if side == "c" else "c"
        self.t = self.t + dt if at is None else at
        seq = self.nxt[side] if seq is None else seq
        if ack is None:
            ack = self.nxt[other] if flags & ACK else 0
        (src, sp), (dst, dp) = self.addr[side], self.addr[other]
        self.conn = self.tracker.packet(
            self.t, src, sp, dst, dp, seq & MASK, ack & MASK, flags, window, length, checksum_ok
        )
        if checksum_ok and not flags & RST:
            end = (seq + length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & MASK
            if seq_delta(end, self.nxt[side]) > 0:
                self.nxt[side] = end
        return self.conn

    def c(self, flags: int, length: int = 0, **kw):
        return self.send("c", flags, length, **kw)

    def s(self, flags: int, length: int = 0, **kw):
        return self.send("s", flags, length, **kw)

    def handshake(self) -> None:
        self.c(SYN)
        self.s(SYN | ACK)
        self.c(ACK)

    @property
    def states(self) -> tuple[str, str]:
        return self.conn.orig.state, self.conn.resp.state

    @property
    def history(self) -> str:
        return "".join(self.conn.history)

    def finish(self):
        """Flush the tracker and return the one record of this conversation."""
        self.tracker.flush()
        assert len(self.records) == 1, self.records
        return self.records[0]


def close_by_client(v: Conv) -> None:
    v.c(FIN | ACK)
    v.s(FIN | ACK)
    v.c(ACK)


# ====================================================================== three-way handshake


def test_syn_puts_client_in_syn_sent():
    v = Conv()
    v.c(SYN)
    assert v.states == (SYN_SENT, CLOSED)
    assert v.history == "S"
    assert v.conn.orig.port == CLIENT_PORT and v.conn.direction_guessed is False


def test_synack_acking_isn_plus_one_puts_server_in_syn_rcvd():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK, ack=CISN + 1)
    assert v.states == (SYN_SENT, SYN_RCVD)
    assert v.history == "Sh"
    assert v.conn.seen_uncommon().bad_synack == 0


def test_third_ack_establishes_both():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK)
    v.c(ACK, seq=CISN + 1, ack=SISN + 1)
    assert v.states == (ESTABLISHED, ESTABLISHED)
    r = v.finish()
    assert (r.client_state, r.server_state) == (ESTABLISHED, ESTABLISHED)
    assert (r.conn_state, r.history) == ("S1", "ShA")
    assert r.facts.bad_third_ack == 0 and r.end_reason == "capture_end"


def test_data_carrying_the_third_ack_completes_the_handshake():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK)
    v.c(ACK | PSH, 50, ack=SISN + 1)
    assert v.states == (ESTABLISHED, ESTABLISHED)
    r = v.finish()
    assert (r.conn_state, r.history, r.client_bytes) == ("S1", "ShD", 50)


def test_handshake_rtt_pieces():
    v = Conv()
    v.c(SYN, at=10.0)
    v.s(SYN | ACK, at=10.025)
    v.c(ACK, at=10.1)
    r = v.finish()
    assert r.syn_synack_ms == pytest.approx(25.0)
    assert r.synack_ack_ms == pytest.approx(75.0)
    assert (r.facts.syn_ts, r.facts.synack_ts, r.facts.handshake_done_ts) == (10.0, 10.025, 10.1)


def test_synack_with_wrong_ack_changes_no_state():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK, ack=CISN + 77)
    assert v.states == (SYN_SENT, CLOSED)
    assert v.conn.seen_uncommon().bad_synack == 1
    v.c(ACK, ack=SISN + 1)  # even the "third ACK" cannot complete what never started
    assert v.states == (SYN_SENT, CLOSED)
    r = v.finish()
    assert r.facts.bad_synack == 1 and r.facts.bad_ack_ts == pytest.approx(1.02)
    assert r.syn_synack_ms is None
    # Zeek does not check the ack of a SYN-ACK: both analyzer endpoints are established.
    assert (r.conn_state, r.history) == ("S1", "ShA")


def test_correct_synack_after_a_bad_one_opens_normally():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK, ack=4242)
    v.s(SYN | ACK)  # same ISN, now acking CISN+1
    assert v.states == (SYN_SENT, SYN_RCVD)
    v.c(ACK)
    assert v.states == (ESTABLISHED, ESTABLISHED)
    r = v.finish()
    assert r.facts.bad_synack == 1 and r.facts.synack_retransmits == 0
    assert r.history == "ShA"  # the repeated SYN-ACK has the same seq: one 'h'


def test_third_ack_with_wrong_ack_leaves_server_in_syn_rcvd():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK)
    v.c(ACK, ack=SISN + 5)  # beyond anything the server sent
    assert v.states == (SYN_SENT, SYN_RCVD)
    assert v.conn.seen_uncommon().bad_third_ack == 1
    r = v.finish()
    assert (r.client_state, r.server_state) == (SYN_SENT, SYN_RCVD)
    assert r.facts.bad_third_ack == 1 and r.synack_ack_ms is None
    assert (r.conn_state, r.history) == ("S1", "ShA")


def test_third_ack_never_sent():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK)
    r = v.finish()
    assert (r.client_state, r.server_state) == (SYN_SENT, SYN_RCVD)
    # Zeek moves both analyzer endpoints to ESTABLISHED on the SYN-ACK (UpdateInactiveState), so S1.
    assert (r.conn_state, r.history) == ("S1", "Sh")


def test_syn_retransmission_with_same_isn_is_the_same_connection():
    v = Conv()
    first = v.c(SYN)
    again = v.c(SYN, seq=CISN, dt=1.0)
    assert again is first
    assert v.states == (SYN_SENT, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history) == ("S0", "S")
    assert r.facts.syn_retransmits == 1 and r.retransmits == 1 and r.client_packets == 2


def test_synack_first_then_ack_is_flipped_and_established_on_the_server():
    v = Conv(sport=80)
    v.s(SYN | ACK, ack=CISN + 1)
    v.c(ACK)
    assert v.conn.orig.port == CLIENT_PORT
    assert v.conn.resp.state == ESTABLISHED
    r = v.finish()
    assert (r.conn_state, r.history) == ("S1", "^hA")


# ====================================================================== closing


def test_client_initiated_four_way_close():
    v = Conv()
    v.handshake()
    v.c(ACK | PSH, 100)
    v.s(ACK | PSH, 200)
    v.c(FIN | ACK)
    assert v.states == (FIN_WAIT_1, ESTABLISHED)
    v.s(ACK)
    assert v.states == (FIN_WAIT_2, CLOSE_WAIT)
    v.s(FIN | ACK)
    assert v.states == (FIN_WAIT_2, LAST_ACK)
    v.c(ACK)
    assert v.states == (TIME_WAIT, CLOSED)
    last_ack_ts = v.t
    r = v.finish()
    assert (r.client_state, r.server_state) == (TIME_WAIT, CLOSED)
    assert (r.conn_state, r.history) == ("SF", "ShADdFaf")
    assert (r.close_initiator, r.end_reason) == ("client", "fin")
    assert (r.client_bytes, r.server_bytes) == (100, 200)
    assert r.client_time_wait_until == pytest.approx(last_ack_ts + 60.0)
    assert r.server_time_wait_until is None
    assert r.facts.client_fin_acked and r.facts.server_fin_acked


def test_server_initiated_four_way_close():
    v = Conv()
    v.handshake()
    v.s(FIN | ACK)
    assert v.states == (ESTABLISHED, FIN_WAIT_1)
    v.c(ACK)
    assert v.states == (CLOSE_WAIT, FIN_WAIT_2)
    v.c(FIN | ACK)
    assert v.states == (LAST_ACK, FIN_WAIT_2)
    v.s(ACK)
    assert v.states == (CLOSED, TIME_WAIT)
    r = v.finish()
    assert (r.client_state, r.server_state) == (CLOSED, TIME_WAIT)
    assert (r.conn_state, r.history) == ("SF", "ShAfFa")
    assert r.close_initiator == "server"
    assert r.client_time_wait_until is None and r.server_time_wait_until == pytest.approx(v.t + 60.0)


def test_fin_wait_1_moves_only_on_an_ack_of_fin_seq_plus_one():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK | PSH, 10)  # FIN carrying 10 bytes: the FIN occupies CISN+1+10
    assert v.conn.orig.fin_seq == CISN + 11
    assert v.states == (FIN_WAIT_1, ESTABLISHED)
    v.s(ACK, ack=CISN + 11)  # acks the data, not the FIN
    assert v.states == (FIN_WAIT_1, ESTABLISHED)
    v.s(ACK, ack=CISN + 12)
    assert v.states == (FIN_WAIT_2, CLOSE_WAIT)
    v.s(FIN | ACK)
    v.c(ACK)
    assert v.states == (TIME_WAIT, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history, r.client_bytes) == ("SF", "ShAFaf", 10)


def test_fin_ack_acking_the_peer_fin_goes_from_close_wait_to_last_ack():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK)
    v.s(FIN | ACK, ack=CISN + 2)  # acks the client's FIN and closes in the same segment
    assert v.states == (FIN_WAIT_2, LAST_ACK)
    v.c(ACK)
    assert v.states == (TIME_WAIT, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history, r.close_initiator) == ("SF", "ShAFf", "client")


def test_simultaneous_close_client_acks_first():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK, ack=SISN + 1)
    v.s(FIN | ACK, ack=CISN + 1)  # crossed: does not ack the client's FIN
    assert v.states == (FIN_WAIT_1, FIN_WAIT_1)
    v.c(ACK, ack=SISN + 2)
    assert v.conn.orig.state == CLOSING
    assert v.conn.resp.state == TIME_WAIT  # through CLOSING: it had the client's FIN, now its own is acked
    v.s(ACK, ack=CISN + 2)
    assert v.states == (TIME_WAIT, TIME_WAIT)
    r = v.finish()
    assert (r.client_state, r.server_state) == (TIME_WAIT, TIME_WAIT)
    assert (r.conn_state, r.history, r.close_initiator) == ("SF", "ShAFfa", "both")
    assert r.client_time_wait_until is not None and r.server_time_wait_until is not None


def test_simultaneous_close_server_acks_first():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK, ack=SISN + 1)
    v.s(FIN | ACK, ack=CISN + 1)
    v.s(ACK, ack=CISN + 2)
    assert v.conn.resp.state == CLOSING
    assert v.conn.orig.state == TIME_WAIT
    v.c(ACK, ack=SISN + 2)
    assert v.states == (TIME_WAIT, TIME_WAIT)
    r = v.finish()
    assert (r.conn_state, r.history, r.close_initiator) == ("SF", "ShAFfa", "both")


def test_half_close_server_keeps_sending_then_closes():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK)
    v.s(ACK)
    assert v.states == (FIN_WAIT_2, CLOSE_WAIT)
    v.s(ACK | PSH, 500)
    v.c(ACK)
    v.s(ACK | PSH, 500)
    v.c(ACK)
    assert v.states == (FIN_WAIT_2, CLOSE_WAIT)
    v.s(FIN | ACK)
    assert v.states == (FIN_WAIT_2, LAST_ACK)
    v.c(ACK)
    assert v.states == (TIME_WAIT, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history) == ("SF", "ShAFadf")
    assert r.server_bytes == 1000 and r.facts.server_payload_packets == 2
    assert r.facts.server_data_after_close == 0  # data in CLOSE_WAIT is legitimate


def test_fin_never_acked_leaves_closer_in_fin_wait_1():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK)
    v.s(ACK | PSH, 100, ack=CISN + 1)  # the server talks on but never acks the FIN
    r = v.finish()
    assert (r.client_state, r.server_state) == (FIN_WAIT_1, ESTABLISHED)
    assert r.facts.client_fin_acked is False
    assert (r.conn_state, r.history) == ("S2", "ShAFd")


def test_server_fin_without_reply_is_S3():
    v = Conv()
    v.handshake()
    v.s(FIN | ACK)
    r = v.finish()
    assert (r.client_state, r.server_state) == (ESTABLISHED, FIN_WAIT_1)
    assert (r.conn_state, r.history, r.close_initiator) == ("S3", "ShAf", "server")


def test_fin_retransmission_counted_and_one_history_letter():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK)
    v.c(FIN | ACK, seq=CISN + 1, dt=0.3)  # (after a retransmission timeout)
    assert v.history == "ShAF"
    assert v.conn.orig.seen_unusual().fin_retransmits == v.conn.orig.seen_unusual().retransmitted == 1
    v.c(FIN | ACK, seq=CISN + 6)  # a FIN at another sequence number is a new 'F'
    assert v.history == "ShAFF"


def test_syn_rcvd_fin_to_fin_wait_1():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK)
    v.s(FIN | ACK)
    assert v.states == (SYN_SENT, FIN_WAIT_1)
    r = v.finish()
    assert (r.conn_state, r.history) == ("S3", "Shf")


# (was a strict xfail: fixed in the engine)
def test_client_acking_synack_and_fin_of_a_server_that_closed_in_syn_rcvd():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK)
    v.s(FIN | ACK)  # server closes before the third ACK: SYN_RCVD -> FIN_WAIT_1
    v.c(ACK, ack=SISN + 2)  # acks the SYN and the FIN: the client saw the SYN-ACK, then the FIN
    assert v.conn.resp.state == FIN_WAIT_2
    assert v.conn.orig.state == CLOSE_WAIT  # RFC 9293: SYN_SENT -> ESTABLISHED -> CLOSE_WAIT
    v.c(FIN | ACK)
    v.s(ACK)
    assert v.states == (CLOSED, TIME_WAIT)


# ====================================================================== TIME_WAIT expiry


def test_time_wait_expires_to_closed_after_2msl():
    v = Conv()
    v.handshake()
    close_by_client(v)
    since = v.conn.orig.time_wait_since
    assert since == pytest.approx(v.t)
    early = v.conn.to_record(since + 59.9, 60.0)
    assert (early.client_state, early.server_state) == (TIME_WAIT, CLOSED)
    late = v.conn.to_record(since + 60.0, 60.0)
    assert (late.client_state, late.server_state) == (CLOSED, CLOSED)
    assert late.client_time_wait_until == pytest.approx(since + 60.0)
    assert late.conn_state == "SF"


def test_time_wait_closed_when_flushed_after_a_late_packet():
    v = Conv(config=EngineConfig(close_delay=1000.0))  # keep the record open past 2*MSL
    v.handshake()
    close_by_client(v)
    other = Conv(v.tracker, cport=52000)
    other.c(SYN, at=v.t + 61.0)
    v.tracker.flush()
    mine = [r for r in v.records if r.client_port == CLIENT_PORT]
    assert len(mine) == 1
    assert (mine[0].client_state, mine[0].server_state) == (CLOSED, CLOSED)
    assert mine[0].conn_state == "SF"


def test_closed_connection_finalised_by_close_delay_still_in_time_wait():
    v = Conv()
    v.handshake()
    close_by_client(v)
    other = Conv(v.tracker, cport=52000)
    other.c(SYN, at=v.t + 100.0)  # runs the 5 s close-delay timer, due long before 2*MSL
    assert len(v.records) == 1
    r = v.records[0]
    assert (r.client_state, r.server_state) == (TIME_WAIT, CLOSED)
    assert r.end_reason == "fin"


# ====================================================================== RST in each state


def test_rst_ack_to_syn_is_a_refusal():
    v = Conv()
    v.c(SYN)
    v.s(RST | ACK, seq=0, ack=CISN + 1)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    assert (r.client_state, r.server_state) == (CLOSED, CLOSED)
    assert (r.conn_state, r.history, r.end_reason) == ("REJ", "Sr", "rst")


@pytest.mark.parametrize(
    "flags, ack",
    [(RST | ACK, CISN + 5), (RST | ACK, CISN), (RST, CISN + 1)],
    ids=["ack-too-far", "ack-isn", "no-ack-bit"],
)
def test_rst_not_acking_the_syn_is_not_acceptable_in_syn_sent(flags, ack):
    v = Conv()
    v.c(SYN)
    v.s(flags, seq=0, ack=ack)
    assert v.states == (SYN_SENT, CLOSED)
    r = v.finish()
    assert (r.client_state, r.server_state) == (SYN_SENT, CLOSED)
    assert (r.conn_state, r.history) == ("REJ", "Sr")  # Zeek does not check the ack


def test_client_rst_in_syn_rcvd():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK)
    v.c(RST)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history) == ("RSTO", "ShR")


def test_server_rst_in_syn_rcvd():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK)
    v.s(RST | ACK)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history) == ("RSTR", "Shr")


@pytest.mark.parametrize("side, conn_state, history", [("c", "RSTO", "ShADR"), ("s", "RSTR", "ShADr")])
def test_rst_in_established(side, conn_state, history):
    v = Conv()
    v.handshake()
    v.c(ACK | PSH, 20)
    v.send(side, RST | ACK)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    assert (r.client_state, r.server_state) == (CLOSED, CLOSED)
    assert (r.conn_state, r.history, r.end_reason) == (conn_state, history, "rst")
    assert (r.facts.client_rst_ts is not None) == (side == "c")
    assert (r.facts.server_rst_ts is not None) == (side == "s")


def test_rst_far_outside_the_window_is_not_acceptable():
    v = Conv()
    v.handshake()
    v.s(RST, seq=SISN + 1 + 10_000_000)
    assert v.states == (ESTABLISHED, CLOSED)  # the sender is gone, the receiver would ignore it
    r = v.finish()
    assert (r.conn_state, r.history) == ("RSTR", "ShAr")


def test_rst_in_fin_wait_1():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK)
    assert v.states == (FIN_WAIT_1, ESTABLISHED)
    v.s(RST)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history, r.end_reason) == ("RSTR", "ShAFr", "rst")


@pytest.mark.parametrize("side, conn_state, history", [("c", "RSTO", "ShAFaR"), ("s", "RSTR", "ShAFar")])
def test_rst_in_fin_wait_2_and_close_wait(side, conn_state, history):
    v = Conv()
    v.handshake()
    v.c(FIN | ACK)
    v.s(ACK)
    assert v.states == (FIN_WAIT_2, CLOSE_WAIT)
    v.send(side, RST)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history) == (conn_state, history)


@pytest.mark.parametrize("side, history", [("c", "ShAFfR"), ("s", "ShAFfr")])
def test_rst_in_last_ack(side, history):
    v = Conv()
    v.handshake()
    v.c(FIN | ACK)
    v.s(FIN | ACK)
    assert v.states == (FIN_WAIT_2, LAST_ACK)
    v.send(side, RST)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    # Zeek: a RST after both FINs leaves both analyzer endpoints CLOSED.
    assert (r.conn_state, r.history, r.end_reason) == ("SF", history, "rst")


def test_syn_then_rst_without_synack_is_RSTOS0():
    v = Conv()
    v.c(SYN)
    v.c(RST)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history) == ("RSTOS0", "SR")


def test_lone_rst_is_OTH():
    v = Conv()
    v.c(RST | ACK)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history, r.direction_guessed) == ("OTH", "R", True)


# ====================================================================== port reuse


def test_new_isn_after_close_starts_a_new_connection():
    v = Conv()
    v.handshake()
    close_by_client(v)
    old = v.conn
    v.nxt = {"c": 90_000, "s": 70_000}
    new = v.c(SYN, dt=1.0)
    assert new is not old
    assert len(v.records) == 1 and v.records[0].end_reason == "fin"
    assert v.states == (SYN_SENT, CLOSED)
    assert new.seen_uncommon().prev_time_wait is not None
    v.s(SYN | ACK)
    assert v.states == (SYN_SENT, SYN_RCVD)
    v.c(ACK)
    assert v.states == (ESTABLISHED, ESTABLISHED)
    v.tracker.flush()
    first, second = v.records
    assert (first.conn_state, first.history, first.client_state) == ("SF", "ShAFf", TIME_WAIT)
    assert (second.conn_state, second.history) == ("S1", "ShA")
    assert second.facts.syn_in_time_wait is True and first.facts.syn_in_time_wait is False


def test_new_syn_after_close_delay_but_within_time_wait_is_flagged():
    v = Conv()
    v.handshake()
    close_by_client(v)
    v.nxt["c"] = 90_000
    new = v.c(SYN, dt=10.0)  # old record finalised by the 5 s timer; its TIME_WAIT lasts 60 s
    assert len(v.records) == 1
    assert new.seen_uncommon().prev_time_wait is not None


def test_new_isn_on_an_unanswered_attempt_starts_a_new_connection():
    v = Conv()
    first = v.c(SYN)
    second = v.c(SYN, seq=CISN + 123_456, dt=1.0)
    assert second is not first
    v.tracker.flush()
    assert [(r.conn_state, r.history, r.end_reason) for r in v.records] == [
        ("S0", "S", "reused"),
        ("S0", "S", "capture_end"),
    ]
    assert v.tracker.connections_seen == 2


# ====================================================================== midstream start


def test_midstream_data_is_unknown_and_OTH():
    v = Conv()
    v.c(ACK | PSH, 10)
    assert v.states == (UNKNOWN, UNKNOWN)
    v.s(ACK)
    assert v.states == (UNKNOWN, UNKNOWN)
    r = v.finish()
    assert r.direction_guessed is True
    assert (r.client_port, r.server_port) == (CLIENT_PORT, SERVER_PORT)
    assert (r.conn_state, r.history) == ("OTH", "Da")


def test_midstream_connection_closing_normally():
    v = Conv()
    v.c(ACK | PSH, 10)
    v.s(ACK)
    v.c(FIN | ACK)
    assert v.states == (FIN_WAIT_1, UNKNOWN)
    v.s(FIN | ACK)
    assert v.states == (FIN_WAIT_2, LAST_ACK)
    v.c(ACK)
    assert v.states == (TIME_WAIT, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history) == ("SF", "DaFfA")


def test_first_packet_from_a_server_port_flips_the_originator():
    v = Conv(sport=80)
    v.s(ACK | PSH, 10)
    assert v.conn.orig.port == CLIENT_PORT and v.conn.resp.port == 80
    assert v.states == (UNKNOWN, UNKNOWN)
    r = v.finish()
    assert (r.client_port, r.server_port, r.direction_guessed) == (CLIENT_PORT, 80, True)
    assert (r.conn_state, r.history) == ("OTH", "^d")


def test_connection_starting_with_synack_is_flipped():
    v = Conv(sport=SERVER_PORT)  # flipped whatever the ports
    v.s(SYN | ACK, ack=CISN + 1)
    assert v.conn.orig.port == CLIENT_PORT
    assert v.states == (UNKNOWN, SYN_RCVD)
    r = v.finish()
    assert (r.conn_state, r.history) == ("OTH", "^h")


# ====================================================================== history letters


def test_a_and_d_at_most_once_per_direction():
    v = Conv()
    v.handshake()
    for _ in range(2):
        v.c(ACK | PSH, 5)
        v.c(ACK)
        v.s(ACK | PSH, 3)
        v.s(ACK)
    assert v.history == "ShADda"


@pytest.mark.parametrize(
    "repeats, history", [(1, "ShADT"), (9, "ShADT"), (10, "ShADTT"), (99, "ShADTT"), (100, "ShADTTT")]
)
def test_retransmitted_payload_T_is_logarithmic(repeats, history):
    v = Conv()
    v.handshake()
    v.c(ACK | PSH, 100)
    for _ in range(repeats):
        v.c(ACK | PSH, 100, seq=CISN + 1)
    assert v.history == history
    assert v.conn.orig.seen_unusual().rxmit_cnt == repeats
    r = v.finish()
    assert r.retransmits == repeats and r.client_bytes == 100


@pytest.mark.parametrize("count, history", [(1, "ShAaw"), (9, "ShAaw"), (10, "ShAaww"), (100, "ShAawww")])
def test_zero_window_W_is_logarithmic(count, history):
    v = Conv()
    v.handshake()
    for _ in range(count):
        v.s(ACK, window=0)
    assert v.history == history


@pytest.mark.parametrize("count, history", [(1, "ShAc"), (9, "ShAc"), (10, "ShAcc"), (100, "ShAccc")])
def test_bad_checksum_marks_history_and_is_otherwise_ignored(count, history):
    v = Conv()
    v.handshake()
    for _ in range(count):
        v.s(FIN | ACK | PSH, 10, checksum_ok=False)
    assert v.history == history
    assert v.states == (ESTABLISHED, ESTABLISHED)
    r = v.finish()
    assert r.server_packets == 1 and r.server_bytes == 0 and r.facts.server_fin_ts is None
    assert r.conn_state == "S1"


def test_bad_checksum_syn_creates_nothing_but_C():
    v = Conv()
    v.c(SYN, checksum_ok=False)
    assert v.states == (CLOSED, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history, r.client_packets) == ("OTH", "C", 0)
    assert r.facts.syn_ts is None


def test_rst_letter_repeats_only_for_a_new_seq():
    v = Conv()
    v.handshake()
    v.c(RST | ACK)
    v.c(RST | ACK)
    assert v.history == "ShAR"
    v.c(RST | ACK, seq=CISN + 1000)
    assert v.history == "ShARR"


def test_synack_letter_repeats_only_for_a_new_seq():
    v = Conv()
    v.c(SYN)
    v.s(SYN | ACK)
    v.s(SYN | ACK, seq=SISN)  # retransmission
    assert v.history == "Sh"
    assert v.conn.resp.seen_unusual().synack_retransmits == 1
    v.s(FIN | ACK)
    v.s(SYN | ACK, seq=SISN + 2000)  # Zeek keeps a closed endpoint's start seq: a new relative seq
    assert v.history == "Shfh"


def test_unanswered_syn_is_S0():
    v = Conv()
    v.c(SYN)
    r = v.finish()
    assert (r.client_state, r.server_state) == (SYN_SENT, CLOSED)
    assert (r.conn_state, r.history, r.end_reason) == ("S0", "S", "capture_end")
    assert r.client_packets == 1 and r.server_packets == 0


def test_syn_then_fin_is_SH():
    v = Conv()
    v.c(SYN)
    v.c(FIN)
    # RFC 9293 has no FIN from SYN_SENT (a close there sends nothing): the state is left alone.
    assert v.states == (SYN_SENT, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history) == ("SH", "SF")


# ====================================================================== timers


def test_unanswered_syn_is_finalised_5s_later():
    v = Conv()
    v.c(SYN, at=10.0)
    other = Conv(v.tracker, cport=52000)
    other.c(SYN, at=15.0)  # timers fire strictly before a packet at the same instant
    assert v.records == []
    other.c(SYN, seq=CISN, at=15.001)
    assert len(v.records) == 1
    r = v.records[0]
    assert (r.client_port, r.conn_state, r.history, r.end_reason) == (CLIENT_PORT, "S0", "S", "timeout")
    assert r.client_state == SYN_SENT


def test_rst_closed_connection_takes_stragglers_for_5s():
    v = Conv()
    v.handshake()
    v.c(RST | ACK)
    rst_conn = v.conn
    rst_ts = v.t
    v.s(ACK, at=rst_ts + 4.9)
    assert v.conn is rst_conn
    assert v.history == "ShARa"
    assert v.records == []
    v.s(ACK, at=rst_ts + 5.5)
    assert v.conn is not rst_conn
    assert v.states == (UNKNOWN, UNKNOWN)
    v.tracker.flush()
    first, second = v.records
    assert (first.conn_state, first.history, first.end_reason) == ("RSTO", "ShARa", "rst")
    assert (second.conn_state, second.history, second.direction_guessed) == ("OTH", "A", True)
    assert second.client_port == SERVER_PORT  # the straggler's sender, no server port to flip on


def test_syn_fin_connection_removed_after_close_delay():
    v = Conv()
    v.c(SYN, at=10.0)
    v.c(FIN, at=10.5)
    other = Conv(v.tracker, cport=52000)
    other.c(SYN, at=15.4)
    assert v.records == []
    other.c(SYN, seq=CISN, at=15.6)
    assert [(r.conn_state, r.end_reason) for r in v.records] == [("SH", "timeout")]


def test_inactivity_timeout():
    v = Conv()
    v.handshake()
    v.c(ACK | PSH, 10, at=300.0)  # activity keeps it alive past the first 300 s
    other = Conv(v.tracker, cport=52000)
    other.c(SYN, at=599.9)
    assert v.records == []
    other.c(SYN, seq=CISN, at=600.1)
    assert len(v.records) == 1
    r = v.records[0]
    assert (r.conn_state, r.history, r.end_reason) == ("S1", "ShAD", "timeout")
    assert (r.client_state, r.server_state) == (ESTABLISHED, ESTABLISHED)
    assert r.end == 300.0


def test_max_connections_evicts_the_oldest():
    records: list = []
    tracker = ConnectionTracker(EngineConfig(max_connections=2), on_flow=records.append)
    for i in range(3):
        Conv(tracker, cport=50000 + i).c(SYN, at=1.0 + i)
    assert tracker.evicted == 1
    assert len(tracker.live) == 2
    assert [(r.client_port, r.end_reason, r.conn_state) for r in records] == [(50000, "evicted", "S0")]
    tracker.flush()
    assert [r.client_port for r in records] == [50000, 50001, 50002]
    assert [r.end_reason for r in records[1:]] == ["capture_end", "capture_end"]


# ====================================================================== sequence wraparound


def test_full_connection_across_the_sequence_wrap():
    v = Conv(cisn=2**32 - 2, sisn=2**32 - 3)
    v.c(SYN)
    v.s(SYN | ACK, ack=2**32 - 1)
    assert v.states == (SYN_SENT, SYN_RCVD)
    v.c(ACK, ack=2**32 - 2)
    assert v.states == (ESTABLISHED, ESTABLISHED)
    v.c(ACK | PSH, 100, seq=2**32 - 1)  # crosses zero: next seq is 99
    v.s(ACK, ack=99)
    v.s(ACK | PSH, 50, seq=2**32 - 2)  # crosses zero: next seq is 48
    v.c(ACK, seq=99, ack=48)
    v.c(FIN | ACK, seq=99)
    assert v.conn.orig.fin_seq == 99
    v.s(ACK, ack=99)  # acks data, not the FIN
    assert v.states == (FIN_WAIT_1, ESTABLISHED)
    v.s(ACK, ack=100)
    assert v.states == (FIN_WAIT_2, CLOSE_WAIT)
    v.s(FIN | ACK, seq=48, ack=100)
    v.c(ACK, seq=100, ack=49)
    assert v.states == (TIME_WAIT, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.history) == ("SF", "ShADadFf")
    assert (r.client_bytes, r.server_bytes) == (100, 50)
    assert r.retransmits == 0


def test_fin_on_the_last_sequence_number_acked_by_zero():
    v = Conv(cisn=2**32 - 2)
    v.handshake()
    v.c(FIN | ACK)
    assert v.conn.orig.fin_seq == 2**32 - 1
    v.s(ACK, ack=0)
    assert v.states == (FIN_WAIT_2, CLOSE_WAIT)
    v.s(FIN | ACK, ack=0)
    v.c(ACK, seq=0)
    assert v.states == (TIME_WAIT, CLOSED)
    r = v.finish()
    assert (r.conn_state, r.client_bytes) == ("SF", 0)


# ====================================================================== evidence for the detectors
# (facts the detectors read)


def test_packets_sent_since_the_peer_last_spoke():
    v = Conv()
    v.handshake()  # S, SA, A: the client spoke last
    assert (v.conn.orig.packets_since_peer, v.conn.resp.packets_since_peer) == (1, 0)
    v.c(ACK | PSH, 100)
    assert (v.conn.orig.packets_since_peer, v.conn.resp.packets_since_peer) == (2, 0)
    v.s(ACK | PSH, 200)  # the server answers: the client's count starts again
    assert (v.conn.orig.packets_since_peer, v.conn.resp.packets_since_peer) == (0, 1)
    v.c(ACK)
    for _ in range(3):  # keepalive probes (seq = snd_nxt - 1), unanswered
        v.c(ACK, seq=v.nxt["c"] - 1, dt=1.0)
    v.c(ACK, dt=1.0, checksum_ok=False)  # a bad checksum: the packet is ignored, not counted
    assert (v.conn.orig.packets_since_peer, v.conn.resp.packets_since_peer) == (4, 0)
    v.c(RST | ACK, dt=1.0)  # the client gives up
    r = v.finish()
    assert (r.facts.client_packets_since_peer, r.facts.server_packets_since_peer) == (5, 0)
    assert (r.client_packets, r.server_packets) == (8, 2)


def test_fin_retransmissions_to_a_silent_peer_are_counted():
    v = Conv()
    v.handshake()
    v.s(ACK | PSH, 50)
    v.c(ACK)
    v.s(FIN | ACK, dt=1.0)
    fin_seq = v.nxt["s"] - 1
    for _ in range(2):
        v.s(FIN | ACK, seq=fin_seq, dt=1.0)  # never acknowledged
    r = v.finish()
    assert (r.facts.client_packets_since_peer, r.facts.server_packets_since_peer) == (0, 3)
    assert r.facts.server_fin_retransmits == 2


def test_retransmissions_resend_sequence_space_already_seen():
    v = Conv()
    v.handshake()  # round trip 0.02 s
    base = v.nxt["c"]
    v.c(ACK | PSH, 100)  # [0, 100)
    v.c(ACK | PSH, 100, seq=base + 200)  # [200, 300): a gap opens at [100, 200)
    v.c(ACK | PSH, 100, seq=base + 100, dt=0.001)  # fills it within a round trip: out of order
    assert v.conn.orig.seen_unusual().retransmitted == 0
    v.c(ACK | PSH, 100, seq=base, dt=0.5)  # [0, 100) again: a retransmission
    v.c(ACK | PSH, 100, seq=base + 400)  # [400, 500): a gap at [300, 400) ...
    v.c(ACK | PSH, 100, seq=base + 300, dt=0.5)  # ... filled long after: retransmitted (lost before capture)
    v.c(ACK | PSH, 50, seq=base + 450, dt=0.5)  # partly new, partly seen: a retransmission
    v.s(ACK)
    r = v.finish()
    assert r.retransmits == 3 and r.history == "ShADTa"  # (Zeek's own count, and letter, are unchanged)


def test_keepalive_probes_are_not_retransmissions_and_unanswered_ones_are_counted():
    v = Conv()
    v.handshake()
    v.c(ACK | PSH, 10)
    v.s(ACK | PSH, 20)
    v.c(ACK)
    v.c(ACK, 1, seq=v.nxt["c"] - 1, dt=1.0)  # a keepalive with one garbage byte (BSD, Windows) ...
    v.s(ACK, dt=0.01)  # ... answered
    for _ in range(3):
        v.c(ACK, seq=v.nxt["c"] - 1, dt=1.0)  # Linux keepalives (no payload), unanswered
    v.c(RST | ACK, dt=1.0)
    r = v.finish()
    f = r.facts
    assert r.retransmits == 0
    assert (f.client_keepalives, f.client_keepalives_unanswered, f.server_keepalives) == (4, 3, 0)
    assert f.client_keepalive_unanswered_from == pytest.approx(f.client_last_keepalive_ts - 2.0)
    assert f.client_last_keepalive_ts == pytest.approx(r.end - 1.0)


def test_probes_that_are_not_keepalives():
    v = Conv()
    v.handshake()
    v.c(ACK | PSH, 1000)
    v.s(ACK, window=0)  # the server's window is closed ...
    v.c(ACK, seq=v.nxt["c"] - 1, dt=1.0)  # ... so this is a zero-window probe
    v.s(ACK, window=0)
    v.s(ACK, window=8192, dt=0.5)
    v.c(ACK | PSH, 10)
    v.c(ACK, seq=v.nxt["c"] - 11, dt=0.001)  # an ACK sent before those 10 bytes, captured after them
    v.c(ACK, seq=v.nxt["c"] - 1, dt=0.001)  # seq = snd_nxt - 1 but no silence before it
    r = v.finish()
    assert (r.facts.client_keepalives, r.retransmits) == (0, 0)


def test_fin_repeats_that_are_not_a_lost_ack():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK, ack=SISN + 1)
    fin = v.nxt["c"] - 1
    v.s(FIN | ACK, ack=CISN + 1)  # the FINs cross
    v.c(FIN | ACK, seq=fin, dt=0.02)  # the client sends its FIN again, acknowledging the server's
    v.c(FIN | ACK, seq=fin, dt=0.000001)  # and that copy is captured twice
    v.s(ACK)
    r = v.finish()
    assert (r.facts.client_fin_retransmits, r.retransmits) == (0, 2)  # (the repeats re-send the FIN)
    v = Conv()
    v.c(FIN | PSH | 0x20)  # a scan probe (FIN/PSH/URG, no ACK), sent twice
    v.c(FIN | PSH | 0x20, seq=CISN, dt=0.5)
    r = v.finish()
    assert (r.facts.client_fin_retransmits, r.retransmits) == (0, 1)


def test_longest_zero_window_stall_keeps_its_start_and_end():
    v = Conv()
    v.handshake()
    v.c(ACK | PSH, 1000, at=2.0)
    v.s(ACK, window=0, at=2.1)  # stall 1: 2.1 .. 2.6
    v.c(ACK, seq=v.nxt["c"] - 1, at=2.3)  # zero-window probe
    v.s(ACK, window=0, at=2.3)
    v.s(ACK, window=4096, at=2.6)
    v.c(ACK | PSH, 1000, at=2.7)
    v.s(ACK, window=0, at=3.0)  # stall 2: 3.0 .. 4.5, the longest so far
    v.s(ACK, window=0, at=4.0)
    v.s(ACK, window=8192, at=4.5)
    v.s(ACK, window=0, at=5.0)  # stall 3: 5.0 .. 5.2, shorter: does not replace stall 2
    v.s(ACK, window=100, at=5.2)
    server = v.conn.resp.seen_unusual()
    assert server.zero_window_max_s == pytest.approx(1.5)
    assert (server.zero_window_max_from, server.zero_window_max_until) == (3.0, 4.5)
    v.s(ACK, window=0, at=6.0)  # stall 4: still open at the end, up to the server's last packet
    v.c(ACK, seq=v.nxt["c"] - 1, at=7.0)
    v.s(ACK, window=0, at=8.0)
    v.c(ACK, seq=v.nxt["c"] - 1, at=9.0)  # (the client's later packet does not lengthen it)
    r = v.finish()
    f = r.facts
    assert f.server_zero_window_s == pytest.approx(2.0)
    assert (f.server_zero_window_from, f.server_zero_window_until) == (6.0, 8.0)
    assert (f.client_zero_window_s, f.client_zero_window_from, f.client_zero_window_until) == (0.0, None, None)
    hit = zero_window_stall.DETECTOR(Thresholds(), Context()).rule(r, r.end)
    assert hit is not None and (hit.first, hit.last, hit.side) == (6.0, 8.0, "server")
    assert (r.start, r.end) == (1.0 + 0.01, 9.0)  # the finding is the stall's, not the connection's


def test_syn_in_time_wait_names_the_client_holding_it():
    v = Conv()
    v.handshake()
    close_by_client(v)  # the client holds TIME_WAIT
    v.nxt = {"c": 90_000, "s": 70_000}
    new = v.c(SYN, dt=1.0)
    syn_ts = v.t
    assert new.seen_uncommon().prev_time_wait is not None
    v.s(SYN | ACK)
    v.c(ACK)
    v.tracker.flush()
    first, second = v.records
    f = second.facts
    assert (f.time_wait_holder, f.time_wait_holder_ip, f.time_wait_holder_port) == ("client", CLIENT_IP, CLIENT_PORT)
    assert f.time_wait_until == first.client_time_wait_until == pytest.approx(syn_ts - 1.0 + 60.0)
    assert (first.facts.time_wait_holder, first.facts.time_wait_until) == ("", None)
    hit = syn_during_time_wait.DETECTOR(Thresholds(), Context()).rule(second, second.end)
    assert hit is not None and hit.side == "client" and hit.first == hit.last == syn_ts
    assert (
        "the client 10.0.0.1:51000 still held TIME_WAIT until 59.0 s after this SYN (2*MSL after its close); "
        "the TIME_WAIT side accepted it and the handshake completed"
    ) in hit.detail


def test_syn_in_time_wait_holder_by_address_when_the_roles_change():
    v = Conv()
    v.handshake()
    v.s(FIN | ACK)  # the server closes first: it holds TIME_WAIT
    v.c(FIN | ACK)
    v.s(ACK)
    # the old server connects to the old client from the same port: the holder is the new connection's client
    new = v.tracker.packet(v.t + 2.0, SERVER_IP, SERVER_PORT, CLIENT_IP, CLIENT_PORT, 123_456, 0, SYN, 65535, 0)
    assert (new.orig.ip, new.orig.port) == (SERVER_IP, SERVER_PORT)
    v.tracker.flush()
    first, second = v.records
    f = second.facts
    assert f.syn_in_time_wait
    assert (f.time_wait_holder, f.time_wait_holder_ip, f.time_wait_holder_port) == ("server", SERVER_IP, SERVER_PORT)
    assert (second.client_ip, second.client_port) == (SERVER_IP, SERVER_PORT)
    assert f.time_wait_until == first.server_time_wait_until
    hit = syn_during_time_wait.DETECTOR(Thresholds(), Context()).rule(second, second.end)
    assert hit is not None and "the server 10.0.0.2:9999 still held TIME_WAIT until 58.0 s after" in hit.detail
    assert "the handshake did not complete" in hit.detail


def test_syn_in_time_wait_after_a_simultaneous_close_both_held_it():
    v = Conv()
    v.handshake()
    v.c(FIN | ACK, ack=SISN + 1)
    v.s(FIN | ACK, ack=CISN + 1)  # the FINs cross: both ends go to TIME_WAIT
    v.c(ACK, ack=SISN + 2)
    v.s(ACK, ack=CISN + 2)
    v.nxt["c"] = 90_000
    v.c(SYN, dt=3.0)
    v.tracker.flush()
    first, second = v.records
    f = second.facts
    # both were in TIME_WAIT; the one whose TIME_WAIT ends last is named (the client: its FIN was acked last)
    assert first.client_time_wait_until > first.server_time_wait_until
    assert (f.time_wait_holder, f.time_wait_holder_ip, f.time_wait_holder_port) == ("both", CLIENT_IP, CLIENT_PORT)
    assert f.time_wait_until == first.client_time_wait_until
    hit = syn_during_time_wait.DETECTOR(Thresholds(), Context()).rule(second, second.end)
    assert hit is not None and hit.side == "both"
    assert (
        "both ends of the previous connection were in TIME_WAIT (its FINs crossed); 10.0.0.1:51000 held it "
        "until 57.0 s after this SYN"
    ) in hit.detail


def test_new_syn_after_time_wait_is_not_flagged_and_has_no_holder():
    v = Conv()
    v.handshake()
    close_by_client(v)
    v.nxt["c"] = 90_000
    new = v.c(SYN, dt=70.0)
    assert len(v.records) == 1
    assert new.seen_uncommon().prev_time_wait is None
    v.tracker.flush()
    assert (v.records[1].facts.time_wait_holder, v.records[1].facts.time_wait_until) == ("", None)


def test_aggregated_findings_use_the_new_facts():
    records: list = []
    tracker = ConnectionTracker(on_flow=records.append)
    for port in (51000, 51001):
        v = Conv(tracker, cport=port)
        v.handshake()
        close_by_client(v)  # the client holds TIME_WAIT ...
        v.nxt = {"c": 90_000, "s": 70_000}
        v.c(SYN, dt=1.0)  # ... when it reuses the port
        v.s(SYN | ACK)
        v.c(ACK)
        v.s(ACK | PSH, 10)
        for _ in range(3):  # then the server goes silent: 3 unanswered keepalives, 90 s
            v.c(ACK, seq=v.nxt["c"] - 1, dt=30.0)
    tracker.flush()
    detectors = DetectorSet()
    for record in records:
        detectors.on_flow(record)
    findings = {f.kind: f for f in detectors.finish()}
    assert set(findings) == {"syn_during_time_wait", "half_open_peer"}
    reuse, half_open = findings["syn_during_time_wait"], findings["half_open_peer"]
    assert reuse.count == 2 and reuse.detail.endswith("(TIME_WAIT held by, in the previous connections: client 2)")
    assert half_open.count == 2
    assert (
        "kept sending for up to 90.0 s with the other silent, 6 segments unanswered in all (prober: client 2)"
        in half_open.detail
    )
