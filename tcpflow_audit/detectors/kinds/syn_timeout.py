"""`syn_timeout`: a SYN retransmitted with no reply at all (Zeek S0).

Rule: a SYN retransmitted at least `syn_timeout_retries` times, no packet at all from the server.
Severity: warning.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import HANDSHAKE_INCOMPLETE, Aggregate, Context, Hit, RuleDetector, Setting, plural

KIND: Final = "syn_timeout"
ORDER: Final = 40
SETTINGS: Final = (
    Setting("syn_timeout_retries", 1,
            "one SYN retransmission proves the first SYN went a full RTO (Linux: 1 s) without any reply"),
)


class SynTimeout(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, HANDSHAKE_INCOMPLETE, context)
        self.retries: int = t.syn_timeout_retries

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if f.syn_ts is None or f.synack_ts is not None or r.server_packets or f.bad_synack:
            return None
        if f.syn_retransmits < self.retries or f.client_payload_packets:
            return None
        span = max(0.0, f.client_last_ts - f.syn_ts)
        return Hit(KIND, f.syn_ts, f.client_last_ts,
                   "SYN sent %s over %.1f s with no reply at all (SYN retransmitted %s; dropped or filtered on "
                   "the way to the server)" % (plural(1 + f.syn_retransmits, "time"), span,
                                               plural(f.syn_retransmits, "time")),
                   "client", 1 + f.syn_retransmits, float(f.syn_retransmits))

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return ("%d connection attempts %s over %.1f s got no reply at all; SYN retransmitted %d times in all "
                "(at most %d on one connection)" % (agg.count, agg.clients_text(), agg.last - agg.first,
                                                    agg.packets - agg.count, int(agg.value_max)))


DETECTOR: Final = SynTimeout
