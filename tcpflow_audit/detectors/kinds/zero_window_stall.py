"""`zero_window_stall`: a receiver advertised a zero window for a long time.

Rule: one side advertised window 0 continuously for at least `zero_window_s` (the longest stall of
the connection; the detail names the receiver that stalled). `first_seen` and `last_seen` are that
stall's. Severity: warning.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import ZERO_WINDOW, Aggregate, Context, Hit, RuleDetector, Setting, other_side

KIND: Final = "zero_window_stall"
ORDER: Final = 100
SETTINGS: Final = (
    Setting(
        "zero_window_s",
        2.0,
        "Linux's zero-window probes start at the RTO (>= 200 ms) and back off; a window closed for 2 s has "
        "outlived several probes: the receiving application stopped reading",
    ),
)


class ZeroWindowStall(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, ZERO_WINDOW, context)
        self.zero_window_s: float = t.zero_window_s

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if not (f.client_zero_window_s > 0 or f.server_zero_window_s > 0):
            return None
        stalls = [
            (s, side)
            for s, side in ((f.client_zero_window_s, "client"), (f.server_zero_window_s, "server"))
            if s >= self.zero_window_s and s > 0
        ]
        if not stalls:
            return None
        stall, side = max(stalls)
        if side == "client":
            since, until = f.client_zero_window_from, f.client_zero_window_until
        else:
            since, until = f.server_zero_window_from, f.server_zero_window_until
        return Hit(
            KIND,
            r.start if since is None else since,
            r.end if until is None else until,
            "%s advertised a zero receive window for %.1f s (its application stopped reading); the %s "
            "could not send" % (side, stall, other_side(side)),
            side,
            1,
            stall,
        )

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return "%d connections %s stalled on a zero receive window for up to %.1f s (receiver: %s)" % (
            agg.count,
            agg.clients_text(),
            agg.value_max,
            agg.sides_text(),
        )


DETECTOR: Final = ZeroWindowStall
