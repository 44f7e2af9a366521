"""`half_open_peer`: one side kept probing or re-sending while the other stayed silent (a dead peer).

**TCP:** one side is ESTABLISHED and keeps sending (keepalive probes, retransmissions of data or FIN)
while the other side has vanished (crashed host, pulled cable, a firewall that dropped the state).
The live side gives up eventually (Linux: `tcp_keepalive_probes` x `tcp_keepalive_intvl`, or
`tcp_retries2`, or TCP_USER_TIMEOUT) and resets the connection (ETIMEDOUT).

**Rule:** the silent side sent no RST (a RST would prove it alive), and either
* one side re-sent the same segment `dead_peer_backoff_resends` times or more on its retransmission
  timer, each after a longer wait than the one before (RFC 6298 5.5 back-off), and the other side sent
  nothing since the first of them (on a connection seen from its start or picked up mid-stream);

or, the handshake completed and
* keepalive probes went unanswered (the engine recognises a probe by its bytes: sequence number
  SND.NXT-1, no payload or one garbage byte, after at least 0.5 s of silence from its sender, nothing
  unacknowledged, the peer's window open (else it is a zero-window probe); RFC 9293 3.8.4, RFC 1122
  4.2.3.6) until the prober gave up with a RST, or until the end of the capture: two or more probes
  with no answer after them, or one with none for `keepalive_answer_s`; whatever the probe interval;
* or one side's last packet is at least `half_open_silence_s` after the other side's (retransmissions
  unanswered, no keepalive needed).
Answered keepalives are normal and silent. The back-off is the same diagnosis proven sooner (seconds,
not 75 s) and without the handshake, which is why it is this kind and not one of its own.

**Severity:** warning.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import (
    KEEPALIVE_UNANSWERED,
    QUIET_PEER,
    RESENT,
    Aggregate,
    Context,
    Hit,
    RuleDetector,
    Setting,
    backed_off_unanswered,
    plural,
    seconds_text,
)

KIND: Final = "half_open_peer"
ORDER: Final = 110
SETTINGS: Final = (
    Setting(
        "half_open_silence_s",
        75.0,
        "Linux tcp_keepalive_intvl is 75 s: one side sending that long after the other's last packet has had "
        "at least one probe/retransmission go unanswered",
    ),
    Setting(
        "dead_peer_backoff_resends",
        3,
        "three timeouts of one segment, each waiting longer (Linux: 0.2 + 0.4 + 0.8 s at least), with nothing "
        "back from the peer: a live peer acknowledges one of them; Linux's tcp_retries1 = 3 is where the "
        "kernel itself starts suspecting the path",
    ),
    Setting(
        "keepalive_answer_s",
        1.0,
        "a live peer answers a keepalive probe within one round trip: one probe still unanswered this long "
        "when the capture ends went unanswered (two probes in a row prove it by themselves)",
    ),
)


class HalfOpenPeer(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, QUIET_PEER | KEEPALIVE_UNANSWERED | RESENT, context)
        self.backoff_resends: int = t.dead_peer_backoff_resends
        self.silence_s: float = t.half_open_silence_s
        self.answer_s: float = t.keepalive_answer_s
        self.quiet_gap = self.silence_s

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        hit = self._backoff(r, "client") or self._backoff(r, "server")
        if hit is not None or f.handshake_done_ts is None:
            return hit
        hit = self._keepalive(r, obs_end, "client") or self._keepalive(r, obs_end, "server")
        if hit is not None:
            return hit
        gap = f.client_last_ts - f.server_last_ts
        prober, silent = ("client", "server") if gap > 0 else ("server", "client")
        gap = abs(gap)
        if gap < self.silence_s:
            return None
        silent_rst = f.server_rst_ts if silent == "server" else f.client_rst_ts
        if silent_rst is not None:
            return None  # the "silent" side reset the connection: it was alive
        prober_rst = f.client_rst_ts if prober == "client" else f.server_rst_ts
        silent_last = f.server_last_ts if silent == "server" else f.client_last_ts
        prober_last = f.client_last_ts if prober == "client" else f.server_last_ts
        end = (
            "then gave up with a RST"
            if prober_rst is not None
            else "still unanswered when the connection was %s"
            % ("finalised" if r.end_reason != "capture_end" else "last seen")
        )
        unanswered = f.client_packets_since_peer if prober == "client" else f.server_packets_since_peer
        sent = plural(unanswered, "segment") + " over" if unanswered else "for"  # (0: a record without the count)
        return Hit(
            KIND,
            silent_last,
            prober_last,
            "%s kept sending %s %.1f s after the %s's last packet and got no answer (dead or unreachable "
            "peer: keepalive/retransmissions unanswered), %s" % (prober, sent, gap, silent, end),
            prober,
            max(1, unanswered),
            gap,
        )

    def _backoff(self, r: FlowRecord, prober: str) -> Hit | None:
        """`prober`'s retransmission timer backing off on one segment that the silent side never answered."""
        if not backed_off_unanswered(r, prober, self.backoff_resends):
            return None
        f = r.facts
        rs = f.resends
        assert rs is not None  # (backed_off_unanswered: there are retransmissions)
        mine = rs.side(prober)
        resends, first, last = mine.backoff_resends, mine.backoff_from, mine.backoff_last
        if prober == "client":
            silent, silent_last, silent_rst, prober_rst = "server", f.server_last_ts, f.server_rst_ts, f.client_rst_ts
        else:
            silent, silent_last, silent_rst, prober_rst = "client", f.client_last_ts, f.client_rst_ts, f.server_rst_ts
        if silent_rst is not None or first is None or last is None:
            return None
        end = "then gave up with a RST" if prober_rst is not None else "still unanswered when the capture ended"
        since = (
            "sent nothing in the capture"
            if silent_last <= 0.0
            else "sent nothing since %s before the first" % seconds_text(first - silent_last)
        )
        return Hit(
            KIND,
            first,
            last,
            "%s re-sent the same segment %s over %.1f s, each after a longer wait (its retransmission timer "
            "backing off), and the %s %s (dead or unreachable peer); %s"
            % (prober, plural(resends, "time"), last - first, silent, since, end),
            prober,
            resends,
            last - (silent_last if silent_last > 0.0 else first),
        )

    def _keepalive(self, r: FlowRecord, obs_end: float, prober: str) -> Hit | None:
        """Unanswered keepalive probes from `prober` until it gave up or the capture ended."""
        f = r.facts
        if prober == "client":
            probes, since, last = (
                f.client_keepalives_unanswered,
                f.client_keepalive_unanswered_from,
                f.client_last_keepalive_ts,
            )
            prober_rst, silent_rst, silent, silent_last = f.client_rst_ts, f.server_rst_ts, "server", f.server_last_ts
            prober_last, sent = f.client_last_ts, f.client_packets_since_peer
        else:
            probes, since, last = (
                f.server_keepalives_unanswered,
                f.server_keepalive_unanswered_from,
                f.server_last_keepalive_ts,
            )
            prober_rst, silent_rst, silent, silent_last = f.server_rst_ts, f.client_rst_ts, "client", f.client_last_ts
            prober_last, sent = f.server_last_ts, f.server_packets_since_peer
        if not probes or since is None or last is None or silent_rst is not None:
            return None
        if prober_rst is not None and prober_rst >= last:
            end = "then gave up with a RST %.1f s after the %s's last packet" % (prober_rst - silent_last, silent)
        elif probes >= 2 or obs_end - last >= self.answer_s:
            waited = obs_end - last
            end = "still unanswered when the capture ended" + (
                " %s after the last probe" % seconds_text(waited) if waited >= 0.001 else ", with the last probe"
            )
        else:
            return None  # one probe at the very end: its answer may simply not have been captured
        pace = " %.1f s apart" % ((last - since) / (probes - 1)) if probes > 1 else ""
        return Hit(
            KIND,
            silent_last,
            max(prober_last, last),
            "%s sent %s%s after %.1f s of silence from the %s, none answered (dead or unreachable peer); "
            "%s" % (prober, plural(probes, "keepalive probe"), pace, since - silent_last, silent, end),
            prober,
            max(probes, sent),
            prober_last - silent_last,
        )

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return (
            "%d connections %s: one side kept sending for up to %.1f s with the other silent, %d segments "
            "unanswered in all (prober: %s)"
            % (agg.count, agg.clients_text(), agg.value_max, agg.packets, agg.sides_text())
        )


DETECTOR: Final = HalfOpenPeer
