"""`half_open_peer`: one side kept sending while the other stayed silent (a dead or unreachable peer).

Rule: the handshake completed; one side's last packet is at least `half_open_silence_s` after the
other side's last packet; the silent side sent no RST. Severity: warning.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import QUIET_PEER, Aggregate, Context, Hit, RuleDetector, Setting, plural

KIND: Final = "half_open_peer"
ORDER: Final = 110
SETTINGS: Final = (
    Setting("half_open_silence_s", 75.0,
            "Linux tcp_keepalive_intvl is 75 s: one side sending that long after the other's last packet has had "
            "at least one probe/retransmission go unanswered"),
)


class HalfOpenPeer(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, QUIET_PEER, context)
        self.silence_s: float = t.half_open_silence_s
        self.quiet_gap = self.silence_s

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if f.handshake_done_ts is None:
            return None
        gap = f.client_last_ts - f.server_last_ts
        prober, silent = ("client", "server") if gap > 0 else ("server", "client")
        gap = abs(gap)
        if gap < self.silence_s:
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
        sent = plural(unanswered, "segment") + " over" if unanswered else "for"   # (0: a record without the count)
        return Hit(KIND, silent_last, prober_last,
                   "%s kept sending %s %.1f s after the %s's last packet and got no answer (dead or unreachable "
                   "peer: keepalive/retransmissions unanswered), %s" % (prober, sent, gap, silent, end),
                   prober, max(1, unanswered), gap)

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return ("%d connections %s: one side kept sending for up to %.1f s with the other silent, %d segments "
                "unanswered in all (prober: %s)" % (agg.count, agg.clients_text(), agg.value_max, agg.packets,
                                                    agg.sides_text()))


DETECTOR: Final = HalfOpenPeer
