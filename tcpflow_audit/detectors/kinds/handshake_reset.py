"""`handshake_reset`: the client answered the SYN-ACK with a RST (backscatter of spoofed SYNs).

Rule: a valid SYN-ACK, then a RST from the client, no completed handshake, no client data.
Severity: info; warning from `handshake_reset_warn_count` connections on one service.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import HANDSHAKE_INCOMPLETE, Aggregate, Context, Hit, RuleDetector, Setting

KIND: Final = "handshake_reset"
ORDER: Final = 20
SETTINGS: Final = (
    Setting(
        "handshake_reset_warn_count",
        10,
        "a handful of backscatter RSTs is noise on the Internet; 10 on one service points at spoofed SYNs",
    ),
)


class HandshakeReset(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, HANDSHAKE_INCOMPLETE, context)
        self.warn_count: int = t.handshake_reset_warn_count

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if f.synack_ts is None or f.handshake_done_ts is not None or f.client_rst_ts is None:
            return None
        if f.client_rst_ts < f.synack_ts or f.client_payload_packets:
            return None
        ms = (f.client_rst_ts - f.synack_ts) * 1000.0
        return Hit(
            KIND,
            f.syn_ts if f.syn_ts is not None else r.start,
            f.client_rst_ts,
            "client answered the SYN-ACK with RST after %.1f ms instead of completing the handshake "
            "(it never sent that SYN: backscatter of a spoofed SYN)" % ms,
            "client",
            1,
            ms,
        )

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning" if agg.count >= self.warn_count else "info"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return (
            "%d connections %s over %.1f s: the client answered the SYN-ACK with RST (backscatter of spoofed "
            "SYNs carrying these sources)" % (agg.count, agg.clients_text(), agg.last - agg.first)
        )


DETECTOR: Final = HandshakeReset
