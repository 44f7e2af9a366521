"""`fin_retransmit`: a FIN sent again because the ACK of it did not arrive.

Rule: the same FIN (same sequence number) sent more than once. Severity: info; warning from
`fin_retransmit_warn_count` connections on one service.
"""

from __future__ import annotations

import math
from typing import Any, Final

from ...connection import FlowRecord
from ..base import FIN_RETRANSMITTED, Aggregate, Context, Hit, RuleDetector, Setting, other_side, plural

KIND: Final = "fin_retransmit"
ORDER: Final = 90
SETTINGS: Final = (
    Setting(
        "fin_retransmit_warn_count",
        10,
        "a server FIN or client FIN repeated now and then is a lost ACK; 10 on one service is a lossy path",
    ),
)


class FinRetransmit(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, FIN_RETRANSMITTED, context)
        self.warn_count: int = t.fin_retransmit_warn_count

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if not (f.client_fin_retransmits or f.server_fin_retransmits):
            return None
        parts = []
        first, last = math.inf, -math.inf  # (at least one side retransmitted its FIN: both get set)
        for side, n, fin_ts, acked, last_ts in (
            ("client", f.client_fin_retransmits, f.client_fin_ts, f.client_fin_acked, f.client_last_ts),
            ("server", f.server_fin_retransmits, f.server_fin_ts, f.server_fin_acked, f.server_last_ts),
        ):
            if not n:
                continue
            start = fin_ts if fin_ts is not None else r.start
            first = min(first, start)
            last = max(last, last_ts)
            parts.append(
                "%s FIN sent %s over %.2f s (%s): the %s's ACK of it was lost%s"
                % (
                    side,
                    plural(n + 1, "time"),
                    max(0.0, last_ts - start),
                    plural(n, "retransmission"),
                    other_side(side),
                    "" if acked else ", and it was never acknowledged",
                )
            )
        side = (
            "both"
            if f.client_fin_retransmits and f.server_fin_retransmits
            else ("client" if f.client_fin_retransmits else "server")
        )
        n = f.client_fin_retransmits + f.server_fin_retransmits
        return Hit(KIND, first, last, "; ".join(parts), side, n + (2 if side == "both" else 1), float(n))

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning" if agg.count >= self.warn_count else "info"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return "%d connections %s retransmitted a FIN (%d retransmissions in all; by: %s): ACKs of FINs were lost" % (
            agg.count,
            agg.clients_text(),
            int(agg.value_sum),
            agg.sides_text(),
        )


DETECTOR: Final = FinRetransmit
