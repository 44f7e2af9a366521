"""`connection_refused`: a SYN answered by a RST (nothing listening; Zeek REJ).

Rule: a SYN answered by a RST with no SYN-ACK. All refusals of one server ip:port are one row; the
peak number within `refused_window_s` is counted. Severity: info; warning (a storm) when the peak
reaches `refused_storm_count`.
"""

from __future__ import annotations

from typing import Any, Final

from ...connection import FlowRecord
from ..base import HANDSHAKE_INCOMPLETE, Aggregate, Context, Finding, Hit, RateWindow, RuleDetector, Setting

KIND: Final = "connection_refused"
ORDER: Final = 50
SETTINGS: Final = (
    Setting("refused_window_s", 10.0, "sliding window for counting refusals (RST to a SYN: Zeek REJ)"),
    Setting(
        "refused_storm_count",
        20,
        "a retrying client refuses about once per second (Linux connect() returns at once); 20 in 10 s to "
        "one port means several clients or a tight retry loop against a service that is down",
    ),
)


class ConnectionRefused(RuleDetector):
    def __init__(self, t: Any, context: Context) -> None:
        super().__init__(KIND, HANDSHAKE_INCOMPLETE, context)
        self.window_s: float = t.refused_window_s
        self.storm_count: int = t.refused_storm_count
        self.windows: dict[int, RateWindow] = {}  # by service id: refusals per window

    def rule(self, r: FlowRecord, obs_end: float) -> Hit | None:
        f = r.facts
        if f.syn_ts is None or f.synack_ts is not None or f.handshake_done_ts is not None or f.server_rst_ts is None:
            return None
        if f.bad_synack or f.server_rst_ts < f.syn_ts:
            return None
        ms = (f.server_rst_ts - f.syn_ts) * 1000.0
        return Hit(
            KIND,
            f.syn_ts,
            f.server_rst_ts,
            "SYN answered by RST after %.3f ms: nothing listening on the port (or a firewall rejecting)" % ms,
            "server",
            2 + f.syn_retransmits,
            ms,
        )

    def aggregate(self, hit: Hit, r: FlowRecord, sid: int) -> None:
        window = self.windows.get(sid)
        if window is None:
            window = self.windows[sid] = RateWindow(self.window_s, self.storm_count)
        window.note(hit.first)
        super().aggregate(hit, r, sid)

    def prune(self, latest: float) -> None:
        for window in self.windows.values():
            window.prune(latest)

    def merge(self, other: Any, ids: list[int]) -> None:
        super().merge(other, ids)
        for theirs, window in other.windows.items():
            sid = ids[theirs]
            if sid < 0:
                continue
            mine = self.windows.get(sid)
            if mine is None:
                mine = self.windows[sid] = RateWindow(self.window_s, self.storm_count)
            mine.merge(window)

    def findings(self) -> list[Finding]:
        for window in self.windows.values():
            window.result()
        return super().findings()

    def _peak(self, agg: Aggregate, sid: int) -> int:
        window = self.windows.get(sid)
        return window.peak if window is not None else agg.count

    def severity(self, agg: Aggregate, sid: int) -> str:
        return "warning" if self._peak(agg, sid) >= self.storm_count else "info"

    def summary(self, agg: Aggregate, sid: int) -> str:
        return (
            "%d connection attempts %s refused with RST over %.1f s (peak %d in %.0f s): nothing listening "
            "on the port" % (agg.count, agg.clients_text(), agg.last - agg.first, self._peak(agg, sid), self.window_s)
        )


DETECTOR: Final = ConnectionRefused
