"""Per-connection rules: one finished connection (FlowRecord + ConnectionFacts) in, hits out.

Each rule reads only the record's facts and `obs_end` (the latest time the connection is known to
have been observed: its last packet, or the engine's clock when it was finalised) and returns a
`Hit` or None. The rules and their exact conditions are documented in docs/anomalies.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..connection import FlowRecord
from ..decode import format_ip
from .thresholds import Thresholds


class Hit(NamedTuple):
    kind: str
    first: float
    last: float
    detail: str          # one sentence about this connection
    side: str            # "client", "server", "both" or "" (who did it / who holds the state)
    packets: int         # packets involved (retransmissions, segments...)
    value: float         # the kind's key number (seconds, retransmissions...), aggregated as a maximum
    escalate: bool = False   # this connection alone justifies the kind's higher severity


def _other(side: str) -> str:
    return "server" if side == "client" else "client"


def _s(n: int, word: str) -> str:
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def _ip_port(ip: bytes, port: int) -> str:
    text = format_ip(ip)
    return ("[%s]:%d" if ":" in text else "%s:%d") % (text, port)


def handshake_reset(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if f.synack_ts is None or f.handshake_done_ts is not None or f.client_rst_ts is None:
        return None
    if f.client_rst_ts < f.synack_ts or f.client_payload_packets:
        return None
    ms = (f.client_rst_ts - f.synack_ts) * 1000.0
    return Hit("handshake_reset", f.syn_ts if f.syn_ts is not None else r.start, f.client_rst_ts,
               "client answered the SYN-ACK with RST after %.1f ms instead of completing the handshake "
               "(it never sent that SYN: backscatter of a spoofed SYN)" % ms,
               "client", 1, ms)


def missing_third_ack(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if f.synack_ts is None or f.handshake_done_ts is not None or f.client_rst_ts is not None:
        return None
    if f.client_payload_packets or f.bad_third_ack or f.server_rst_ts is not None:
        return None
    waited = obs_end - f.synack_ts
    # evicted: the connection table filled up (a flood of half-open connections) before the wait was
    # over; the tracker gave up waiting, so the ACK did not come for as long as it could be seen
    evicted = r.end_reason == "evicted"
    if waited < t.handshake_timeout_s and f.synack_retransmits < t.missing_ack_synack_retries and not evicted:
        return None
    span = max(0.0, f.server_last_ts - f.synack_ts)
    return Hit("missing_third_ack", f.syn_ts if f.syn_ts is not None else r.start, max(obs_end, f.server_last_ts),
               "SYN-ACK retransmitted %s over %.1f s, client never sent the final ACK (waited %.1f s%s; "
               "server left in SYN_RCVD)" % (_s(f.synack_retransmits, "time"), span, waited,
                                             ", then evicted from the full connection table" if evicted else ""),
               "server", 1 + f.synack_retransmits, float(f.synack_retransmits))


def syn_timeout(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if f.syn_ts is None or f.synack_ts is not None or r.server_packets or f.bad_synack:
        return None
    if f.syn_retransmits < t.syn_timeout_retries or f.client_payload_packets:
        return None
    span = max(0.0, f.client_last_ts - f.syn_ts)
    return Hit("syn_timeout", f.syn_ts, f.client_last_ts,
               "SYN sent %s over %.1f s with no reply at all (SYN retransmitted %s; dropped or filtered "
               "on the way to the server)" % (_s(1 + f.syn_retransmits, "time"), span,
                                             _s(f.syn_retransmits, "time")),
               "client", 1 + f.syn_retransmits, float(f.syn_retransmits))


def connection_refused(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if f.syn_ts is None or f.synack_ts is not None or f.handshake_done_ts is not None or f.server_rst_ts is None:
        return None
    if f.bad_synack or f.server_rst_ts < f.syn_ts:
        return None
    ms = (f.server_rst_ts - f.syn_ts) * 1000.0
    return Hit("connection_refused", f.syn_ts, f.server_rst_ts,
               "SYN answered by RST after %.3f ms: nothing listening on the port (or a firewall "
               "rejecting)" % ms, "server", 2 + f.syn_retransmits, ms)


def rst_abort(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if f.handshake_done_ts is None or (f.client_rst_ts is None and f.server_rst_ts is None):
        return None
    candidates = [(ts, side) for ts, side in ((f.client_rst_ts, "client"), (f.server_rst_ts, "server"))
                  if ts is not None and ts >= f.handshake_done_ts]
    if not candidates:
        return None
    rst_ts, side = min(candidates)
    if f.client_fin_acked and f.server_fin_acked and f.client_fin_ts is not None and f.server_fin_ts is not None \
            and rst_ts >= max(f.client_fin_ts, f.server_fin_ts):
        return None   # a stray RST after a completed close, not an abort
    fin_ts = f.client_fin_ts if side == "client" else f.server_fin_ts
    how = "after its own FIN" if fin_ts is not None and fin_ts <= rst_ts else "without a FIN"
    return Hit("rst_abort", rst_ts, rst_ts,
               "%s reset the established connection %.3f s after the handshake, %s (%s / %s with "
               "payload from client / server)" % (side, rst_ts - f.handshake_done_ts, how,
                                                  _s(f.client_payload_packets, "segment"),
                                                  _s(f.server_payload_packets, "segment")),
               side, 1, rst_ts - f.handshake_done_ts)


def fin_retransmit(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if not (f.client_fin_retransmits or f.server_fin_retransmits):
        return None
    parts = []
    first, last = math.inf, -math.inf   # (at least one side retransmitted its FIN: both get set)
    for side, n, fin_ts, acked, last_ts in (
            ("client", f.client_fin_retransmits, f.client_fin_ts, f.client_fin_acked, f.client_last_ts),
            ("server", f.server_fin_retransmits, f.server_fin_ts, f.server_fin_acked, f.server_last_ts)):
        if not n:
            continue
        start = fin_ts if fin_ts is not None else r.start
        first = min(first, start)
        last = max(last, last_ts)
        parts.append("%s FIN sent %s over %.2f s (%s): the %s's ACK of it was lost%s" % (
            side, _s(n + 1, "time"), max(0.0, last_ts - start), _s(n, "retransmission"), _other(side),
            "" if acked else ", and it was never acknowledged"))
    side = "both" if f.client_fin_retransmits and f.server_fin_retransmits else (
        "client" if f.client_fin_retransmits else "server")
    n = f.client_fin_retransmits + f.server_fin_retransmits
    return Hit("fin_retransmit", first, last, "; ".join(parts), side, n + (2 if side == "both" else 1), float(n))


def bad_handshake_ack(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if not (f.bad_synack or f.bad_third_ack):
        return None
    parts = []
    if f.bad_synack:
        parts.append("%s acknowledged a sequence number other than the client's ISN+1" % _s(f.bad_synack, "SYN-ACK"))
    if f.bad_third_ack:
        parts.append("%s acknowledged a sequence number other than the server's ISN+1" %
                     _s(f.bad_third_ack, "third ACK"))
    side = "both" if f.bad_synack and f.bad_third_ack else ("server" if f.bad_synack else "client")
    outcome = "the handshake completed later" if f.handshake_done_ts is not None else "the connection never came up"
    ts = f.bad_ack_ts if f.bad_ack_ts is not None else r.start
    return Hit("bad_handshake_ack", ts, ts, "%s; %s" % ("; ".join(parts), outcome), side,
               f.bad_synack + f.bad_third_ack, float(f.bad_synack + f.bad_third_ack))


def syn_during_time_wait(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if not f.syn_in_time_wait:
        return None
    ts = f.syn_ts if f.syn_ts is not None else r.start
    outcome = ("the TIME_WAIT side accepted it and the handshake completed" if f.handshake_done_ts is not None
               else "the handshake did not complete")
    if f.time_wait_until is None:   # (a record from before the engine kept the holder)
        return Hit("syn_during_time_wait", ts, ts,
                   "new SYN on a 4-tuple whose previous connection was still in TIME_WAIT (less than 2*MSL "
                   "after its close); %s" % outcome, "client", 1 + f.syn_retransmits, 1.0)
    holder = _ip_port(f.time_wait_holder_ip, f.time_wait_holder_port)
    if f.time_wait_holder == "both":
        who = "both ends of the previous connection were in TIME_WAIT (its FINs crossed); %s held it" % holder
    else:
        who = "the %s %s still held TIME_WAIT" % (f.time_wait_holder, holder)
    # side: the TIME_WAIT holder (its role in the previous connection), for the aggregated detail
    return Hit("syn_during_time_wait", ts, ts,
               "new SYN on a 4-tuple whose previous connection was still in TIME_WAIT: %s until %.1f s after "
               "this SYN (2*MSL after its close); %s" % (who, f.time_wait_until - ts, outcome),
               f.time_wait_holder, 1 + f.syn_retransmits, 1.0)


def data_after_close(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    n_c, n_s = f.client_data_after_close, f.server_data_after_close
    if not (n_c or n_s):
        return None
    any_rst = f.client_rst_ts is not None or f.server_rst_ts is not None
    after = "after its FIN or a RST" if any_rst else "after its own FIN"
    parts = ["%s sent %s %s" % (side, _s(n, "data segment"), after) for side, n in (("client", n_c), ("server", n_s)) if n]
    side = "both" if n_c and n_s else ("client" if n_c else "server")
    closes = [ts for ts in (f.client_fin_ts, f.server_fin_ts, f.client_rst_ts, f.server_rst_ts) if ts is not None]
    first = min(closes) if closes else r.start
    return Hit("data_after_close", first, r.end, "; ".join(parts), side, n_c + n_s, float(n_c + n_s),
               escalate=not any_rst)


def half_open_peer(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if f.handshake_done_ts is None:
        return None
    gap = f.client_last_ts - f.server_last_ts
    prober, silent = ("client", "server") if gap > 0 else ("server", "client")
    gap = abs(gap)
    if gap < t.half_open_silence_s:
        return None
    silent_rst = f.server_rst_ts if silent == "server" else f.client_rst_ts
    if silent_rst is not None:
        return None   # the "silent" side reset the connection: it was alive
    prober_rst = f.client_rst_ts if prober == "client" else f.server_rst_ts
    silent_last = f.server_last_ts if silent == "server" else f.client_last_ts
    prober_last = f.client_last_ts if prober == "client" else f.server_last_ts
    end = ("then gave up with a RST" if prober_rst is not None else
           "still unanswered when the connection was %s" % ("finalised" if r.end_reason != "capture_end"
                                                             else "last seen"))
    unanswered = f.client_packets_since_peer if prober == "client" else f.server_packets_since_peer
    sent = _s(unanswered, "segment") + " over" if unanswered else "for"   # (0: a record without the count)
    return Hit("half_open_peer", silent_last, prober_last,
               "%s kept sending %s %.1f s after the %s's last packet and got no answer (dead or "
               "unreachable peer: keepalive/retransmissions unanswered), %s" % (prober, sent, gap, silent, end),
               prober, max(1, unanswered), gap)


def zero_window_stall(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if not (f.client_zero_window_s > 0 or f.server_zero_window_s > 0):
        return None
    stalls = [(s, side) for s, side in ((f.client_zero_window_s, "client"), (f.server_zero_window_s, "server"))
              if s >= t.zero_window_s and s > 0]
    if not stalls:
        return None
    stall, side = max(stalls)
    if side == "client":
        since, until = f.client_zero_window_from, f.client_zero_window_until
    else:
        since, until = f.server_zero_window_from, f.server_zero_window_until
    return Hit("zero_window_stall", r.start if since is None else since, r.end if until is None else until,
               "%s advertised a zero receive window for %.1f s (its application stopped reading); the "
               "%s could not send" % (side, stall, _other(side)), side, 1, stall)


def stuck_close_wait(r: FlowRecord, obs_end: float, t: Thresholds) -> Hit | None:
    f = r.facts
    if f.client_rst_ts is not None or f.server_rst_ts is not None:
        return None
    if f.client_fin_ts is not None and f.client_fin_acked and f.server_fin_ts is None:
        holder, peer_fin, holder_last = "server", f.client_fin_ts, f.server_last_ts
    elif f.server_fin_ts is not None and f.server_fin_acked and f.client_fin_ts is None:
        holder, peer_fin, holder_last = "client", f.server_fin_ts, f.client_last_ts
    else:
        return None
    idle = obs_end - max(peer_fin, holder_last)
    if idle < t.close_wait_s:
        return None
    return Hit("stuck_close_wait", peer_fin, obs_end,
               "%s has held CLOSE_WAIT for %.1f s: the %s's FIN was acknowledged and the %s sent no FIN "
               "(silent for %.1f s: the application never called close())" % (
                   holder, obs_end - peer_fin, _other(holder), holder, idle),
               holder, 1, obs_end - peer_fin)


def ordinary(r: FlowRecord, t: Thresholds) -> bool:
    """True when no rule can fire: the handshake completed, both sides closed with a FIN, and nothing
    else happened that a rule looks for (most connections). The detectors skip the rules for these.

    Each condition rules out some of the rules by their own first checks; a rule added to RULES must
    be ruled out here too (tests/test_flow_sinks.py checks that no rule fires on such a connection).
    """
    f = r.facts
    return (f.synack_ts is not None and f.handshake_done_ts is not None      # the handshake completed
            and f.client_fin_ts is not None and f.server_fin_ts is not None  # both sent a FIN
            and f.client_rst_ts is None and f.server_rst_ts is None          # no RST
            and not f.bad_synack and not f.bad_third_ack and not f.syn_in_time_wait
            and not f.client_data_after_close and not f.server_data_after_close
            and not f.client_fin_retransmits and not f.server_fin_retransmits
            and not (f.client_zero_window_s > 0 or f.server_zero_window_s > 0)
            and abs(f.client_last_ts - f.server_last_ts) < t.half_open_silence_s)


# Order = order of the names appended to facts.anomalies.
RULES = (
    bad_handshake_ack, handshake_reset, missing_third_ack, syn_timeout, connection_refused,
    syn_during_time_wait, rst_abort, data_after_close, fin_retransmit, zero_window_stall,
    half_open_peer, stuck_close_wait,
)
