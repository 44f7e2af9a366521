"""`stuck_close_wait`: one side acknowledged the peer's FIN and never sent its own.

Rule: one side's FIN was acknowledged, the other side (the holder) sent no FIN, no RST, and the holder
has been silent for at least `close_wait_s`. Severity: warning; critical from
`close_wait_critical_count` connections on one server ip:port.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import FIN_MISSING, Aggregate, Context, Hit, RuleDetector, Setting, other_side

KIND: Final = "stuck_close_wait"
ORDER: Final = 120
SETTINGS: Final = (
    Setting("close_wait_s", 60.0,
            "Linux tcp_fin_timeout is 60 s: after that the peer's orphaned FIN_WAIT_2 socket is gone, and a socket "
            "still in CLOSE_WAIT is a file descriptor the application forgot to close()"),
    Setting("close_wait_critical_count", 10,
            "10 sockets left in CLOSE_WAIT on one service is a descriptor leak, not a one-off race"),
)


class StuckCloseWait(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, FIN_MISSING, context)
        self.close_wait_s: float = t.close_wait_s
        self.critical_count: int = t.close_wait_critical_count

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
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
        if idle < self.close_wait_s:
            return None
        return Hit(KIND, peer_fin, obs_end,
                   "%s has held CLOSE_WAIT for %.1f s: the %s's FIN was acknowledged and the %s sent no FIN "
                   "(silent for %.1f s: the application never called close())" % (
                       holder, obs_end - peer_fin, other_side(holder), holder, idle),
                   holder, 1, obs_end - peer_fin)

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "critical" if agg.count >= self.critical_count else "warning"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return ("%d connections %s left in CLOSE_WAIT (holder: %s) for up to %.1f s: the peer's FIN was "
                "acknowledged and no FIN followed; a descriptor leak in the application" % (
                    agg.count, agg.clients_text(), agg.sides_text(), agg.value_max))


DETECTOR: Final = StuckCloseWait
