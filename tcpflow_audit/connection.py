"""One TCP connection: two endpoint objects and the session that feeds them each segment.

Modelled on Zeek's split (TCP_Endpoint x2 + the session adapter). Every segment goes through
`Connection.segment`, one sequence of steps, each written once:

1. Zeek's analyzer, rule for rule and named after its steps (`_init_endpoint`,
   `_update_history`, update_window in `_note_window`, `_update_ack_seq`, `_update_last_seq`, and
   the state machine, one update per state: `_update_inactive`, `_update_syn_sent`,
   `_update_established`, `_update_closed`), so `conn_state` and `history` match conn.log.
2. RFC 9293 inference, named after the checks of its SEGMENT ARRIVES processing (`_rfc_syn`,
   `_rfc_ack`, `_rfc_text`, `_rfc_fin`, `_rfc_rst`, and `_rfc_send_next` for SND.NXT): the
   segment's SEQ/ACK are checked against what each side has sent, and events (`tcp_states`) are
   raised only when the numbers prove the peer saw something: a SYN-ACK counts only if it acks
   ISN+1, the third ACK only if it acks the server's ISN+1, a FIN moves its sender on only once an
   ACK covers FIN seq+1.

Most segments carry no SYN, FIN or RST and come from an endpoint already seen: the steps that
cannot concern them end at their first test, so that common case is the general code, not a copy.

Connections are created, timed out and released by `tracker.py`; a finished connection is
turned into a `FlowRecord` by `to_record()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, final

from . import tcp_states as rfc
from . import zeek_states as z
from .rounding import round_places

if TYPE_CHECKING:  # native 64-bit integers for the compiled build; plain int to Python
    from mypy_extensions import i64

SEQ_MASK: Final = 0xFFFFFFFF
TOO_LARGE_SEQ_DELTA: Final = 1048576  # Zeek's bound for trusting SYN/RST sequence numbers
RST_ACCEPT_WINDOW: Final = (
    1048576  # a received RST is taken as acceptable within this distance of the sender's next seq
)

# A repeat of a FIN sooner than this after the previous copy is not a retransmission timer's (Linux's
# RTO floor is 200 ms, as is its tail-loss probe for a lone FIN; Windows 300 ms; RFC 6298 1 s): a packet
# captured twice, or a stack repeating its FIN at once. Half the lowest floor leaves room for jitter.
MIN_RESEND_GAP: Final = 0.1
# Keepalive probes come after at least this much silence from their sender (half of the shortest idle
# time and interval Linux accepts, 1 s); an ACK that only looks like one (captured out of order) does not.
KEEPALIVE_MIN_IDLE: Final = 0.5
# A segment filling a gap in its sender's sequence space is out of order (not a retransmission) when it
# comes within one round trip (the handshake's, at the capture point) of the segment that opened the gap:
# the sender cannot have learned of a loss sooner. Without a handshake, 3 ms (as Wireshark assumes).
REORDER_DEFAULT_WINDOW: Final = 0.003
MAX_HOLES: Final = 8  # gaps remembered per direction (the oldest is forgotten first)
# A payload retransmission after at least this much silence from its sender (and at least a round trip) was
# sent by the retransmission timer, not by fast retransmit / SACK recovery: Linux's RTO floor is 200 ms
# (RFC 6298's 1 s), and a fast retransmission follows the duplicate ACKs within a round trip. 5% under the
# floor: the timer is armed a little before its segment reaches the capture point (seen: 199.94 ms).
TIMEOUT_MIN_WAIT: Final = 0.19
# Successive timeouts of one segment wait longer each time (RFC 6298 5.5 doubles the RTO): a wait at least
# this many times the previous one continues a back-off run (room for jitter below 2).
BACKOFF_GROWTH: Final = 1.5
# A segment repeating its sender's previous one this soon, with nothing from the peer in between, is a
# copy made on the way to the capture (a SPAN port mirroring both directions, a duplicating switch), not a
# retransmission: TCP's earliest timer (the tail loss probe, RFC 8985) waits at least 2 ms (Linux's
# TCP_TIMEOUT_MIN), and what it re-sends at once (SACK recovery, between new segments) is an older hole.
COPY_WITHIN: Final = 0.001
NO_SEQ: Final = -1  # a sequence number not known yet (no segment carries it: they are 0 .. 2**32-1)
NEVER: Final = float("-inf")  # a time that has not happened (in a float field the compiled build keeps unboxed)

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10
CONTROL: Final = SYN | FIN | RST  # the flags that can move a state; a segment with none is the common case

# Zeek timers a segment can set (Connection.pending_timers), in the order it sets them: the attempt
# timer on the first SYN, then, when a side closes, the close delay or the dead-connection check
PENDING_ATTEMPT: Final = 1
PENDING_DELETE: Final = 2
PENDING_EXPIRE: Final = 4


def _ms_between(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round_places(1000.0 * (later - earlier), 3)


def seq_delta(a: i64, b: i64) -> i64:
    """a - b in 32-bit sequence space, as a signed number."""
    return ((a - b + 0x80000000) & SEQ_MASK) - 0x80000000


def _acked_part(hole: list[float], acked: int) -> int:
    """How much of a gap [start, stop) in a sender's sequence space lies below `acked` (the peer's highest
    acknowledgement): sequence space the receiver had, which the capture never showed."""
    start, stop = int(hole[0]), int(hole[1])
    covered = seq_delta(acked, start)
    if covered <= 0:
        return 0
    return min(covered, seq_delta(stop, start))


@final
class Unusual:
    """What one side's unusual segments showed: tshark's expert info (docs/flows.md says where they differ),
    retransmissions, zero windows, keepalives, data after a close, bad checksums.

    Kept apart from `Endpoint`, and made at the side's first such segment (`Endpoint.noted`): most sides
    have none, and then an Endpoint is a third smaller (a flood's connection holds two). Read through
    `Endpoint.seen_unusual`, which never makes one."""

    dup_acks: i64 = 0  # pure ACKs repeating its previous acknowledgement and window
    zero_window_probes: i64 = 0  # segments probing the peer's closed window
    out_of_order: i64 = 0  # segments filling a gap within a round trip of its opening
    missed_bytes: i64 = 0  # its sequence space the peer acknowledged, never captured (gaps forgotten early)
    # payload retransmissions, by what sent them: a fast retransmission or a retransmission timeout
    resent_bytes: i64 = 0
    resent_seq: i64 = -1  # the sequence number of its latest retransmission (a copy of it is none)
    fast_resends: i64 = 0
    timeout_resends: i64 = 0
    stall_max: float = 0.0  # the longest silence before a timeout retransmission, and when that one was sent
    stall_at: float = NEVER
    # the latest run of timeout retransmissions of one sequence number, each after a longer wait (RTO back-off)
    backoff_seq: i64 = -1
    backoff_run: i64 = 0
    backoff_from: float = NEVER  # its first retransmission
    backoff_last: float = NEVER  # its latest
    backoff_wait: float = 0.0  # the silence before its latest
    # ACKs it sent for another sequence number in answer to a SYN (RFC 5961 challenge ACKs), the first's time
    challenge_acks: i64 = 0
    challenge_ack_ts: float = NEVER
    # retransmissions: segments re-sending sequence space already sent (SYN, data, FIN), once each
    retransmitted: i64 = 0
    syn_retransmits: i64 = 0
    synack_retransmits: i64 = 0
    fin_retransmits: i64 = 0
    last_fin_retransmit_ts: float | None = None
    holes: list[list[float]] | None = None  # gaps below snd_nxt: [start seq, end seq, when it opened]
    # Zeek's logarithmic history counters: retransmitted payload (T), zero windows (W), bad checksums (C)
    rxmit_cnt: i64 = 0
    rxmit_thresh: i64 = 1
    win0_cnt: i64 = 0
    win0_thresh: i64 = 1
    chk_cnt: i64 = 0
    chk_thresh: i64 = 1
    # zero windows it advertised: segments, and the longest stall, when it began and ended
    zero_window_packets: i64 = 0
    zero_window_max_s: float = 0.0
    zero_window_max_from: float | None = None
    zero_window_max_until: float | None = None
    # payload it sent after its own FIN, or after either side's RST
    data_after_fin: i64 = 0
    data_after_rst: i64 = 0
    # keepalive probes (seq = snd_nxt - 1, at most one byte, after silence, nothing unacknowledged)
    keepalives: i64 = 0
    keepalive_run: i64 = 0  # probes since the peer last answered one (or since the first)
    keepalive_run_from: float | None = None  # the first probe of that run
    last_keepalive_ts: float | None = None


_NOTHING_UNUSUAL: Final = Unusual()
"""What an endpoint with no `Unusual` record reads (`Endpoint.seen_unusual`): all defaults."""


@final
class Endpoint:
    """One side of a connection: what it sent, and what the observer can infer about its state.

    (A plain class with class-level defaults rather than a dataclass: the compiled build then sets
    the defaults natively, where a dataclass's generated __init__ would run as interpreted code.)
    """

    ip: bytes
    port: int
    addr_key: i64 = -1  # address and port as one integer (tracker.address_key), for the fast index
    # RFC 9293 state and the numbers it is inferred from
    state: str = rfc.CLOSED
    # (NO_SEQ while unknown: a native integer, not an object per endpoint)
    isn: i64 = NO_SEQ
    snd_nxt: i64 = NO_SEQ  # one past the highest sequence number it has sent
    fin_seq: int | None = None  # sequence number its FIN occupies
    time_wait_since: float | None = None
    # its RFC state changes, in order: (capture time, new state), kept when the tracker gives it a list
    # (ConnectionTracker.record_state_changes); None: not kept
    state_changes: list[tuple[float, str]] | None = None
    # Zeek analyzer bookkeeping
    zstate: i64 = z.INACTIVE
    zprev: i64 = z.INACTIVE
    start_seq: i64 = 0
    last_seq: i64 = 0
    seq_wraps: i64 = 0
    ack_seq: i64 = 0
    ack_wraps: i64 = 0
    hist_last_syn: i64 = 0
    hist_last_fin: i64 = 0
    hist_last_rst: i64 = 0
    fin_cnt: i64 = 0
    rst_cnt: i64 = 0
    # counters and evidence for reports and detectors
    packets: i64 = 0
    payload_packets: i64 = 0
    last_data_ts: float = NEVER  # its last segment with payload (a plain float: no object per packet)
    packets_since_peer: i64 = 0  # packets sent since the peer's last packet (0 when the peer spoke last)
    last_ts: float = 0.0
    fin_ts: float | None = None
    rst_ts: float | None = None
    zero_window_since: float | None = None
    fin_copy_ts: float | None = None  # when its FIN was last sent (first copy or a repeat)
    last_window: i64 = -1  # the window field of its previous segment (a duplicate ACK repeats it)
    # what its unusual segments showed (duplicate ACKs, probes, retransmissions...): made at the first one
    # (an Endpoint stays within pymalloc's 512 bytes: see docs/architecture.md)
    unusual: Unusual | None = None
    # (the flags last, side by side: the compiled build gives each a byte, which alone would be padded to 8)
    is_orig: bool
    fin_acked: bool = False
    did_close: bool = False  # (Zeek's)
    fin_ack_resent: bool = False  # its FIN re-sent to acknowledge the peer's crossing FIN
    # a responder that has not sent yet, shared by the embryonic connections to its address (the tracker's
    # stand-in, see ConnectionTracker.segment): no step may change it; `Connection.own_responder` replaces it
    stand_in: bool = False

    def __init__(self, ip: bytes, port: int, is_orig: bool) -> None:
        self.ip = ip
        self.port = port
        self.is_orig = is_orig

    def __repr__(self) -> str:
        return f"Endpoint({self.ip!r}, {self.port}, {'client' if self.is_orig else 'server'}, {self.state})"

    def set_zstate(self, new_state: int) -> None:
        if new_state != self.zstate:
            self.zprev = self.zstate
            self.zstate = new_state

    def size(self, peer: Endpoint) -> int:
        """Payload bytes as Zeek counts them (TCP_Endpoint::Size): the sequence space covered."""
        if (
            self.zprev == z.SYN_SENT
            and self.zstate == z.RESET
            and peer.zstate == z.INACTIVE
            and not self._no_data_acked()
        ):
            return 0
        last64 = (self.seq_wraps << 32) | self.last_seq
        ack64 = (self.ack_wraps << 32) | self.ack_seq
        size = (last64 if last64 > ack64 else ack64) - self.start_seq
        if size <= 0:
            return 0
        size -= 1
        if self.fin_cnt > 0 and size != 0:
            size -= 1
        return size

    def noted(self) -> Unusual:
        """Its `Unusual` record, made now if this is its first unusual segment."""
        unusual = self.unusual
        if unusual is None:
            unusual = self.unusual = Unusual()
        return unusual

    def seen_unusual(self) -> Unusual:
        """Its `Unusual` record to read: the shared empty one (never written) if it has none."""
        unusual = self.unusual
        return _NOTHING_UNUSUAL if unusual is None else unusual

    def note_stall(self, until: float) -> None:
        """Its zero-window stall ends (or is cut off) at `until`: the longest one is kept."""
        since = self.zero_window_since
        assert since is not None
        unusual = self.noted()
        if until - since > unusual.zero_window_max_s:
            unusual.zero_window_max_s = until - since
            unusual.zero_window_max_from = since
            unusual.zero_window_max_until = until

    def unseen_acked(self) -> int:
        """Its sequence space the peer acknowledged that the capture never showed (Zeek's missed_bytes):
        gaps below the highest acknowledgement, and what that acknowledgement covers beyond the last byte
        seen."""
        snd_nxt = self.snd_nxt
        if snd_nxt == NO_SEQ:
            return 0
        acked = self.ack_seq  # (Zeek's bookkeeping: the peer's highest acknowledgement)
        unusual = self.seen_unusual()
        missed = unusual.missed_bytes
        if unusual.holes is not None:
            for hole in unusual.holes:
                missed += _acked_part(hole, acked)
        beyond = seq_delta(acked, snd_nxt)
        if beyond > 0 and self.payload_packets:  # (without payload: a bogus handshake ACK, bad_handshake_ack's)
            missed += beyond
        return missed

    def _no_data_acked(self) -> bool:
        return self.ack_wraps == 0 and (
            self.ack_seq == self.start_seq or self.ack_seq == ((self.start_seq + 1) & SEQ_MASK)
        )


# The two records below are plain dataclasses: fields(), asdict(), replace(), ==, repr and the generated
# __init__ serve the library's users. `Connection.to_record` does not call that __init__: under the
# compiled build it runs as interpreted code, about 7 us a connection for the two (on the kernel-made
# benchmark capture, bench/profile_stages.py: 23.5 -> 31.7 us a connection in all), where setting the
# fields of a compiled instance is one store each. So `to_record` makes each record blank (`__new__`)
# and sets every field; one it left unset would be an AttributeError when read, and
# tests/test_flow_sinks.py reads every field of every sample capture's records.
@dataclass(slots=True)
class FlowRecord:
    """The finished account of one connection: one row of the flows report."""

    start: float
    end: float
    client_ip: bytes
    client_port: int
    server_ip: bytes
    server_port: int
    conn_state: str
    history: str
    client_state: str
    server_state: str
    client_packets: int
    server_packets: int
    client_bytes: int
    server_bytes: int
    retransmits: int
    close_initiator: str
    end_reason: str
    syn_synack_ms: float | None
    synack_ack_ms: float | None
    direction_guessed: bool
    client_time_wait_until: float | None
    server_time_wait_until: float | None
    facts: ConnectionFacts
    finalised_at: float = 0.0  # capture time when the tracker finalised it (timer, reuse or capture end)
    tunnel: str = ""  # the tunnel path the connection came through ("" for none), see decode.Decoder.tunnel


@dataclass(slots=True)
class ConnectionFacts:
    """Evidence the detectors read: what happened on the connection beyond its final states."""

    syn_ts: float | None
    synack_ts: float | None
    handshake_done_ts: float | None
    syn_retransmits: int
    synack_retransmits: int
    client_fin_ts: float | None
    server_fin_ts: float | None
    client_fin_acked: bool
    server_fin_acked: bool
    client_fin_retransmits: int
    server_fin_retransmits: int
    client_rst_ts: float | None
    server_rst_ts: float | None
    bad_synack: int
    bad_third_ack: int
    bad_ack_ts: float | None
    client_data_after_close: int
    server_data_after_close: int
    client_zero_window_s: float
    server_zero_window_s: float
    client_last_ts: float
    server_last_ts: float
    client_payload_packets: int
    server_payload_packets: int
    syn_in_time_wait: bool
    last_fin_retransmit_ts: float | None = None
    anomalies: list[str] = field(default_factory=list)
    # packets each side sent after the other side's last packet (unanswered: the other side sent nothing since)
    client_packets_since_peer: int = 0
    server_packets_since_peer: int = 0
    # the longest zero-window stall of each side (zero_window_s): when it began and ended
    client_zero_window_from: float | None = None
    client_zero_window_until: float | None = None
    server_zero_window_from: float | None = None
    server_zero_window_until: float | None = None
    # syn_in_time_wait: who held TIME_WAIT for the previous connection on the 4-tuple (its role in that
    # connection and its ip:port, since the new connection's roles may differ; see TimeWait) and until when
    time_wait_holder: str = ""
    time_wait_holder_ip: bytes = b""
    time_wait_holder_port: int = 0
    time_wait_until: float | None = None
    # the client's initial sequence number (its SYN's), to tell a retried attempt from a new one
    client_isn: int | None = None
    # keepalive probes each side sent; those sent since the other side last spoke (unanswered), from when;
    # and the last probe's time
    client_keepalives: int = 0
    server_keepalives: int = 0
    client_keepalives_unanswered: int = 0
    server_keepalives_unanswered: int = 0
    client_keepalive_unanswered_from: float | None = None
    server_keepalive_unanswered_from: float | None = None
    client_last_keepalive_ts: float | None = None
    server_last_keepalive_ts: float | None = None
    # each side's last segment with payload (kept when a side sent no FIN)
    client_last_data_ts: float | None = None
    server_last_data_ts: float | None = None
    # each side's RFC state changes, (capture time, new state) in order, from its first state (CLOSED, or
    # UNKNOWN when the connection was picked up midstream) at the connection's start: `sockets` reads them.
    # None unless the tracker was asked to keep them (ConnectionTracker.record_state_changes)
    client_state_changes: list[tuple[float, str]] | None = None
    server_state_changes: list[tuple[float, str]] | None = None
    # tshark-level evidence (the flows report's dup_acks, keepalive_probes, zero_window_probes, out_of_order and
    # missed_bytes): duplicate ACKs each side sent; zero-window probes, segments out of order and sequence space
    # acknowledged but never captured, both sides
    client_dup_acks: int = 0
    server_dup_acks: int = 0
    zero_window_probes: int = 0
    out_of_order: int = 0
    missed_bytes: int = 0
    # plain ACKs the server sent in answer to the client's SYN for another sequence number (RFC 5961)
    challenge_acks: int = 0
    challenge_ack_ts: float | None = None
    # payload retransmissions (None: none; a separate object so that a connection without them costs nothing)
    resends: Resends | None = None


@dataclass(slots=True)
class SideResends:
    """One side's payload retransmissions: bytes re-sent, how many fast retransmit / SACK recovery sent
    (within a round trip of the sender's previous segment) and how many its retransmission timer sent,
    the longest silence before a timeout retransmission and when that one was sent, and the latest RTO
    back-off run of one segment (timeouts of one sequence number, each after a longer wait: how many,
    its first and its latest)."""

    resent_bytes: int = 0
    fast_resends: int = 0
    timeout_resends: int = 0
    stall_s: float = 0.0
    stall_at: float | None = None
    backoff_resends: int = 0
    backoff_from: float | None = None
    backoff_last: float | None = None


@dataclass(slots=True)
class Resends:
    """Each side's payload retransmissions (`SideResends`)."""

    client: SideResends
    server: SideResends

    def side(self, name: str) -> SideResends:
        """The retransmissions of `name` ("client" or "server")."""
        return self.client if name == "client" else self.server


def _side_resends(unusual: Unusual) -> SideResends:
    """What a side's `Unusual` record says of its payload retransmissions (the timer's, if it fired)."""
    rs = SideResends()
    if not unusual.resent_bytes:
        return rs
    rs.resent_bytes = unusual.resent_bytes
    rs.fast_resends = unusual.fast_resends
    rs.timeout_resends = unusual.timeout_resends
    if unusual.timeout_resends:
        rs.stall_s, rs.stall_at = unusual.stall_max, unusual.stall_at
        rs.backoff_resends = unusual.backoff_run
        rs.backoff_from, rs.backoff_last = unusual.backoff_from, unusual.backoff_last
    return rs


def _evidence(facts: ConnectionFacts, orig: Endpoint, resp: Endpoint) -> None:
    """The evidence counters and the data-loss account into the facts (most connections have none: their
    sides read `_NOTHING_UNUSUAL`)."""
    facts.missed_bytes = orig.unseen_acked() + resp.unseen_acked()
    client, server = orig.seen_unusual(), resp.seen_unusual()
    facts.client_dup_acks, facts.server_dup_acks = client.dup_acks, server.dup_acks
    facts.zero_window_probes = client.zero_window_probes + server.zero_window_probes
    facts.out_of_order = client.out_of_order + server.out_of_order
    resent = client.resent_bytes or server.resent_bytes
    facts.resends = Resends(_side_resends(client), _side_resends(server)) if resent else None
    facts.challenge_acks = server.challenge_acks
    facts.challenge_ack_ts = server.challenge_ack_ts if server.challenge_acks else None


class TimeWait:
    """The TIME_WAIT a finalised connection left on its 4-tuple (kept by the tracker until it ends): when it
    ends and who holds it, by its role in that connection ("client", "server", or "both" when its FINs
    crossed: then the ip:port is the one whose TIME_WAIT ends last) and its ip:port."""

    until: float
    holder: str
    ip: bytes
    port: int

    def __init__(self, until: float, holder: str, ip: bytes, port: int) -> None:
        self.until = until
        self.holder = holder
        self.ip = ip
        self.port = port


_RELEASED: Final = Endpoint(b"", 0, False)
"""The endpoints of every finished connection, once `Connection.release` let go of its own."""


# (final: the compiled build then calls the per-segment steps directly, not through a method table)
@final
class Connection:
    """A TCP connection incarnation on one 4-tuple, fed one segment at a time."""

    __slots__ = (
        "orig",
        "resp",
        "start",
        "last_time",
        "history",
        "hist_seen",
        "zeek_active",
        "direction_guessed",
        "syn_ts",
        "synack_ts",
        "handshake_done_ts",
        "close_initiator",
        "bad_synack",
        "bad_third_ack",
        "bad_ack_ts",
        "timer_generation",
        "finished",
        "end_cause",
        "syn_in_time_wait",
        "prev_time_wait",
        "key",
        "tunnel",
        "pending_timers",
        "pending_base",
        "timer_order",
    )

    def __init__(
        self,
        ts: float,
        orig_ip: bytes,
        orig_port: int,
        resp_ip: bytes,
        resp_port: int,
        flipped: bool,
        midstream: bool,
        responder: Endpoint | None = None,
    ) -> None:
        self.orig = Endpoint(orig_ip, orig_port, True)
        # (a stand-in responder, shared, until the responder sends: see `own_responder`)
        self.resp = Endpoint(resp_ip, resp_port, False) if responder is None else responder
        if midstream:
            self.orig.state = rfc.UNKNOWN
            self.resp.state = rfc.UNKNOWN
        self.start = ts
        self.last_time = ts
        self.history = "^" if flipped else ""  # Zeek's history letters (a flood's lone "S" costs no object)
        self.hist_seen = 0
        self.zeek_active = True
        self.direction_guessed = midstream
        self.syn_ts: float | None = None
        self.synack_ts: float | None = None
        self.handshake_done_ts: float | None = None
        self.close_initiator = ""
        self.bad_synack = 0
        self.bad_third_ack = 0
        self.bad_ack_ts: float | None = None
        self.timer_generation = 0
        self.finished = False
        self.end_cause = ""
        self.syn_in_time_wait = False
        self.prev_time_wait: TimeWait | None = None  # the previous connection's TIME_WAIT its SYN met
        self.tunnel = ""  # the tunnel path of its first segment (`decode.Decoder.tunnel`), "" for none
        # Zeek timers this segment set (PENDING_* bits), each due a delay after pending_base (the
        # connection's last_time then): the tracker schedules them, in that bit order, and clears them
        self.pending_timers: i64 = 0
        self.pending_base = 0.0
        self.timer_order: i64 = 0  # the order of the first timer set at its creation (timers.push_new)

    def own_responder(self) -> Endpoint:
        """The responder's own Endpoint, in place of the shared stand-in it had while it had not sent (a
        SYN's originator writes nothing into its peer; anything else may): the stand-in's fields are all
        still their defaults, so the new one starts the same."""
        shared = self.resp
        resp = self.resp = Endpoint(shared.ip, shared.port, False)
        resp.addr_key = shared.addr_key
        resp.state = shared.state
        return resp

    # ------------------------------------------------------------------ per segment
    def bad_checksum(self, endpoint: Endpoint) -> None:
        """Zeek: a bad TCP checksum marks the history (c/C, logarithmically); the segment is otherwise ignored."""
        unusual = endpoint.noted()
        unusual.chk_cnt += 1
        if unusual.chk_cnt == unusual.chk_thresh:
            self._add_history(endpoint, "C")
            unusual.chk_thresh *= 10

    def segment(
        self, ts: float, endpoint: Endpoint, peer: Endpoint, seq: i64, ack: i64, flags: i64, window: i64, length: i64
    ) -> None:
        """One segment from `endpoint` to `peer` (with a good checksum): every segment takes these steps.

        First Zeek's analyzer (TCPSessionAdapter::DeliverPacket: init_endpoint, update_history,
        update_window, update_ack_seq, update_last_seq, then the update of the sender's state),
        then what RFC 9293 lets an observer infer (the SYN, the ACK field, the segment text, the
        FIN, the RST, SND.NXT). A step the segment cannot concern ends at its first test: the
        common segment (no SYN, FIN or RST, from an endpoint Zeek has seen) moves no Zeek state
        and skips the endpoint's initialisation and the state machine.
        """
        endpoint.packets += 1
        idle_since = endpoint.last_ts
        endpoint.last_ts = ts
        endpoint.packets_since_peer += 1
        if peer.packets_since_peer:  # (a stand-in responder's stays 0: it is never written)
            peer.packets_since_peer = 0
        if endpoint.packets == 1:  # its first segment
            idle_since = ts
        # Zeek's analyzer
        control = flags & CONTROL
        seen = endpoint.zstate != z.INACTIVE
        if control or not seen:
            self._init_endpoint(endpoint, seq, flags, length)
        self._update_history(endpoint, seq, flags, length)
        if window == 0 or endpoint.zero_window_since is not None:
            self._note_window(ts, endpoint, peer, window, flags)  # update_window
        if not (self.orig.did_close and self.resp.did_close):
            self.last_time = ts
        if control:
            if flags & FIN:
                endpoint.fin_cnt += 1
            if flags & RST:
                endpoint.rst_cnt += 1
        if flags & ACK:
            self._update_ack_seq(endpoint, peer, seq, ack, flags, window, length)
        endpoint.last_window = window
        self._update_last_seq(endpoint, seq, flags, length)
        if control or not seen:
            self._update_state(endpoint, peer, seq, flags, length)
        # RFC 9293
        if flags & SYN:
            self._rfc_syn(ts, endpoint, peer, seq, ack, flags)
        elif flags & ACK and not flags & RST:
            self._rfc_ack(ts, endpoint, peer, ack)
        if length and not flags & RST:
            self._rfc_text(ts, endpoint, peer, seq, length)
        if flags & RST:
            self._rfc_rst(ts, endpoint, peer, seq, ack, flags)
        else:
            fin_repeat = bool(flags & FIN) and self._rfc_fin(ts, endpoint, peer, seq, ack, flags, length)
            self._rfc_send_next(ts, idle_since, endpoint, peer, seq, flags, length, fin_repeat)

    # ------------------------------------------------------------------ Zeek's analyzer, rule for rule
    @staticmethod
    def _seq_one_past(seq: i64, flags: i64, length: i64) -> i64:
        """The sequence number after the segment: its payload, SYN and FIN (an RST's payload does not count)."""
        if not flags & CONTROL:
            return (seq + length) & SEQ_MASK
        seg_len = length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if flags & RST:
            seg_len -= length
        return (seq + seg_len) & SEQ_MASK

    def _init_endpoint(self, endpoint: Endpoint, seq: i64, flags: i64, length: i64) -> None:
        """Zeek's init_endpoint: an endpoint's sequence space starts at its first segment, or again at a new SYN."""
        state = endpoint.zstate
        if state == z.INACTIVE:
            if flags & SYN:
                endpoint.ack_seq = endpoint.start_seq = seq
                endpoint.last_seq = self._seq_one_past(seq, flags, length)
            else:
                endpoint.ack_seq = endpoint.start_seq = (seq - 1) & SEQ_MASK
                endpoint.last_seq = seq
            endpoint.seq_wraps = endpoint.ack_wraps = 0
        elif flags & SYN and (
            (state in (z.SYN_SENT, z.SYN_ACK_SENT) and seq != endpoint.start_seq)
            or state in (z.ESTABLISHED, z.PARTIAL)
            or (state == z.RESET and endpoint.zprev == z.INACTIVE)
        ):
            endpoint.ack_seq = endpoint.start_seq = seq
            endpoint.last_seq = self._seq_one_past(seq, flags, length)
            endpoint.seq_wraps = endpoint.ack_wraps = 0

    def _check_history(self, endpoint: Endpoint, mask: int, code: str) -> bool:
        """Zeek's CheckHistory: add the letter the first time; True if it had been seen before."""
        if not endpoint.is_orig:
            mask <<= 16
        if self.hist_seen & mask:
            return True
        self.hist_seen |= mask
        self.history += code if endpoint.is_orig else code.lower()
        return False

    def _add_history(self, endpoint: Endpoint, code: str) -> None:
        self.history += code if endpoint.is_orig else code.lower()

    def _update_history(self, endpoint: Endpoint, seq: i64, flags: i64, length: i64) -> None:
        """Zeek's update_history: a letter for each kind of segment, once per direction (S, H, F and R
        again when the segment is a new one, not a copy at the same relative sequence number)."""
        if flags & CONTROL:
            self._control_history(endpoint, seq, flags, length)
        elif length:
            self._check_history(endpoint, z.HIST_DATA_PKT, "D")
        elif flags & ACK:
            self._check_history(endpoint, z.HIST_ACK_PKT, "A")

    def _control_history(self, endpoint: Endpoint, seq: i64, flags: i64, length: i64) -> None:
        syn, fin, rst = flags & SYN, flags & FIN, flags & RST
        rel_seq = self._relative_seq(endpoint, seq, endpoint.last_seq, endpoint.seq_wraps)
        if (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0) > 1:
            if fin and rst:
                self._check_history(endpoint, z.HIST_FIN_RST_PKT, "I")
            else:
                self._check_history(endpoint, z.HIST_MULTI_FLAG_PKT, "Q")
        elif syn:
            code = "H" if flags & ACK else "S"
            if self._check_history(endpoint, z.HIST_SYN_PKT, code) and rel_seq != endpoint.hist_last_syn:
                self._add_history(endpoint, code)
            endpoint.hist_last_syn = rel_seq
        elif fin:
            if self._check_history(endpoint, z.HIST_FIN_PKT, "F") and rel_seq + length != endpoint.hist_last_fin:
                self._add_history(endpoint, "F")
            endpoint.hist_last_fin = rel_seq + length
        else:
            if self._check_history(endpoint, z.HIST_RST_PKT, "R") and rel_seq != endpoint.hist_last_rst:
                self._add_history(endpoint, "R")
            endpoint.hist_last_rst = rel_seq

    @staticmethod
    def _relative_seq(endpoint: Endpoint, cur: i64, last: i64, wraps: i64) -> i64:
        """Zeek's relative sequence number of `cur` (the endpoint's last one `last`, after `wraps` wraps)."""
        delta = seq_delta(cur, last)
        if delta < 0:
            if wraps and cur > last:
                wraps -= 1
        elif delta > 0 and cur < last:
            wraps += 1
        if wraps == 0:
            return seq_delta(cur, endpoint.start_seq)
        return ((wraps << 32) | cur) - endpoint.start_seq

    def _note_window(self, ts: float, endpoint: Endpoint, peer: Endpoint, window: i64, flags: i64) -> None:
        """Zero windows: Zeek's W/w history letter (update_window; scaling cannot turn a zero into
        anything else) and the stall time the zero_window_stall detector reads."""
        if window == 0:
            unusual = endpoint.noted()
            if not flags & RST and peer.zstate != z.CLOSED and endpoint.zstate != z.RESET:
                unusual.win0_cnt += 1
                if unusual.win0_cnt == unusual.win0_thresh:
                    self._add_history(endpoint, "W")
                    unusual.win0_thresh *= 10
            if not flags & CONTROL:
                unusual.zero_window_packets += 1
                if endpoint.zero_window_since is None:
                    endpoint.zero_window_since = ts
                return
        if endpoint.zero_window_since is not None:
            endpoint.note_stall(ts)
            endpoint.zero_window_since = None

    def _update_ack_seq(
        self, endpoint: Endpoint, peer: Endpoint, seq: i64, ack: i64, flags: i64, window: i64, length: i64
    ) -> None:
        """Zeek's update_ack_seq: the highest acknowledgement of the peer's data (an ACK is the first sign
        of a peer not seen yet: its sequence space starts one before). Not from an RST, not one that
        would lie before the peer's start (a relative sequence number underflowing), not a zero one far
        ahead (a stack's bogus ACK). A pure ACK repeating the highest one may be a duplicate ACK
        (`_note_repeated_ack`)."""
        if peer.zstate == z.INACTIVE:
            peer.start_seq = peer.ack_seq = peer.last_seq = (ack - 1) & SEQ_MASK
            peer.seq_wraps = peer.ack_wraps = 0
        elif not flags & RST:
            delta_ack = seq_delta(ack, peer.ack_seq)
            if delta_ack > 0 and not (ack == 0 and delta_ack > TOO_LARGE_SEQ_DELTA):
                wraps = peer.ack_wraps + 1 if ack < peer.ack_seq else peer.ack_wraps
                if wraps or seq_delta(ack, peer.start_seq) >= 0:
                    peer.ack_wraps = wraps
                    peer.ack_seq = ack
                if (
                    delta_ack == 1
                    and not length
                    and not flags & CONTROL
                    and self._acks_repeated_syn(endpoint, peer, ack)
                ):
                    self._note_repeated_ack(endpoint, peer, seq, window)
            elif delta_ack == 0 and not length and not flags & CONTROL:  # (a duplicate ACK, a window update, a probe)
                self._note_repeated_ack(endpoint, peer, seq, window)

    def _update_last_seq(self, endpoint: Endpoint, seq: i64, flags: i64, length: i64) -> None:
        """Zeek's update_last_seq: the highest sequence number the endpoint has sent; payload that does not
        reach past it is a retransmission (the T history letter, logarithmically)."""
        seq_one_past = self._seq_one_past(seq, flags, length)
        delta_last = seq_delta(seq_one_past, endpoint.last_seq)
        if flags & CONTROL:
            if flags & (SYN | RST) and (delta_last > TOO_LARGE_SEQ_DELTA or delta_last < -TOO_LARGE_SEQ_DELTA):
                return  # sequence numbers too far off to trust
            if flags & FIN and endpoint.last_seq == ((endpoint.start_seq + 1) & SEQ_MASK):
                self._set_last_seq(endpoint, seq_one_past)
                return
        if endpoint.zstate == z.RESET:
            return
        if delta_last > 0:
            self._set_last_seq(endpoint, seq_one_past)
        elif length > 0:
            unusual = endpoint.noted()
            unusual.rxmit_cnt += 1
            if unusual.rxmit_cnt == unusual.rxmit_thresh:
                self._add_history(endpoint, "T")
                unusual.rxmit_thresh *= 10

    @staticmethod
    def _set_last_seq(endpoint: Endpoint, seq: i64) -> None:
        if seq < endpoint.last_seq:
            endpoint.seq_wraps += 1
        endpoint.last_seq = seq

    # Zeek's state machine (UpdateStateMachine): one update per state of the sending endpoint, each
    # returning (do_close, gen_event) for ConnectionClosed
    def _update_state(self, endpoint: Endpoint, peer: Endpoint, seq: i64, flags: i64, length: i64) -> None:
        state = endpoint.zstate
        if state == z.INACTIVE:
            do_close, gen_event = self._update_inactive(endpoint, peer, seq, flags, length)
        elif state == z.SYN_SENT or state == z.SYN_ACK_SENT:
            do_close, gen_event = self._update_syn_sent(endpoint, flags)
        elif state == z.ESTABLISHED or state == z.PARTIAL:
            do_close, gen_event = self._update_established(endpoint, peer, flags)
        elif state == z.CLOSED:
            do_close, gen_event = self._update_closed(endpoint, peer, flags)
        else:  # RESET: nothing moves
            return
        if do_close:
            self._connection_closed(endpoint, peer, gen_event)

    def _update_inactive(
        self, endpoint: Endpoint, peer: Endpoint, seq: i64, flags: i64, length: i64
    ) -> tuple[bool, bool]:
        do_close = gen_event = False
        if flags & SYN:
            if endpoint.is_orig:
                endpoint.set_zstate(z.SYN_ACK_SENT if flags & ACK else z.SYN_SENT)
                self.pending_timers |= PENDING_ATTEMPT
                self.pending_base = self.last_time
            else:
                if not flags & ACK and peer.zstate == z.SYN_ACK_SENT and seq == endpoint.start_seq:
                    # SYN/SYN-ACK reversal: flip the endpoints and establish
                    self._flip_roles()
                    peer.set_zstate(z.ESTABLISHED)
                if peer.zstate == z.SYN_SENT:
                    peer.set_zstate(z.ESTABLISHED)
                endpoint.set_zstate(z.ESTABLISHED)
        if flags & FIN:
            endpoint.set_zstate(z.CLOSED)
            do_close = gen_event = True
        if flags & RST:
            endpoint.set_zstate(z.RESET)
            if endpoint.is_orig:
                is_reject = peer.zstate == z.ESTABLISHED
            else:
                is_reject = peer.zstate in (z.SYN_SENT, z.SYN_ACK_SENT)
            do_close = True
            gen_event = not is_reject
        if endpoint.zstate == z.INACTIVE:
            if not endpoint.is_orig and length == 0 and self.orig.zstate == z.SYN_SENT:
                pass  # an ACK of the SYN before the SYN-ACK: not a partial connection
            elif flags & ACK and peer.zstate == z.ESTABLISHED:
                endpoint.set_zstate(z.ESTABLISHED)
            else:
                endpoint.set_zstate(z.PARTIAL)
        return do_close, gen_event

    def _update_syn_sent(self, endpoint: Endpoint, flags: i64) -> tuple[bool, bool]:
        do_close = gen_event = False
        if flags & FIN:
            endpoint.set_zstate(z.CLOSED)
            do_close = gen_event = True
        if flags & RST:
            endpoint.set_zstate(z.RESET)
            self.zeek_active = False  # ConnectionReset()
            do_close = True
        return do_close, gen_event

    def _update_established(self, endpoint: Endpoint, peer: Endpoint, flags: i64) -> tuple[bool, bool]:
        do_close = gen_event = False
        if flags & SYN and endpoint.zstate == z.PARTIAL and peer.zstate == z.INACTIVE and not flags & ACK:
            endpoint.set_zstate(z.SYN_SENT)
        if flags & FIN and not flags & RST:
            endpoint.set_zstate(z.CLOSED)
            if peer.zstate == z.RESET and peer.zprev == z.CLOSED:
                peer.set_zstate(z.CLOSED)
            do_close = gen_event = True
        if flags & RST:
            endpoint.set_zstate(z.RESET)
            do_close = True
            if peer.zstate != z.RESET or peer.zprev != z.ESTABLISHED:
                self.zeek_active = False  # ConnectionReset()
        return do_close, gen_event

    @staticmethod
    def _update_closed(endpoint: Endpoint, peer: Endpoint, flags: i64) -> tuple[bool, bool]:
        if flags & RST and peer.zstate != z.CLOSED:
            endpoint.set_zstate(z.RESET)
            return not endpoint.did_close, False
        return False, False

    def _flip_roles(self) -> None:
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig = True
        self.resp.is_orig = False
        self.history += "^"

    def _connection_closed(self, endpoint: Endpoint, peer: Endpoint, gen_event: bool) -> None:
        """Zeek's ConnectionClosed: a side closed; the connection is done (the close delay) or waits for the other."""
        if endpoint.did_close:
            return
        endpoint.did_close = True
        close_complete = endpoint.zstate == z.RESET or peer.did_close or peer.zstate == z.INACTIVE
        if close_complete:
            if gen_event and (endpoint.zprev != z.INACTIVE or peer.zstate != z.INACTIVE):
                self.zeek_active = False  # ConnectionFinished()
            self.timer_generation += 1  # CancelTimers()
            self.pending_timers |= PENDING_DELETE
            self.pending_base = self.last_time
        elif endpoint.zprev != z.INACTIVE:
            self.pending_timers |= PENDING_EXPIRE
            self.pending_base = self.last_time

    # ------------------------------------------------------------------ RFC 9293 inference
    def _event(self, endpoint: Endpoint, event: str, ts: float) -> None:
        new_state = rfc.EDGES_FROM[endpoint.state].get(event)
        if new_state is not None and new_state != endpoint.state:
            endpoint.state = new_state
            if new_state == rfc.TIME_WAIT:
                endpoint.time_wait_since = ts
            changes = endpoint.state_changes
            if changes is not None:
                changes.append((ts, new_state))

    def _rfc_syn(self, ts: float, endpoint: Endpoint, peer: Endpoint, seq: i64, ack: i64, flags: i64) -> None:
        """Check the SYN bit: a SYN (or a SYN-ACK acking the peer's ISN+1) with a new ISN opens the
        sender's side; the same ISN again is a retransmission; a SYN-ACK acking anything else is bad."""
        if not flags & ACK:
            if endpoint.isn == seq:
                unusual = endpoint.noted()
                unusual.syn_retransmits += 1
                unusual.retransmitted += 1
            else:
                endpoint.isn = seq
                endpoint.snd_nxt = (seq + 1) & SEQ_MASK
                self._event(endpoint, rfc.SEND_SYN, ts)
                if self.syn_ts is None:
                    self.syn_ts = ts
        elif peer.isn != NO_SEQ and ack != ((peer.isn + 1) & SEQ_MASK):
            self.bad_synack += 1
            if self.bad_ack_ts is None:
                self.bad_ack_ts = ts
        elif endpoint.isn == seq:
            unusual = endpoint.noted()
            unusual.synack_retransmits += 1
            unusual.retransmitted += 1
        else:
            endpoint.isn = seq
            endpoint.snd_nxt = (seq + 1) & SEQ_MASK
            self._event(endpoint, rfc.SEND_SYN_ACK, ts)
            if self.synack_ts is None:
                self.synack_ts = ts

    def _rfc_ack(self, ts: float, endpoint: Endpoint, peer: Endpoint, ack: i64) -> None:
        """Check the ACK field: what an acknowledgement number proves (segments without SYN or RST).
        Only during the handshake or while the peer's FIN is unacknowledged can it prove anything,
        besides a responder's plain ACK to a SYN (`_note_answer_to_syn`: a challenge ACK?)."""
        if endpoint.isn == NO_SEQ and not endpoint.is_orig and peer.state == rfc.SYN_SENT and not self.bad_synack:
            self._note_answer_to_syn(ts, endpoint, peer, ack)
        handshake = peer.state == rfc.SYN_RCVD or endpoint.state == rfc.SYN_SENT
        if not handshake and (peer.fin_seq is None or peer.fin_acked):
            return
        # The third ACK (or data carrying it) completes the handshake only if it acks the server's ISN+1.
        # (The server may already have moved on, e.g. sent a FIN from SYN_RCVD: the client's ACK still
        # proves it saw the SYN-ACK.)
        if handshake and peer.isn != NO_SEQ:
            if peer.snd_nxt != NO_SEQ and 0 < seq_delta(ack, peer.isn) <= max(1, seq_delta(peer.snd_nxt, peer.isn)):
                self._event(peer, rfc.RECV_ACK_OF_SYN, ts)
                self._event(endpoint, rfc.RECV_SYN_ACK, ts)
                if self.handshake_done_ts is None:
                    self.handshake_done_ts = ts
            elif endpoint.state == rfc.SYN_SENT:
                self.bad_third_ack += 1
                if self.bad_ack_ts is None:
                    self.bad_ack_ts = ts
        # An ACK covering the peer's FIN+1: this endpoint has seen the FIN, the peer sees its FIN acked.
        if peer.fin_seq is not None and not peer.fin_acked and seq_delta(ack, peer.fin_seq) >= 1:
            peer.fin_acked = True
            self._event(endpoint, rfc.RECV_FIN, ts)
            if endpoint.fin_seq is not None and not endpoint.fin_acked and peer.state == rfc.FIN_WAIT_1:
                # Simultaneous close: this ACK follows our own FIN, so the peer received that FIN first.
                self._event(peer, rfc.RECV_FIN, ts)
            self._event(peer, rfc.RECV_ACK_OF_FIN, ts)

    def _rfc_text(self, ts: float, endpoint: Endpoint, peer: Endpoint, seq: i64, length: i64) -> None:
        """Process the segment text (a segment with payload, not an RST): counted, and noted when it
        comes after its sender's FIN or after either side's RST, or into the peer's closed window."""
        endpoint.payload_packets += 1
        endpoint.last_data_ts = ts
        if endpoint.fin_seq is not None or endpoint.rst_ts is not None or peer.rst_ts is not None:
            self._note_data_after_close(endpoint, peer, seq)
        if peer.zero_window_since is not None:
            self._note_data_into_zero_window(endpoint, seq, length)

    @staticmethod
    def _note_data_after_close(endpoint: Endpoint, peer: Endpoint, seq: i64) -> None:
        if endpoint.fin_seq is not None and seq_delta(seq, endpoint.fin_seq) >= 1:
            endpoint.noted().data_after_fin += 1
        elif endpoint.rst_ts is not None or peer.rst_ts is not None:
            endpoint.noted().data_after_rst += 1

    def _rfc_fin(
        self, ts: float, endpoint: Endpoint, peer: Endpoint, seq: i64, ack: i64, flags: i64, length: i64
    ) -> bool:
        """Check the FIN bit (not with RST): the first FIN closes the sender's side and names who closed
        first; the same FIN again is a retransmission. True for such a repeat."""
        fin_pos = (seq + length + (1 if flags & SYN else 0)) & SEQ_MASK
        if endpoint.fin_seq is None:
            endpoint.fin_seq = fin_pos
            endpoint.fin_ts = endpoint.fin_copy_ts = ts
            if not self.close_initiator:
                self.close_initiator = "client" if endpoint.is_orig else "server"
            elif peer.fin_seq is not None and not peer.fin_acked and self.close_initiator != "both":
                self.close_initiator = "both"  # the FINs crossed
            self._event(endpoint, rfc.SEND_FIN, ts)
            return False
        if fin_pos != endpoint.fin_seq:
            return False
        unusual = endpoint.noted()
        unusual.retransmitted += 1
        if self._fin_resent_for_loss(ts, endpoint, peer, ack, flags):
            unusual.fin_retransmits += 1
            unusual.last_fin_retransmit_ts = ts
        endpoint.fin_copy_ts = ts
        return True

    def _fin_resent_for_loss(self, ts: float, endpoint: Endpoint, peer: Endpoint, ack: i64, flags: i64) -> bool:
        """Whether a repeated FIN is a retransmission of the close (its ACK did not come back in time), not:
        a FIN without ACK (a scan probe, not a close); a copy within MIN_RESEND_GAP of the previous one
        (captured twice, or repeated at once); the FIN a stack sends again in CLOSING to acknowledge the
        peer's crossing FIN (the first copy acknowledging it, when the FINs crossed)."""
        if not flags & ACK:
            return False
        previous = endpoint.fin_copy_ts
        if previous is not None and ts - previous < MIN_RESEND_GAP:
            return False
        if (
            self.close_initiator == "both"
            and not endpoint.fin_ack_resent
            and peer.fin_seq is not None
            and seq_delta(ack, peer.fin_seq) >= 1
        ):
            endpoint.fin_ack_resent = True
            return False
        return True

    def _rfc_rst(self, ts: float, endpoint: Endpoint, peer: Endpoint, seq: i64, ack: i64, flags: i64) -> None:
        """Check the RST bit: the sender is closed; the peer too if the RST is acceptable to it (in a
        SYN_SENT, only one acking its SYN; else one near the sender's next sequence number)."""
        if endpoint.rst_ts is None:
            endpoint.rst_ts = ts
        if peer.state == rfc.SYN_SENT:
            acceptable = bool(flags & ACK) and peer.isn != NO_SEQ and ack == ((peer.isn + 1) & SEQ_MASK)
        else:
            distance = 0 if endpoint.snd_nxt == NO_SEQ else seq_delta(seq, endpoint.snd_nxt)
            acceptable = -RST_ACCEPT_WINDOW <= distance <= RST_ACCEPT_WINDOW
        self._event(endpoint, rfc.SEND_RST, ts)
        if acceptable:
            self._event(peer, rfc.RECV_RST, ts)

    def _rfc_send_next(
        self,
        ts: float,
        idle_since: float,
        endpoint: Endpoint,
        peer: Endpoint,
        seq: i64,
        flags: i64,
        length: i64,
        fin_repeat: bool,
    ) -> None:
        """SND.NXT of the sender (segments without RST): a segment that does not start there is out of line
        (`_out_of_line`: a gap, a probe, a retransmission...), unless a SYN or a repeated FIN; one reaching
        past it moves it on."""
        seq_end = self._seq_one_past(seq, flags, length)
        snd_nxt = endpoint.snd_nxt
        if snd_nxt == NO_SEQ:
            endpoint.snd_nxt = seq_end
            return
        nxt: i64 = snd_nxt
        if seq != nxt and not (flags & SYN or fin_repeat):
            self._out_of_line(ts, idle_since, endpoint, peer, seq, length)
        if seq_delta(seq_end, nxt) > 0:
            endpoint.snd_nxt = seq_end

    def _out_of_line(
        self, ts: float, idle_since: float, endpoint: Endpoint, peer: Endpoint, seq: i64, length: i64
    ) -> None:
        """A segment (no SYN or RST, not a repeated FIN) that does not start at its sender's snd_nxt: a gap
        opening (segments missing from the capture, or coming out of order), a keepalive or zero-window
        probe, an out-of-order segment filling a gap, or a retransmission (sequence space already sent)."""
        snd_nxt = endpoint.snd_nxt
        ahead = seq_delta(seq, snd_nxt)
        if ahead > 0:  # a gap: [snd_nxt, seq) not seen (yet)
            # (data a pure ACK shows was sent is no gap a late segment fills: seen later, it was retransmitted,
            # as Wireshark judges; never seen and acknowledged, it was missed like any gap)
            opened = ts if length else NEVER
            unusual = endpoint.noted()
            holes = unusual.holes
            if holes is None:
                holes = unusual.holes = []
            elif len(holes) >= MAX_HOLES:
                missed = _acked_part(holes.pop(0), endpoint.ack_seq)
                if missed:
                    unusual.missed_bytes += missed
            holes.append([float(snd_nxt), float(seq), opened])
            return
        if length <= 1 and ahead == -1:
            if peer.zero_window_since is not None:
                endpoint.noted().zero_window_probes += 1  # the peer's window is closed (Linux: seq SND.UNA-1)
                return
            if ts - idle_since >= KEEPALIVE_MIN_IDLE and (not peer.packets or endpoint.ack_seq == snd_nxt):
                self._note_keepalive(ts, endpoint, peer)
                return
        if not length:
            return  # an ACK sent before the sender's latest segment, captured after it
        unusual = endpoint.noted()
        if unusual.holes is not None and self._fills_hole(ts, unusual, seq, length):
            unusual.out_of_order += 1  # never seen before, within a round trip of the gap opening
            return
        unusual.retransmitted += 1
        self._note_resend(ts, idle_since, endpoint, seq, length)

    def _round_trip(self) -> float:
        """The handshake's round trip at the capture point (SYN to third ACK), 0.0 when not seen."""
        if self.syn_ts is not None and self.handshake_done_ts is not None and self.handshake_done_ts > self.syn_ts:
            return self.handshake_done_ts - self.syn_ts
        return 0.0

    def _note_resend(self, ts: float, idle_since: float, endpoint: Endpoint, seq: int, length: int) -> None:
        """A payload retransmission: its bytes, and what sent it. After a silence of the sender of at least
        TIMEOUT_MIN_WAIT and a round trip, its retransmission timer did (the wait is a stall the user saw);
        sooner, fast retransmit or SACK recovery. Timeouts re-sending one sequence number, each after a
        longer wait than the one before, are a back-off run (the peer is not acknowledging at all). A copy
        of the sender's previous segment (COPY_WITHIN: its latest new data, or its latest retransmission) is
        no resend; a SACK retransmission of an older hole sent at once after new data is one."""
        wait = ts - idle_since
        noted = endpoint.noted()
        if (
            wait < COPY_WITHIN
            and endpoint.packets_since_peer > 1
            and (seq == noted.resent_seq or ((seq + length) & SEQ_MASK) == endpoint.snd_nxt)
        ):
            return
        noted.resent_seq = seq
        noted.resent_bytes += length
        if wait < TIMEOUT_MIN_WAIT or wait < self._round_trip():
            noted.fast_resends += 1
            return
        noted.timeout_resends += 1
        if wait > noted.stall_max:
            noted.stall_max = wait
            noted.stall_at = ts
        if seq == noted.backoff_seq and wait >= BACKOFF_GROWTH * noted.backoff_wait:
            noted.backoff_run += 1
        else:
            noted.backoff_seq = seq
            noted.backoff_run = 1
            noted.backoff_from = ts
        noted.backoff_last = ts
        noted.backoff_wait = wait

    @staticmethod
    def _note_repeated_ack(endpoint: Endpoint, peer: Endpoint, seq: int, window: int) -> None:
        """A pure ACK (no SYN, FIN or RST) acknowledging what its sender last acknowledged: a duplicate ACK
        when it also repeats the sender's previous (non-zero) window and sits at its next sequence number,
        unless it answers a keepalive probe (the peer's last segment); Wireshark's rule. RFC 5681 2: the
        receiver saw a segment beyond a gap, or a copy of one it had. Else a window update or a probe. (An
        ACK to a peer that has sent nothing acknowledges nothing, repeated or not: a scanner's probe sent
        again; `_update_ack_seq` takes it as the peer's first sign.)"""
        if (
            window
            and window == endpoint.last_window
            and endpoint.snd_nxt == seq
            and peer.seen_unusual().last_keepalive_ts != peer.last_ts
        ):
            endpoint.noted().dup_acks += 1

    @staticmethod
    def _acks_repeated_syn(endpoint: Endpoint, peer: Endpoint, ack: i64) -> bool:
        """Whether an ACK of the peer's SYN + 1 answers a repeat of that SYN (or SYN-ACK) from a side that
        had acknowledged it already (past SYN_SENT): it repeats that acknowledgement. (Zeek's bookkeeping
        starts the peer's sequence space again at any SYN, so the ACK does not look repeated there.)"""
        isn = peer.isn
        return isn != NO_SEQ and ack == ((isn + 1) & SEQ_MASK) and endpoint.state != rfc.SYN_SENT

    @staticmethod
    def _note_data_into_zero_window(endpoint: Endpoint, seq: int, length: int) -> None:
        """Payload sent while the peer's window is closed: one new byte is a zero-window probe (Windows and
        BSD probe so; Linux probes with SND.UNA-1, counted in `_out_of_line`)."""
        if length == 1 and seq == endpoint.snd_nxt:
            endpoint.noted().zero_window_probes += 1

    @staticmethod
    def _note_answer_to_syn(ts: float, endpoint: Endpoint, peer: Endpoint, ack: int) -> None:
        """The responder answered the client's SYN with a plain ACK (no SYN-ACK yet, not even a bad one:
        that answer is bad_handshake_ack's). For another number
        than the SYN's + 1 it is a challenge ACK (RFC 5961 4: the responder still holds an earlier
        connection on the 4-tuple and acknowledges that one's sequence space)."""
        if peer.isn != NO_SEQ and ack != ((peer.isn + 1) & SEQ_MASK):
            noted = endpoint.noted()
            noted.challenge_acks += 1
            if noted.challenge_ack_ts == NEVER:
                noted.challenge_ack_ts = ts

    def _fills_hole(self, ts: float, unusual: Unusual, seq: int, length: int) -> bool:
        """Take [seq, seq+length) out of the sender's gaps; True if it lay wholly in a gap that opened
        less than a round trip ago (then it was never sent before: out of order, not retransmitted)."""
        holes = unusual.holes
        assert holes is not None
        rtt = self._round_trip() or REORDER_DEFAULT_WINDOW
        end = (seq + length) & SEQ_MASK
        inside = False
        for hole in list(holes):
            start, stop, opened = int(hole[0]), int(hole[1]), hole[2]
            if seq_delta(end, start) <= 0 or seq_delta(seq, stop) >= 0:
                continue  # no overlap
            if seq_delta(seq, start) >= 0 and seq_delta(end, stop) <= 0 and ts - opened < rtt:
                inside = True
            holes.remove(hole)
            if seq_delta(seq, start) > 0:
                holes.append([float(start), float(seq), opened])
            if seq_delta(stop, end) > 0:
                holes.append([float(end), float(stop), opened])
        if not holes:
            unusual.holes = None
        return inside

    @staticmethod
    def _note_keepalive(ts: float, endpoint: Endpoint, peer: Endpoint) -> None:
        unusual = endpoint.noted()
        unusual.keepalives += 1
        last = unusual.last_keepalive_ts
        if last is None or peer.last_ts > last:  # the first probe, or the peer answered the previous one
            unusual.keepalive_run = 1
            unusual.keepalive_run_from = ts
        else:
            unusual.keepalive_run += 1
        unusual.last_keepalive_ts = ts

    # ------------------------------------------------------------------ timers (Zeek's, evaluated by the tracker)
    def timer_fires(self, kind: str, now: float, linger: float) -> bool:
        """Whether Zeek's timer of this kind, firing at `now`, removes the connection."""
        orig, resp = self.orig, self.resp
        if kind == "delete":
            return True
        if not self.zeek_active:
            return False
        if kind == "attempt":
            return orig.zstate in (z.SYN_SENT, z.SYN_ACK_SENT) and resp.zstate == z.INACTIVE
        # "expire"
        if self.last_time + linger < now:
            if orig.did_close or resp.did_close:
                if (
                    (orig.did_close and resp.did_close)
                    or orig.zstate == z.RESET
                    or resp.zstate == z.RESET
                    or orig.zstate == z.INACTIVE
                    or resp.zstate == z.INACTIVE
                ):
                    return True
            if resp.zstate == z.INACTIVE and orig.zstate == z.INACTIVE:
                return True
        return False

    # ------------------------------------------------------------------ the finished record
    def end_reason(self) -> str:
        if self.orig.rst_ts is not None or self.resp.rst_ts is not None:
            return "rst"
        if self.orig.fin_seq is not None and self.resp.fin_seq is not None:
            return "fin"
        return self.end_cause or "capture_end"

    def release(self) -> None:
        """Let go of what only a live connection needs (its endpoints, history, pending timers),
        once it is finished and its record made. Its timer entries keep the object itself until
        they come due or are compacted away: under a SYN flood those would otherwise keep about a
        million endpoints in memory."""
        self.orig = self.resp = _RELEASED
        self.history = ""
        self.pending_timers = 0
        self.prev_time_wait = None

    def to_record(self, now: float, time_wait_s: float) -> FlowRecord:
        """The connection's final account; `now` is when it was finalised, for TIME_WAIT expiry."""
        orig, resp = self.orig, self.resp
        for endpoint in (orig, resp):
            if (
                endpoint.state == rfc.TIME_WAIT
                and endpoint.time_wait_since is not None
                and now >= endpoint.time_wait_since + time_wait_s
            ):
                self._event(endpoint, rfc.TIME_WAIT_EXPIRED, endpoint.time_wait_since + time_wait_s)
            if endpoint.zero_window_since is not None:  # still stalled: up to its last packet
                endpoint.note_stall(endpoint.last_ts)
        history = self.history
        client_bytes, server_bytes = orig.size(resp), resp.size(orig)
        orig_rare, resp_rare = orig.seen_unusual(), resp.seen_unusual()
        tw = self.prev_time_wait
        facts = ConnectionFacts.__new__(ConnectionFacts)  # every field set below (see the note at FlowRecord)
        facts.syn_ts = self.syn_ts
        facts.synack_ts = self.synack_ts
        facts.handshake_done_ts = self.handshake_done_ts
        facts.syn_retransmits = orig_rare.syn_retransmits
        facts.synack_retransmits = resp_rare.synack_retransmits
        facts.client_fin_ts = orig.fin_ts
        facts.server_fin_ts = resp.fin_ts
        facts.client_fin_acked = orig.fin_acked
        facts.server_fin_acked = resp.fin_acked
        facts.client_fin_retransmits = orig_rare.fin_retransmits
        facts.server_fin_retransmits = resp_rare.fin_retransmits
        facts.client_rst_ts = orig.rst_ts
        facts.server_rst_ts = resp.rst_ts
        facts.bad_synack = self.bad_synack
        facts.bad_third_ack = self.bad_third_ack
        facts.bad_ack_ts = self.bad_ack_ts
        facts.client_data_after_close = orig_rare.data_after_fin + orig_rare.data_after_rst
        facts.server_data_after_close = resp_rare.data_after_fin + resp_rare.data_after_rst
        facts.client_zero_window_s = orig_rare.zero_window_max_s
        facts.server_zero_window_s = resp_rare.zero_window_max_s
        facts.client_last_ts = orig.last_ts
        facts.server_last_ts = resp.last_ts
        facts.client_payload_packets = orig.payload_packets
        facts.server_payload_packets = resp.payload_packets
        facts.syn_in_time_wait = self.syn_in_time_wait
        facts.last_fin_retransmit_ts = orig_rare.last_fin_retransmit_ts or resp_rare.last_fin_retransmit_ts
        facts.anomalies = []
        facts.client_packets_since_peer = orig.packets_since_peer
        facts.server_packets_since_peer = resp.packets_since_peer
        facts.client_zero_window_from = orig_rare.zero_window_max_from
        facts.client_zero_window_until = orig_rare.zero_window_max_until
        facts.server_zero_window_from = resp_rare.zero_window_max_from
        facts.server_zero_window_until = resp_rare.zero_window_max_until
        if tw is None:
            facts.time_wait_holder, facts.time_wait_holder_ip, facts.time_wait_holder_port = "", b"", 0
            facts.time_wait_until = None
        else:
            facts.time_wait_holder, facts.time_wait_holder_ip, facts.time_wait_holder_port = tw.holder, tw.ip, tw.port
            facts.time_wait_until = tw.until
        facts.client_isn = None if orig.isn == NO_SEQ else orig.isn
        # keepalive probes, and those with no answer after the last one (the peer sent nothing since)
        last = orig_rare.last_keepalive_ts
        unanswered = last is not None and resp.last_ts < last
        facts.client_keepalives = orig_rare.keepalives
        facts.client_keepalives_unanswered = orig_rare.keepalive_run if unanswered else 0
        facts.client_keepalive_unanswered_from = orig_rare.keepalive_run_from if unanswered else None
        facts.client_last_keepalive_ts = last
        last = resp_rare.last_keepalive_ts
        unanswered = last is not None and orig.last_ts < last
        facts.server_keepalives = resp_rare.keepalives
        facts.server_keepalives_unanswered = resp_rare.keepalive_run if unanswered else 0
        facts.server_keepalive_unanswered_from = resp_rare.keepalive_run_from if unanswered else None
        facts.server_last_keepalive_ts = last
        # each side's last data is kept only where a side may be left in CLOSE_WAIT (a side sent no FIN);
        # most connections then need no float made for it
        open_side = orig.fin_ts is None or resp.fin_ts is None
        facts.client_last_data_ts = orig.last_data_ts if open_side and orig.last_data_ts != NEVER else None
        facts.server_last_data_ts = resp.last_data_ts if open_side and resp.last_data_ts != NEVER else None
        facts.client_state_changes = orig.state_changes
        facts.server_state_changes = resp.state_changes
        _evidence(facts, orig, resp)

        record = FlowRecord.__new__(FlowRecord)  # every field set below (see the note at FlowRecord)
        record.start = self.start
        record.end = self.last_time
        record.client_ip = orig.ip
        record.client_port = orig.port
        record.server_ip = resp.ip
        record.server_port = resp.port
        record.conn_state = z.conn_state(orig.zstate, resp.zstate, client_bytes, server_bytes, history)
        record.history = history
        record.client_state = orig.state
        record.server_state = resp.state
        record.client_packets = orig.packets
        record.server_packets = resp.packets
        record.client_bytes = client_bytes
        record.server_bytes = server_bytes
        record.retransmits = orig_rare.retransmitted + resp_rare.retransmitted
        record.close_initiator = self.close_initiator
        record.end_reason = self.end_reason()
        record.syn_synack_ms = _ms_between(self.synack_ts, self.syn_ts)
        record.synack_ack_ms = _ms_between(self.handshake_done_ts, self.synack_ts)
        record.direction_guessed = self.direction_guessed
        record.client_time_wait_until = None if orig.time_wait_since is None else orig.time_wait_since + time_wait_s
        record.server_time_wait_until = None if resp.time_wait_since is None else resp.time_wait_since + time_wait_s
        record.facts = facts
        record.finalised_at = now
        record.tunnel = self.tunnel
        return record
