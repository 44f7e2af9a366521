"""`bad_handshake_ack`: a SYN-ACK or third ACK acknowledging the wrong sequence number.

Rule: at least one SYN-ACK acknowledging something other than the client's ISN+1, or a third ACK
acknowledging something other than the server's ISN+1 (the engine counts them and does not move the
states). Severity: warning.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import BAD_HANDSHAKE_ACK, Aggregate, Context, Hit, RuleDetector, Setting, plural

KIND: Final = "bad_handshake_ack"
ORDER: Final = 10
SETTINGS: Final[tuple[Setting, ...]] = ()


class BadHandshakeAck(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, BAD_HANDSHAKE_ACK, context)

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if not (f.bad_synack or f.bad_third_ack):
            return None
        parts = []
        if f.bad_synack:
            parts.append(
                "%s acknowledged a sequence number other than the client's ISN+1" % plural(f.bad_synack, "SYN-ACK")
            )
        if f.bad_third_ack:
            parts.append(
                "%s acknowledged a sequence number other than the server's ISN+1" % plural(f.bad_third_ack, "third ACK")
            )
        side = "both" if f.bad_synack and f.bad_third_ack else ("server" if f.bad_synack else "client")
        outcome = "the handshake completed later" if f.handshake_done_ts is not None else "the connection never came up"
        ts = f.bad_ack_ts if f.bad_ack_ts is not None else r.start
        return Hit(
            KIND,
            ts,
            ts,
            "%s; %s" % ("; ".join(parts), outcome),
            side,
            f.bad_synack + f.bad_third_ack,
            float(f.bad_synack + f.bad_third_ack),
        )

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return (
            "%d connections %s had a handshake ACK acknowledging the wrong sequence number (%d segments; "
            "sent by: %s)" % (agg.count, agg.clients_text(), agg.packets, agg.sides_text())
        )


DETECTOR: Final = BadHandshakeAck
