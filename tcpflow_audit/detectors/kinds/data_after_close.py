"""`data_after_close`: payload sent beyond its sender's FIN, or after a RST from either side.

Severity: warning when some connection carried payload after a FIN and had no RST (a real protocol
violation); info when every case involves a RST (in-flight data crossing the reset).
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import DATA_AFTER_CLOSE, Aggregate, Context, Hit, RuleDetector, Setting, plural

KIND: Final = "data_after_close"
ORDER: Final = 80
SETTINGS: Final[tuple[Setting, ...]] = ()


class DataAfterClose(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, DATA_AFTER_CLOSE, context)

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        n_c, n_s = f.client_data_after_close, f.server_data_after_close
        if not (n_c or n_s):
            return None
        any_rst = f.client_rst_ts is not None or f.server_rst_ts is not None
        after = "after its FIN or a RST" if any_rst else "after its own FIN"
        parts = [
            "%s sent %s %s" % (side, plural(n, "data segment"), after)
            for side, n in (("client", n_c), ("server", n_s))
            if n
        ]
        side = "both" if n_c and n_s else ("client" if n_c else "server")
        closes = [ts for ts in (f.client_fin_ts, f.server_fin_ts, f.client_rst_ts, f.server_rst_ts) if ts is not None]
        first = min(closes) if closes else r.start
        return Hit(KIND, first, r.end, "; ".join(parts), side, n_c + n_s, float(n_c + n_s), escalate=not any_rst)

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning" if agg.escalated else "info"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return "%d connections %s carried %d data segments after a FIN or RST (sent by: %s)" % (
            agg.count,
            agg.clients_text(),
            int(agg.value_sum),
            agg.sides_text(),
        )


DETECTOR: Final = DataAfterClose
