"""`missing_third_ack`: the server sent a valid SYN-ACK and the client never sent the third ACK.

Rule: a valid SYN-ACK (acking the client's ISN+1); no third ACK, no client data, no RST from either
side; and the server waited at least `handshake_timeout_s` after its first SYN-ACK (to the capture's
end) or retransmitted the SYN-ACK at least `missing_ack_synack_retries` times, or was evicted from a
full connection table while waiting. Severity: warning.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import HANDSHAKE_INCOMPLETE, Aggregate, Context, Hit, RuleDetector, Setting, plural

KIND: Final = "missing_third_ack"
ORDER: Final = 30
SETTINGS: Final = (
    Setting(
        "handshake_timeout_s",
        3.0,
        "RFC 6298 / Linux initial RTO is 1 s; by 3 s a server has retransmitted its SYN-ACK twice (1 s + 2 s)",
    ),
    Setting(
        "missing_ack_synack_retries",
        2,
        "Linux backs the SYN-ACK off 1 s, 2 s, 4 s...: 2 retransmissions prove >= 3 s without the third ACK "
        "even when the capture's own clock cannot show it",
    ),
)


class MissingThirdAck(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, HANDSHAKE_INCOMPLETE, context)
        self.timeout_s: float = t.handshake_timeout_s
        self.retries: int = t.missing_ack_synack_retries

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if f.synack_ts is None or f.handshake_done_ts is not None or f.client_rst_ts is not None:
            return None
        if f.client_payload_packets or f.bad_third_ack or f.server_rst_ts is not None:
            return None
        waited = obs_end - f.synack_ts
        # evicted: the connection table filled up (a flood of half-open connections) before the wait was
        # over; the tracker gave up waiting, so the ACK did not come for as long as it could be seen
        evicted = r.end_reason == "evicted"
        if waited < self.timeout_s and f.synack_retransmits < self.retries and not evicted:
            return None
        span = max(0.0, f.server_last_ts - f.synack_ts)
        return Hit(
            KIND,
            f.syn_ts if f.syn_ts is not None else r.start,
            max(obs_end, f.server_last_ts),
            "SYN-ACK retransmitted %s over %.1f s, client never sent the final ACK (waited %.1f s%s; "
            "server left in SYN_RCVD)"
            % (
                plural(f.synack_retransmits, "time"),
                span,
                waited,
                ", then evicted from the full connection table" if evicted else "",
            ),
            "server",
            1 + f.synack_retransmits,
            float(f.synack_retransmits),
        )

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return (
            "%d connections %s over %.1f s: valid SYN-ACK sent, the client never sent the final ACK; "
            "SYN-ACK retransmitted %d times in all (at most %d on one connection)"
            % (agg.count, agg.clients_text(), agg.last - agg.first, agg.packets - agg.count, int(agg.value_max))
        )


DETECTOR: Final = MissingThirdAck
