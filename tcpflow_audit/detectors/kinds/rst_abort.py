"""`rst_abort`: an established connection ended with a RST instead of the FIN exchange.

Rule: the handshake completed and a RST followed it (not a stray RST after both FINs were
acknowledged). The detail names the side that sent it and whether it had sent a FIN before.
Severity: info; warning from `rst_abort_warn_count` aborts that are at least `rst_abort_warn_fraction`
of the service's established connections.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import EVERY_FLOW, Aggregate, Context, Hit, RuleDetector, Setting, plural

KIND: Final = "rst_abort"
ORDER: Final = 70
SETTINGS: Final = (
    Setting(
        "rst_abort_warn_count",
        20,
        "RST-closing connection pools are common: warn only when at least this many established connections "
        "of one service end in RST ...",
    ),
    Setting("rst_abort_warn_fraction", 0.2, "... and they are at least this share of its established connections"),
)


class RstAbort(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, EVERY_FLOW, context)
        self.warn_count: int = t.rst_abort_warn_count
        self.warn_fraction: float = t.rst_abort_warn_fraction
        self.established: list[int] = []  # by service id: connections that came up

    def observe(self, r: FlowRecord, obs_end: float, sid: int) -> bool:
        f = r.facts
        if sid >= 0 and f.syn_ts is not None and f.handshake_done_ts is not None:
            established = self.established
            if sid >= len(established):
                established.extend([0] * (sid + 1 - len(established)))
            established[sid] += 1
        if f.client_rst_ts is None and f.server_rst_ts is None:
            return False
        return super().observe(r, obs_end, sid)

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if f.handshake_done_ts is None or (f.client_rst_ts is None and f.server_rst_ts is None):
            return None
        candidates = [
            (ts, side)
            for ts, side in ((f.client_rst_ts, "client"), (f.server_rst_ts, "server"))
            if ts is not None and ts >= f.handshake_done_ts
        ]
        if not candidates:
            return None
        rst_ts, side = min(candidates)
        if (
            f.client_fin_acked
            and f.server_fin_acked
            and f.client_fin_ts is not None
            and f.server_fin_ts is not None
            and rst_ts >= max(f.client_fin_ts, f.server_fin_ts)
        ):
            return None  # a stray RST after a completed close, not an abort
        fin_ts = f.client_fin_ts if side == "client" else f.server_fin_ts
        how = "after its own FIN" if fin_ts is not None and fin_ts <= rst_ts else "without a FIN"
        probes = f.client_keepalives_unanswered if side == "client" else f.server_keepalives_unanswered
        if probes:
            how += ", after %s (its keepalive gave up: ETIMEDOUT)" % plural(probes, "unanswered keepalive probe")
        return Hit(
            KIND,
            rst_ts,
            rst_ts,
            "%s reset the established connection %.3f s after the handshake, %s (%s / %s with payload "
            "from client / server)"
            % (
                side,
                rst_ts - f.handshake_done_ts,
                how,
                plural(f.client_payload_packets, "segment"),
                plural(f.server_payload_packets, "segment"),
            ),
            side,
            1,
            rst_ts - f.handshake_done_ts,
        )

    def merge(self, other: Any, ids: list[int]) -> None:
        super().merge(other, ids)
        established = self.established
        for theirs, n in enumerate(other.established):
            sid = ids[theirs]
            if sid >= 0 and n:
                if sid >= len(established):
                    established.extend([0] * (sid + 1 - len(established)))
                established[sid] += n

    def _established(self, agg: Aggregate, sid: int) -> int:
        return self.established[sid] if sid < len(self.established) and self.established[sid] else agg.count

    def severity(self, agg: Aggregate, sid: int) -> str:
        established = self._established(agg, sid)
        n = agg.count
        return "warning" if n >= self.warn_count and n >= self.warn_fraction * max(established, 1) else "info"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return "%d of %d established connections %s ended with a RST (sent by: %s), over %.1f s" % (
            agg.count,
            self._established(agg, sid),
            agg.clients_text(),
            agg.sides_text(),
            agg.last - agg.first,
        )


DETECTOR: Final = RstAbort
